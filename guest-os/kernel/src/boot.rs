//! Boot: from the VMM's entry state to the first task in ring 3.

use crate::arch::x86_64::{apic, cpu, gdt, idt, paging, trap};
use crate::dispatch::{self, BAD_CMDLINE_STATUS, KERNEL_FAULT_STATUS};
use crate::monitor;
use abi::fault::FaultKind;
use abi::manifest::Range;
use abi::monitor::{MONITOR_MAGIC, MONITOR_VERSION, MonitorPage};
use abi::{Backend, BootInfo};
use bare::{boot, cmdline, hypercall, serial};
use kernel::TaskSetup;
use kernel::aspace::task_mappings;
use kernel::umem::Regions;
use sysmap::{Kind, TASKS};

/// Default number of workload requests.
pub const DEFAULT_OPS: u64 = 10_000;
/// Default workload seed.
pub const DEFAULT_SEED: u64 = 1;

/// IST stacks.
static mut IST_STACKS: [trap::Stack<4096>; 2] = [const { trap::Stack([0; 4096]) }; 2];

/// Boots and enters the first task.
pub fn boot(boot_info: u64) -> ! {
    let Some(info) = boot::boot_info(boot_info) else {
        serial::line(b"kernel: no valid boot-info block (another abi version?)");
        hypercall::exit(KERNEL_FAULT_STATUS)
    };
    let cmdline = boot::cmdline(info);
    banner(info, cmdline);
    if let Err(bad) = kernel::bootargs::check(cmdline) {
        serial::write(b"kernel: bad command line: ");
        serial::write(bad.token);
        serial::write(b": ");
        serial::write(bad.why.as_bytes());
        if bad.why == kernel::bootargs::UNKNOWN_KEY {
            // The keys there are: the system map's tasks that take a value.
            for (n, t) in sysmap::TASKS
                .iter()
                .filter(|t| t.arg != sysmap::Arg::None)
                .enumerate()
            {
                serial::write(if n == 0 { b" " } else { b", " });
                serial::write(t.name.as_bytes());
            }
        }
        serial::line(b"");
        // The VMM's own line says why too (its stderr, not only the guest's console).
        let mut why = [0u8; 240];
        let mut n = 0;
        let mut put = |part: &[u8]| {
            let take = part.len().min(why.len() - n);
            why[n..n + take].copy_from_slice(&part[..take]);
            n += take;
        };
        put(b"bad command line: ");
        put(bad.token);
        put(b": ");
        put(bad.why.as_bytes());
        if bad.why == kernel::bootargs::UNKNOWN_KEY {
            for (i, t) in sysmap::TASKS
                .iter()
                .filter(|t| t.arg != sysmap::Arg::None)
                .enumerate()
            {
                put(if i == 0 { b" " } else { b", " });
                put(t.name.as_bytes());
            }
        }
        hypercall::log(&why[..n]);
        hypercall::exit(BAD_CMDLINE_STATUS)
    }
    if !apic::has_x2apic() {
        serial::line(b"kernel: the CPU offers no x2APIC; cannot run the timer");
        hypercall::exit(KERNEL_FAULT_STATUS)
    }
    let ist = &raw mut IST_STACKS;
    // SAFETY: taking addresses of static stacks only.
    let (df, nmi) = unsafe {
        (
            (*ist)[0].0.as_ptr_range().end as u64,
            (*ist)[1].0.as_ptr_range().end as u64,
        )
    };
    gdt::init(df, nmi);
    idt::init();
    // SAFETY: setting EFER.NXE only enables the no-execute bit of page-table entries.
    unsafe { cpu::wrmsr(cpu::MSR_EFER, cpu::rdmsr(cpu::MSR_EFER) | cpu::EFER_NXE) };
    let page = read_monitor_page();
    for index in 0..TASKS.len() {
        setup_task(index, cmdline);
    }
    plan_faults(&page);
    init_monitor_page();
    apic::init();
    dispatch::start()
}

/// `kernel: backend=pvm memory=128MiB tasks=6 cmdline="..."`
fn banner(info: &BootInfo, cmdline: &[u8]) {
    serial::write(b"kernel: backend=");
    serial::write(match Backend::from_number(info.backend) {
        Some(b) => b.name().as_bytes(),
        None => b"unknown",
    });
    serial::write(b" memory=");
    serial::write_dec(info.mem_size >> 20);
    serial::write(b"MiB tasks=");
    serial::write_dec(TASKS.len() as u64);
    serial::write(b" cmdline=\"");
    serial::write(cmdline);
    serial::line(b"\"");
}

