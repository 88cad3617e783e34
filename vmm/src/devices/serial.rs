//! COM1: a vm-superio 16550 whose output goes to stdout and whose input comes from stdin.
//!
//! Output is written through as the guest writes it (nothing is held back, so a guest that floods
//! the console costs constant memory). Input is pushed into the UART's FIFO by the event loop;
//! when the guest empties the FIFO the device signals `input_drained` so that the event loop
//! resumes reading stdin (it stops while the FIFO is full rather than buffering without limit).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// First COM1 port.
pub const COM1_BASE: u16 = 0x3f8;
/// COM1's port count.
pub const COM1_PORTS: u16 = 8;
/// COM1's interrupt line.
pub const COM1_IRQ: u32 = 4;

/// Raises COM1's interrupt through an irqfd.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Tells the event loop that the guest has read every queued input byte, once per pause: the
/// loop arms `waiting` when it holds input back, so a guest polling an empty receive register
/// cannot wake the loop over and over.
#[derive(Debug)]
pub struct InputDrained {
    /// Written when the FIFO empties while the loop waits.
    pub fd: EventFd,
    /// Set by the event loop while it holds input back.
    pub waiting: Arc<AtomicBool>,
}

impl SerialEvents for InputDrained {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        if self.waiting.swap(false, Ordering::AcqRel) {
            // A failed eventfd write only delays input until the next drain.
            let _ = self.fd.write(1);
        }
    }
}

/// The console sink: stdout, written through. After the first write error (stdout closed or
/// full) output is dropped rather than failing the guest's port writes, and counted in `lost`
/// (the run says how much was lost); output given up because the VM is being stopped is not.
#[derive(Debug)]
pub struct ConsoleOut<W: Write> {
    out: W,
    broken: bool,
    lost: Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> ConsoleOut<W> {
    /// A sink over `out`, counting the bytes it could not write in `lost`.
    pub fn new(out: W, lost: Arc<std::sync::atomic::AtomicU64>) -> Self {
        Self {
            out,
            broken: false,
            lost,
        }
    }

    /// The underlying writer.
    pub fn inner(&self) -> &W {
        &self.out
    }
}

impl<W: Write> Write for ConsoleOut<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Never blocks past a stop request: a kick interrupts a write to a full pipe, and then
        // the output is given up instead of retried (see `crate::log`).
        if !self.broken && !crate::log::write_unless_stopping(&mut self.out, buf) {
            self.broken = !crate::kick::kicked();
            if !self.broken {
                return Ok(buf.len());
            }
        }
        if self.broken {
            self.lost
                .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.broken && self.out.flush().is_err() {
            self.broken = true;
        }
        Ok(())
    }
}

/// The guest console's sink: a duplicate of fd 1 written with plain `write` calls.
///
/// Not `std::io::stdout()`: its line buffer retries interrupted writes, so a kick could never
/// free a vCPU blocked on a full stdout pipe. With no usable stdout, the console goes to
/// /dev/null (and failing that, nowhere).
pub fn console_stdout() -> Box<dyn Write + Send> {
    use std::os::fd::AsFd;
    match std::io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => match std::fs::OpenOptions::new().write(true).open("/dev/null") {
            Ok(f) => Box::new(f),
            Err(_) => Box::new(std::io::sink()),
        },
    }
}

/// The UART as the VMM uses it.
pub type SerialDevice<W> = Serial<IrqTrigger, InputDrained, ConsoleOut<W>>;

/// COM1, shared by the vCPU thread (port I/O) and the event loop (stdin).
pub type SharedSerial<W> = Arc<Mutex<SerialDevice<W>>>;

/// A new COM1 writing to `out`; `drained` as in [`InputDrained`]; bytes it could not write are
/// counted in `lost`.
pub fn new_serial<W: Write>(
    irq: EventFd,
    drained: InputDrained,
    out: W,
    lost: Arc<std::sync::atomic::AtomicU64>,
) -> SharedSerial<W> {
    Arc::new(Mutex::new(Serial::with_events(
        IrqTrigger(irq),
        drained,
        ConsoleOut::new(out, lost),
    )))
}

/// True for COM1's ports.
pub fn claims(port: u16) -> bool {
    (COM1_BASE..COM1_BASE + COM1_PORTS).contains(&port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial() -> SerialDevice<Vec<u8>> {
        Serial::with_events(
            IrqTrigger(EventFd::new(0).expect("eventfd")),
            InputDrained {
                fd: EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"),
                waiting: Arc::new(AtomicBool::new(true)),
            },
            ConsoleOut::new(Vec::new(), Arc::default()),
        )
    }

    /// A console that cannot be written (a full or closed stdout) counts what it lost.
    #[test]
    fn output_that_cannot_be_written_is_counted() {
        let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let mut out = ConsoleOut::new(full, Arc::clone(&lost));
        out.write_all(b"hello\n")
            .expect("the guest's write goes on");
        out.write_all(b"more").expect("and on");
        assert_eq!(lost.load(std::sync::atomic::Ordering::Relaxed), 10);
    }

    #[test]
    fn guest_bytes_reach_the_console() {
        let mut s = serial();
        for b in b"hi\n" {
            s.write(0, *b).expect("THR write");
        }
        assert_eq!(s.writer().inner().as_slice(), b"hi\n");
    }

    #[test]
    fn draining_the_fifo_signals_the_event_loop_once_per_wait() {
        let mut s = serial();
        s.enqueue_raw_bytes(b"ab").expect("fifo has room");
        assert_eq!(s.read(0), b'a');
        assert!(
            s.events().fd.read().is_err(),
            "signalled before the FIFO was empty"
        );
        assert_eq!(s.read(0), b'b');
        assert_eq!(s.events().fd.read().expect("signalled"), 1);
        // A guest polling the empty receive register does not wake the loop again.
        for _ in 0..10 {
            s.read(0);
        }
        assert!(
            s.events().fd.read().is_err(),
            "signalled while nobody waits"
        );
    }

    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_does_not_fail_the_guest() {
        let mut out = ConsoleOut::new(Closed, Arc::default());
        assert_eq!(out.write(b"x").expect("swallowed"), 1);
        assert!(out.broken);
    }
}
