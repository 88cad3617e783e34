//! Links the `kernel` binary as a bare image of our kind: no C runtime, no libc, static, at the
//! address and with the segments of `bare`'s `image.ld` (which carries the region manifest note).

fn main() {
    let Ok(link_dir) = std::env::var("DEP_BARE_LINK_DIR") else {
        panic!(
            "DEP_BARE_LINK_DIR is not set: the `bare` dependency publishes it (links = \"bare\")"
        );
    };
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=0x1000",
    ] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
    println!("cargo::rustc-link-arg-bin=kernel=-T{link_dir}/image.ld");
    println!("cargo::rerun-if-changed={link_dir}/image.ld");
    println!("cargo::rerun-if-changed=build.rs");
}
