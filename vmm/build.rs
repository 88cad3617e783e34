//! Builds the guests bundled into the `vmm` binary from guest-os/: the demo guest (`vmm run`
//! without an image) and the trivial plain ELF that `vmm bench boot` times.

use guest_builder::{Flavor, build_guest};

fn main() {
    let kernel = build_guest("kernel", "kernel", Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the bundled guest failed: {e}"));
    println!("cargo:rustc-env=VMM_BUNDLED_GUEST={}", kernel.display());
    let plain = build_guest("testguests", "plainguest", Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the benchmark guest failed: {e}"));
    println!("cargo:rustc-env=VMM_BENCH_GUEST={}", plain.display());
}
