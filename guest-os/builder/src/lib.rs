//! Builds the guest images from a build script, with a cargo invocation of their own.
//!
//! The guests are `#![no_std] #![no_main]` binaries of this same workspace, built for the host
//! target (stable Rust has no bare-metal target without rust-src). Ring-0 code must hold no SSE
//! instruction (KVM-PVM cannot emulate them), and the flags that guarantee it must reach every
//! crate of the guest but none of the host's, so each guest build is a separate
//! `cargo build --release` that:
//!
//! - uses the workspace's own `Cargo.toml` and `Cargo.lock` (found from this crate's location);
//! - names `--target x86_64-unknown-linux-gnu` explicitly, so that the flavor's flags apply to
//!   the guest's crates only, never to build scripts or proc-macros (which run on the host);
//! - writes to its own target directory, `<target>/guest/<flavor>` where `<target>` is the
//!   outer `CARGO_TARGET_DIR` (a relative one taken from the workspace root) or else
//!   `<workspace>/target`: sharing the outer build's directory would wait forever on the lock
//!   the outer build holds, while a subdirectory of it has locks of its own;
//! - runs with the outer build's environment scrubbed ([`SCRUBBED_VARS`],
//!   [`SCRUBBED_PREFIXES`]), so its flags, profile overrides, target directory, wrappers (clippy)
//!   and jobserver do not leak in;
//! - sets the flavor's flags through `CARGO_ENCODED_RUSTFLAGS` (which also overrides any
//!   `rustflags` from cargo config files).
//!
//! ```no_run
//! // build.rs
//! let kernel = guest_builder::build_guest("kernel", "kernel", guest_builder::Flavor::Kernel)
//!     .unwrap_or_else(|e| panic!("{e}"));
//! println!("cargo::rustc-env=KERNEL_IMAGE={}", kernel.display());
//! ```
//!
//! [`build_guests`] prints `cargo::rerun-if-changed=` lines for the guest sources (every crate
//! under `guest-os/`), the workspace manifest and `Cargo.lock`, so the calling build script runs
//! again when a guest changes, and only then; cargo's own freshness checks keep the nested build
//! cheap when nothing did.

pub mod elf;
pub mod tasks;

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// The target the guests are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Variables removed from the nested cargo's environment.
pub const SCRUBBED_VARS: &[&str] = &[
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CLIPPY_ARGS",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
];

/// Prefixes of variables removed from the nested cargo's environment: `CARGO_ENCODED_RUSTFLAGS`
/// and friends, `CARGO_BUILD_*` (target and build directories, rustflags, wrappers, target),
/// `CARGO_TARGET_*` (target directory, per-target rustflags, linker and runner),
/// `CARGO_PROFILE_*`, cargo's private `__CARGO_*` (e.g. `cargo fix`'s) and every `RUSTC_*`
/// setting (wrappers such as clippy's; `RUSTC` itself, the compiler's path, is kept).
pub const SCRUBBED_PREFIXES: &[&str] = &[
    "RUSTC_",
    "CARGO_ENCODED_",
    "CARGO_BUILD_",
    "CARGO_TARGET_",
    "CARGO_PROFILE_",
    "__CARGO_",
];

/// Link arguments of every guest binary: no C runtime, no libc, static, no PIE, no build id,
/// 4 KiB segment alignment (the linker script comes on top).
pub const LINK_ARGS: &[&str] = &[
    "-nostartfiles",
    "-nostdlib",
    "-static",
    "-no-pie",
    "-Wl,--build-id=none",
    "-Wl,-z,max-page-size=0x1000",
];

/// How a guest binary is compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// Ring-0 code: SSE disabled (no xmm instruction anywhere), no red zone, static relocation.
    Kernel,
    /// Ring-3 code: the target's defaults.
    User,
}

