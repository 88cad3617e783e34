//! The main thread's event loop (event-manager over epoll): stdin into COM1, signals, the
//! `--timeout` timer and the vCPU thread's "I stopped" eventfd.
//!
//! Nothing here polls: stdin is dropped from the epoll set at EOF or when it cannot be polled, and
//! while COM1's input FIFO is full (it is re-added when the guest drains the FIFO).

use crate::devices::serial::SharedSerial;
use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use std::cell::Cell;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

/// Why the event loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// The vCPU thread stopped by itself.
    VcpuStopped,
    /// SIGINT, SIGTERM or SIGHUP arrived.
    Signal(i32),
    /// `--timeout` expired.
    Timeout,
    /// The control API asked for a stop (`PUT /actions`).
    Requested,
}

/// The signals that stop the VM.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A signalfd for [`STOP_SIGNALS`]; blocks them in the calling thread, so call it before
/// spawning other threads (they inherit the mask and the signals reach only this fd).
#[derive(Debug)]
pub struct SignalFd(File);

impl SignalFd {
    /// Blocks the stop signals and opens the fd.
    pub fn new() -> std::io::Result<Self> {
        let set = vmm_sys_util::signal::create_sigset(&STOP_SIGNALS)
            .map_err(|e| std::io::Error::from_raw_os_error(e.errno()))?;
        // SAFETY: `set` is a valid, initialised sigset; the old mask is not requested.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        // SAFETY: plain syscall on a valid sigset; the returned fd is checked before use.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Self(unsafe { File::from_raw_fd(fd) }))
    }

    /// The next pending signal number, if any.
    fn read(&mut self) -> Option<i32> {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        match self.0.read(&mut info) {
            Ok(n) if n == info.len() => {
                Some(i32::from_le_bytes([info[0], info[1], info[2], info[3]]))
            }
            _ => None,
        }
    }
}

impl AsRawFd for SignalFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

/// Signals, timeout and vCPU completion: each ends the loop with a [`Shutdown`].
struct Lifecycle {
    vcpu_done: EventFd,
    signals: SignalFd,
    timer: Option<TimerFd>,
    result: Rc<Cell<Option<Shutdown>>>,
    /// The pause switch: time spent paused does not count toward the timeout.
    pause: Option<Arc<crate::pause::Pause>>,
    /// Written by the control API to stop the VM.
    stop_requested: Option<EventFd>,
}

impl Lifecycle {
    /// The timer went off: a timeout, unless the VM was paused meanwhile (then the timer is
    /// set again for the paused time, or polls while still paused).
    fn timer_fired(&mut self) {
        let owed = self.pause.as_ref().map(|p| p.take_owed());
        let again = match owed {
            Some(None) => Some(Duration::from_millis(100)),
            Some(Some(d)) if !d.is_zero() => Some(d),
            _ => None,
        };
        match (again, self.timer.as_mut()) {
            (Some(d), Some(t)) => {
                let _ = t.wait();
                if t.reset(d, None).is_err() {
                    self.result.set(Some(Shutdown::Timeout));
                }
            }
            _ => self.result.set(Some(Shutdown::Timeout)),
        }
    }
}

impl MutEventSubscriber for Lifecycle {
    fn init(&mut self, ops: &mut EventOps) {
        // Registration of these fds can only fail if epoll itself is broken; the loop then
        // never hears of them, so say so.
        let mut add = |fd: &dyn AsRawFd| {
            if let Err(e) = ops.add(Events::new_raw(fd.as_raw_fd(), EventSet::IN)) {
                eprintln!("vmm: cannot watch a control fd: {e}");
            }
        };
        add(&self.vcpu_done);
        add(&self.signals);
        if let Some(e) = &self.stop_requested {
            add(e);
        }
        if let Some(t) = &self.timer {
            add(t);
        }
    }

    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.vcpu_done.as_raw_fd() {
            let _ = self.vcpu_done.read();
            self.result.set(Some(Shutdown::VcpuStopped));
        } else if fd == self.signals.as_raw_fd() {
            if let Some(sig) = self.signals.read() {
                self.result.set(Some(Shutdown::Signal(sig)));
            }
        } else if self.timer.as_ref().is_some_and(|t| t.as_raw_fd() == fd) {
            self.timer_fired();
        } else if self
            .stop_requested
            .as_ref()
            .is_some_and(|e| e.as_raw_fd() == fd)
        {
            self.result.set(Some(Shutdown::Requested));
        }
    }
}

/// Where stdin stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum InputState {
    /// In the epoll set, waiting for input.
    Watching,
    /// Out of the epoll set until the guest drains COM1's FIFO.
    Paused,
    /// A regular file (cannot be polled): fed a FIFO's worth at a time on each drain.
    File,
    /// EOF, an error, or no stdin at all.
    Done,
}

/// stdin → COM1.
struct Console<W: Write> {
    stdin: Option<File>,
    drained: EventFd,
    waiting: Arc<AtomicBool>,
    serial: SharedSerial<W>,
    /// Bytes read from stdin that did not fit the FIFO yet (at most one FIFO's worth).
    pending: Vec<u8>,
    state: InputState,
}

const FIFO_SIZE: usize = 64;

impl<W: Write> Console<W> {
    fn stdin_events(&self) -> Option<Events> {
        self.stdin
            .as_ref()
            .map(|f| Events::new_raw(f.as_raw_fd(), EventSet::IN))
    }

