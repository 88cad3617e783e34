//! `vmm demo`: boots the bundled guest with a workload that runs until stopped (`ops=forever`)
//! as a child `vmm run --api-sock`, and shows it live as a terminal dashboard (ratatui), or as
//! lines without a terminal (`--no-tui`, or stdout not a terminal). The dashboard is a client of
//! the control API like `vmm ctl`: it polls `GET /vm` and `GET /servers`, follows `GET
//! /events`, plans faults with `PUT /servers/{name}/fault`, pauses with `PATCH /vm` and stops
//! with `PUT /actions`; the run's output (guest console, vmm's lines) fills its console pane.
//! docs/demo.md.

pub mod model;
pub mod ui;

use crate::api_client;
use model::{Action, Dashboard, EventKind, Key};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

/// `vmm demo` arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Also serve the control API at PATH, for `vmm ctl PATH ...` or curl in another terminal
    /// [default: a private socket in a temporary directory, shown on the dashboard].
    #[arg(long, value_name = "PATH")]
    pub api_sock: Option<PathBuf>,
    /// Print the events and the run's output as lines instead of the dashboard (the default
    /// when stdout is not a terminal).
    #[arg(long)]
    pub no_tui: bool,
    /// Write the run's report (as `vmm run --report`) when the demo ends.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Guest ELF image (default: the bundled demo guest).
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,
    /// TOML config file, as `vmm run --config` (recovery policies, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The guest's command line [default: ops=forever, the workload until the demo ends].
    #[arg(last = true, value_name = "GUEST_ARGS")]
    pub guest_args: Vec<String>,
}

/// How often the dashboard asks for the VM's and the servers' figures.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// How long the VM may take to boot and serve its API.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The run's last lines shown when it ended by itself.
const LAST_LINES: usize = 5;
/// Seconds between two status lines without the dashboard.
const STATUS_EVERY: f64 = 5.0;

/// What the helper threads tell the loop.
enum Msg {
    /// A line of the run's stdout (the guest console).
    Out(String),
    /// A line of the run's stderr (vmm's own lines).
    Err(String),
    /// A record of the event stream.
    Event(Value),
    /// A `GET /vm` answer.
    Vm(Value),
    /// A `GET /servers` answer.
    Servers(Value),
    /// How an action went.
    Notice(EventKind, String),
    /// The run ended with this status.
    Exited(i32),
}

/// The child run and what it was asked.
struct Run {
    socket: PathBuf,
    pid: i32,
    /// Set once the demo asked the VM to stop.
    stopping: bool,
    started: Instant,
}

impl Run {
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// Runs `vmm demo`; returns the exit status.
pub fn main(args: DemoArgs) -> i32 {
    let tmp;
    let socket = match &args.api_sock {
        Some(p) => p.clone(),
        None => match tempfile::tempdir() {
            Ok(dir) => {
                tmp = dir;
                tmp.path().join("api.sock")
            }
            Err(e) => {
                eprintln!("vmm: demo: a temporary directory for the API socket: {e}");
                return i32::from(abi::status::HOST);
            }
        },
    };
    // Another VM's live socket: refused here, before its events could pass for this one's.
    if args.api_sock.is_some() && std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        eprintln!(
            "vmm: --api-sock {}: a socket someone is serving on: not taken",
            socket.display()
        );
        return i32::from(abi::status::USAGE);
    }
    let (tx, rx) = channel();
    let mut run = match start(&args, &socket, &tx) {
        Ok(run) => run,
        Err(status) => return status,
    };
    let tui = !args.no_tui && std::io::stdout().is_terminal();
    let mut d = Dashboard::new(
        socket.display().to_string(),
        crate::live::kinds()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    );
    // Until the API answers, the run's lines are passed on (a bad image or flag ends it here).
    if let Err(status) = wait_ready(&mut run, &rx, &mut d) {
        return status;
    }
    let done = Arc::new(AtomicBool::new(false));
    follow(&run.socket, &tx, &done);
    let status = if tui {
        dashboard(&mut run, &rx, &tx, &mut d)
    } else {
        lines(&mut run, &rx, &tx, &mut d)
    };
    // The event stream's last record (how the VM ended, the final figures) may still be on
    // its way: the run's end and the stream are read by different threads.
    let until = Instant::now() + Duration::from_millis(500);
    while d.ended.is_none() && Instant::now() < until {
        if let Ok(m @ Msg::Event(_)) = rx.recv_timeout(Duration::from_millis(50)) {
            apply(&mut d, &run, m, !tui);
        }
    }
    done.store(true, Ordering::Relaxed);
    summary(&d, &run, status, args.report.as_deref(), !tui)
}

