//! Host tests of the fault paths the VMM drives: injected faults announced to the VMM,
//! single-stepping toward an injected instruction, the kernel's own faults, live faults.

use super::*;

/// The client calls the server (which waits in receive) and the server answers: one message.
fn one_message(k: &mut K) {
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(k, CLIENT, Sys::Call, server, 1, [0; 6]);
    let client = k.id(CLIENT).0;
    sys(k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
}

/// A kind the VMM injects is not handed to the task: the kernel makes an INJECT call with the
/// task's registers (the VMM's changes are kept), and a crash in that message reports it.
#[test]
fn a_vmm_fault_is_announced_to_the_vmm_not_handed_to_the_task() {
    use abi::fault::FaultKind;
    use abi::monitor::InjectRecord;
    let mut k = kernel();
    k.platform.flip_rbx = 1 << 5;
    let state_flip = FaultKind::StateFlip as u32;
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 2,
        kind: state_flip,
        period: 0,
    }));
    server_receives(&mut k);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 0, "nothing due at message 1");
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    let rbx = k.tasks[SERVER].regs.rbx;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.platform.inject_count, 1);
    assert_eq!(
        k.platform.injects[0],
        (SERVER as u32, InjectRecord::START, u64::from(state_flip), 2)
    );
    assert_eq!(
        k.tasks[SERVER].regs.rbx,
        rbx ^ (1 << 5),
        "the VMM's registers kept"
    );
    assert_eq!(
        k.tasks[SERVER].regs.rcx,
        1 << 5,
        "not handed over (0), and the VMM's change of rcx kept"
    );
    k.current = Some(SERVER);
    k.exception(13, 0, 0, false);
    assert_eq!(
        k.crash_context(SERVER).injected(),
        Some(FaultKind::StateFlip),
        "the crash reports the fault planned for its message"
    );
}

/// Single-stepping toward an injected instruction: TF on the task, a step per #DB, reached
/// at the watched address; the message's end is reported at the next delivery, with TF off.
#[test]
fn an_injected_instruction_is_stepped_to_and_the_message_end_reported() {
    use crate::kernel::InjectReply;
    use crate::stepping::TRAP_FLAG;
    use abi::fault::FaultKind;
    use abi::monitor::{InjectRecord, StepRecord};
    let watch = 0x1234;
    let run = |outcome_at: Option<u32>| {
        let mut k = kernel();
        k.platform.reply = InjectReply {
            watch,
            budget: 5,
            notify_end: true,
        };
        assert!(k.tasks[SERVER].plan_fault(PlannedFault {
            message: 1,
            kind: FaultKind::FlipBranch as u32,
            period: 0,
        }));
        server_receives(&mut k);
        k.current = Some(CLIENT);
        let server = k.id(SERVER).0;
        sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
        assert_ne!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0, "stepped");
        assert_eq!(k.platform.step.outcome, StepRecord::STEPPING);
        assert_eq!(k.stepped(), Some(SERVER));
        assert!(
            !k.single_step(CLIENT),
            "another task's #DB is its own fault"
        );
        for step in 0..outcome_at.unwrap_or(3) {
            k.tasks[SERVER].regs.rip = 0x1000 + u64::from(step);
            assert!(k.single_step(SERVER));
        }
        (k, server)
    };
    // Reached on the fourth step.
    let (mut k, _) = run(Some(3));
    k.tasks[SERVER].regs.rip = watch;
    assert!(k.single_step(SERVER));
    assert_eq!(k.platform.step.outcome, StepRecord::REACHED);
    assert_eq!(k.platform.step.steps, 3);
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    assert_eq!(k.stepped(), None);
    // Out of budget.
    let (k, _) = run(Some(5));
    assert_eq!(k.platform.step.outcome, StepRecord::BUDGET);
    // The message ends first: END at the next delivery, TF off.
    let (mut k, _) = run(None);
    let client = k.id(CLIENT).0;
    k.current = Some(SERVER);
    sys(&mut k, SERVER, Sys::ReplyRecv, client, 0, [0; 6]);
    one_message(&mut k);
    assert_eq!(k.platform.step.outcome, StepRecord::ENDED);
    assert_eq!(k.platform.inject_count, 2);
    assert_eq!(
        k.platform.injects[1],
        (SERVER as u32, InjectRecord::END, 0, 2)
    );
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 2, "one END");
    // The instruction it resumes at is the watched one: reached before any step.
    let mut k = kernel();
    k.platform.reply = InjectReply {
        watch: k.tasks[SERVER].regs.rip,
        budget: 5,
        notify_end: true,
    };
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 1,
        kind: FaultKind::Nop as u32,
        period: 0,
    }));
    server_receives(&mut k);
    k.platform.reply.watch = k.tasks[SERVER].regs.rip;
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    assert_eq!(k.platform.step.outcome, StepRecord::REACHED);
    assert_eq!((k.platform.step.steps, k.stepped()), (0, None));
    assert_eq!(k.tasks[SERVER].regs.rflags & TRAP_FLAG, 0);
    // A crash first.
    let (mut k, _) = run(None);
    k.current = Some(SERVER);
    k.exception(6, 0, 0, false);
    assert_eq!(k.platform.step.outcome, StepRecord::CRASHED);
    assert_eq!(k.stepped(), None);
}

