//! `vmm fleet`: seeded fault-injection campaigns over many VMs (docs/fleet.md).
//!
//! ```text
//!  CAMPAIGN.toml ─► campaign.rs (checked) ─► cases.rs (case i from the master seed and i)
//!    ─► runner.rs (a child `vmm run` per case, --jobs at once, --shard) ─► record.rs (a line
//!       of cases.jsonl each) ─► results.rs (the directory) ─► summary.rs (rates: stats.rs;
//!       latency: HDR histogram) ─► markdown.rs, plots.rs (report.md, SVG)
//!  merge.rs: shards' directories into one; replay.rs: one case again
//! ```

pub mod bench;
pub mod campaign;
pub mod cases;
pub mod command;
pub mod markdown;
pub mod merge;
pub mod plots;
pub mod record;
pub mod replay;
pub mod results;
pub mod runner;
pub mod shard;
pub mod stats;
pub mod summary;

use std::path::{Path, PathBuf};

/// Most bytes read of a case's report, a runs file or a latency histogram.
pub const REPORT_LIMIT: u64 = 64 << 20;
/// Most bytes read of a `cases.jsonl`.
pub const CASES_LIMIT: u64 = 16 << 30;

/// Why a fleet command cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The campaign file.
    #[error(transparent)]
    Campaign(#[from] campaign::CampaignError),
    /// A results directory or a file in it.
    #[error("{}: {why}", path.display())]
    Dir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The campaign does not fit its image.
    #[error("{0}")]
    Image(String),
    /// The campaign's `config` file, or its golden run (no fault), failed.
    #[error("{0}")]
    Config(String),
    /// The host cannot run VMs (no usable KVM).
    #[error("{0}")]
    Host(String),
    /// A bad command line value.
    #[error("{0}")]
    Usage(String),
}

impl FleetError {
    /// A problem with `path`.
    pub fn dir(path: &Path, why: String) -> Self {
        Self::Dir {
            path: path.to_owned(),
            why,
        }
    }

    /// The exit status of the contract in `abi::status`.
    pub fn status(&self) -> u8 {
        use abi::status;
        match self {
            Self::Campaign(_) => status::CONFIG,
            Self::Image(_) => status::IMAGE,
            Self::Config(_) => status::CONFIG,
            Self::Host(_) => status::HOST,
            Self::Usage(_) => status::USAGE,
            Self::Dir { .. } => status::USAGE,
        }
    }
}
