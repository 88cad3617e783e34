//! A campaign file (`vmm fleet run CAMPAIGN.toml`): what to inject, how often, into what. Read,
//! then checked as a whole; anything wrong is one line naming the file and the key.
//!
//! ```toml
//! [campaign]
//! name = "kv-smoke"
//! seed = 7            # master seed: every case's fault and seeds follow from it and the case
//! cases = 200
//! timeout_secs = 30   # per case
//! guest_args = ["ops=300"]
//! # image = "guest.elf", config = "policies.toml", memory_mib = 128
//! [[faults]]          # one or more; a case draws one fault from the union by weight
//! servers = ["kv", "fs"]
//! kinds = ["null-deref", "panic", "state-flip"]
//! messages = [1, 250] # trigger range, inclusive
//! weight = 1
//! ```

use crate::faults::spec::KERNEL;
use abi::fault::FaultKind;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Most cases one campaign may have.
pub const MAX_CASES: u64 = 10_000_000;

/// A campaign file that cannot be used: the file, and one line saying why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {why}", path.display())]
pub struct CampaignError {
    /// The file.
    pub path: PathBuf,
    /// Why, naming the key.
    pub why: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    campaign: Section,
    faults: Vec<FaultSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    name: String,
    seed: u64,
    cases: u64,
    #[serde(default = "default_timeout")]
    timeout_secs: f64,
    #[serde(default)]
    guest_args: Vec<String>,
    image: Option<PathBuf>,
    config: Option<PathBuf>,
    memory_mib: Option<u64>,
}

fn default_timeout() -> f64 {
    30.0
}

fn default_weight() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultSection {
    servers: Vec<String>,
    kinds: Vec<String>,
    messages: [u64; 2],
    #[serde(default = "default_weight")]
    weight: u32,
}

/// One `[[faults]]` table, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSet {
    /// Servers (or `kernel`) a case may target.
    pub servers: Vec<String>,
    /// Kinds a case may inject.
    pub kinds: Vec<FaultKind>,
    /// First message of the trigger range.
    pub first: u64,
    /// Last message of the trigger range.
    pub last: u64,
    /// Its share of the cases (against the other sets' weights).
    pub weight: u32,
}

/// A checked campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct Campaign {
    /// Its name.
    pub name: String,
    /// The master seed.
    pub seed: u64,
    /// Cases in the campaign.
    pub cases: u64,
    /// Each case's `--timeout`.
    pub timeout: Duration,
    /// Each case's guest arguments (the workload's seed is the case's).
    pub guest_args: Vec<String>,
    /// The guest image (default: the bundled one), relative paths taken from the file's
    /// directory.
    pub image: Option<PathBuf>,
    /// A `--config` file for each case (recovery policies).
    pub config: Option<PathBuf>,
    /// Guest RAM.
    pub memory_mib: Option<u64>,
    /// What to inject.
    pub faults: Vec<FaultSet>,
    /// The file's text, as read (kept with the results: it is the campaign's identity).
    pub text: String,
}

