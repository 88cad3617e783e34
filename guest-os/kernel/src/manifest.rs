//! The region manifest this image carries in its `.note.crashmon` ELF note (read by the VMM):
//! the kernel region, the monitor page and every task's state arena and scratch, all from the
//! system map (`sysmap`).

use abi::manifest::ManifestNote;

#[used]
#[unsafe(link_section = ".note.crashmon")]
static MANIFEST: ManifestNote = ManifestNote::new(sysmap::manifest());
