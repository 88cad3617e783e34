//! The injector: carries out the faults of the VMM's kinds when the kernel says their message
//! has come (INJECT), puts transient ones back when it is over or the target is restored, and
//! keeps the record of every planned fault for the report.
//!
//! Runs on the vCPU thread, inside the hypercall, so the guest is stopped while its code or
//! memory changes. Faults planned while the VM runs (the control API) arrive through a
//! [`LiveInbox`]: the API posts the spec before it asks the guest kernel to plan the kind for
//! the server's next message, and the injector takes it at the INJECT that message brings. Everything the kernel writes is checked against the injector's own plan: an
//! INJECT for a task, kind or message nothing planned is a protocol violation.

use super::choose::Chooser;
use super::classify::Class;
use super::code;
use super::record::{Bytes, Concrete, Injection};
use super::spec::{FaultSpec, FaultSpecError, Reg, Target};
use super::targets::{self, Ranges, Targets};
use crate::devices::monitor::{FaultReport, InjectAnswer, InjectCall};
use crate::image::Image;
use crate::layout::Layout;
use crate::memory::GuestMemory;
use crate::outcome::{Stop, Violation};
use abi::fault::{Executor, Family, FaultKind};
use abi::manifest::Range;
use abi::monitor::{InjectRecord, InjectRegs, KERNEL_TARGET, StepRecord};
use vm_memory::{Bytes as _, GuestAddress};

/// Most single steps the kernel takes toward an injected instruction (~25-30 us each on
/// KVM-PVM): past this, whether it was used is unknown.
pub const STEP_BUDGET: u32 = 20_000;

/// A planned fault and what became of it.
#[derive(Clone, Debug)]
struct Planned {
    spec: FaultSpec,
    /// Its task index (`None`: the kernel).
    task: Option<usize>,
    /// Times it fired.
    fired: u32,
    /// Planned while the VM ran: due at whatever message the kernel planned it for (its
    /// spec's message is set when it fires).
    live: bool,
}

/// What the control API posts to the injector while the VM runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LiveCommand {
    /// Plan this spec (a server's, of the VMM's kinds; its message is not known yet) for the
    /// server's next message; it replaces a live one of that server still pending.
    Plan(FaultSpec),
    /// Forget the pending live fault of this server.
    Cancel(String),
}

/// The control API's commands for the injector, taken on the vCPU thread at each INJECT.
pub type LiveInbox = std::sync::Arc<std::sync::Mutex<Vec<LiveCommand>>>;

/// An injection whose message is not over yet.
#[derive(Clone, Debug)]
struct Open {
    /// Index in `injections`.
    injection: usize,
    /// Its task.
    task: usize,
    /// A transient code fault: where, and the bytes to put back.
    undo: Option<(u64, Vec<u8>)>,
}

/// The injector of one run.
#[derive(Debug)]
pub struct Injector {
    planned: Vec<Planned>,
    seed: u64,
    targets: Targets,
    names: Vec<String>,
    injections: Vec<Injection>,
    open: Vec<Open>,
    /// The injection the kernel single-steps toward (one at a time).
    stepping: Option<usize>,
    /// A kernel code fault watched with a breakpoint: its address and injection.
    kernel_watch: Option<(u64, usize)>,
    /// Tasks that crashed though no fault targeted them.
    bystanders: Vec<String>,
    /// Faults planned while the VM runs.
    inbox: Option<LiveInbox>,
}

impl Injector {
    /// The injector of `specs` (in `--fault` order) on `image` as `layout` places it: every
    /// `at=` checked against what its kind can corrupt there (`Err`: refused before boot).
    pub fn new(
        specs: &[FaultSpec],
        seed: u64,
        image: &Image,
        layout: &Layout,
    ) -> Result<Self, FaultSpecError> {
        let targets = targets::of(image, layout);
        let names: Vec<String> = layout.servers.iter().map(|s| s.name.clone()).collect();
        let mut planned = Vec::new();
        for spec in specs {
            let task = match &spec.target {
                Target::Kernel => None,
                Target::Server(name) => names.iter().position(|n| n == name),
            };
            let ranges = match task {
                Some(t) => &targets.tasks[t],
                None => &targets.kernel,
            };
            check_at(spec, ranges, image)?;
            planned.push(Planned {
                spec: spec.clone(),
                task,
                fired: 0,
                live: false,
            });
        }
        Ok(Self {
            planned,
            seed,
            targets,
            names,
            injections: Vec::new(),
            open: Vec::new(),
            stepping: None,
            kernel_watch: None,
            bystanders: Vec::new(),
            inbox: None,
        })
    }

