//! Seeded fuzzing of the guest command line's check (`kernel::bootargs::check`): command
//! lines made of the keys and values there are, glued at random, and arbitrary bytes. The check
//! accepts or names one token of the line and why, and never panics; a line it accepts holds
//! only `KEY=VALUE` tokens. Prints its case count; `FUZZ_CASES=N` runs more (docs/testing.md).

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[test]
fn guest_command_lines() {
    let n: u32 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let piece = proptest::sample::select(vec![
        "ops",
        "seed",
        "crasher",
        "kvload",
        "names",
        "=",
        " ",
        "\t",
        "5",
        "0",
        "abc",
        "99999999999999999",
        "null-deref",
        "init",
        "bench",
        "3s",
        "=x=",
        "\u{202e}",
        "\u{0}",
    ]);
    let shaped = proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat().into_bytes());
    let bytes = proptest::collection::vec(proptest::num::u8::ANY, 0..80);
    let line = proptest::prop_oneof![shaped, bytes];
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: n,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    for _ in 0..n {
        let line = line.new_tree(&mut runner).expect("a line").current();
        match kernel::bootargs::check(&line) {
            Ok(()) => {
                for token in line
                    .split(u8::is_ascii_whitespace)
                    .filter(|t| !t.is_empty())
                {
                    assert!(token.contains(&b'='), "accepted {line:?}");
                }
            }
            Err(bad) => {
                assert!(!bad.token.is_empty() && !bad.why.is_empty(), "{line:?}");
                assert!(
                    line.windows(bad.token.len()).any(|w| w == bad.token),
                    "the named token is the line's: {line:?}"
                );
            }
        }
    }
    println!("fuzz guest-cmdline: {n} cases");
}
