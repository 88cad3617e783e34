//! The monitor (hypercall) interface of [`abi::hypercall`], on the VMM side.
//!
//! Every value here comes from the guest and is untrusted: the caller's privilege level is read
//! from KVM (not from anything the guest wrote), numbers and lengths are range-checked, and guest
//! memory is read only through vm-memory's bounds-checked accessors. A bad call stops the VM with
//! a [`Violation`]; it never panics the VMM.
//!
//! FAULT and REPORT read their record from the monitor page ([`abi::monitor`]): the page must
//! carry the contract's magic and version (else the call is a violation), every field is taken
//! as data (an unknown cause is printed as a number), and the task is named from the VMM's own
//! validated layout, never from guest-written text. FAULT's panic text is read bounded and
//! escaped like LOG's. The recovery calls (FAULT, BOUNDARY, RESTARTED, SNAPSHOTS, INJECT) are
//! decoded from their port word and the page without reading registers ([`handle_recovery`]);
//! the recovery engine and the fault injector check task indices, boundary and message numbers
//! against their own tables.

use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use abi::fault::{FaultCause, NO_VECTOR};
use abi::hypercall::{Hypercall, MAX_LOG_LEN, MAX_PANIC_TEXT, RecoveryCall};
use abi::monitor::{
    CrashContext, FaultRecord, InjectRecord, InjectRegs, MonitorPage, SentWindow, StepRecord,
    WorkloadReport,
};
use abi::status::GUEST_MAX;
use std::fmt;
use std::mem::offset_of;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::{FromBytes, IntoBytes};

/// What the VMM knows about the monitor interface of the running image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorInfo {
    /// The monitor page's guest-physical address (from the validated manifest).
    pub page: Option<u64>,
    /// Server names in manifest order (task index = server index).
    pub tasks: Vec<String>,
}

/// A fault record, decoded for printing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultReport {
    /// The task's name from the layout, or `#N` for an index the layout does not know.
    pub task: String,
    /// The cause, if the number is known.
    pub cause: Option<FaultCause>,
    /// The record as the guest wrote it.
    pub record: FaultRecord,
    /// The kernel's context of the crash, as the guest wrote it.
    pub context: CrashContext,
    /// The task's panic message, escaped, if it passed one that lies in guest memory.
    pub text: Option<String>,
    /// What the task sent since its last boundary, as the guest wrote it.
    pub window: SentWindow,
    /// Boundaries of other servers waiting for their snapshot, taken before the fault is
    /// handled (unchecked).
    pub pending_snapshots: Vec<PendingSnapshot>,
}

impl fmt::Display for FaultReport {
    /// `kv null-deref at rip 0x300123 addr 0x0 after 12 messages; exception page-fault
    /// (vector 14); injected null-deref`: the cause in the fault vocabulary, what the CPU
    /// raised (for exceptions), the planned fault it was (if one was), then a panic's text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.record;
        write!(f, "{} ", self.task)?;
        match r.cause_name() {
            Some(name) => f.write_str(name)?,
            None => write!(f, "unknown({})", r.cause)?,
        }
        write!(f, " at rip {:#x}", r.rip)?;
        if matches!(
            self.cause,
            Some(FaultCause::PageFault | FaultCause::StackOverflow | FaultCause::Corruption)
        ) {
            write!(f, " addr {:#x}", r.addr)?;
        }
        write!(
            f,
            " after {} message{}",
            r.messages,
            if r.messages == 1 { "" } else { "s" }
        )?;
        if r.vector != NO_VECTOR {
            let name = abi::fault::exception_name(r.vector).unwrap_or("unknown");
            write!(f, "; exception {name} (vector {})", r.vector)?;
        }
        if let Some(kind) = self.context.injected() {
            write!(f, "; injected {}", kind.name())?;
        }
        if let Some(text) = &self.text {
            write!(f, ": {text}")?;
        }
        Ok(())
    }
}

/// A boundary waiting for its snapshot, as the kernel names it (unchecked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSnapshot {
    /// Task index.
    pub task: u64,
    /// The boundary number's low 16 bits.
    pub seq16: u16,
    /// The label of the request the boundary closed (0: none or not known).
    pub label: u16,
}

impl PendingSnapshot {
    /// Boundary `seq16` of `task`, closing request `label`.
    pub const fn new(task: u64, seq16: u16, label: u16) -> Self {
        Self { task, seq16, label }
    }
}

