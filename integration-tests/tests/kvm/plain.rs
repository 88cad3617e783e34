//! Plain x86_64 ELF images (no region manifest) boot the Firecracker way and stop on an i8042
//! reset; unknown port and MMIO accesses are counted and ignored unless `--strict-io`.

use crate::VMM;
use abi::status;
use integration_tests::{PLAINGUEST, PLAINLOW, require_kvm, vmm_run};

#[test]
fn plain_elf_boots_prints_and_stops_on_i8042_reset() {
    require_kvm();
    let out = vmm_run(VMM, &[PLAINGUEST]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("plainguest: hello"), "{out:?}");
    assert!(out.stderr.contains("plain ELF"), "{out:?}");
    assert!(!out.stderr.contains("ignored"), "{out:?}");
}

#[test]
fn low_linked_plain_elf_loads_at_its_physical_address() {
    require_kvm();
    let out = vmm_run(VMM, &[PLAINLOW]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("plainlow: hello"), "{out:?}");
}

#[test]
fn unknown_port_and_mmio_storms_are_counted_and_ignored() {
    require_kvm();
    let out = vmm_run(VMM, &[PLAINGUEST, "--", "storm=1000"]).run();
    assert_eq!(out.status, 0, "{out:?}");
    assert!(out.stdout.contains("storm done"), "{out:?}");
    assert!(
        out.stderr
            .contains("ignored 2000 accesses to unknown I/O ports and 2000 to unmapped addresses"),
        "{out:?}"
    );
}

#[test]
fn strict_io_stops_on_the_first_unknown_access() {
    require_kvm();
    let out = vmm_run(VMM, &[PLAINGUEST, "--strict-io", "--", "storm=10"]).run();
    assert_eq!(out.status, i32::from(status::GUEST_PROTOCOL), "{out:?}");
    assert!(out.stderr.contains("unknown I/O port 0x99"), "{out:?}");
}

/// Margin for allocations that legitimately differ between two runs (a few formatted lines).
const HEAP_SLACK: u64 = 16 << 10;

#[test]
fn console_floods_leave_the_monitor_memory_flat() {
    require_kvm();
    let small = vmm_run(VMM, &[PLAINGUEST, "--", "blast=1"])
        .heap_report()
        .run();
    // 32 chunks of 4 KiB written by `rep outsb`: 128 KiB of console output.
    let big = vmm_run(VMM, &[PLAINGUEST, "--", "blast=32"])
        .heap_report()
        .run();
    assert_eq!((small.status, big.status), (0, 0), "{small:?} {big:?}");
    let line = format!(
        "blast {}",
        "abcdefghijklmnopqrstuvwxyz"
            .repeat(3)
            .get(..57)
            .expect("57 letters")
    );
    let blast_lines: Vec<&str> = big
        .stdout
        .lines()
        .filter(|l| l.starts_with("blast "))
        .collect();
    assert_eq!(
        blast_lines.len(),
        32 * 64,
        "console output lost or duplicated"
    );
    assert!(
        blast_lines.iter().all(|l| *l == line),
        "console output corrupted"
    );
    assert!(
        big.peak_heap() <= small.peak_heap() + HEAP_SLACK,
        "heap grew with console output: {} -> {} bytes",
        small.peak_heap(),
        big.peak_heap()
    );
}

#[test]
fn exit_storms_leave_the_monitor_memory_flat() {
    require_kvm();
    let small = vmm_run(VMM, &[PLAINGUEST, "--", "storm=10"])
        .heap_report()
        .run();
    let big = vmm_run(VMM, &[PLAINGUEST, "--", "storm=5000"])
        .heap_report()
        .run();
    assert_eq!((small.status, big.status), (0, 0), "{small:?} {big:?}");
    assert!(
        big.stderr
            .contains("ignored 10000 accesses to unknown I/O ports and 10000 to unmapped"),
        "{big:?}"
    );
    assert!(
        big.peak_heap() <= small.peak_heap() + HEAP_SLACK,
        "heap grew with exits: {} -> {} bytes",
        small.peak_heap(),
        big.peak_heap()
    );
}

/// A plain image whose first instruction is `int3`, with no IDT to take it: docs/boot.md says
/// what happens (a triple fault, 80, where KVM delivers it; on KVM-PVM an internal error, 81),
/// and the line names the instruction instead of guessing an SSE instruction.
#[test]
fn an_exception_with_no_idt_is_named_as_such() {
    require_kvm();
    let patched = integration_tests::patched_copy(PLAINGUEST, |b| {
        let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8"));
        let entry = u64_at(b, 24);
        let (phoff, phnum) = (u64_at(b, 32) as usize, u16::from_le_bytes([b[56], b[57]]));
        let offset = (0..usize::from(phnum))
            .map(|i| phoff + i * 56)
            .find_map(|p| {
                let (kind, off, vaddr, filesz) = (
                    u32::from_le_bytes(b[p..p + 4].try_into().expect("4")),
                    u64_at(b, p + 8),
                    u64_at(b, p + 16),
                    u64_at(b, p + 32),
                );
                (kind == 1 && (vaddr..vaddr + filesz).contains(&entry))
                    .then(|| (off + entry - vaddr) as usize)
            })
            .expect("the entry point's segment");
        b[offset] = 0xcc;
    });
    let out = vmm_run(VMM, &[patched.to_str().expect("utf-8")]).run();
    match out.status {
        80 => assert!(out.stderr.contains("triple-faulted"), "{out:?}"),
        81 => assert!(
            out.stderr.contains("bytes there cc")
                && out.stderr.contains("an int3 or int with no IDT"),
            "{out:?}"
        ),
        s => panic!("status {s}: {out:?}"),
    }
}
