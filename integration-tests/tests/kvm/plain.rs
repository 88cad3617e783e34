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