/// A stepped server runs far slower: its per-message budget does not run out while stepped.
#[test]
fn a_stepped_server_is_not_taken_for_a_hang() {
    use crate::kernel::InjectReply;
    let mut k = kernel();
    k.budget = 2;
    k.platform.reply = InjectReply {
        watch: 0x9999,
        budget: 1000,
        notify_end: true,
    };
    assert!(k.tasks[SERVER].plan_fault(PlannedFault {
        message: 1,
        kind: abi::fault::FaultKind::Nop as u32,
        period: 0,
    }));
    server_receives(&mut k);
    k.current = Some(CLIENT);
    let server = k.id(SERVER).0;
    sys(&mut k, CLIENT, Sys::Call, server, 1, [0; 6]);
    k.current = Some(SERVER);
    for _ in 0..10 {
        assert_eq!(k.tick(true).0, Effect::None);
    }
    k.stop_stepping(SERVER, abi::monitor::StepRecord::BUDGET);
    assert_eq!(
        k.tick(true).0,
        Effect::Fault(None),
        "the budget counts again"
    );
}

/// A fault planned for the kernel strikes at the N-th message delivered to any task, then
/// every period.
#[test]
fn a_kernel_fault_counts_every_task_s_messages() {
    use abi::monitor::{InjectRecord, KERNEL_TARGET};
    let mut k = kernel();
    let text_flip = abi::fault::FaultKind::TextFlip as u32;
    assert!(k.plan_kernel_fault(PlannedFault {
        message: 3,
        kind: text_flip,
        period: 4,
    }));
    assert!(!k.plan_kernel_fault(PlannedFault {
        message: 9,
        kind: text_flip,
        period: 0,
    }));
    server_receives(&mut k);
    one_message(&mut k);
    one_message(&mut k);
    assert_eq!(k.platform.inject_count, 0);
    one_message(&mut k);
    assert_eq!(
        k.platform.injects[0],
        (KERNEL_TARGET, InjectRecord::START, u64::from(text_flip), 3)
    );
    for _ in 0..4 {
        one_message(&mut k);
    }
    assert_eq!(k.platform.inject_count, 2);
    assert_eq!(k.platform.injects[1].3, 7);
}

/// A fault planned while the VM runs strikes the task's next message, stays pending (and
/// cancellable) while no message comes, replaces a pending one, and needs room in the plan.
#[test]
fn live_faults_strike_the_next_message_or_are_cancelled() {
    use crate::task::{Live, NO_FAULT, PLANNED_FAULTS, Task};
    let panic = FaultKind::Panic as u32;
    let hang = FaultKind::Hang as u32;
    let mut t = Task::EMPTY;
    t.messages = 5;
    assert_eq!(t.plan_live(panic), Live::Planned);
    // No message yet: still pending; a second request replaces it.
    assert_eq!(t.plan_live(hang), Live::Planned);
    assert_eq!(
        t.faults.iter().filter(|f| **f != NO_FAULT).count(),
        1,
        "one live fault at a time"
    );
    t.messages = 6;
    assert_eq!(
        t.take_due_fault().handed,
        u64::from(hang),
        "the next message"
    );
    assert_eq!(t.cancel_live(), Live::NothingPending, "it struck already");
    // Planned, then cancelled: the next message comes clean.
    assert_eq!(t.plan_live(panic), Live::Planned);
    assert_eq!(t.cancel_live(), Live::Cancelled);
    t.messages = 7;
    assert_eq!(t.take_due_fault().handed, 0);
    assert_eq!(t.faults, [NO_FAULT; PLANNED_FAULTS]);
    // A full plan has no room.
    for m in 100..104 {
        assert!(t.plan_fault(PlannedFault {
            message: m,
            kind: panic,
            period: 0,
        }));
    }
    assert_eq!(t.plan_live(panic), Live::Full);
    assert_eq!(t.cancel_live(), Live::NothingPending);
}
