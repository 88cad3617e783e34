//! Helpers for the integration tests: run the real `vmm` binary on real guests under KVM and
//! collect what it printed, its exit status and its resource use.
//!
//! The guests are built from guest-os/ by this package's build script; the `vmm` binary is this
//! package's `vmm-it`, the same code as `vmm` (see src/bin/vmm-it.rs).

pub mod documented;
pub mod http;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The test guest with our region manifest (behaviour chosen by `mode=` on its command line).
pub const TESTGUEST: &str = env!("TESTGUEST_ELF");
/// A plain ELF (no manifest) linked at 1 MiB, stopping with an i8042 reset.
pub const PLAINGUEST: &str = env!("PLAINGUEST_ELF");
/// The same, linked low (at 64 KiB).
pub const PLAINLOW: &str = env!("PLAINLOW_ELF");
/// The demo kernel, as bundled into `vmm`.
pub const KERNEL: &str = env!("KERNEL_ELF");

/// Most VMs the tests run at once: the test harness runs tests on parallel threads, and CI
/// machines have 2 cores; more VMs at once only slow each other past their timeouts.
pub const MAX_VMS: usize = 2;

static RUNNING_VMS: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

/// A place among the [`MAX_VMS`] VMs allowed to run at once; given back on drop.
#[derive(Debug)]
pub struct VmPermit(());

impl VmPermit {
    /// Waits for a place.
    pub fn acquire() -> Self {
        let (count, freed) = &RUNNING_VMS;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_VMS {
            n = freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        VmPermit(())
    }
}

impl Drop for VmPermit {
    fn drop(&mut self) {
        let (count, freed) = &RUNNING_VMS;
        let mut n = count.lock().unwrap_or_else(|e| e.into_inner());
        *n = n.saturating_sub(1);
        freed.notify_one();
    }
}

/// Fails loudly when this machine cannot run KVM guests. Tests that boot guests call it first:
/// they must never pass without having booted anything.
pub fn require_kvm() {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        panic!(
            "KVM REQUIRED: cannot open /dev/kvm ({e}). This test boots a real guest and cannot \
             pass without KVM; run it on a host with KVM enabled."
        );
    }
}

/// The KVM backend this host has, as the test suite observes it rather than as `vmm` detects
/// it: a ring-0 SSE instruction (testguest `mode=sse`) stops the VM with KVM's internal error on
/// KVM-PVM, whose ring-0 emulator has no SSE, and runs on hardware KVM. `"pvm"` or
/// `"hardware"`, the names boot-info and `vmm`'s lines use. Probed once per test process with
/// the `vmm` binary `bin`.
pub fn observed_backend(bin: &str) -> &'static str {
    static BACKEND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    BACKEND.get_or_init(|| {
        require_kvm();
        let out = vmm_run(bin, &[TESTGUEST, "--", "mode=sse"]).run();
        match out.status {
            0 => "hardware",
            s if s == i32::from(abi::status::GUEST_INTERNAL_ERROR) => "pvm",
            _ => panic!("the SSE probe ended neither way: {out:?}"),
        }
    })
}

/// What one `vmm` run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status (128 + N when killed by signal N without handling it).
    pub status: i32,
    /// The guest console (empty with [`Vmm::stdout_unread`]).
    pub stdout: String,
    /// vmm's own messages.
    pub stderr: String,
    /// Peak resident set size of the vmm process, in KiB.
    pub max_rss_kib: u64,
    /// CPU time (user + system) of the vmm process.
    pub cpu: Duration,
    /// Wall time from spawn to exit.
    pub wall: Duration,
}

impl Outcome {
    /// The peak heap use `vmm-it` reported (run with [`Vmm::heap_report`]), in bytes.
    pub fn peak_heap(&self) -> u64 {
        self.stderr
            .lines()
            .find_map(|l| {
                l.strip_prefix("vmm-it: peak heap ")?
                    .strip_suffix(" bytes")?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no heap report in {self:?}"))
    }

    /// stderr lines that are vmm's errors, i.e. not its info lines.
    pub fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| {
                !l.starts_with("vmm: booting")
                    && !l.starts_with("vmm: exit status")
                    && !l.starts_with("vmm-it: peak heap")
            })
            .collect()
    }
}

/// Where the process's stdin comes from.
#[derive(Debug)]
enum Input {
    /// /dev/null.
    Null,
    /// These bytes through a pipe, then EOF.
    Bytes(Vec<u8>),
    /// A pipe that stays open (no data, no EOF) until the process ends.
    OpenPipe,
    /// A regular file.
    File(PathBuf),
}

