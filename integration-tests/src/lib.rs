//! Helpers for the integration tests: run the real `vmm` binary on real guests under KVM and
//! collect what it printed, its exit status and its resource use.
//!
//! The guests are built from guest-os/ by this package's build script; the `vmm` binary is this
//! package's `vmm-it`, the same code as `vmm` (see src/bin/vmm-it.rs).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The test guest with our region manifest (behaviour chosen by `mode=` on its command line).
pub const TESTGUEST: &str = env!("TESTGUEST_ELF");
/// A plain ELF (no manifest) linked at 1 MiB, stopping with an i8042 reset.
pub const PLAINGUEST: &str = env!("PLAINGUEST_ELF");
/// The same, linked low (at 64 KiB).
pub const PLAINLOW: &str = env!("PLAINLOW_ELF");
/// The demo kernel, as bundled into `vmm`.
pub const KERNEL: &str = env!("KERNEL_ELF");

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

/// What one `vmm` run produced.
#[derive(Debug)]
pub struct Outcome {
    /// Exit status (128 + N when killed by signal N without handling it).
    pub status: i32,
    /// The guest console.
    pub stdout: String,
    /// vmm's own messages.
    pub stderr: String,
    /// Peak resident set size of the vmm process, in KiB.
    pub max_rss_kib: u64,
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

/// A `vmm` invocation being prepared.
#[derive(Debug)]
pub struct Vmm {
    args: Vec<String>,
    stdin: Option<Vec<u8>>,
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
        stdin: None,
        env: Vec::new(),
        deadline: Duration::from_secs(120),
    }
}

impl Vmm {
    /// Feed these bytes to stdin (then EOF). Without it, stdin is /dev/null.
    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
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

    fn spawn(&self) -> Child {
        let mut cmd = Command::new(&self.args[0]);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.args[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        cmd.spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.args[0]))
    }

    /// Runs to completion.
    pub fn run(self) -> Outcome {
        let started = Instant::now();
        let mut child = self.spawn();
        if let (Some(bytes), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        wait(child, Box::new(stdout), started, self.deadline)
    }

    /// Starts it and returns once a stdout line contains `marker`; the caller then acts on the
    /// running VM (e.g. sends a signal) and calls [`Running::wait`].
    pub fn start_until(self, marker: &str) -> Running {
        let started = Instant::now();
        let mut child = self.spawn();
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let _ = child.kill();
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
            child,
            reader,
            seen,
            started,
            deadline: self.deadline,
        }
    }
}

/// A `vmm` that is running.
#[derive(Debug)]
pub struct Running {
    child: Child,
    reader: BufReader<ChildStdout>,
    seen: String,
    started: Instant,
    deadline: Duration,
}

impl Running {
    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the end; stdout includes what was read before.
    pub fn wait(self) -> Outcome {
        let seen = self.seen;
        let rest = Box::new(std::io::Cursor::new(seen.into_bytes()).chain(self.reader));
        wait(self.child, rest, self.started, self.deadline)
    }
}

/// Collects output and waits with `wait4` (for the child's rusage), killing it past `deadline`.
fn wait(
    mut child: Child,
    stdout: Box<dyn Read + Send>,
    started: Instant,
    deadline: Duration,
) -> Outcome {
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = std::thread::spawn(move || read_all(stdout));
    let err_thread = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let pid = child.id() as i32;
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let step = Duration::from_millis(100);
            let mut waited = Duration::ZERO;
            while !done.load(Ordering::Acquire) && waited < deadline {
                std::thread::park_timeout(step);
                waited += step;
            }
            if !done.load(Ordering::Acquire) {
                // SAFETY: kill(2) on a child that has not been reaped (done is still false).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data, fully written by wait4 on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::Release);
    watchdog.thread().unpark();
    let _ = watchdog.join();
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
    Outcome {
        status,
        stdout,
        stderr,
        max_rss_kib: usage.ru_maxrss as u64,
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
