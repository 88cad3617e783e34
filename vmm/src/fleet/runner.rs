//! `vmm fleet run`: each case a fresh VM in a child `vmm run` (a case that kills its VMM never
//! kills the campaign), at most `jobs` at once, each recorded as one line of `DIR/cases.jsonl`
//! the moment it ends (so that a stopped run keeps what finished and `--resume` goes on from
//! there). A bad case also keeps its stderr, stdout and report under `DIR/cases/INDEX/`.

use super::FleetError;
use super::campaign::Campaign;
use super::cases::{Case, case};
use super::record::{Build, CaseRecord, Ended, read_lines, record};
use super::shard::Shard;
use crate::faults::classify::Class;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How a campaign runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Where its results go.
    pub out: PathBuf,
    /// Cases at once.
    pub jobs: usize,
    /// Which cases.
    pub shard: Shard,
    /// Go on with a run stopped before (skip the recorded cases).
    pub resume: bool,
    /// Draw a progress bar (when stderr is a terminal).
    pub progress: bool,
}

/// What a run did.
#[derive(Debug)]
pub struct RunOutcome {
    /// Every case recorded in `DIR` (this run's and earlier ones').
    pub records: Vec<CaseRecord>,
    /// Cases this shard has.
    pub expected: u64,
    /// Stopped by a signal before every case ran.
    pub interrupted: bool,
    /// Wall time of this run.
    pub wall: Duration,
    /// Cases this run ran (and recorded).
    pub ran: u64,
}

/// The results file.
pub const CASES: &str = "cases.jsonl";
/// The copy of the campaign file kept with the results.
pub const CAMPAIGN: &str = "campaign.toml";

/// The command that runs `case` of `campaign` with the `vmm` at `exe`, its report at `report`.
pub fn case_command(exe: &Path, campaign: &Campaign, case: &Case, report: &Path) -> Command {
    let args = case_args(campaign, case);
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let mut cmd = Command::new(exe);
    cmd.args(&args[..split])
        .arg("--report")
        .arg(report)
        .args(&args[split..]);
    cmd
}

/// The `vmm` arguments of `case` (without `--report`).
fn case_args(campaign: &Campaign, case: &Case) -> Vec<String> {
    run_args(campaign, Some(case), case.guest_seed)
}

/// The golden run: the campaign's VM with no fault, the workload seeded as case 0's. The
/// campaign starts only if it ends well (exit 0): a guest that refuses its arguments, or a
/// configuration that fails, would make every case look like its fault did nothing.
pub fn golden_command(exe: &Path, campaign: &Campaign, guest_seed: u64) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(run_args(campaign, None, guest_seed));
    cmd
}

/// `vmm run` arguments for the campaign's VM, with `case`'s fault if any.
fn run_args(campaign: &Campaign, case: Option<&Case>, guest_seed: u64) -> Vec<String> {
    let mut args = vec![
        "run".to_owned(),
        "--timeout".to_owned(),
        format!("{}", campaign.timeout.as_secs_f64()),
    ];
    if let Some(case) = case {
        args.extend([
            "--fault".to_owned(),
            case.fault.to_string(),
            "--fault-seed".to_owned(),
            case.fault_seed.to_string(),
        ]);
    }
    if let Some(config) = &campaign.config {
        args.extend(["--config".to_owned(), config.display().to_string()]);
    }
    if let Some(m) = campaign.memory_mib {
        args.extend(["--memory".to_owned(), m.to_string()]);
    }
    if let Some(image) = &campaign.image {
        args.push(image.display().to_string());
    }
    args.push("--".to_owned());
    args.extend(campaign.guest_args.iter().cloned());
    args.push(format!("seed={guest_seed}"));
    args
}