/// A `vmm` invocation being prepared.
#[derive(Debug)]
pub struct Vmm {
    args: Vec<String>,
    input: Input,
    read_stdout: bool,
    close_stderr: bool,
    env: Vec<(String, String)>,
    deadline: Duration,
}

/// `vmm run` with these arguments (a `--timeout` is added so that no test can hang).
pub fn vmm_run(bin: &str, args: &[&str]) -> Vmm {
    let mut all = vec![bin.to_owned(), "run".to_owned()];
    let vmm_args = args.iter().take_while(|a| **a != "--");
    if !vmm_args.clone().any(|a| a.starts_with("--timeout")) {
        all.extend(["--timeout".to_owned(), "60".to_owned()]);
    }
    all.extend(args.iter().map(|s| s.to_string()));
    Vmm {
        args: all,
        input: Input::Null,
        read_stdout: true,
        close_stderr: false,
        env: Vec::new(),
        deadline: Duration::from_secs(120),
    }
}

/// `vmm` with these arguments as given (any subcommand; no `--timeout` added; a 300 s
/// deadline).
pub fn vmm_cmd(bin: &str, args: &[&str]) -> Vmm {
    let mut all = vec![bin.to_owned()];
    all.extend(args.iter().map(|s| s.to_string()));
    Vmm {
        args: all,
        input: Input::Null,
        read_stdout: true,
        close_stderr: false,
        env: Vec::new(),
        deadline: Duration::from_secs(300),
    }
}

impl Vmm {
    /// Feed these bytes to stdin (then EOF). Without it, stdin is /dev/null.
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.input = Input::Bytes(bytes.to_vec());
        self
    }

    /// stdin is a pipe that never delivers anything and never closes while vmm runs.
    pub fn stdin_open_pipe(mut self) -> Self {
        self.input = Input::OpenPipe;
        self
    }

    /// stdin is this regular file.
    pub fn stdin_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.input = Input::File(path.into());
        self
    }

    /// Never read stdout: once the pipe is full, every console write of the guest blocks.
    pub fn stdout_unread(mut self) -> Self {
        self.read_stdout = false;
        self
    }

    /// Close the read end of stderr at once: every vmm message meets a broken pipe.
    pub fn stderr_closed(mut self) -> Self {
        self.close_stderr = true;
        self
    }

    /// Sets an environment variable for the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Asks `vmm-it` to report its peak heap use (see [`Outcome::peak_heap`]).
    pub fn heap_report(self) -> Self {
        self.env("VMM_IT_HEAP_REPORT", "1")
    }

    fn spawn(&self) -> (Child, Watchdog) {
        let mut cmd = Command::new(&self.args[0]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let stdin = match &self.input {
            Input::Null => Stdio::null(),
            Input::Bytes(_) | Input::OpenPipe => Stdio::piped(),
            Input::File(path) => Stdio::from(
                std::fs::File::open(path).unwrap_or_else(|e| panic!("cannot open {path:?}: {e}")),
            ),
        };
        cmd.args(&self.args[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(stdin);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.args[0]));
        let watchdog = Watchdog::start(child.id() as i32, self.deadline);
        (child, watchdog)
    }

    /// Runs to completion (waiting first for a place among the [`MAX_VMS`]).
    pub fn run(self) -> Outcome {
        let permit = VmPermit::acquire();
        self.run_with(&permit)
    }

    /// Runs to completion in the place `_permit` holds (for callers that hold one across
    /// several runs, or around a process that runs VMs one at a time).
    pub fn run_with(self, _permit: &VmPermit) -> Outcome {
        let started = Instant::now();
        let (mut child, watchdog) = self.spawn();
        let mut keep_open = None;
        match (&self.input, child.stdin.take()) {
            (Input::Bytes(bytes), Some(mut pipe)) => {
                let bytes = bytes.clone();
                std::thread::spawn(move || {
                    let _ = pipe.write_all(&bytes);
                });
            }
            (Input::OpenPipe, pipe) => keep_open = pipe,
            _ => {}
        }
        if self.close_stderr {
            drop(child.stderr.take());
        }
        let stdout = child.stdout.take().expect("piped stdout");
        let stdout: Box<dyn Read + Send> = if self.read_stdout {
            Box::new(stdout)
        } else {
            // Hold the pipe open but never read it.
            keep_unread(stdout);
            Box::new(std::io::empty())
        };
        finish(child, stdout, keep_open, watchdog, started, self.deadline)
    }

    /// Starts it and returns once a stdout line contains `marker`; the caller then acts on the
    /// running VM (e.g. sends a signal) and calls [`Running::wait`]. The deadline applies from
    /// the start, and a `Running` that is dropped without `wait` kills the process.
    pub fn start_until(self, marker: &str) -> Running {
        let started = Instant::now();
        let (mut child, watchdog) = self.spawn();
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("vmm ended before printing {marker:?}; stdout so far: {seen:?}");
                }
                Ok(_) => {
                    seen.push_str(&line);
                    if line.contains(marker) {
                        break;
                    }
                }
            }
        }
        Running {
            child: Some(child),
            reader: Some(reader),
            seen,
            watchdog: Some(watchdog),
            started,
            deadline: self.deadline,
        }
    }
}

