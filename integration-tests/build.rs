//! Builds the guests the integration tests boot (from guest-os/, never prebuilt binaries).

use guest_builder::{Flavor, build_guest, build_guests};

fn main() {
    let bins = ["testguest", "plainguest", "plainlow"];
    let paths = build_guests(&["testguests"], &bins, Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the test guests failed: {e}"));
    for (env, path) in ["TESTGUEST_ELF", "PLAINGUEST_ELF", "PLAINLOW_ELF"]
        .iter()
        .zip(paths)
    {
        println!("cargo:rustc-env={env}={}", path.display());
    }
    let kernel = build_guest("kernel", "kernel", Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the demo kernel failed: {e}"));
    println!("cargo:rustc-env=KERNEL_ELF={}", kernel.display());
}