/// A shell line that runs `case` again, by hand.
pub fn replay_line(campaign: &Campaign, case: &Case) -> String {
    let quote = |a: &str| {
        if !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.,:@=+/".contains(&b))
        {
            a.to_owned()
        } else {
            format!("'{}'", a.replace('\'', r"'\''"))
        }
    };
    std::iter::once("vmm".to_owned())
        .chain(case_args(campaign, case).iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs a child `vmm` to its end; a child still running `grace` after its own timeout is
/// killed (a VMM that does not stop is a VMM bug: `vmm-error`).
fn run_child(mut cmd: Command, timeout: Duration, running: &Mutex<HashSet<i32>>) -> (i32, f64) {
    let started = Instant::now();
    // Its own process group: a Ctrl-C at the terminal reaches the runner, which stops the
    // children itself (and keeps what finished).
    cmd.process_group(0).stdin(Stdio::null());
    let Ok(mut child) = cmd.spawn() else {
        return (-2, started.elapsed().as_secs_f64());
    };
    let pid = child.id() as i32;
    lock(running).insert(pid);
    let deadline = timeout + Duration::from_secs(30);
    if !exits_within(pid, deadline) {
        // SAFETY: kill(2) on the child's own process group, which it leads; no memory.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
    let status = child.wait();
    lock(running).remove(&pid);
    let code = match status {
        Ok(s) => s.code().unwrap_or(-1),
        Err(_) => -1,
    };
    (code, started.elapsed().as_secs_f64())
}

/// Waits up to `limit` for process `pid` to exit, without reaping it; false on timeout.
fn exits_within(pid: i32, limit: Duration) -> bool {
    // SAFETY: pidfd_open(2) on our own child, which is not reaped yet; it returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return true; // no pidfd: wait() alone decides
    }
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    let ready = loop {
        // SAFETY: poll(2) on one valid pollfd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n > 0;
        }
    };
    // SAFETY: closes the pidfd we opened.
    unsafe { libc::close(fd) };
    ready
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The paths of case `index`'s files while it runs.
struct Scratch {
    report: PathBuf,
    out: PathBuf,
    err: PathBuf,
}

impl Scratch {
    fn new(dir: &Path, index: u64) -> Self {
        Self {
            report: dir.join(format!("{index}.report.json")),
            out: dir.join(format!("{index}.stdout")),
            err: dir.join(format!("{index}.stderr")),
        }
    }

    fn remove(&self) {
        for p in [&self.report, &self.out, &self.err] {
            let _ = fs::remove_file(p);
        }
    }

    /// Keeps them under `DIR/cases/INDEX/` (a bad case).
    fn keep(&self, dir: &Path) {
        if fs::create_dir_all(dir).is_ok() {
            for (from, name) in [
                (&self.report, "report.json"),
                (&self.out, "stdout.txt"),
                (&self.err, "stderr.txt"),
            ] {
                let _ = fs::rename(from, dir.join(name));
            }
        }
    }
}

/// The records already in `dir` (resume), after cutting a last line a stopped run left half
/// written.
fn recorded(dir: &Path) -> Result<Vec<CaseRecord>, FleetError> {
    let path = dir.join(CASES);
    let text = match crate::files::read_text(&path, super::CASES_LIMIT) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FleetError::dir(&path, e.to_string())),
    };
    let (records, good) = read_lines(&text).map_err(|e| FleetError::dir(&path, e))?;
    if good < text.len() {
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| FleetError::dir(&path, e.to_string()))?;
        f.set_len(good as u64)
            .map_err(|e| FleetError::dir(&path, e.to_string()))?;
    }
    Ok(records)
}

