//! The region manifest of the test guest (`.note.crashmon`), laid out like the kernel's:
//!
//! ```text
//!  0x0010_0000  kernel region (3 MiB)
//!  0x0040_0000  monitor page
//!  0x0080_0000  alpha state arena (1 MiB)    0x0090_0000  alpha scratch (64 KiB)
//!  0x00a0_0000  beta state arena (1 MiB)     0x00b0_0000  beta scratch (64 KiB)
//! ```

use abi::manifest::{Manifest, ManifestNote, Range, ServerDecl};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// The note the VMM reads; the guest reads it too (its own kernel region).
#[used]
#[unsafe(link_section = ".note.crashmon")]
pub static MANIFEST: ManifestNote = ManifestNote::new(manifest());

const fn manifest() -> Manifest {
    let mut m = Manifest::EMPTY;
    m.kernel = Range::new(0x10_0000, 3 * MIB);
    m.monitor_page = 0x40_0000;
    m.servers[0] = ServerDecl::new(
        b"alpha",
        Range::new(0x80_0000, MIB),
        Range::new(0x90_0000, 64 * KIB),
    );
    m.servers[1] = ServerDecl::new(
        b"beta",
        Range::new(0xa0_0000, MIB),
        Range::new(0xb0_0000, 64 * KIB),
    );
    m.server_count = 2;
    m
}
