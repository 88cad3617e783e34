//! Publishes the directory of the guest linker scripts to dependents' build scripts, which read it
//! as `DEP_BARE_LINK_DIR` (see `link/image.ld` and `link/plain.ld`).

fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/link");
    println!("cargo::metadata=link_dir={dir}");
    println!("cargo::rerun-if-changed=build.rs");
}
