//! Hostile guests (testguest `mode=chaos`): from each seed, random hypercalls (any number,
//! arguments inside guest memory, in the monitor page or anywhere) and garbage written into the
//! monitor page. `vmm` must end every run with a documented status and at most one line of
//! its own, within its timeout, and never panic. Prints how many guests it ran; `FUZZ_CASES=N`
//! runs N seeds (default 40; docs/testing.md).

use crate::VMM;
use abi::status;
use integration_tests::{TESTGUEST, require_kvm, vmm_run};
use std::collections::BTreeMap;
use std::time::Duration;

#[test]
fn hostile_guests_end_with_a_documented_status_and_one_line() {
    require_kvm();
    let seeds: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let mut endings: BTreeMap<i32, u64> = BTreeMap::new();
    for seed in 0..seeds {
        let arg = format!("chaos={seed}");
        let out = vmm_run(
            VMM,
            &[TESTGUEST, "--timeout", "10", "--", "mode=chaos", &arg],
        )
        .run();
        let documented = (0..=i32::from(status::GUEST_MAX)).contains(&out.status)
            || [
                status::TRIPLE_FAULT,
                status::GUEST_INTERNAL_ERROR,
                status::GUEST_PROTOCOL,
                status::TIMEOUT,
            ]
            .map(i32::from)
            .contains(&out.status);
        assert!(documented, "seed {seed}: status {}: {out:?}", out.status);
        assert!(
            !out.stderr.contains("panicked") && !out.stderr.contains("RUST_BACKTRACE"),
            "seed {seed}: {out:?}"
        );
        // What the guest said (its LOG lines, the faults and recoveries it reported, which
        // vmm reports as it reports any) is not vmm's own; vmm's own lines say why it stopped.
        let own: Vec<&str> = out
            .error_lines()
            .into_iter()
            .filter(|l| {
                ![
                    "vmm: guest log:",
                    "vmm: fault:",
                    "vmm: recovery:",
                    "vmm: declaration:",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .collect();
        assert!(own.len() <= 1, "seed {seed}: {out:?}");
        assert!(
            out.stdout.starts_with("chaos: start") || out.status != 0,
            "seed {seed}: {out:?}"
        );
        assert!(
            out.wall < Duration::from_secs(20),
            "seed {seed}: took {:?}",
            out.wall
        );
        *endings.entry(out.status).or_default() += 1;
    }
    println!("fuzz hostile-guest: {seeds} guests; statuses {endings:?}");
}