/// The registers a call reads, taken from KVM after the exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallFrame {
    /// Current privilege level (from the code segment KVM reports).
    pub cpl: u16,
    /// RIP after the `out`.
    pub rip: u64,
    /// rdi, rsi, r8, r9.
    pub args: [u64; 4],
}

/// An INJECT call as the kernel wrote it (unchecked: the injector checks task, phase and
/// message against its plan), with how its single-stepping stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectCall {
    /// The record.
    pub record: InjectRecord,
    /// The stepping record.
    pub step: StepRecord,
}

/// The VMM's answer to an INJECT call: the registers the task resumes with, and whether the
/// kernel single-steps it and reports the end of its message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectAnswer {
    /// The general registers (in `InjectRegs::NAMES` order).
    pub gpr: [u64; 16],
    /// Single-step the task until it is about to execute this address (0: no).
    pub watch: u64,
    /// Most steps.
    pub budget: u32,
    /// Tell the VMM when the task's next message is delivered.
    pub notify_end: bool,
}

/// What a call asks of the VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// Keep running.
    Continue,
    /// Print this line on stderr, then keep running.
    Log(String),
    /// Stop the VM.
    Exit(u8),
    /// A guest task stopped: print it, keep running.
    Fault(Box<FaultReport>),
    /// The workload's final figures: record them, keep running.
    Report(WorkloadReport),
    /// These servers reached boundaries not yet snapshotted, in task order (one for a
    /// BOUNDARY, which names no request, every one pending for a SNAPSHOTS): snapshot each.
    Snapshots(Vec<PendingSnapshot>),
    /// A fault the VMM injects is due, or its message is over (INJECT): the VMM answers in
    /// the record ([`answer_inject`]).
    Inject(Box<InjectCall>),
    /// Recovered task `task` runs next; the guest TSC is `tsc`.
    Restarted {
        /// Task index (unchecked).
        task: u64,
        /// Guest TSC.
        tsc: u64,
    },
}

/// Decodes and checks one call; `Err` stops the VM.
pub fn handle(
    mem: &GuestMemory,
    monitor: &MonitorInfo,
    number: u32,
    frame: &CallFrame,
) -> Result<Call, Stop> {
    let violation = |v| Err(Stop::Protocol(v));
    if frame.cpl != 0 {
        return violation(Violation::UserModeCall {
            cpl: frame.cpl,
            rip: frame.rip,
        });
    }
    let [a0, a1, ..] = frame.args;
    match Hypercall::from_number(number) {
        None => violation(Violation::UnknownCall {
            number,
            rip: frame.rip,
        }),
        Some(Hypercall::Exit) => match u8::try_from(a0) {
            Ok(s) if s <= GUEST_MAX => Ok(Call::Exit(s)),
            _ => violation(Violation::ExitStatus(a0)),
        },
        Some(Hypercall::Log) => {
            if a1 > MAX_LOG_LEN {
                return violation(Violation::LogTooLong(a1));
            }
            let mut buf = vec![0u8; a1 as usize];
            if mem.read_slice(&mut buf, GuestAddress(a0)).is_err() {
                return violation(Violation::LogRange { addr: a0, len: a1 });
            }
            Ok(Call::Log(sanitize(&buf)))
        }
        Some(Hypercall::Report) => Ok(Call::Report(read_page(mem, monitor)?.report)),
        // Recovery calls with a zero word: task 0, boundary number 0 mod 2^16.
        Some(
            call @ (Hypercall::Fault
            | Hypercall::Boundary
            | Hypercall::Restarted
            | Hypercall::Snapshots
            | Hypercall::Inject),
        ) => {
            let call = RecoveryCall {
                call,
                task: 0,
                extra: 0,
            };
            handle_recovery(mem, monitor, call)
        }
    }
}