/// Starts the child `vmm run`, its output read by two threads and its end by a third.
fn start(args: &DemoArgs, socket: &std::path::Path, tx: &Sender<Msg>) -> Result<Run, i32> {
    let exe = std::env::current_exe().map_err(|e| {
        eprintln!("vmm: demo: cannot find vmm itself: {e}");
        i32::from(abi::status::HOST)
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("run").arg("--api-sock").arg(socket);
    for (flag, value) in [("--report", &args.report), ("--config", &args.config)] {
        if let Some(v) = value {
            cmd.arg(flag).arg(v);
        }
    }
    // `vmm run` takes its image as its argument.
    if let Some(image) = &args.image {
        cmd.arg(image);
    }
    cmd.arg("--");
    if args.guest_args.is_empty() {
        cmd.arg("ops=forever");
    } else {
        cmd.args(&args.guest_args);
    }
    // Its own process group: a ^C reaches the demo, which stops the VM through the API. And
    // should the demo die without stopping it, the run gets a SIGTERM (it is not left running
    // a workload that never ends).
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: prctl(2) with plain integer arguments, async-signal-safe, in the forked child
    // before exec; it touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        eprintln!("vmm: demo: cannot start vmm run: {e}");
        i32::from(abi::status::HOST)
    })?;
    let pid = child.id() as i32;
    let pipes = (child.stdout.take(), child.stderr.take());
    if let Some(out) = pipes.0 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(Msg::Out(line));
            }
        });
    }
    if let Some(err) = pipes.1 {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(Msg::Err(line));
            }
        });
    }
    let tx = tx.clone();
    std::thread::spawn(move || {
        let status = child
            .wait()
            .map_or(i32::from(abi::status::VMM_INTERNAL), |s| {
                s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
            });
        let _ = tx.send(Msg::Exited(status));
    });
    Ok(Run {
        socket: socket.to_owned(),
        pid,
        stopping: false,
        started: Instant::now(),
    })
}

/// Waits until the VM serves its API; `Err` with the status to exit with when the run ended
/// first (its lines are passed on, so its one-line error is seen).
fn wait_ready(run: &mut Run, rx: &Receiver<Msg>, d: &mut Dashboard) -> Result<(), i32> {
    loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(Msg::Out(line)) => d.console_line(line),
            Ok(Msg::Err(line)) => {
                eprintln!("{line}");
                d.console_line(line);
            }
            Ok(Msg::Exited(status)) => {
                // The rest of its lines.
                while let Ok(m) = rx.recv_timeout(Duration::from_millis(200)) {
                    if let Msg::Err(line) = m {
                        eprintln!("{line}");
                    }
                }
                return Err(status);
            }
            Ok(_) | Err(_) => {}
        }
        if api_client::request(&run.socket, "GET", "/vm", "").is_ok() {
            return Ok(());
        }
        if run.started.elapsed() > READY_WITHIN {
            eprintln!(
                "vmm: demo: the VM did not serve its API within {} s",
                READY_WITHIN.as_secs()
            );
            terminate(run);
            return Err(i32::from(abi::status::VMM_INTERNAL));
        }
    }
}