/// Prepares `DIR`: a new one, or (resume) one holding this very campaign's results; returns
/// the cases recorded there already.
pub fn prepare(campaign: &Campaign, opts: &RunOptions) -> Result<Vec<CaseRecord>, FleetError> {
    let dir = &opts.out;
    let kept = dir.join(CAMPAIGN);
    if dir.exists() && !dir.is_dir() {
        return Err(FleetError::dir(dir, "not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| FleetError::dir(dir, e.to_string()))?;
    match crate::files::read_text(&kept, 1 << 20) {
        Ok(text) if !opts.resume => {
            let _ = text;
            Err(FleetError::dir(
                dir,
                "holds a campaign's results already: --resume to go on with it, or another --out"
                    .into(),
            ))
        }
        Ok(text) if text != campaign.text => Err(FleetError::dir(
            dir,
            format!(
                "holds the results of another campaign file ({CAMPAIGN} differs): another --out"
            ),
        )),
        Ok(_) => recorded(dir),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.join(CASES).exists() {
                return Err(FleetError::dir(
                    dir,
                    format!("has {CASES} but no {CAMPAIGN}"),
                ));
            }
            crate::files::write_atomic(&kept, campaign.text.as_bytes())
                .map_err(|e| FleetError::dir(&kept, e.to_string()))?;
            Ok(Vec::new())
        }
        Err(e) => Err(FleetError::dir(&kept, e.to_string())),
    }
}

/// Runs the cases of `campaign` that `opts.shard` holds and `DIR` has not recorded, with the
/// `vmm` at `exe`; `build` is the identity every record carries; `stop` set (a signal) stops
/// it, keeping what finished.
pub fn run(
    campaign: &Campaign,
    opts: &RunOptions,
    earlier: Vec<CaseRecord>,
    exe: &Path,
    build: &Build,
    stop: &Arc<AtomicBool>,
) -> Result<RunOutcome, FleetError> {
    let started = Instant::now();
    if let Some(other) = earlier.iter().find(|r| r.build != *build) {
        return Err(FleetError::dir(
            &opts.out,
            format!(
                "its cases were run by another build: {}; another --out",
                build.differences(&other.build).join(", ")
            ),
        ));
    }
    let done: HashSet<u64> = earlier.iter().map(|r| r.case).collect();
    let expected = (0..campaign.cases).filter(|&i| opts.shard.holds(i)).count() as u64;
    let todo: VecDeque<u64> = (0..campaign.cases)
        .filter(|&i| opts.shard.holds(i) && !done.contains(&i))
        .collect();
    let scratch_dir = opts.out.join("running");
    fs::create_dir_all(&scratch_dir).map_err(|e| FleetError::dir(&scratch_dir, e.to_string()))?;
    let cases_path = opts.out.join(CASES);
    let mut cases_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&cases_path)
        .map_err(|e| FleetError::dir(&cases_path, e.to_string()))?;
    let host = hostname();
    let progress = Progress::new(expected, opts.progress, &earlier);
    let queue = Mutex::new(todo);
    let running = Mutex::new(HashSet::new());
    let (tx, rx) = mpsc::channel::<(Case, Ended)>();
    let before = earlier.len();
    let mut records = earlier;
    let mut write_error = None;
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            let tx = tx.clone();
            let (queue, running, scratch_dir) = (&queue, &running, &scratch_dir);
            s.spawn(move || {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let Some(index) = lock(queue).pop_front() else {
                        break;
                    };
                    let case = case(campaign, index);
                    let files = Scratch::new(scratch_dir, index);
                    let mut cmd = case_command(exe, campaign, &case, &files.report);
                    match (File::create(&files.out), File::create(&files.err)) {
                        (Ok(out), Ok(err)) => {
                            cmd.stdout(out).stderr(err);
                        }
                        _ => {
                            cmd.stdout(Stdio::null()).stderr(Stdio::null());
                        }
                    }
                    let (status, duration_s) = run_child(cmd, campaign.timeout, running);
                    let report = crate::files::read_text(&files.report, super::REPORT_LIMIT)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok());
                    let ended = Ended {
                        status,
                        duration_s,
                        report,
                    };
                    if tx.send((case, ended)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut stopping = false;
        loop {
            if stop.load(Ordering::Relaxed) && !stopping {
                stopping = true;
                lock(&queue).clear();
                for pid in lock(&running).iter() {
                    // SAFETY: kill(2) on a child's own process group.
                    unsafe { libc::kill(-pid, libc::SIGTERM) };
                }
            }
            let (case, ended) = match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(x) => x,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            let files = Scratch::new(&scratch_dir, case.index);
            if stopping {
                // Stopped from outside, not by its own doing: not a result.
                files.remove();
                continue;
            }
            let r = record(
                &campaign.name,
                &case,
                &ended,
                build,
                &host,
                replay_line(campaign, &case),
            );
            let line = serde_json::to_string(&r).unwrap_or_default();
            if let Err(e) = writeln!(cases_file, "{line}").and_then(|()| cases_file.flush()) {
                write_error.get_or_insert(e);
            }
            if r.is_bad() {
                files.keep(&opts.out.join("cases").join(case.index.to_string()));
            } else {
                files.remove();
            }
            progress.add(&r);
            records.push(r);
        }
    });
    progress.finish();
    let _ = fs::remove_dir(&scratch_dir);
    if let Some(e) = write_error {
        return Err(FleetError::dir(&cases_path, e.to_string()));
    }
    let ran = (records.len() - before) as u64;
    records.sort_by_key(|r| r.case);
    Ok(RunOutcome {
        ran,
        interrupted: stop.load(Ordering::Relaxed),
        records,
        expected,
        wall: started.elapsed(),
    })
}

/// This machine's name.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The progress bar: cases done of this run, classes so far, rate and ETA.
struct Progress {
    bar: indicatif::ProgressBar,
    classes: Mutex<BTreeMap<Class, u64>>,
}

impl Progress {
    /// A bar over the shard's `total` cases, starting at those recorded `earlier` (resume).
    fn new(total: u64, draw: bool, earlier: &[CaseRecord]) -> Self {
        let bar = if draw {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{pos}/{len} cases [{bar:30}] {rate} ETA {eta} {msg}",
        ) {
            let style = style
                .with_key(
                    "rate",
                    |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                        let _ = write!(w, "{:.1}/s", s.per_sec());
                    },
                )
                .progress_chars("=> ");
            bar.set_style(style);
        }
        let mut classes = BTreeMap::new();
        for r in earlier {
            *classes.entry(r.classification).or_insert(0) += 1;
        }
        let progress = Self {
            bar,
            classes: Mutex::new(classes),
        };
        progress.bar.set_position(earlier.len() as u64);
        progress.bar.reset_eta();
        progress
            .bar
            .set_message(Self::tally(&lock(&progress.classes)));
        progress
    }

    fn tally(classes: &BTreeMap<Class, u64>) -> String {
        classes
            .iter()
            .map(|(c, n)| format!("{} {n}", c.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn add(&self, r: &CaseRecord) {
        let mut classes = lock(&self.classes);
        *classes.entry(r.classification).or_insert(0) += 1;
        // The count first: the tally never runs ahead of it.
        self.bar.inc(1);
        self.bar.set_message(Self::tally(&classes));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::spec::FaultSpec;

    #[test]
    fn a_case_runs_as_one_vmm_run_and_replays_as_one_line() {
        let campaign = Campaign::parse(
            r#"
[campaign]
name = "t"
seed = 1
cases = 1
timeout_secs = 2.5
guest_args = ["ops=300"]
config = "my policies.toml"
[[faults]]
servers = ["kv"]
kinds = ["panic"]
messages = [1, 1]
"#,
            Path::new("/d"),
        )
        .expect("valid");
        let case = Case {
            index: 0,
            fault: FaultSpec::parse("kv:panic@9").expect("valid"),
            fault_seed: 5,
            guest_seed: 6,
        };
        assert_eq!(
            case_args(&campaign, &case),
            [
                "run",
                "--timeout",
                "2.5",
                "--fault",
                "kv:panic@9",
                "--fault-seed",
                "5",
                "--config",
                "/d/my policies.toml",
                "--",
                "ops=300",
                "seed=6"
            ]
        );
        assert_eq!(
            replay_line(&campaign, &case),
            "vmm run --timeout 2.5 --fault kv:panic@9 --fault-seed 5 --config '/d/my policies.toml' -- ops=300 seed=6"
        );
        // The report flag is vmm's, not the guest's.
        let cmd = case_command(
            Path::new("/bin/vmm"),
            &campaign,
            &case,
            Path::new("/r.json"),
        );
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let report = args.iter().position(|a| a == "--report").expect("--report");
        assert_eq!(args[report + 1], "/r.json");
        assert!(report < args.iter().position(|a| a == "--").expect("--"));
        assert_eq!(args.last().map(String::as_str), Some("seed=6"));
    }
}
