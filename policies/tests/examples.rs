//! Every example config under docs/examples/ is valid for the demo guest's servers and does
//! what its name says.

use std::path::{Path, PathBuf};

use policies::{PolicyKind, PolicySet, ServerPolicy, UnsafeFallback, load};

/// The demo guest's servers. Keep in step with the kernel's system map (guest-os/sysmap): the
/// examples name `kv`, which must be one of these.
const SERVERS: [&str; 4] = ["names", "kv", "fs", "bank"];

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples")
}

fn example(name: &str) -> PolicySet {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    load(&text, &SERVERS).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kv(set: &PolicySet) -> &ServerPolicy {
    set.settings("kv").expect("kv is declared")
}

#[test]
fn every_recovery_example_loads() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("docs/examples exists")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with("recovery-") && n.ends_with(".toml"))
        .collect();
    names.sort();
    assert!(names.len() >= 4, "too few examples: {names:?}");
    for name in &names {
        let set = example(name);
        assert_eq!(set.iter().count(), SERVERS.len(), "{name}");
    }
    // The VMM's general example is a valid recovery config too.
    example("vm.toml");
}

#[test]
fn each_example_does_what_it_says() {
    let default = example("recovery-default.toml");
    assert!(default.iter().all(|(_, s)| *s == ServerPolicy::default()));

    let replay = example("recovery-replay.toml");
    assert_eq!(kv(&replay).policy, PolicyKind::Replay);
    assert_eq!(
        replay.settings("fs").map(|s| s.policy),
        Some(PolicyKind::Rollback)
    );
    assert!(replay.dependency_tracking());

    let restart = example("recovery-restart.toml");
    assert_eq!(kv(&restart).policy, PolicyKind::Restart);
    assert_eq!(kv(&restart).escalate, [PolicyKind::FailStop]);

    let stop = example("recovery-failstop.toml");
    assert_eq!(kv(&stop).policy, PolicyKind::FailStop);

    let escalation = example("recovery-escalation.toml");
    assert_eq!(kv(&escalation).max_crashes, 2);
    assert!(!kv(&escalation).backoff.is_zero());

    let off = example("recovery-no-tracking.toml");
    assert!(!off.dependency_tracking());
    assert!(off.iter().all(|(_, s)| !s.dependency_tracking));
    assert_eq!(kv(&off).on_unsafe_dependency, UnsafeFallback::FailStop);
}