/// Starts the threads that poll the VM's figures and follow its event stream, until `done`.
fn follow(socket: &std::path::Path, tx: &Sender<Msg>, done: &Arc<AtomicBool>) {
    let (s, t, stop) = (socket.to_owned(), tx.clone(), Arc::clone(done));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            for (path, wrap) in [
                ("/vm", Msg::Vm as fn(Value) -> Msg),
                ("/servers", Msg::Servers),
            ] {
                if let Ok((200, v)) = api_client::request(&s, "GET", path, "")
                    && t.send(wrap(v)).is_err()
                {
                    return;
                }
            }
            std::thread::sleep(POLL_EVERY);
        }
    });
    let (s, t) = (socket.to_owned(), tx.clone());
    std::thread::spawn(move || {
        if let Ok(lines) = api_client::events(&s) {
            for line in lines {
                if let Ok(v) = serde_json::from_str(&line)
                    && t.send(Msg::Event(v)).is_err()
                {
                    return;
                }
            }
        }
    });
}

/// Applies a helper's message; the run's status once it ended.
fn apply(d: &mut Dashboard, run: &Run, m: Msg, echo: bool) -> Option<i32> {
    let now = run.now();
    match m {
        Msg::Out(line) => {
            if echo {
                println!("{line}");
            }
            d.console_line(line);
        }
        Msg::Err(line) => {
            if echo {
                eprintln!("{line}");
            }
            d.console_line(line);
        }
        Msg::Event(v) => {
            d.apply_event(&v, now);
            if echo && let Some(e) = d.events.back() {
                println!("demo: {:.1} s {}", e.at, e.text);
            }
        }
        Msg::Vm(v) => d.apply_vm(&v),
        Msg::Servers(v) => d.apply_servers(&v, now),
        Msg::Notice(kind, text) => {
            if echo {
                println!("demo: {text}");
            }
            d.log(now, kind, text);
        }
        Msg::Exited(status) => {
            d.vm_state = format!("stopped ({status})");
            return Some(status);
        }
    }
    None
}

