//! `vmm bench`: measurements that are reported, never asserted.
//!
//! `vmm bench boot` times whole `vmm run` processes booting a trivial plain ELF (it prints one
//! line and asks for an i8042 reset), the way the Firecracker anchor in docs/benchmarks.md was
//! measured: each sample is a fresh process timed from spawn to exit, with its CPU time and peak
//! RSS taken from the child's rusage (`wait4`).

use abi::Backend;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The trivial plain guest bundled into `vmm` for this benchmark.
pub static BOOT_GUEST: &[u8] = include_bytes!(env!("VMM_BENCH_GUEST"));

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Could not write the guest image to a temporary file, or the JSON file.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Could not start `vmm run`.
    #[error("cannot start `{exe} run`: {source}")]
    Spawn {
        /// The vmm binary.
        exe: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A boot did not end with status 0.
    #[error(
        "sample {sample}: `vmm run` exited with status {status}, expected 0 (run it by hand to see why)"
    )]
    Failed {
        /// Sample number.
        sample: usize,
        /// Its status.
        status: i32,
    },
    /// wait4 failed.
    #[error("waiting for `vmm run` failed: {0}")]
    Wait(std::io::Error),
}

/// One boot.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Spawn to exit, in ms.
    pub wall_ms: f64,
    /// User + system CPU time, in ms.
    pub cpu_ms: f64,
    /// User CPU time, in ms (tick-sampled by the kernel: only the sum is exact).
    pub user_ms: f64,
    /// System CPU time, in ms (tick-sampled by the kernel: only the sum is exact).
    pub sys_ms: f64,
    /// Peak resident set size, in MiB.
    pub max_rss_mib: f64,
}

