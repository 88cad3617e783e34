//! Builds the demo guest from guest-os/ and bundles it into the `vmm` binary.

fn main() {
    let path = guest_builder::build_guest("kernel", "kernel", guest_builder::Flavor::Kernel)
        .unwrap_or_else(|e| panic!("building the bundled guest failed: {e}"));
    println!("cargo:rustc-env=VMM_BUNDLED_GUEST={}", path.display());
}