impl Campaign {
    /// Reads and checks the campaign file at `path`.
    pub fn load(path: &Path) -> Result<Self, CampaignError> {
        let fail = |why: String| CampaignError {
            path: path.to_owned(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.len() > 1 << 20 {
            return Err(fail(format!(
                "{} bytes: a campaign file is at most 1 MiB",
                meta.len()
            )));
        }
        let text = crate::files::read_text(path, 1 << 20)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        // Its relative paths are the file's: made absolute, so that results and replays work
        // from anywhere.
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_owned());
        Self::parse(&text, &dir).map_err(fail)
    }

    /// Parses and checks campaign `text`, whose relative paths are taken from `dir`.
    pub fn parse(text: &str, dir: &Path) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| one_line(&e.to_string()))?;
        let c = file.campaign;
        let key = |k: &str, why: String| format!("[campaign] {k}: {why}");
        if c.name.is_empty()
            || c.name.len() > 64
            || !c
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(key(
                "name",
                format!("{:?} is not 1-64 of [A-Za-z0-9._-]", c.name),
            ));
        }
        if !(1..=MAX_CASES).contains(&c.cases) {
            return Err(key("cases", format!("{} is not 1 to {MAX_CASES}", c.cases)));
        }
        if !(c.timeout_secs > 0.0 && c.timeout_secs <= 3600.0) {
            return Err(key(
                "timeout_secs",
                format!("{} is not above 0 and at most 3600", c.timeout_secs),
            ));
        }
        for arg in &c.guest_args {
            if arg.starts_with("seed=") {
                return Err(key(
                    "guest_args",
                    format!("{arg:?}: each case's workload seed comes from the master seed"),
                ));
            }
            if arg.is_empty() || arg.contains(char::is_whitespace) || arg.contains('\0') {
                return Err(key("guest_args", format!("{arg:?} is not one word")));
            }
        }
        if let Some(m) = c.memory_mib
            && !(abi::layout::MIN_MEMORY_MIB..=abi::layout::MAX_MEMORY_MIB).contains(&m)
        {
            return Err(key(
                "memory_mib",
                format!(
                    "{m} is not {} to {}",
                    abi::layout::MIN_MEMORY_MIB,
                    abi::layout::MAX_MEMORY_MIB
                ),
            ));
        }
        if file.faults.is_empty() {
            return Err("[[faults]]: at least one table".into());
        }
        let faults = file
            .faults
            .into_iter()
            .enumerate()
            .map(|(i, f)| fault_set(f).map_err(|why| format!("[[faults]] {}: {why}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        let resolve = |p: Option<PathBuf>| p.map(|p| if p.is_absolute() { p } else { dir.join(p) });
        Ok(Self {
            name: c.name,
            seed: c.seed,
            cases: c.cases,
            timeout: Duration::from_secs_f64(c.timeout_secs),
            guest_args: c.guest_args,
            image: resolve(c.image),
            config: resolve(c.config),
            memory_mib: c.memory_mib,
            faults,
            text: text.to_owned(),
        })
    }
}

fn fault_set(f: FaultSection) -> Result<FaultSet, String> {
    if f.servers.is_empty() {
        return Err("servers: at least one".into());
    }
    if f.kinds.is_empty() {
        return Err("kinds: at least one".into());
    }
    let kinds = f
        .kinds
        .iter()
        .map(|k| {
            FaultKind::from_name(k).ok_or_else(|| {
                format!(
                    "kinds: unknown fault kind {k:?}, expected one of {}",
                    FaultKind::ALL.map(FaultKind::name).join(", ")
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for s in &f.servers {
        let valid = !s.is_empty()
            && s.len() <= abi::manifest::SERVER_NAME_LEN
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!("servers: {s:?} is not a server name"));
        }
        if s == KERNEL
            && let Some(k) = kinds
                .iter()
                .find(|k| !matches!(k, FaultKind::TextFlip | FaultKind::StateFlip))
        {
            return Err(format!(
                "servers: \"kernel\" takes text-flip and state-flip only, not {}",
                k.name()
            ));
        }
    }
    let [first, last] = f.messages;
    if first == 0 || last < first {
        return Err(format!(
            "messages: [{first}, {last}] is not a range of message numbers from 1 up"
        ));
    }
    if f.weight == 0 {
        return Err("weight: 0 would never be drawn".into());
    }
    Ok(FaultSet {
        servers: f.servers,
        kinds,
        first,
        last,
        weight: f.weight,
    })
}

/// toml's message on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[campaign]
name = "kv-smoke"
seed = 7
cases = 200
timeout_secs = 30
guest_args = ["ops=300"]
image = "guest.elf"
[[faults]]
servers = ["kv", "fs"]
kinds = ["null-deref", "panic", "state-flip"]
messages = [1, 250]
weight = 2
[[faults]]
servers = ["kernel"]
kinds = ["text-flip"]
messages = [10, 10]
"#;

    #[test]
    fn a_campaign_reads_back_as_written() {
        let c = Campaign::parse(GOOD, Path::new("/c")).expect("valid");
        assert_eq!((c.name.as_str(), c.seed, c.cases), ("kv-smoke", 7, 200));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.image, Some(PathBuf::from("/c/guest.elf")));
        assert_eq!(c.faults.len(), 2);
        assert_eq!(
            c.faults[0].kinds,
            [FaultKind::NullDeref, FaultKind::Panic, FaultKind::StateFlip]
        );
        assert_eq!(
            (c.faults[0].first, c.faults[0].last, c.faults[0].weight),
            (1, 250, 2)
        );
        assert_eq!(c.faults[1].weight, 1, "the default");
    }

    #[test]
    fn each_mistake_is_one_line_naming_its_key() {
        let cases = [
            (
                "name = \"kv-smoke\"",
                "name = \"a b\"",
                "[campaign] name: \"a b\" is not",
            ),
            (
                "cases = 200",
                "cases = 0",
                "[campaign] cases: 0 is not 1 to",
            ),
            (
                "timeout_secs = 30",
                "timeout_secs = -1",
                "[campaign] timeout_secs: -1",
            ),
            (
                "[\"ops=300\"]",
                "[\"seed=3\"]",
                "[campaign] guest_args: \"seed=3\": each case's",
            ),
            (
                "[\"ops=300\"]",
                "[\"a b\"]",
                "guest_args: \"a b\" is not one word",
            ),
            (
                "\"state-flip\"]",
                "\"melt\"]",
                "[[faults]] 1: kinds: unknown fault kind \"melt\"",
            ),
            (
                "[1, 250]",
                "[0, 250]",
                "[[faults]] 1: messages: [0, 250] is not a range",
            ),
            ("[1, 250]", "[9, 2]", "[[faults]] 1: messages: [9, 2]"),
            ("weight = 2", "weight = 0", "[[faults]] 1: weight: 0"),
            (
                "kinds = [\"text-flip\"]",
                "kinds = [\"panic\"]",
                "[[faults]] 2: servers: \"kernel\" takes",
            ),
            (
                "servers = [\"kv\", \"fs\"]",
                "servers = []",
                "[[faults]] 1: servers: at least one",
            ),
            (
                "weight = 2",
                "weight = 2\nbogus = 1",
                "unknown field `bogus`",
            ),
            ("seed = 7", "seed = \"x\"", "invalid type"),
            ("cases = 200", "", "missing field `cases`"),
        ];
        for (from, to, want) in cases {
            assert!(GOOD.contains(from), "{from}");
            let text = GOOD.replacen(from, to, 1);
            let e = Campaign::parse(&text, Path::new(".")).expect_err(to);
            assert!(e.contains(want), "{to}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let no_faults = "faults = []\n".to_owned() + GOOD.split("[[faults]]").next().expect("head");
        let e = Campaign::parse(&no_faults, Path::new(".")).expect_err("no faults");
        assert!(e.contains("[[faults]]: at least one"), "{e}");
    }

    #[test]
    fn files_that_are_not_campaigns_are_refused_with_their_name() {
        let dir = tempfile::tempdir().expect("tmp");
        let e = Campaign::load(dir.path()).expect_err("a directory");
        assert!(e.to_string().ends_with(": not a regular file"), "{e}");
        let missing = dir.path().join("nope.toml");
        let e = Campaign::load(&missing).expect_err("missing");
        assert!(
            e.to_string().starts_with(&missing.display().to_string()),
            "{e}"
        );
        let binary = dir.path().join("b.toml");
        std::fs::write(&binary, [0xff, 0xfe, 0]).expect("write");
        assert!(Campaign::load(&binary).is_err());
    }

    proptest::proptest! {
        /// Any text: a campaign or one line, never a panic.
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            if let Err(e) = Campaign::parse(&text, Path::new(".")) {
                proptest::prop_assert!(!e.contains('\n'));
            }
        }
    }
}