impl Flavor {
    /// The `rustc` flags of this flavor, one argument each.
    ///
    /// Disabling `sse,sse2` switches off every later SSE/AVX extension with them (LLVM's
    /// feature implications), so no xmm register is used. rustc warns that the target's ABI
    /// wants sse2: harmless in code without floating point, which ring-0 code must not use.
    pub const fn rustflags(self) -> &'static [&'static str] {
        match self {
            Flavor::Kernel => &[
                "-Ctarget-feature=-sse,-sse2",
                "-Cno-redzone=yes",
                "-Crelocation-model=static",
            ],
            Flavor::User => &[],
        }
    }

    /// Lower-case name, also the name of its target directory: `kernel` or `user`.
    pub const fn name(self) -> &'static str {
        match self {
            Flavor::Kernel => "kernel",
            Flavor::User => "user",
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a guest could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The nested cargo could not be started.
    #[error("cannot run {cargo} to build guest package `{package}`: {source}")]
    Spawn {
        /// The cargo binary.
        cargo: PathBuf,
        /// The guest package.
        package: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The nested cargo failed; its stderr is included.
    #[error(
        "building guest package `{package}` (bins {bins:?}, {flavor} flavor) failed ({status}); \
         the nested cargo said:\n{stderr}"
    )]
    Failed {
        /// The guest package.
        package: String,
        /// The binaries asked for.
        bins: Vec<String>,
        /// Their flavor.
        flavor: Flavor,
        /// The nested cargo's exit status.
        status: ExitStatus,
        /// The nested cargo's stderr.
        stderr: String,
    },
    /// The nested cargo succeeded but a binary is not where it should be.
    #[error("cargo built guest package `{package}` but {} is missing", path.display())]
    Missing {
        /// The guest package.
        package: String,
        /// Where the binary should be.
        path: PathBuf,
    },
}

/// Builds binary `bin` of guest package `package` in `flavor` and returns the ELF's path.
pub fn build_guest(package: &str, bin: &str, flavor: Flavor) -> Result<PathBuf, BuildError> {
    let mut paths = build_guests(&[package], &[bin], flavor)?;
    paths.pop().ok_or_else(|| BuildError::Missing {
        package: package.to_owned(),
        path: target_dir(flavor).join(bin),
    })
}

/// Builds several binaries of one or more guest packages in one cargo invocation; returns their
/// ELF paths in the order asked.
pub fn build_guests(
    packages: &[&str],
    bins: &[&str],
    flavor: Flavor,
) -> Result<Vec<PathBuf>, BuildError> {
    rerun_if_guest_sources_change();
    let target_dir = target_dir(flavor);
    let cargo = cargo_binary();
    let package = packages.join(",");
    let package = package.as_str();
    let output = nested_cargo(&cargo, packages, bins, flavor, &target_dir)
        .output()
        .map_err(|source| BuildError::Spawn {
            cargo: cargo.clone(),
            package: package.to_owned(),
            source,
        })?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            package: package.to_owned(),
            bins: bins.iter().map(|b| (*b).to_owned()).collect(),
            flavor,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    let out_dir = target_dir.join(GUEST_TARGET).join("release");
    bins.iter()
        .map(|bin| {
            let path = out_dir.join(bin);
            if path.is_file() {
                Ok(path)
            } else {
                Err(BuildError::Missing {
                    package: package.to_owned(),
                    path,
                })
            }
        })
        .collect()
}

/// Prints `cargo::rerun-if-changed=` for every crate directory under `guest-os/`, the workspace
/// manifest and `Cargo.lock` (never for anything under a target directory).
pub fn rerun_if_guest_sources_change() {
    let root = workspace_root();
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );
    for dir in guest_crate_dirs(&root.join("guest-os")) {
        println!("cargo::rerun-if-changed={}", dir.display());
    }
}

/// The workspace root: two levels above this crate (`guest-os/builder`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map_or_else(|| here.join("../.."), Path::to_path_buf)
}

/// The target directory of the guest builds of `flavor`: `<outer target dir>/guest/<flavor>`.
pub fn target_dir(flavor: Flavor) -> PathBuf {
    let root = workspace_root();
    let outer = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|d| !d.is_empty())
        .map_or_else(|| root.join("target"), |d| root.join(d));
    outer.join("guest").join(flavor.name())
}