/// Keeps a stdout pipe open without reading it, until the process ends.
fn keep_unread(stdout: ChildStdout) {
    std::thread::spawn(move || {
        // Waits for the child's end of the pipe to close, without reading: a zero-length
        // poll on POLLHUP. The pipe stays full while the child runs.
        use std::os::fd::AsRawFd;
        let mut fds = libc::pollfd {
            fd: stdout.as_raw_fd(),
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; blocks until the peer closes (POLLHUP is always reported).
        unsafe { libc::poll(&mut fds, 1, -1) };
        drop(stdout);
    });
}

/// A `vmm` that is running.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    reader: Option<BufReader<ChildStdout>>,
    seen: String,
    watchdog: Option<Watchdog>,
    started: Instant,
    deadline: Duration,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet (only `wait`
        // reaps it, and it consumes self).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the end; stdout includes what was read before.
    pub fn wait(mut self) -> Outcome {
        let (child, reader, watchdog) =
            match (self.child.take(), self.reader.take(), self.watchdog.take()) {
                (Some(c), Some(r), Some(w)) => (c, r, w),
                _ => unreachable!("a Running always holds its child until wait"),
            };
        let seen = std::mem::take(&mut self.seen);
        let rest = Box::new(std::io::Cursor::new(seen.into_bytes()).chain(reader));
        finish(child, rest, None, watchdog, self.started, self.deadline)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills the child if it outlives its deadline. The kill can only reach our own, not yet reaped
/// child: `finish` waits with WNOWAIT first and stops the watchdog before reaping.
#[derive(Debug)]
struct Watchdog {
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(pid: i32, deadline: Duration) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + deadline;
            while !flag.load(Ordering::Acquire) {
                let now = Instant::now();
                if now >= end {
                    // SAFETY: kill(2) on our child, which is not reaped while `done` is false.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    return;
                }
                std::thread::park_timeout(end - now);
            }
        });
        Self { done, thread }
    }

    fn stop(self) {
        self.done.store(true, Ordering::Release);
        self.thread.thread().unpark();
        let _ = self.thread.join();
    }
}

/// Collects output, waits for the end (WNOWAIT, then stops the watchdog, then reaps with wait4
/// for the rusage) and builds the outcome.
fn finish(
    mut child: Child,
    stdout: Box<dyn Read + Send>,
    keep_open: Option<ChildStdin>,
    watchdog: Watchdog,
    started: Instant,
    deadline: Duration,
) -> Outcome {
    let stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || read_all(stdout));
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_end(&mut s);
        }
        s
    });
    let pid = child.id() as i32;
    // SAFETY: siginfo is plain data that waitid fills.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child without reaping it (WNOWAIT), so its pid stays ours.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid failed");
    watchdog.stop();
    drop(keep_open);
    let mut status = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own exited child's pid with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    let wall = started.elapsed();
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    assert!(wall < deadline, "vmm hung: killed after {deadline:?}");
    let stdout = String::from_utf8_lossy(&out_thread.join().expect("stdout reader")).into_owned();
    let stderr = String::from_utf8_lossy(&err_thread.join().expect("stderr reader")).into_owned();
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Outcome {
        status,
        stdout,
        stderr,
        max_rss_kib: usage.ru_maxrss as u64,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        wall,
    }
}

fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// A copy of `src` with `patch` applied, in a temp file that lives as long as the returned guard.
pub fn patched_copy(src: &str, patch: impl FnOnce(&mut Vec<u8>)) -> tempfile::TempPath {
    let mut bytes = std::fs::read(src).unwrap_or_else(|e| panic!("cannot read {src}: {e}"));
    patch(&mut bytes);
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(&bytes).expect("write temp image");
    f.into_temp_path()
}