/// Decodes a recovery call (FAULT, BOUNDARY, RESTARTED, SNAPSHOTS): its arguments are in its port word
/// and the monitor page, so no register (and no CPL) is read; `Err` stops the VM.
pub fn handle_recovery(
    mem: &GuestMemory,
    monitor: &MonitorInfo,
    rc: RecoveryCall,
) -> Result<Call, Stop> {
    match rc.call {
        Hypercall::Boundary => Ok(Call::Snapshots(vec![PendingSnapshot::new(
            u64::from(rc.task),
            rc.extra,
            0,
        )])),
        Hypercall::Restarted => Ok(Call::Restarted {
            task: u64::from(rc.task),
            tsc: read_page(mem, monitor)?.restart_tsc,
        }),
        Hypercall::Snapshots => Ok(Call::Snapshots(pending(
            &read_page(mem, monitor)?,
            u32::from(rc.extra),
        ))),
        Hypercall::Inject => {
            let page = read_page(mem, monitor)?;
            Ok(Call::Inject(Box::new(InjectCall {
                record: page.inject,
                step: page.step,
            })))
        }
        _ => {
            let page = read_page(mem, monitor)?;
            let record = page.fault;
            let task = usize::try_from(record.task)
                .ok()
                .and_then(|i| monitor.tasks.get(i))
                .cloned()
                .unwrap_or_else(|| format!("#{}", record.task));
            let context = page.crash;
            let mut text = vec![0u8; context.text_len.min(MAX_PANIC_TEXT) as usize];
            let read = mem.read_slice(&mut text, GuestAddress(context.text_addr));
            let text = (!text.is_empty() && read.is_ok()).then(|| sanitize(&text));
            Ok(Call::Fault(Box::new(FaultReport {
                task,
                cause: FaultCause::from_number(record.cause),
                record,
                context,
                text,
                window: page.window,
                pending_snapshots: pending(&page, page.pending_snapshots),
            })))
        }
    }
}

/// Writes the VMM's answer to an INJECT call into the monitor page's record.
pub fn answer_inject(
    mem: &GuestMemory,
    monitor: &MonitorInfo,
    answer: &InjectAnswer,
) -> Result<(), Stop> {
    let Some(page) = monitor.page else {
        return Err(Stop::Protocol(Violation::MonitorPage { addr: 0 }));
    };
    let base = page + offset_of!(MonitorPage, inject) as u64;
    let write = |offset: usize, bytes: &[u8]| {
        mem.write_slice(bytes, GuestAddress(base + offset as u64))
            .map_err(|_| Stop::Protocol(Violation::MonitorPage { addr: page }))
    };
    let regs = offset_of!(InjectRecord, regs) + offset_of!(InjectRegs, gpr);
    write(regs, answer.gpr.as_bytes())?;
    write(offset_of!(InjectRecord, watch), &answer.watch.to_le_bytes())?;
    write(
        offset_of!(InjectRecord, budget),
        &answer.budget.to_le_bytes(),
    )?;
    write(
        offset_of!(InjectRecord, notify_end),
        &u32::from(answer.notify_end).to_le_bytes(),
    )
}

/// The step record as it stands now (read at the run's end: the kernel writes it when an
/// outcome is known, with no call).
pub fn read_step(mem: &GuestMemory, monitor: &MonitorInfo) -> Option<StepRecord> {
    read_page(mem, monitor).ok().map(|p| p.step)
}

/// The tasks in `mask` (bit i: task i) with their pending boundary numbers and labels from
/// `page` (0 for a task past the page's slots).
fn pending(page: &MonitorPage, mask: u32) -> Vec<PendingSnapshot> {
    (0..32u32)
        .filter(|i| mask & (1 << i) != 0)
        .map(|i| {
            let slot = |a: &[u16]| a.get(i as usize).copied().unwrap_or(0);
            PendingSnapshot::new(
                u64::from(i),
                slot(&page.snapshot_seq),
                slot(&page.snapshot_label),
            )
        })
        .collect()
}

/// The monitor page, if the image has one and it carries this contract's magic and version.
fn read_page(mem: &GuestMemory, monitor: &MonitorInfo) -> Result<MonitorPage, Stop> {
    let Some(addr) = monitor.page else {
        return Err(Stop::Protocol(Violation::MonitorPage { addr: 0 }));
    };
    let mut raw = [0u8; size_of::<MonitorPage>()];
    let bad = || Stop::Protocol(Violation::MonitorPage { addr });
    mem.read_slice(&mut raw, GuestAddress(addr))
        .map_err(|_| bad())?;
    let page = MonitorPage::read_from_bytes(&raw).map_err(|_| bad())?;
    if page.is_valid() {
        Ok(page)
    } else {
        Err(bad())
    }
}