/// The cargo running this build (`CARGO`), else `cargo` from `PATH`.
fn cargo_binary() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// Directories under `guest_os` holding a `Cargo.toml`, one or two levels down (`kernel`,
/// `servers/kv`), sorted.
fn guest_crate_dirs(guest_os: &Path) -> Vec<PathBuf> {
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut dirs = Vec::new();
    for dir in subdirs(guest_os) {
        if dir.join("Cargo.toml").is_file() {
            dirs.push(dir);
        } else {
            dirs.extend(
                subdirs(&dir)
                    .into_iter()
                    .filter(|d| d.join("Cargo.toml").is_file()),
            );
        }
    }
    if dirs.is_empty() {
        dirs.push(guest_os.to_path_buf());
    }
    dirs.sort();
    dirs
}

/// The nested `cargo build` with its environment scrubbed and the flavor's flags set.
fn nested_cargo(
    cargo: &Path,
    packages: &[&str],
    bins: &[&str],
    flavor: Flavor,
    target_dir: &Path,
) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--color=never")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
        cmd.arg("--package").arg(package);
    }
    for bin in bins {
        cmd.arg("--bin").arg(bin);
    }
    for (name, _) in std::env::vars_os() {
        if is_scrubbed(&name) {
            cmd.env_remove(&name);
        }
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", flavor.rustflags().join("\x1f"));
    cmd
}

/// True for the variables the nested cargo must not see.
fn is_scrubbed(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    SCRUBBED_VARS.contains(&name) || SCRUBBED_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outer_build_settings_are_scrubbed() {
        for name in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET_DIR",
            "CARGO_BUILD_BUILD_DIR",
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            "CARGO_PROFILE_RELEASE_LTO",
            "CARGO_MAKEFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC_LOG",
            "__CARGO_FIX_PLZ",
        ] {
            assert!(
                is_scrubbed(OsStr::new(name)),
                "{name} leaks into the guest build"
            );
        }
        for name in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO",
            "RUSTC",
        ] {
            assert!(!is_scrubbed(OsStr::new(name)), "{name} must be kept");
        }
    }

    #[test]
    fn kernel_flags_disable_sse_and_user_flags_are_empty() {
        let kernel = Flavor::Kernel.rustflags();
        assert!(kernel.contains(&"-Ctarget-feature=-sse,-sse2"));
        assert!(kernel.contains(&"-Cno-redzone=yes"));
        assert!(Flavor::User.rustflags().is_empty());
    }

    #[test]
    fn flavors_get_their_own_target_dirs() {
        let kernel = target_dir(Flavor::Kernel);
        let user = target_dir(Flavor::User);
        assert_ne!(kernel, user);
        assert!(kernel.ends_with("guest/kernel"));
    }

    #[test]
    fn the_workspace_root_holds_the_guest_crates() {
        let root = workspace_root();
        assert!(root.join("Cargo.toml").is_file());
        let dirs = guest_crate_dirs(&root.join("guest-os"));
        assert!(dirs.iter().any(|d| d.ends_with("guest-os/kernel")));
        assert!(dirs.iter().all(|d| !d.starts_with(root.join("target"))));
    }

    #[test]
    fn the_nested_command_names_target_dir_and_bins() {
        let cmd = nested_cargo(
            Path::new("cargo"),
            &["testguests"],
            &["testguest", "plainguest"],
            Flavor::Kernel,
            Path::new("/t"),
        );
        let args: Vec<_> = cmd.get_args().filter_map(OsStr::to_str).collect();
        for want in ["--release", "--target", GUEST_TARGET, "/t", "testguests"] {
            assert!(args.contains(&want), "{want} missing from {args:?}");
        }
        assert_eq!(args.iter().filter(|a| **a == "--bin").count(), 2);
        let flags = cmd
            .get_envs()
            .find(|(k, _)| *k == "CARGO_ENCODED_RUSTFLAGS")
            .and_then(|(_, v)| v);
        assert_eq!(
            flags.and_then(OsStr::to_str),
            Some("-Ctarget-feature=-sse,-sse2\x1f-Cno-redzone=yes\x1f-Crelocation-model=static")
        );
    }
}