/// Carries out an action through the API (on a thread of its own: the kernel takes up to a
/// tick to answer a fault, and the screen keeps moving meanwhile).
fn perform(run: &mut Run, action: Action, tx: &Sender<Msg>) {
    let socket = run.socket.clone();
    let (method, path, body, done) = match &action {
        Action::Fault { server, kind } => (
            "PUT",
            format!("/servers/{server}/fault"),
            json!({ "kind": kind }).to_string(),
            format!("{server}: {kind} planned for its next message"),
        ),
        Action::Cancel { server } => (
            "DELETE",
            format!("/servers/{server}/fault"),
            String::new(),
            format!("{server}: the storm's fault cancelled"),
        ),
        Action::Pause => (
            "PATCH",
            "/vm".to_owned(),
            r#"{"state": "Paused"}"#.to_owned(),
            "paused".to_owned(),
        ),
        Action::Resume => (
            "PATCH",
            "/vm".to_owned(),
            r#"{"state": "Resumed"}"#.to_owned(),
            "resumed".to_owned(),
        ),
        Action::Quit => {
            if run.stopping {
                // Asked twice: the VM goes now.
                terminate(run);
                return;
            }
            run.stopping = true;
            (
                "PUT",
                "/actions".to_owned(),
                r#"{"action_type": "Stop"}"#.to_owned(),
                "stopping the VM".to_owned(),
            )
        }
    };
    let tx = tx.clone();
    let pid = run.pid;
    std::thread::spawn(move || {
        // The last figures first, for the summary.
        if matches!(action, Action::Quit) {
            for (path, wrap) in [
                ("/vm", Msg::Vm as fn(Value) -> Msg),
                ("/servers", Msg::Servers),
            ] {
                if let Ok((200, v)) = api_client::request(&socket, "GET", path, "") {
                    let _ = tx.send(wrap(v));
                }
            }
        }
        let notice = match api_client::request(&socket, method, &path, &body) {
            Ok((200, _)) => (EventKind::Action, done),
            Ok((_, v)) => (
                EventKind::Problem,
                v["error"].as_str().unwrap_or("refused").to_owned(),
            ),
            Err(e) => (EventKind::Problem, e),
        };
        if matches!(action, Action::Quit) && notice.0 == EventKind::Problem {
            // SAFETY: not memory: a signal to the child we started (its pid is ours to
            // signal until we reap it, which only the waiting thread does).
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = tx.send(Msg::Notice(notice.0, notice.1));
    });
}

/// Stops the run at once (SIGTERM: it still writes its report).
fn terminate(run: &mut Run) {
    run.stopping = true;
    // SAFETY: as in `perform`.
    unsafe { libc::kill(run.pid, libc::SIGTERM) };
}

/// The dashboard until the run ends; the run's status.
fn dashboard(run: &mut Run, rx: &Receiver<Msg>, tx: &Sender<Msg>, d: &mut Dashboard) -> i32 {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    // A SIGTERM (or SIGHUP) quits as `q` does: the VM stopped, the terminal put back.
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&signalled));
    }
    let mut terminal = ratatui::init();
    let mut gone = false;
    let status = loop {
        if signalled.swap(false, Ordering::Relaxed) {
            perform(run, Action::Quit, tx);
        }
        let mut ended = None;
        while let Ok(m) = rx.try_recv() {
            ended = ended.or(apply(d, run, m, false));
        }
        if let Some(status) = ended {
            break status;
        }
        if let Some(a) = d.tick(run.now()) {
            perform(run, a, tx);
        }
        if terminal.draw(|f| ui::draw(f, d)).is_err() {
            terminate(run);
        }
        // The terminal itself, first: once it is gone (closed, hung up) crossterm's poll
        // spins on end of input and never returns to the loop, so it is asked only when
        // there is input, and a hang-up quits as `q` does.
        match terminal_input(Duration::from_millis(100)) {
            Input::None => continue,
            Input::Gone => {
                if !gone {
                    gone = true;
                    perform(run, Action::Quit, tx);
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            Input::Ready => {}
        }
        // Every event its bytes make (keys that came together are read together).
        while let Ok(true) = event::poll(Duration::ZERO) {
            let Ok(Event::Key(k)) = event::read() else {
                continue;
            };
            if k.kind != KeyEventKind::Press {
                continue;
            }
            let key = match k.code {
                KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                    Some(Key::Quit)
                }
                KeyCode::Up => Some(Key::Up),
                KeyCode::Down => Some(Key::Down),
                KeyCode::Esc => Some(Key::Quit),
                KeyCode::Char(c) => Key::from_char(c),
                _ => None,
            };
            if let Some(a) = key.and_then(|k| d.key(k, run.now())) {
                perform(run, a, tx);
            }
        }
    };
    ratatui::restore();
    status
}

/// What the terminal has for the dashboard.
enum Input {
    /// Nothing within the wait.
    None,
    /// Something to read.
    Ready,
    /// It is gone: hung up, closed, or not there.
    Gone,
}

/// Waits up to `wait` for input on the terminal (standard input, as crossterm reads it).
fn terminal_input(wait: Duration) -> Input {
    let mut fd = libc::pollfd {
        fd: libc::STDIN_FILENO,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(wait.as_millis()).unwrap_or(libc::c_int::MAX);
    // SAFETY: poll(2) on one pollfd that lives on this stack frame for the call's duration.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    if n < 0 {
        // Interrupted by a signal: the loop looks at its flags and comes back.
        return Input::None;
    }
    if fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return Input::Gone;
    }
    if fd.revents & libc::POLLIN == 0 {
        return Input::None;
    }
    // Readable, but nothing to read: at its end (a closed terminal or pipe), gone too.
    let mut waiting: libc::c_int = 0;
    // SAFETY: ioctl(2) FIONREAD writes one c_int, into `waiting`, a local.
    let asked = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::FIONREAD, &mut waiting) };
    if asked == 0 && waiting == 0 {
        return Input::Gone;
    }
    Input::Ready
}