/// Median, min and max of one figure.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Stats {
    /// Median.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// The statistics of `values` (which must not be empty).
    pub fn of(values: &[f64]) -> Self {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Self {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// The result of `vmm bench boot`.
#[derive(Clone, Debug, Serialize)]
pub struct BootReport {
    /// What was measured.
    pub benchmark: &'static str,
    /// KVM backend the samples ran on.
    pub backend: &'static str,
    /// Samples taken (after one warm-up boot that is not counted).
    pub runs: usize,
    /// Guest RAM per boot, in MiB.
    pub memory_mib: u64,
    /// Wall time from spawn to exit, ms.
    pub wall_ms: Stats,
    /// CPU time (user + system), ms.
    pub cpu_ms: Stats,
    /// User CPU time, ms.
    pub user_ms: Stats,
    /// System CPU time, ms.
    pub sys_ms: Stats,
    /// Peak RSS, MiB.
    pub max_rss_mib: Stats,
    /// Every sample.
    pub samples: Vec<Sample>,
}

/// Boots the trivial guest `runs` times (plus one warm-up) as fresh `exe run` processes.
pub fn boot(
    exe: &Path,
    runs: usize,
    memory_mib: u64,
    backend: Backend,
) -> Result<BootReport, BenchError> {
    let dir = std::env::temp_dir().join(format!("vmm-bench-{}", std::process::id()));
    let image = dir.join("boot-guest.elf");
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BenchError::Write { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
    std::fs::write(&image, BOOT_GUEST).map_err(write_err(&image))?;
    let result = (0..=runs)
        .map(|i| sample(exe, &image, memory_mib, i))
        .collect::<Result<Vec<_>, _>>();
    let _ = std::fs::remove_dir_all(&dir);
    let samples: Vec<Sample> = result?.into_iter().skip(1).collect();
    let pick = |f: fn(&Sample) -> f64| Stats::of(&samples.iter().map(f).collect::<Vec<_>>());
    Ok(BootReport {
        benchmark: "boot",
        backend: backend.name(),
        runs,
        memory_mib,
        wall_ms: pick(|s| s.wall_ms),
        cpu_ms: pick(|s| s.cpu_ms),
        user_ms: pick(|s| s.user_ms),
        sys_ms: pick(|s| s.sys_ms),
        max_rss_mib: pick(|s| s.max_rss_mib),
        samples,
    })
}

fn sample(exe: &Path, image: &Path, memory_mib: u64, index: usize) -> Result<Sample, BenchError> {
    let started = Instant::now();
    let child = Command::new(exe)
        .arg("run")
        .arg(image)
        .args([
            "--quiet",
            "--memory",
            &memory_mib.to_string(),
            "--timeout",
            "30",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| BenchError::Spawn {
            exe: exe.to_owned(),
            source,
        })?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills on success.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own, not yet reaped child, with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if rc != pid {
        return Err(BenchError::Wait(std::io::Error::last_os_error()));
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    if code != 0 {
        return Err(BenchError::Failed {
            sample: index,
            status: code,
        });
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Sample {
        wall_ms: wall.as_secs_f64() * 1e3,
        cpu_ms: (tv(usage.ru_utime) + tv(usage.ru_stime)).as_secs_f64() * 1e3,
        user_ms: tv(usage.ru_utime).as_secs_f64() * 1e3,
        sys_ms: tv(usage.ru_stime).as_secs_f64() * 1e3,
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

/// The Firecracker 1.17 anchor for the same kind of guest on this machine kind (issue 3).
pub const FIRECRACKER_ANCHOR: (f64, f64, f64) = (16.0, 4.0, 11.4);

/// A human-readable summary, with the anchor and our ratio to it.
pub fn summary(r: &BootReport) -> String {
    let (fc_wall, fc_cpu, fc_rss) = FIRECRACKER_ANCHOR;
    let row = |name: &str, s: &Stats, unit: &str, anchor: f64, anchor_label: &str| {
        format!(
            "{name:<9} median {:>7.2} {unit}  min {:>7.2}  max {:>7.2}   firecracker {anchor_label} {anchor:>5.1} {unit}  (ratio {:.2})\n",
            s.median,
            s.min,
            s.max,
            s.median / anchor
        )
    };
    let mut out = format!(
        "vmm bench boot: {} boots of a trivial plain ELF, {} MiB, KVM backend {}\n",
        r.runs, r.memory_mib, r.backend
    );
    out += &row("wall", &r.wall_ms, "ms", fc_wall, "median");
    out += &row("cpu", &r.cpu_ms, "ms", fc_cpu, "median");
    out += &format!(
        "{:<9} max    {:>7.2} MiB min {:>7.2}  median {:>5.2}  firecracker max    {fc_rss:>5.1} MiB (ratio {:.2})\n",
        "peak rss",
        r.max_rss_mib.max,
        r.max_rss_mib.min,
        r.max_rss_mib.median,
        r.max_rss_mib.max / fc_rss
    );
    out
}

/// Writes `value` as pretty JSON to the output file `path` ([`crate::files::write_output`]: a
/// regular file atomically, a device or FIFO in place, through symlinks).
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), BenchError> {
    let err = |source| BenchError::Write {
        path: path.to_owned(),
        source,
    };
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| err(std::io::Error::other(e)))?;
    json.push(b'\n');
    crate::files::write_output(path, &json).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_middle() {
        assert_eq!(
            Stats::of(&[3.0, 1.0, 2.0]),
            Stats {
                median: 2.0,
                min: 1.0,
                max: 3.0
            }
        );
        assert_eq!(
            Stats::of(&[4.0, 1.0, 2.0, 3.0]),
            Stats {
                median: 2.5,
                min: 1.0,
                max: 4.0
            }
        );
        assert_eq!(
            Stats::of(&[7.0]),
            Stats {
                median: 7.0,
                min: 7.0,
                max: 7.0
            }
        );
    }

    #[test]
    fn json_is_written_whole_or_not_at_all() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.json");
        write_json_atomic(
            &path,
            &Stats {
                median: 1.0,
                min: 0.5,
                max: 2.0,
            },
        )
        .expect("written");
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("valid json");
        assert_eq!(back["median"], 1.0);
        let bad = dir.path().join("no-such-dir").join("out.json");
        assert!(write_json_atomic(&bad, &1).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("list").count(),
            1,
            "no temp file left behind"
        );
    }
}
