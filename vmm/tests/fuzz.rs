//! Seeded fuzzing, on stable Rust, of every parser `vmm` runs on untrusted input: the guest
//! image (ELF headers, program headers, the region manifest note) and its layout, config files,
//! `--fault` specs and campaign files. Each target mutates or generates inputs from a fixed
//! seed (the same cases every run), asserts that the parser answers (a value or one error line)
//! and never panics, and prints how many cases it ran. `FUZZ_CASES=N` runs N cases a target
//! (default 300; docs/testing.md). The monitor page and hypercall decoding are fuzzed beside
//! their code (vmm/src/devices/monitor.rs), the guest command line in the kernel's tests.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use std::path::Path;

/// Cases per target: `FUZZ_CASES`, or 300.
fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// Runs `check` on `cases()` values of `strategy`, drawn from a fixed seed; prints the count.
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(S::Value)) {
    let n = cases();
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: n,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    for _ in 0..n {
        let value = strategy.new_tree(&mut runner).expect("a value").current();
        check(value);
    }
    println!("fuzz {name}: {n} cases");
}

/// One line: an error message never spans lines.
fn one_line(e: &impl std::fmt::Display) {
    let text = e.to_string();
    assert!(!text.contains('\n'), "{text:?}");
}

/// The bundled image with bytes changed where the parser looks: the ELF and program headers,
/// the manifest note, and a cut at any length.
#[test]
fn images_and_their_layouts() {
    let image = vmm::cli::BUNDLED_GUEST.to_vec();
    let note = image
        .windows(8)
        .position(|w| w == b"CRASHMON")
        .expect("the manifest note");
    let len = image.len();
    let place = proptest::prop_oneof![
        0usize..4096,
        note.saturating_sub(16)..(note + 2048).min(len)
    ];
    let edit = (
        proptest::collection::vec((place, proptest::num::u8::ANY), 1..8),
        proptest::option::of(0usize..len),
    );
    fuzz("image", edit, |(writes, cut)| {
        let mut bytes = image.clone();
        for (at, b) in writes {
            bytes[at] = b;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut);
        }
        match vmm::image::Image::from_bytes("fuzzed".into(), bytes) {
            Ok(image) => {
                for mib in [1, 128] {
                    if let Err(e) = vmm::layout::plan(&image, mib << 20) {
                        one_line(&e);
                    }
                }
            }
            Err(e) => one_line(&e),
        }
    });
}

/// Config files: text shaped like one (tables, keys, values of every type) and arbitrary text.
#[test]
fn config_files() {
    let key = proptest::sample::select(vec![
        "image",
        "memory_mib",
        "timeout_secs",
        "cmdline",
        "strict_io",
        "bogus",
        "kv",
        "policy",
        "max_crashes",
        "window_secs",
        "default",
    ]);
    let value = proptest::sample::select(vec![
        "\"x\"",
        "\"\"",
        "0",
        "-1",
        "5000",
        "1e9",
        "nan",
        "true",
        "[1, 2]",
        "{ a = 1 }",
        "\"rollback\"",
        "\"restart-fresh\"",
        "\"fail-stop\"",
        "18446744073709551616",
    ]);
    let table = proptest::sample::select(vec!["[vm]", "[recovery]", "[recovery.kv]", "[x]", ""]);
    let shaped = proptest::collection::vec((table, key, value), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(t, k, v)| format!("{t}\n{k} = {v}\n"))
            .collect::<String>()
    });
    let text = proptest::prop_oneof![shaped, ".{0,200}"];
    fuzz("config", text, |text| match vmm::config::ConfigFile::parse(
        &text,
        Path::new("/fuzz/vm.toml"),
    ) {
        Ok(file) => {
            let resolved = vmm::config::VmConfig::resolve(
                vmm::config::Overrides::default(),
                Some((&file, Path::new("/fuzz"))),
            );
            if let Err(e) = resolved {
                one_line(&e);
            }
        }
        Err(e) => one_line(&e),
    });
}

/// `--fault` specs: grammar-shaped pieces glued at random, and arbitrary text.
#[test]
fn fault_specs() {
    let piece = proptest::sample::select(vec![
        "kv",
        "kernel",
        ":",
        "@",
        "+",
        "panic",
        "text-flip",
        "reg-flip",
        "1",
        "0",
        "99999999999999999999",
        ":after-send",
        ":transient",
        ":permanent",
        ":at=0x10",
        ":bit=200",
        ":reg=rax",
        ":reg=eax",
        "=",
    ]);
    let shaped = proptest::collection::vec(piece, 0..10).prop_map(|p| p.concat());
    let text = proptest::prop_oneof![shaped, ".{0,60}"];
    fuzz("fault-spec", text, |text| {
        if let Err(e) = vmm::faults::FaultSpec::parse(&text) {
            one_line(&e);
        }
    });
}

/// Campaign files: arbitrary text, and the example campaign with a line changed.
#[test]
fn campaign_files() {
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/campaign-kv-fs.toml"),
    )
    .expect("the example campaign");
    let lines: Vec<String> = example.lines().map(str::to_owned).collect();
    let n = lines.len();
    let edited = (0..n, ".{0,40}").prop_map(move |(i, replacement)| {
        let mut l = lines.clone();
        l[i] = replacement;
        l.join("\n")
    });
    let text = proptest::prop_oneof![edited, ".{0,200}"];
    fuzz("campaign", text, |text| {
        if let Err(e) = vmm::fleet::campaign::Campaign::parse(&text, Path::new("/fuzz")) {
            assert!(!e.contains('\n'), "{e:?}");
        }
    });
}