    /// Moves as much of `pending` into the FIFO as fits; true when all of it went.
    ///
    /// Arms `waiting` first, so that a drain racing with this push is never missed; it is
    /// disarmed again only when nothing is held back and stdin is watched by epoll.
    fn push_pending(&mut self) -> bool {
        self.waiting.store(true, Ordering::Release);
        let mut serial = self.serial.lock().unwrap_or_else(|e| e.into_inner());
        let room = serial.fifo_capacity().min(self.pending.len());
        // The trigger can only fail on a broken eventfd: the bytes are queued either way.
        let queued = serial
            .enqueue_raw_bytes(&self.pending[..room])
            .unwrap_or(room);
        self.pending.drain(..queued);
        self.pending.is_empty()
    }

    /// Reads one chunk of stdin into `pending`; false at EOF or on error.
    fn read_stdin(&mut self) -> bool {
        let Some(stdin) = self.stdin.as_mut() else {
            return false;
        };
        let mut buf = [0u8; FIFO_SIZE];
        match stdin.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::Interrupted =>
            {
                true
            }
            Err(_) => false,
        }
    }

    fn stop_watching(&mut self, ops: &mut EventOps, state: InputState) {
        if self.state == InputState::Watching
            && let Some(ev) = self.stdin_events()
        {
            let _ = ops.remove(ev);
        }
        self.state = state;
    }

    fn on_stdin(&mut self, ops: &mut EventOps) {
        if !self.read_stdin() {
            self.stop_watching(ops, InputState::Done);
        }
        if !self.push_pending() && self.state == InputState::Watching {
            self.stop_watching(ops, InputState::Paused);
        }
    }

    fn on_drained(&mut self, ops: &mut EventOps) {
        let _ = self.drained.read();
        if !self.push_pending() {
            return;
        }
        match self.state {
            InputState::Paused => {
                if let Some(ev) = self.stdin_events()
                    && ops.add(ev).is_ok()
                {
                    self.state = InputState::Watching;
                } else {
                    self.state = InputState::Done;
                }
            }
            InputState::File => {
                if !self.read_stdin() {
                    self.state = InputState::Done;
                }
                self.push_pending();
            }
            InputState::Watching | InputState::Done => {}
        }
    }
}

impl<W: Write> MutEventSubscriber for Console<W> {
    fn init(&mut self, ops: &mut EventOps) {
        let _ = ops.add(Events::new(&self.drained, EventSet::IN));
        let Some(ev) = self.stdin_events() else {
            self.state = InputState::Done;
            return;
        };
        match ops.add(ev) {
            Ok(()) => self.state = InputState::Watching,
            // EPERM: a regular file or /dev/null, which epoll cannot watch. Feed it by chunks.
            Err(_) => {
                self.state = InputState::File;
                if !self.read_stdin() {
                    self.state = InputState::Done;
                }
                self.push_pending();
            }
        }
    }

    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.drained.as_raw_fd() {
            self.on_drained(ops);
        } else if events
            .event_set()
            .intersects(EventSet::IN | EventSet::HANG_UP | EventSet::ERROR)
        {
            self.on_stdin(ops);
        }
    }
}

/// What the loop watches.
#[derive(Debug)]
pub struct LoopInputs<W: Write> {
    /// Written by the vCPU thread when it stops.
    pub vcpu_done: EventFd,
    /// See [`SignalFd`].
    pub signals: SignalFd,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// COM1.
    pub serial: SharedSerial<W>,
    /// Written by COM1 when the guest empties its input FIFO while `input_waiting` is set.
    pub input_drained: EventFd,
    /// Set while the loop holds input back (shared with COM1's `InputDrained`).
    pub input_waiting: Arc<AtomicBool>,
    /// Feed stdin to the guest.
    pub stdin: bool,
    /// The pause switch, if the VM can be paused.
    pub pause: Option<Arc<crate::pause::Pause>>,
    /// Written by the control API to stop the VM.
    pub stop_requested: Option<EventFd>,
}

/// Runs until the vCPU stops, a stop signal arrives or the timeout expires.
pub fn run<W: Write + 'static>(inputs: LoopInputs<W>) -> std::io::Result<Shutdown> {
    let result = Rc::new(Cell::new(None));
    let timer = match inputs.timeout {
        Some(d) => {
            let mut t = TimerFd::new()?;
            t.reset(d, None)?;
            Some(t)
        }
        None => None,
    };
    let stdin = if inputs.stdin { open_stdin() } else { None };
    let mut manager: EventManager<Box<dyn MutEventSubscriber>> =
        EventManager::new().map_err(|e| std::io::Error::other(format!("epoll: {e:?}")))?;
    manager.add_subscriber(Box::new(Lifecycle {
        vcpu_done: inputs.vcpu_done,
        signals: inputs.signals,
        timer,
        result: Rc::clone(&result),
        pause: inputs.pause,
        stop_requested: inputs.stop_requested,
    }));
    manager.add_subscriber(Box::new(Console {
        stdin,
        drained: inputs.input_drained,
        waiting: inputs.input_waiting,
        serial: inputs.serial,
        pending: Vec::with_capacity(FIFO_SIZE),
        state: InputState::Done,
    }));
    loop {
        manager
            .run()
            .map_err(|e| std::io::Error::other(format!("epoll: {e:?}")))?;
        if let Some(s) = result.get() {
            return Ok(s);
        }
    }
}

/// stdin for the loop, or `None` when there is none.
///
/// Reopened through /proc/self/fd/0 where possible: a new open file description of the same
/// terminal, pipe or FIFO, which can be made non-blocking without changing the shell's. Then a
/// read that finds nothing (another reader took the bytes epoll announced) returns `EAGAIN`
/// instead of blocking the loop. Otherwise (e.g. a socket) a blocking duplicate, read only when
/// epoll reports it readable.
fn open_stdin() -> Option<File> {
    let private = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open("/proc/self/fd/0");
    match private {
        Ok(f) => Some(f),
        Err(_) => {
            let fd: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
            Some(File::from(fd))
        }
    }
}
