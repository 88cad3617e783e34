//! Builds every task of the system map (ring-3 binaries, user flavor), bundles their segments
//! into this image at their final addresses (`tasks.s`, included by `global_asm!`) and links the
//! kernel with the generated script (`kernel.ld`), which also places the manifest note.

fn main() {
    let out = std::env::var_os("OUT_DIR").map(std::path::PathBuf::from);
    let Some(out) = out else {
        panic!("OUT_DIR is not set");
    };
    let script = guest_builder::tasks::bundle(&out)
        .unwrap_or_else(|e| panic!("bundling the tasks into the kernel failed: {e}"));
    for arg in guest_builder::LINK_ARGS {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
    println!("cargo::rustc-link-arg-bin=kernel=-T{}", script.display());
    println!("cargo::rerun-if-changed=build.rs");
}
