//! Builds the guests bundled into the `vmm` binary from guest-os/: the demo guest (`vmm run`
//! without an image) and the trivial plain ELF that `vmm bench boot` times; and names the
//! commit it is built from (`VMM_GIT_COMMIT`: `unknown` outside a git checkout), which campaign
//! records carry.

use guest_builder::{Flavor, build_guest};
use std::process::Command;

/// `git` with `args` in this crate's directory, its output trimmed (`None` if it fails).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Names the commit, and asks to be run again when HEAD moves.
fn commit() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo::rustc-env=VMM_GIT_COMMIT={commit}");
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        println!("cargo::rerun-if-changed={dir}/HEAD");
        println!("cargo::rerun-if-changed={dir}/packed-refs");
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo::rerun-if-changed={dir}/{head}");
        }
    }
}

fn main() {
    commit();
    let kernel = build_guest("kernel", "kernel", Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the bundled guest failed: {e}"));
    println!("cargo:rustc-env=VMM_BUNDLED_GUEST={}", kernel.display());
    let plain = build_guest("testguests", "plainguest", Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the benchmark guest failed: {e}"));
    println!("cargo:rustc-env=VMM_BENCH_GUEST={}", plain.display());
}