/// What the VMM put in the monitor page before boot (flags, the fault plan), if it carries this
/// contract's magic and version; an empty page otherwise.
fn read_monitor_page() -> MonitorPage {
    let page = sysmap::MONITOR_PAGE as *const MonitorPage;
    // SAFETY: the monitor page is the manifest's, identity-mapped by the VMM's boot tables;
    // nothing else runs yet. Every field is plain data (any bits valid).
    let page = unsafe { page.read_volatile() };
    if page.is_valid() {
        page
    } else {
        MonitorPage::default()
    }
}

/// Hands each planned fault to its task (the plan stays in the kernel: a rollback of the task's
/// state cannot re-arm it); a bad entry is reported and skipped.
fn plan_faults(page: &MonitorPage) {
    monitor::set_flags(page.flags);
    for p in page.plan.iter().filter(|p| p.message != 0) {
        let (kind, _after_send) = abi::fault::split(u64::from(p.kind));
        let known = FaultKind::from_number(kind).is_some();
        let fault = kernel::task::PlannedFault {
            message: p.message,
            kind: p.kind,
            period: p.period,
        };
        let planned = if p.task == abi::monitor::KERNEL_TARGET {
            dispatch::plan_kernel_fault(fault)
        } else {
            dispatch::plan_fault(p.task as usize, fault)
        };
        if !known || !planned {
            serial::write(b"kernel: ignoring planned fault for task ");
            serial::write_dec(u64::from(p.task));
            serial::line(b"");
        }
    }
}

fn init_monitor_page() {
    let page = sysmap::MONITOR_PAGE as *mut MonitorPage;
    // SAFETY: the monitor page is the manifest's, identity-mapped by the VMM's boot tables
    // (and by every task space, supervisor-only); only the kernel writes it.
    unsafe {
        (&raw mut (*page).magic).write_volatile(MONITOR_MAGIC);
        (&raw mut (*page).version).write_volatile(MONITOR_VERSION);
    }
}

/// What task `index` finds in rsi and rdx: the workload gets `ops` and `seed`; any other task
/// the value of the command-line key named after it (e.g. `crasher=null-deref`), its first 16
/// bytes packed little-endian.
fn task_args(index: usize, cmdline: &[u8]) -> [u64; 2] {
    let name = TASKS[index].name.as_bytes();
    if name == b"workload" {
        // Checked at boot: a value present is a number.
        let number = |key: &[u8], default| match cmdline::dec_arg(cmdline, key) {
            Some(Ok(n)) => n,
            _ if cmdline::arg(cmdline, key) == Some(kernel::bootargs::FOREVER) => u64::MAX,
            _ => default,
        };
        return [number(b"ops", DEFAULT_OPS), number(b"seed", DEFAULT_SEED)];
    }
    abi::ipc::pack_name(cmdline::arg(cmdline, name).unwrap_or_default())
}

fn setup_task(index: usize, cmdline: &[u8]) {
    let def = &TASKS[index];
    let scratch = sysmap::scratch(index);
    let guard = sysmap::guard(index);
    let regions = Regions {
        text: sysmap::text(index),
        state: sysmap::state(index),
        stack: Range::new(guard.base + guard.size, scratch.size - guard.size),
    };
    let kernel_image = Range::new(
        sysmap::KERNEL_BASE,
        sysmap::KERNEL_IMAGE_END - sysmap::KERNEL_BASE,
    );
    let mappings = task_mappings(
        kernel_image,
        sysmap::MONITOR_PAGE,
        regions.text,
        regions.state,
        regions.stack,
    );
    let Ok(root) = paging::build(&mappings) else {
        serial::line(b"kernel: out of page-table frames");
        hypercall::exit(KERNEL_FAULT_STATUS)
    };
    let mut name = [0u8; 16];
    for (slot, b) in name.iter_mut().zip(def.name.as_bytes()) {
        *slot = *b;
    }
    let setup = TaskSetup {
        name,
        priority: def.priority,
        server: def.kind == Kind::Server,
        may_exit: def.may_exit,
        regions,
        entry: regions.text.base,
        stack_top: sysmap::stack_top(index),
        args: task_args(index, cmdline),
    };
    dispatch::add_task(&setup, root);
}