/// The records as lines until the run ends (or a signal stops it); the run's status.
fn lines(run: &mut Run, rx: &Receiver<Msg>, tx: &Sender<Msg>, d: &mut Dashboard) -> i32 {
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(signal, Arc::clone(&signalled));
    }
    println!(
        "demo: control API at {} (vmm ctl {} status | servers | fault SERVER KIND | ...)",
        run.socket.display(),
        run.socket.display()
    );
    let mut next_status = STATUS_EVERY;
    loop {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(100))
            && let Some(status) = apply(d, run, m, true)
        {
            return status;
        }
        if signalled.swap(false, Ordering::Relaxed) {
            perform(run, Action::Quit, tx);
        }
        let now = run.now();
        if now >= next_status {
            next_status += STATUS_EVERY;
            let w = &d.workload;
            println!(
                "demo: {now:.1} s, requests {}, errors {}, retries {}, lost {}, mismatches {}",
                w.ops, w.errors, w.retries, w.lost, w.mismatches
            );
        }
        let _ = std::io::stdout().flush();
    }
}

/// Prints the summary; the demo's exit status: for a run that was stopped (by the demo, or
/// through the API or a signal: 143), 0 when the workload saw no mismatch, else 1 (as the
/// workload itself ends a run); for a run that ended by itself, its own status (and its last
/// lines, unless `echoed`).
fn summary(
    d: &Dashboard,
    run: &Run,
    status: i32,
    report: Option<&std::path::Path>,
    echoed: bool,
) -> i32 {
    let w = &d.workload;
    // Why it ended: the VM's own word, or else vmm's last line of substance (a guest's LOG).
    let said = d.console.iter().rev().find(|l| {
        l.starts_with("vmm: ")
            && !l.starts_with("vmm: exit status")
            && !l.starts_with("vmm: booting")
    });
    let message = d
        .ended
        .as_ref()
        .and_then(|(_, m)| m.as_deref())
        .or_else(|| said.map(|l| l.trim_start_matches("vmm: ")));
    let backend = if d.backend.is_empty() {
        // From the boot line when the API never said.
        d.console
            .iter()
            .find_map(|l| l.split("KVM backend ").nth(1))
            .and_then(|b| b.split_whitespace().next())
            .unwrap_or("?")
    } else {
        &d.backend
    };
    // 143: stopped as by SIGTERM - by the demo, or by someone through the API or a signal.
    let stopped = status == 143;
    let how = match (stopped, run.stopping, message) {
        (true, true, _) => "stopped by you".to_owned(),
        (true, false, Some(m)) => format!("stopped: {m}"),
        (true, false, None) => "stopped".to_owned(),
        (false, _, _) if status > 128 => {
            format!("killed by signal {} (status {status})", status - 128)
        }
        (false, _, Some(m)) => format!("ended by itself with status {status}: {m}"),
        (false, _, None) => format!("ended by itself with status {status}"),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "vmm demo: {:.1} s on KVM backend {}, {how}",
        run.now(),
        backend
    );
    let _ = writeln!(
        out,
        "workload so far: ops={} errors={} retries={} lost={} mismatches={} ({})",
        w.ops,
        w.errors,
        w.retries,
        w.lost,
        w.mismatches,
        d.verdict()
    );
    if !stopped && !echoed {
        // What it said last, for a run that ended by itself (e.g. a guest refusing its
        // command line), unless its lines were printed as they came.
        let _ = writeln!(out, "its last lines:");
        let skip = d.console.len().saturating_sub(LAST_LINES);
        for line in d.console.iter().skip(skip) {
            let _ = writeln!(out, "  {line}");
        }
    }
    for s in d.servers.iter().filter(|s| s.crashes > 0) {
        let _ = writeln!(
            out,
            "{}: {} crash{}, {} restore{}, now generation {}{}",
            s.name,
            s.crashes,
            if s.crashes == 1 { "" } else { "es" },
            s.restores,
            if s.restores == 1 { "" } else { "s" },
            s.generation,
            s.last_latency_us
                .map_or(String::new(), |l| format!(", last recovery {l:.1} us")),
        );
    }
    if let Some(r) = report {
        let _ = writeln!(out, "report: {}", r.display());
    }
    match (stopped, w.mismatches) {
        (true, 0) => 0,
        (true, _) => 1,
        (false, _) => status,
    }
}
