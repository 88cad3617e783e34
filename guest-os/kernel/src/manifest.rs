//! The region manifest this image carries in its `.note.crashmon` ELF note (read by the VMM).
//!
//! ```text
//!  0x0010_0000  kernel region (3 MiB: this image, its stack)
//!  0x0040_0000  monitor page
//!  0x0080_0000  kv state arena (1 MiB)    0x0090_0000  kv scratch (64 KiB)
//!  0x00a0_0000  fs state arena (1 MiB)    0x00b0_0000  fs scratch (64 KiB)
//! ```
//!
//! Everything lies inside the default 128 MiB of guest RAM.

use abi::manifest::{Manifest, ManifestNote, Range, ServerDecl};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

#[used]
#[unsafe(link_section = ".note.crashmon")]
static MANIFEST: ManifestNote = ManifestNote::new(manifest());

const fn manifest() -> Manifest {
    let mut m = Manifest::EMPTY;
    m.kernel = Range::new(0x10_0000, 3 * MIB);
    m.monitor_page = 0x40_0000;
    m.servers[0] = ServerDecl::new(
        b"kv",
        Range::new(0x80_0000, MIB),
        Range::new(0x90_0000, 64 * KIB),
    );
    m.servers[1] = ServerDecl::new(
        b"fs",
        Range::new(0xa0_0000, MIB),
        Range::new(0xb0_0000, 64 * KIB),
    );
    m.server_count = 2;
    m
}