/// Makes guest bytes safe to print on one line: invalid UTF-8 replaced, control characters
/// (terminal escapes, newlines) and bidirectional formatting characters (which make a line
/// read differently from what it holds: U+202E turns text around) shown escaped, trailing
/// newline dropped.
pub fn sanitize(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        );
        if c.is_control() || bidi {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use abi::monitor::{MONITOR_MAGIC, MONITOR_VERSION};
    use zerocopy::IntoBytes;

    const PAGE: u64 = 0x8000;

    fn mem() -> GuestMemory {
        let m = GuestMemory::from_ranges(&[(GuestAddress(0), 0x10000)]).expect("mmap");
        m.write_slice(b"hello\n", GuestAddress(0x100))
            .expect("write");
        m
    }

    fn info() -> MonitorInfo {
        MonitorInfo {
            page: Some(PAGE),
            tasks: vec!["names".into(), "kv".into()],
        }
    }

    fn handle(m: &GuestMemory, number: u32, frame: &CallFrame) -> Result<Call, Stop> {
        super::handle(m, &info(), number, frame)
    }

    fn write_page(m: &GuestMemory, page: &MonitorPage) {
        m.write_slice(page.as_bytes(), GuestAddress(PAGE))
            .expect("write");
    }

    fn valid_page() -> MonitorPage {
        MonitorPage {
            magic: MONITOR_MAGIC,
            version: MONITOR_VERSION,
            ..Default::default()
        }
    }

    #[test]
    fn fault_records_are_decoded_and_named_from_the_layout() {
        let m = mem();
        let mut page = valid_page();
        page.fault = FaultRecord {
            seq: 1,
            task: 1,
            cause: FaultCause::PageFault as u32,
            vector: 14,
            rip: 0x30_0123,
            addr: 0,
            messages: 12,
            ..Default::default()
        };
        write_page(&m, &page);
        let Call::Fault(fault) = handle(&m, 3, &frame([0; 4])).expect("ok") else {
            panic!("not a fault");
        };
        assert_eq!(
            fault.to_string(),
            "kv null-deref at rip 0x300123 addr 0x0 after 12 messages; exception page-fault \
             (vector 14)"
        );
        page.fault.task = 77;
        page.fault.cause = 999;
        write_page(&m, &page);
        let Call::Fault(fault) = handle(&m, 3, &frame([0; 4])).expect("ok") else {
            panic!("not a fault");
        };
        assert_eq!(
            fault.to_string(),
            "#77 unknown(999) at rip 0x300123 after 12 messages; exception page-fault (vector 14)"
        );
        // A planned fault's kind, from the crash context.
        page.crash.flags =
            (abi::fault::FaultKind::Hang as u32) << abi::monitor::CrashContext::INJECTED_SHIFT;
        page.fault.vector = NO_VECTOR;
        write_page(&m, &page);
        let Call::Fault(fault) = handle(&m, 3, &frame([0; 4])).expect("ok") else {
            panic!("not a fault");
        };
        assert_eq!(
            fault.to_string(),
            "#77 unknown(999) at rip 0x300123 after 12 messages; injected hang"
        );
        page.crash.flags = 0;
        // A panic message (named in the crash context) is read bounded, escaped; one outside
        // memory is left out.
        let mut text_at = |addr, len| {
            page.crash.text_addr = addr;
            page.crash.text_len = len;
            write_page(&m, &page);
            let call = RecoveryCall {
                call: Hypercall::Fault,
                task: 1,
                extra: 0,
            };
            match handle_recovery(&m, &info(), call) {
                Ok(Call::Fault(f)) => f,
                other => panic!("not a fault: {other:?}"),
            }
        };
        assert_eq!(text_at(0x100, 6).text.as_deref(), Some("hello"));
        assert_eq!(text_at(0xfff0, 64).text, None);
        assert_eq!(text_at(0x100, 0).text, None);
        let fault = text_at(0, u64::MAX);
        assert_eq!(
            // 128 NULs read at 0, each escaped: the text was cut at MAX_PANIC_TEXT bytes.
            fault
                .text
                .map(|t| t.chars().filter(|c| *c == '\\').count() == MAX_PANIC_TEXT as usize),
            Some(true)
        );
    }

    #[test]
    fn boundaries_and_restarts_pass_their_numbers_unchecked() {
        let m = mem();
        let word = abi::hypercall::call_word(Hypercall::Boundary, 200, 0xbeef);
        let call = abi::hypercall::recovery_call(word).expect("recovery call");
        assert_eq!(
            handle_recovery(&m, &info(), call).expect("ok"),
            Call::Snapshots(vec![PendingSnapshot::new(200, 0xbeef, 0)])
        );
        let mut page = valid_page();
        page.restart_tsc = 12345;
        write_page(&m, &page);
        assert_eq!(
            handle(&m, 6, &frame([0; 4])).expect("ok"),
            Call::Restarted {
                task: 0,
                tsc: 12345
            }
        );
        // A recovery call needs the monitor page too.
        let none = MonitorInfo::default();
        let restarted = RecoveryCall {
            call: Hypercall::Restarted,
            task: 3,
            extra: 0,
        };
        assert!(matches!(
            handle_recovery(&m, &none, restarted),
            Err(Stop::Protocol(Violation::MonitorPage { addr: 0 }))
        ));
    }

    #[test]
    fn batched_snapshots_name_their_servers_and_numbers_and_faults_carry_the_pending_ones() {
        let m = mem();
        let mut page = valid_page();
        page.snapshot_seq[1] = 0x1234;
        page.snapshot_seq[3] = 7;
        page.snapshot_label[3] = 5;
        page.pending_snapshots = 1 << 3;
        write_page(&m, &page);
        let word = abi::hypercall::call_word(Hypercall::Snapshots, 0, 0b1010);
        let call = abi::hypercall::recovery_call(word).expect("recovery call");
        assert_eq!(
            handle_recovery(&m, &info(), call).expect("ok"),
            Call::Snapshots(vec![
                PendingSnapshot::new(1, 0x1234, 0),
                PendingSnapshot::new(3, 7, 5)
            ])
        );
        let fault = abi::hypercall::recovery_call(Hypercall::Fault as u32).expect("FAULT");
        match handle_recovery(&m, &info(), fault) {
            Ok(Call::Fault(f)) => {
                assert_eq!(f.pending_snapshots, vec![PendingSnapshot::new(3, 7, 5)]);
            }
            other => panic!("{other:?}"),
        }
        // Bits past the 16 tasks a page can number are passed on with number 0, for the
        // engine to refuse (no such server).
        page.pending_snapshots = 1 << 20;
        write_page(&m, &page);
        match handle_recovery(&m, &info(), fault) {
            Ok(Call::Fault(f)) => {
                assert_eq!(f.pending_snapshots, vec![PendingSnapshot::new(20, 0, 0)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reports_come_from_the_monitor_page() {
        let m = mem();
        let mut page = valid_page();
        page.report.ops = 500;
        page.report.mismatches = 2;
        write_page(&m, &page);
        let Call::Report(r) = handle(&m, 4, &frame([0; 4])).expect("ok") else {
            panic!("not a report");
        };
        assert_eq!((r.ops, r.mismatches), (500, 2));
    }

    #[test]
    fn a_page_without_the_contract_s_magic_is_a_violation() {
        let m = mem();
        assert_eq!(
            violation(handle(&m, 3, &frame([0; 4]))),
            Violation::MonitorPage { addr: PAGE }
        );
        let none = MonitorInfo::default();
        assert_eq!(
            violation(super::handle(&m, &none, 4, &frame([0; 4]))),
            Violation::MonitorPage { addr: 0 }
        );
        let far = MonitorInfo {
            page: Some(u64::MAX - 4),
            tasks: Vec::new(),
        };
        assert!(matches!(
            violation(super::handle(&m, &far, 3, &frame([0; 4]))),
            Violation::MonitorPage { .. }
        ));
    }

    fn frame(args: [u64; 4]) -> CallFrame {
        CallFrame {
            cpl: 0,
            rip: 0x1000,
            args,
        }
    }

    fn violation(r: Result<Call, Stop>) -> Violation {
        match r {
            Err(Stop::Protocol(v)) => v,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn exit_passes_guest_statuses_only() {
        let m = mem();
        assert_eq!(
            handle(&m, 1, &frame([0, 0, 0, 0])).expect("ok"),
            Call::Exit(0)
        );
        assert_eq!(
            handle(&m, 1, &frame([63, 0, 0, 0])).expect("ok"),
            Call::Exit(63)
        );
        assert_eq!(
            violation(handle(&m, 1, &frame([64, 0, 0, 0]))),
            Violation::ExitStatus(64)
        );
        assert_eq!(
            violation(handle(&m, 1, &frame([u64::MAX, 0, 0, 0]))),
            Violation::ExitStatus(u64::MAX)
        );
    }

    #[test]
    fn log_reads_bounded_guest_memory() {
        let m = mem();
        assert_eq!(
            handle(&m, 2, &frame([0x100, 6, 0, 0])).expect("ok"),
            Call::Log("hello".into())
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([0xfffe, 16, 0, 0]))),
            Violation::LogRange {
                addr: 0xfffe,
                len: 16
            }
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([u64::MAX, 1, 0, 0]))),
            Violation::LogRange {
                addr: u64::MAX,
                len: 1
            }
        );
        assert_eq!(
            violation(handle(&m, 2, &frame([0, MAX_LOG_LEN + 1, 0, 0]))),
            Violation::LogTooLong(MAX_LOG_LEN + 1)
        );
    }

    #[test]
    fn user_mode_and_unknown_calls_are_refused() {
        let m = mem();
        let user = CallFrame {
            cpl: 3,
            rip: 0x2000,
            args: [0; 4],
        };
        assert_eq!(
            violation(handle(&m, 1, &user)),
            Violation::UserModeCall {
                cpl: 3,
                rip: 0x2000
            }
        );
        assert_eq!(
            violation(handle(&m, 0xdead, &frame([0; 4]))),
            Violation::UnknownCall {
                number: 0xdead,
                rip: 0x1000
            }
        );
    }

    #[test]
    fn log_text_cannot_inject_terminal_controls() {
        assert_eq!(sanitize(b"a\x1b[2Jb\nc\n"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(sanitize(&[0x66, 0xff, 0x6f]), "f\u{fffd}o");
        // A right-to-left override would make the rest of vmm's line read backwards.
        assert_eq!(
            sanitize("kv \u{202e}ready\u{2066}\u{200f}".as_bytes()),
            "kv \\u{202e}ready\\u{2066}\\u{200f}"
        );
    }

    proptest::proptest! {
        /// Any register values, any number, from any ring: the call gets what the interface
        /// says (written out here from the abi's table and the test's 64 KiB of memory with
        /// no valid monitor page), never a panic and never a read outside guest memory.
        #[test]
        fn arbitrary_calls_get_what_the_interface_says(
            number in proptest::prop_oneof![0u32..10, proptest::num::u32::ANY],
            cpl in proptest::prop_oneof![3 => proptest::strategy::Just(0u16), 1 => 1u16..4],
            args in proptest::array::uniform4(proptest::prop_oneof![0u64..0x11000, proptest::num::u64::ANY]),
        ) {
            let m = mem();
            let rip = 0x4242;
            let got = handle(&m, number, &CallFrame { cpl, rip, args });
            let [a0, a1, ..] = args;
            let expected = match number {
                _ if cpl != 0 => Err(Violation::UserModeCall { cpl, rip }),
                1 if a0 <= 63 => Ok(Call::Exit(a0 as u8)),
                1 => Err(Violation::ExitStatus(a0)),
                2 if a1 > 1024 => Err(Violation::LogTooLong(a1)),
                2 if a0.checked_add(a1).is_some_and(|end| end <= 0x10000) => {
                    let mut bytes = vec![0u8; a1 as usize];
                    m.read_slice(&mut bytes, GuestAddress(a0)).expect("inside");
                    Ok(Call::Log(sanitize(&bytes)))
                }
                2 => Err(Violation::LogRange { addr: a0, len: a1 }),
                5 => Ok(Call::Snapshots(vec![PendingSnapshot::new(0, 0, 0)])),
                3 | 4 | 6 | 7 | 8 => Err(Violation::MonitorPage { addr: PAGE }),
                _ => Err(Violation::UnknownCall { number, rip }),
            };
            match (got, expected) {
                (Ok(g), Ok(e)) => proptest::prop_assert_eq!(g, e),
                (Err(Stop::Protocol(g)), Err(e)) => proptest::prop_assert_eq!(g, e),
                (g, e) => proptest::prop_assert!(false, "got {:?}, expected {:?}", g, e),
            }
        }

        /// Any bytes in the monitor page: FAULT, REPORT and RESTARTED decode or refuse, never
        /// panic.
        #[test]
        fn garbage_monitor_pages_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 440), valid: bool) {
            let m = mem();
            m.write_slice(&bytes, GuestAddress(PAGE)).expect("write");
            if valid {
                write_page(&m, &MonitorPage {
                    fault: FaultRecord::read_from_bytes(&bytes[16..80]).expect("64 bytes"),
                    crash: CrashContext::read_from_bytes(&bytes[120..160]).expect("40 bytes"),
                    ..valid_page()
                });
            }
            for number in [3, 4, 5, 6, 8] {
                if let Ok(Call::Fault(f)) = handle(&m, number, &frame([0; 4])) {
                    proptest::prop_assert!(!f.to_string().contains('\n'));
                }
            }
        }
    }
}