    /// Takes faults planned while the VM runs from `inbox`.
    #[must_use]
    pub fn with_inbox(mut self, inbox: LiveInbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Takes the control API's commands posted since the last INJECT.
    fn take_live(&mut self) {
        let Some(inbox) = &self.inbox else {
            return;
        };
        let commands = std::mem::take(&mut *inbox.lock().unwrap_or_else(|e| e.into_inner()));
        for command in commands {
            let target = match &command {
                LiveCommand::Plan(spec) => spec.target.to_string(),
                LiveCommand::Cancel(server) => server.clone(),
            };
            // As the kernel does: a new live fault replaces one still pending, a cancel drops it.
            self.planned
                .retain(|p| !(p.live && p.fired == 0 && p.spec.target.to_string() == target));
            if let LiveCommand::Plan(spec) = command
                && let Some(task) = self.names.iter().position(|n| *n == target)
            {
                self.planned.push(Planned {
                    spec,
                    task: Some(task),
                    fired: 0,
                    live: true,
                });
            }
        }
    }

    /// An INJECT call: carries out the fault due (`START`) or ends its message (`END`).
    pub fn inject(&mut self, mem: &GuestMemory, call: &InjectCall) -> Result<InjectAnswer, Stop> {
        let r = &call.record;
        let mut answer = InjectAnswer {
            gpr: r.regs.gpr,
            ..InjectAnswer::default()
        };
        let task = match r.task {
            KERNEL_TARGET => None,
            t => Some(
                usize::try_from(t)
                    .ok()
                    .filter(|&t| t < self.names.len())
                    .ok_or_else(|| violation(r, "no such task"))?,
            ),
        };
        match r.phase {
            InjectRecord::END => {
                let t = task.ok_or_else(|| violation(r, "the kernel's faults have no end"))?;
                self.end(mem, t, &call.step);
                Ok(answer)
            }
            InjectRecord::START => {
                self.take_live();
                let index = self
                    .due(task, r)
                    .ok_or_else(|| violation(r, "nothing planned"))?;
                if let Some(t) = task {
                    // Its previous message is over, if the kernel did not say so.
                    self.end(mem, t, &call.step);
                }
                self.start(mem, index, r, &mut answer);
                Ok(answer)
            }
            _ => Err(violation(r, "unknown phase")),
        }
    }

    /// The planned fault of the VMM's kinds due for `task` at the record's message.
    fn due(&self, task: Option<usize>, r: &InjectRecord) -> Option<usize> {
        self.planned.iter().position(|p| {
            let s = &p.spec;
            let at = (p.live && p.fired == 0)
                || r.message == s.message
                || (s.period != 0
                    && r.message > s.message
                    && (r.message - s.message).is_multiple_of(s.period));
            p.task == task
                && s.kind as u64 == r.word & 0xff
                && s.kind.executor() == Executor::Vmm
                && at
        })
    }

    fn start(
        &mut self,
        mem: &GuestMemory,
        index: usize,
        r: &InjectRecord,
        answer: &mut InjectAnswer,
    ) {
        let p = &mut self.planned[index];
        p.fired += 1;
        if p.live {
            // Its message is now known: the spec replays it.
            p.spec.message = r.message;
        }
        let spec = p.spec.clone();
        let task = p.task;
        let ranges = match task {
            Some(t) => self.targets.tasks[t].clone(),
            None => self.targets.kernel.clone(),
        };
        let mut choose = Chooser::new(self.seed, index, r.message);
        let mut injection = Injection {
            spec: spec.to_string(),
            target: spec.target.to_string(),
            kind: spec.kind.name(),
            message: r.message,
            rip: task.map(|_| r.regs.rip),
            concrete: None,
            activated: None,
            steps: None,
            detected_as: None,
            undone: false,
            note: None,
            class: Class::NoEffect,
        };
        let outcome = match spec.kind.family() {
            Family::Code => inject_code(mem, &spec, &ranges, &mut choose, r.message),
            Family::Data => inject_data(mem, &spec, &ranges, &mut choose, r, answer),
            Family::Crash => Err("a server executes it".into()),
        };
        let concrete = match outcome {
            Ok(c) => c,
            Err(note) => {
                // Nothing corrupted: it tested nothing, like a fault whose message never came.
                injection.note = Some(note);
                injection.class = Class::NotTriggered;
                self.injections.push(injection);
                return;
            }
        };
        let index = self.injections.len();
        if spec.kind.family() == Family::Code
            && let Some(addr) = concrete.addr
        {
            match task {
                None => self.kernel_watch = Some((addr, index)),
                Some(t) => {
                    let undo =
                        (!spec.permanent()).then(|| (addr, decode_hex(&concrete.before.hex)));
                    if self.stepping.is_none() {
                        self.stepping = Some(index);
                        answer.watch = addr;
                        answer.budget = STEP_BUDGET;
                    }
                    answer.notify_end = undo.is_some() || answer.watch != 0;
                    self.open.push(Open {
                        injection: index,
                        task: t,
                        undo,
                    });
                }
            }
        }
        injection.concrete = Some(concrete);
        self.injections.push(injection);
    }

    /// Task `t`'s faulted message is over (its next one came, or it crashed): transient code
    /// put back, the stepping's outcome taken.
    fn end(&mut self, mem: &GuestMemory, t: usize, step: &StepRecord) {
        let (done, open): (Vec<Open>, Vec<Open>) = std::mem::take(&mut self.open)
            .into_iter()
            .partition(|o| o.task == t);
        self.open = open;
        for o in done {
            if let Some((addr, before)) = &o.undo
                && mem.write_slice(before, GuestAddress(*addr)).is_ok()
            {
                self.injections[o.injection].undone = true;
            }
            if self.stepping == Some(o.injection) {
                self.stepping = None;
                let transient = o.undo.is_some();
                let seen = step_outcome(step, t, transient);
                let injection = &mut self.injections[o.injection];
                injection.activated = seen;
                injection.steps =
                    (usize::try_from(step.task).ok() == Some(t)).then_some(step.steps);
            }
        }
    }

    /// A task crashed (before the engine restores it): its transient faults are put back, its
    /// faults are detected, a crash kind it executed is recorded, a crash of a task no fault
    /// targeted is noted.
    pub fn crashed(&mut self, mem: &GuestMemory, fault: &FaultReport, step: &StepRecord) {
        let Ok(t) = usize::try_from(fault.record.task) else {
            return;
        };
        self.end(mem, t, step);
        let cause = fault
            .record
            .cause_name()
            .map_or_else(|| format!("unknown({})", fault.record.cause), str::to_owned);
        if let Some(kind) = fault.context.injected()
            && kind.executor() == Executor::Server
            && let Some(index) = self.planned.iter().position(|p| {
                p.task == Some(t) && p.spec.kind == kind && fault.record.messages >= p.spec.message
            })
        {
            self.planned[index].fired += 1;
            let spec = &self.planned[index].spec;
            self.injections.push(Injection {
                spec: spec.to_string(),
                target: spec.target.to_string(),
                kind: kind.name(),
                message: fault.record.messages,
                rip: None,
                concrete: None,
                activated: Some(true),
                steps: None,
                detected_as: Some(cause.clone()),
                undone: false,
                note: None,
                class: Class::Recovered,
            });
            return;
        }
        let target = self
            .names
            .get(t)
            .cloned()
            .unwrap_or_else(|| format!("#{t}"));
        // The crash detects the target's faults since its previous crash (the newest back to
        // one already detected), except those that corrupted nothing or provably never ran; a
        // crash none of them explains is a bystander's.
        let mut targeted = false;
        for i in self
            .injections
            .iter_mut()
            .rev()
            .filter(|i| i.target == target)
        {
            if i.detected_as.is_some() {
                targeted = true;
                break;
            }
            if i.concrete.is_some() && i.activated != Some(false) {
                targeted = true;
                i.detected_as = Some(cause.clone());
            }
        }
        if !targeted {
            self.bystanders.push(target);
        }
    }

    /// The newest record (the fault an INJECT `START` just carried out).
    pub fn latest(&self) -> Option<&Injection> {
        self.injections.last()
    }

    /// The address of a kernel code fault to watch with a breakpoint, once injected.
    pub fn kernel_watch(&self) -> Option<u64> {
        self.kernel_watch.map(|(addr, _)| addr)
    }

    /// The kernel reached its injected instruction (the breakpoint hit).
    pub fn kernel_reached(&mut self) {
        if let Some((_, index)) = self.kernel_watch.take() {
            self.injections[index].activated = Some(true);
        }
    }

    /// The run is over: the stepping's last outcome taken, and one record for each planned
    /// fault that never fired. Returns the records (classes still to set) and the tasks that
    /// crashed though no fault targeted them.
    pub fn finish(mut self, step: Option<StepRecord>) -> (Vec<Injection>, Vec<String>) {
        if let (Some(index), Some(step)) = (self.stepping, step) {
            let injection = &mut self.injections[index];
            injection.steps = Some(step.steps);
            if step.outcome == StepRecord::REACHED {
                injection.activated = Some(true);
            }
        }
        // A kernel code fault whose breakpoint never fired: the kernel never ran it.
        if let Some((_, index)) = self.kernel_watch {
            self.injections[index].activated = Some(false);
        }
        // (A fault planned live whose message never came was pending when the VM stopped: it has
        // no message to replay it at, and is left out.)
        for p in self.planned.iter().filter(|p| p.fired == 0 && !p.live) {
            self.injections.push(Injection {
                spec: p.spec.to_string(),
                target: p.spec.target.to_string(),
                kind: p.spec.kind.name(),
                message: p.spec.message,
                rip: None,
                concrete: None,
                activated: None,
                steps: None,
                detected_as: None,
                undone: false,
                note: None,
                class: Class::NotTriggered,
            });
        }
        (self.injections, self.bystanders)
    }

    /// The specs that never fired, so far.
    pub fn not_triggered(&self) -> impl Iterator<Item = &FaultSpec> {
        self.planned
            .iter()
            .filter(|p| p.fired == 0 && !p.live)
            .map(|p| &p.spec)
    }
}

fn violation(r: &InjectRecord, why: &'static str) -> Stop {
    Stop::Protocol(Violation::Inject {
        task: r.task,
        phase: r.phase,
        kind: r.word,
        message: r.message,
        why,
    })
}

/// Whether the stepping toward an instruction shows it used: reached (yes), the message ended
/// first (no, for a transient fault that is then put back; unknown for a permanent one), the
/// budget ran out or the task crashed first (unknown; a crash is detection anyway).
fn step_outcome(step: &StepRecord, task: usize, transient: bool) -> Option<bool> {
    if usize::try_from(step.task).ok() != Some(task) {
        return None;
    }
    match step.outcome {
        StepRecord::REACHED => Some(true),
        StepRecord::ENDED if transient => Some(false),
        _ => None,
    }
}

fn decode_hex(hex: &str) -> Vec<u8> {
    hex.split(' ')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

/// Checks `spec`'s `at=` against what its kind can corrupt in `ranges` (for code kinds: a site
/// of that kind in the image's code).
fn check_at(spec: &FaultSpec, ranges: &Ranges, image: &Image) -> Result<(), FaultSpecError> {
    let Some(at) = spec.at else {
        return Ok(());
    };
    let fail = |what: String| FaultSpecError::Address {
        spec: spec.to_string(),
        at,
        what,
    };
    match spec.kind {
        FaultKind::StateFlip if !ranges.in_data(at) => Err(fail(format!(
            "in {}'s {}",
            spec.target,
            if spec.target == Target::Kernel {
                "data"
            } else {
                "state"
            }
        ))),
        FaultKind::StackFlip if !ranges.stack.is_some_and(|s| s.contains(at)) => {
            Err(fail(format!("in {}'s stack region", spec.target)))
        }
        k if k.family() == Family::Code => {
            let insn = ranges
                .code
                .iter()
                .find(|r| r.contains(at))
                .and_then(|r| image_bytes(image, r))
                .and_then(|(base, bytes)| {
                    code::decode(base, &bytes)
                        .into_iter()
                        .find(|i| i.addr == at)
                });
            match insn {
                // The pinned bit or register must fit it too: a fault that corrupts nothing
                // would test nothing.
                Some(i) if code::is_site(k, &i) => {
                    code::rewrite(k, &i, &mut |_| 0, spec.bit, spec.reg)
                        .map(drop)
                        .map_err(|why| FaultSpecError::Value {
                            spec: spec.to_string(),
                            modifier: if spec.reg.is_some() { "reg" } else { "bit" }.into(),
                            why,
                        })
                }
                Some(i) => Err(fail(format!(
                    "a {} site ({at:#x} is {})",
                    k.name(),
                    i.asm()
                ))),
                None => Err(fail(format!("an instruction of {}'s code", spec.target))),
            }
        }
        _ => Ok(()),
    }
}

/// The image's bytes of `range` (inside one segment's file bytes; the rest of memory is zero).
pub fn image_bytes(image: &Image, range: &Range) -> Option<(u64, Vec<u8>)> {
    let seg = image
        .segments
        .iter()
        .find(|s| s.paddr <= range.base && range.base < s.end())?;
    let start = range.base - seg.paddr;
    let len = range.size.min(seg.end() - range.base);
    let mut out = vec![0u8; len as usize];
    let file = seg.filesz.saturating_sub(start).min(len) as usize;
    let from = (seg.offset + start) as usize;
    out[..file].copy_from_slice(image.bytes.get(from..from + file)?);
    Some((range.base, out))
}

/// Reads `range` of guest memory.
fn read(mem: &GuestMemory, range: &Range) -> Option<Vec<u8>> {
    let mut out = vec![0u8; range.size as usize];
    mem.read_slice(&mut out, GuestAddress(range.base)).ok()?;
    Some(out)
}

/// A code fault: an instruction of `ranges`' code chosen (or pinned by `at=`) and rewritten.
fn inject_code(
    mem: &GuestMemory,
    spec: &FaultSpec,
    ranges: &Ranges,
    choose: &mut Chooser,
    message: u64,
) -> Result<Concrete, String> {
    let mut insns = Vec::new();
    for r in &ranges.code {
        let bytes = read(mem, r).ok_or("its code is not in guest memory")?;
        insns.extend(code::decode(r.base, &bytes));
    }
    // Only the sites the pinned bit or register fits (a text-flip's bit=40 needs an
    // instruction of 6 bytes or more).
    let fits =
        |i: &&code::Insn| code::rewrite(spec.kind, i, &mut |_| 0, spec.bit, spec.reg).is_ok();
    let sites: Vec<&code::Insn> = code::sites(spec.kind, &insns)
        .into_iter()
        .filter(|i| pinned_text(spec).is_none() || fits(i))
        .collect();
    let insn = match spec.at {
        Some(at) => sites
            .iter()
            .find(|i| i.addr == at)
            .copied()
            .ok_or_else(|| format!("{at:#x} is not a {} site now", spec.kind.name()))?,
        None => *sites
            .get(choose.pick(sites.len()))
            .ok_or_else(|| match pinned_text(spec) {
                Some(pinned) => format!(
                    "no {} site in its code that {pinned} fits",
                    spec.kind.name()
                ),
                None => format!("no {} site in its code", spec.kind.name()),
            })?,
    };
    let rewrite = code::rewrite(spec.kind, insn, &mut |n| choose.pick(n), spec.bit, spec.reg)?;
    mem.write_slice(&rewrite.after, GuestAddress(rewrite.addr))
        .map_err(|e| format!("cannot write {:#x}: {e}", rewrite.addr))?;
    let mut back = vec![0u8; rewrite.after.len()];
    mem.read_slice(&mut back, GuestAddress(rewrite.addr))
        .map_err(|e| format!("cannot read {:#x} back: {e}", rewrite.addr))?;
    let mut pinned = spec.clone();
    pinned.message = message;
    pinned.period = 0;
    pinned.at = Some(rewrite.addr);
    pinned.bit = rewrite.bit;
    pinned.reg = rewrite.reg;
    Ok(Concrete {
        spec: pinned.to_string(),
        addr: Some(rewrite.addr),
        bit: rewrite.bit,
        reg: rewrite.reg.map(Reg::name),
        before: Bytes::new(
            &rewrite.before,
            Some(code::asm(rewrite.addr, &rewrite.before)),
        ),
        after: Bytes::new(&back, Some(code::asm(rewrite.addr, &back))),
    })
}

/// The pinned bit and register of `spec`, as words (`None`: neither is pinned).
fn pinned_text(spec: &FaultSpec) -> Option<String> {
    match (spec.bit, spec.reg) {
        (Some(b), Some(r)) => Some(format!("bit {b} and {}", r.name())),
        (Some(b), None) => Some(format!("bit {b}")),
        (None, Some(r)) => Some(r.name().to_owned()),
        (None, None) => None,
    }
}

/// A data fault: a bit of memory (state, live stack) or of a register flipped.
fn inject_data(
    mem: &GuestMemory,
    spec: &FaultSpec,
    ranges: &Ranges,
    choose: &mut Chooser,
    r: &InjectRecord,
    answer: &mut InjectAnswer,
) -> Result<Concrete, String> {
    let mut pinned = spec.clone();
    pinned.message = r.message;
    pinned.period = 0;
    match spec.kind {
        FaultKind::RegFlip | FaultKind::MsgCorrupt => {
            let regs: Vec<usize> = if spec.kind == FaultKind::MsgCorrupt {
                InjectRegs::PAYLOAD.to_vec()
            } else {
                (0..16).collect()
            };
            let reg = spec
                .reg
                .map_or_else(|| regs[choose.pick(regs.len())], |r| r.0);
            let bit = spec.bit.unwrap_or_else(|| choose.pick(64) as u32);
            let before = answer.gpr[reg];
            answer.gpr[reg] ^= 1 << bit;
            pinned.reg = Some(Reg(reg));
            pinned.bit = Some(bit);
            Ok(Concrete {
                spec: pinned.to_string(),
                addr: None,
                bit: Some(bit),
                reg: Some(Reg(reg).name()),
                before: Bytes::new(&before.to_be_bytes(), None),
                after: Bytes::new(&answer.gpr[reg].to_be_bytes(), None),
            })
        }
        FaultKind::StateFlip | FaultKind::StackFlip => {
            let areas: Vec<Range> = if spec.kind == FaultKind::StateFlip {
                ranges.data.clone()
            } else {
                // The live stack: from the stack pointer to the top of the region.
                let rsp = r.regs.gpr[7];
                ranges
                    .stack
                    .filter(|s| s.contains(rsp))
                    .and_then(|s| s.end().map(|end| Range::new(rsp, end - rsp)))
                    .into_iter()
                    .collect()
            };
            let total: u64 = areas.iter().map(|a| a.size).sum();
            let addr = match spec.at {
                Some(at) => at,
                None if total == 0 => {
                    return Err(if spec.kind == FaultKind::StackFlip {
                        "no live stack".into()
                    } else {
                        "no data".into()
                    });
                }
                None => {
                    let mut offset = choose.pick(total as usize) as u64;
                    let mut addr = 0;
                    for a in &areas {
                        if offset < a.size {
                            addr = a.base + offset;
                            break;
                        }
                        offset -= a.size;
                    }
                    addr
                }
            };
            let bit = spec.bit.unwrap_or_else(|| choose.pick(8) as u32);
            let before: u8 = mem
                .read_obj(GuestAddress(addr))
                .map_err(|e| format!("cannot read {addr:#x}: {e}"))?;
            mem.write_obj(before ^ (1 << bit), GuestAddress(addr))
                .map_err(|e| format!("cannot write {addr:#x}: {e}"))?;
            let after: u8 = mem
                .read_obj(GuestAddress(addr))
                .map_err(|e| format!("cannot read {addr:#x} back: {e}"))?;
            pinned.at = Some(addr);
            pinned.bit = Some(bit);
            Ok(Concrete {
                spec: pinned.to_string(),
                addr: Some(addr),
                bit: Some(bit),
                reg: None,
                before: Bytes::new(&[before], None),
                after: Bytes::new(&[after], None),
            })
        }
        _ => Err(format!("{} is not a data fault", spec.kind.name())),
    }
}
