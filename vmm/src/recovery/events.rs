//! The crash and recovery lines on stderr, written by a thread of their own: a write to stderr
//! (tens of microseconds, more on a slow terminal) would otherwise hold the guest up in the
//! middle of a recovery. The thread runs at the lowest priority (`SCHED_IDLE`), so it does not
//! compete with the vCPU thread either. The vCPU thread hands over the records, not text: the
//! writer formats them (formatting a fault line took ~20 us of the recovery's critical path).
//! Lines keep their order; dropping the log waits until all are written.

use crate::devices::monitor::FaultReport;
use policies::DecisionRecord;
use std::fmt;
use std::io::Write;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Something to print as one line.
#[derive(Debug)]
pub enum Event {
    /// Text as it is.
    Line(String),
    /// A fault the guest reported: `vmm: fault: ...`.
    Fault(Box<FaultReport>),
    /// A recovery decision and its outcome: `vmm: recovery: ...`.
    Decision(Box<DecisionRecord>),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(line) => f.write_str(line),
            Self::Fault(fault) => write!(f, "vmm: fault: {fault}"),
            Self::Decision(record) => write!(f, "vmm: {record}"),
        }
    }
}

/// Where the lines are written (stderr, or a test's buffer).
type Output = Arc<Mutex<dyn Write + Send>>;

/// Where the engine's lines go.
enum Sink {
    /// Nowhere.
    Off,
    /// To the writer thread.
    Thread(Sender<Event>, JoinHandle<()>),
    /// Straight to the output (the writer thread could not be started).
    Inline(Output),
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "Off",
            Self::Thread(..) => "Thread",
            Self::Inline(_) => "Inline",
        })
    }
}

/// Writes `event` and a newline; a failed write (stderr closed) loses only the line.
fn write_line(out: &Output, event: &Event) {
    if let Ok(mut out) = out.lock() {
        let _ = writeln!(out, "{event}");
    }
}

/// The engine's event lines.
#[derive(Debug)]
pub struct EventLog(Option<Sink>);

impl EventLog {
    /// A log printing on stderr (`enabled`), or dropping every line.
    pub fn new(enabled: bool) -> Self {
        if !enabled {
            return Self(Some(Sink::Off));
        }
        Self::writing_to(Arc::new(Mutex::new(std::io::stderr())))
    }

    /// A log writing its lines to `out`, from the writer thread.
    fn writing_to(out: Output) -> Self {
        let (tx, rx) = channel::<Event>();
        let thread_out = Arc::clone(&out);
        let writer = std::thread::Builder::new()
            .name("vmm-events".into())
            .spawn(move || {
                lowest_priority();
                for event in rx {
                    write_line(&thread_out, &event);
                }
            });
        Self(Some(match writer {
            Ok(writer) => Sink::Thread(tx, writer),
            Err(_) => Sink::Inline(out),
        }))
    }

    /// True when lines are printed.
    pub fn enabled(&self) -> bool {
        !matches!(self.0, Some(Sink::Off) | None)
    }

    /// Prints `event` on stderr as one line, soon.
    pub fn send(&self, event: Event) {
        match &self.0 {
            // The writer only stops once the sender is dropped.
            Some(Sink::Thread(tx, _)) => drop(tx.send(event)),
            Some(Sink::Inline(out)) => write_line(out, &event),
            Some(Sink::Off) | None => {}
        }
    }

    /// Prints `line` on stderr, soon.
    pub fn line(&self, line: String) {
        self.send(Event::Line(line));
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        if let Some(Sink::Thread(tx, writer)) = self.0.take() {
            drop(tx);
            let _ = writer.join();
        }
    }
}

/// Makes the calling thread run only when a CPU has nothing else to do (`SCHED_IDLE`), so the
/// writer never takes a core from the vCPU thread. Best effort: on failure it keeps its priority.
fn lowest_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid, initialised parameter.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line sent reaches the output, in order, by the time the log is dropped; a log
    /// that is off sends nothing anywhere.
    #[test]
    fn lines_arrive_in_order_by_the_drop() {
        let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
        let on = EventLog::writing_to(buf.clone());
        assert!(on.enabled());
        for i in 0..100 {
            on.line(format!("vmm: line {i}"));
        }
        drop(on);
        let text = String::from_utf8(buf.lock().expect("lock").clone()).expect("utf-8");
        let expected: String = (0..100).map(|i| format!("vmm: line {i}\n")).collect();
        assert_eq!(text, expected);
        let off = EventLog::new(false);
        assert!(!off.enabled());
        off.line("never printed".into());
        assert!(matches!(off.0, Some(Sink::Off)));
    }
}
