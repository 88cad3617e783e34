//! Links the test guests as bare images: `testguest` with `bare`'s `image.ld` (region manifest
//! note), `plainguest` and `plainlow` with `plain.ld` (no note), `plainlow` moved down to 0x10000.

fn main() {
    let Ok(link_dir) = std::env::var("DEP_BARE_LINK_DIR") else {
        panic!(
            "DEP_BARE_LINK_DIR is not set: the `bare` dependency publishes it (links = \"bare\")"
        );
    };
    for arg in guest_builder::LINK_ARGS {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
    println!("cargo::rustc-link-arg-bin=testguest=-T{link_dir}/image.ld");
    println!("cargo::rustc-link-arg-bin=plainguest=-T{link_dir}/plain.ld");
    println!("cargo::rustc-link-arg-bin=plainlow=-T{link_dir}/plain.ld");
    println!("cargo::rustc-link-arg-bin=plainlow=-Wl,--defsym=IMAGE_BASE=0x10000");
    println!("cargo::rerun-if-changed={link_dir}/image.ld");
    println!("cargo::rerun-if-changed={link_dir}/plain.ld");
    println!("cargo::rerun-if-changed=build.rs");
}
