//! Guest memory layout: validate an image's segments and declared regions against the memory
//! size, and plan the KVM memslots and the boot-info memory map.
//!
//! For our images each server gets two memslots fixed for the VM's life: its state arena with
//! dirty-page logging (what per-server snapshots copy) and its scratch without. Everything else
//! (reserved low area, kernel, monitor page, free RAM) lives in plain slots covering the gaps.
//! A plain image gets one RAM slot.
//!
//! ```text
//!  0 ─ reserved ─ 0xA000 ─ free ─ kernel ─ monitor ─ free ─ [kv state] [kv scratch] ─ … ─ mem
//!  └────────── plain slot ─────────────────────────────────┘ └ logged ┘ └ unlogged ┘
//! ```

use crate::image::{Image, ImageKind};
use abi::boot::MAX_MEMMAP;
use abi::layout::{PAGE_SIZE, RESERVED_END, is_page_aligned};
use abi::manifest::{MANIFEST_VERSION, MAX_SERVERS, Manifest, Range, ServerDecl};
use abi::{MemKind, MemRange};

/// What a memslot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    /// Ordinary RAM, not logged.
    Ram,
    /// Server `n`'s state arena: dirty-page logging on.
    ServerState(usize),
    /// Server `n`'s scratch: not logged.
    ServerScratch(usize),
}

/// One planned KVM memslot (slot number = its index in [`Layout::slots`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Guest-physical base.
    pub base: u64,
    /// Size in bytes (a page multiple).
    pub size: u64,
    /// What it holds.
    pub kind: SlotKind,
}

impl Slot {
    /// True for slots registered with `KVM_MEM_LOG_DIRTY_PAGES`.
    pub fn log_dirty(&self) -> bool {
        matches!(self.kind, SlotKind::ServerState(_))
    }
}

/// A validated server declaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerRegions {
    /// Its name.
    pub name: String,
    /// Its state arena.
    pub state: Range,
    /// Its scratch.
    pub scratch: Range,
    /// Its text area inside the kernel region (size 0: not declared).
    pub text: Range,
    /// Declared an app by the manifest: a client with regions but no boundaries, never
    /// recovered, not a server to configure or crash on purpose.
    pub app: bool,
    /// What its requests mean, from the image (`None`: it declares nothing; every request is
    /// then taken as state-changing and not idempotent).
    pub requests: Option<abi::requests::RequestTable>,
}

/// The validated plan for guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Guest RAM in bytes.
    pub mem_size: u64,
    /// Memslots, sorted by base, covering `[0, mem_size)` exactly.
    pub slots: Vec<Slot>,
    /// The memory map for boot-info, sorted, covering `[0, mem_size)` exactly.
    pub memmap: Vec<MemRange>,
    /// Servers, in manifest order.
    pub servers: Vec<ServerRegions>,
    /// The monitor page (our images only).
    pub monitor_page: Option<u64>,
}

/// An image that does not fit the memory it was given.
#[derive(Debug, thiserror::Error)]
#[error("{image}: {reason}")]
pub struct LayoutError {
    /// The image's label.
    pub image: String,
    /// Why.
    pub reason: LayoutErrorKind,
}

/// Why a layout was rejected.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LayoutErrorKind {
    /// A segment ends past guest RAM.
    #[error(
        "segment {base:#x}..{end:#x} lies outside guest memory ({mib} MiB); raise --memory or relink the image"
    )]
    SegmentOutsideMemory {
        /// Start.
        base: u64,
        /// End.
        end: u64,
        /// Guest RAM in MiB.
        mib: u64,
    },
    /// A segment overlaps the VMM's boot structures.
    #[error(
        "segment {base:#x}..{end:#x} overlaps the VMM's reserved low memory 0x0..{RESERVED_END:#x} (see docs/memory-map.md)"
    )]
    SegmentInReserved {
        /// Start.
        base: u64,
        /// End.
        end: u64,
    },
    /// A segment of our image lies outside every declared region.
    #[error(
        "segment {base:#x}..{end:#x} is not inside the kernel region or a server region of the manifest"
    )]
    SegmentOutsideRegions {
        /// Start.
        base: u64,
        /// End.
        end: u64,
    },
    /// Unsupported manifest version.
    #[error("region manifest version {0}, this vmm understands version {MANIFEST_VERSION}")]
    ManifestVersion(u16),
    /// Too many servers.
    #[error("region manifest declares {0} servers, at most {MAX_SERVERS} are supported")]
    TooManyServers(u16),
    /// App bits for entries that are not declared.
    #[error("region manifest marks undeclared entries as apps (mask {0:#x})")]
    AppMask(u64),
    /// A server name is empty or has bad characters.
    #[error("server {0} has an invalid name (1-16 of A-Z a-z 0-9 - _)")]
    BadServerName(usize),
    /// Two servers share a name.
    #[error("two servers are named `{0}`")]
    DuplicateServerName(String),
    /// A region is empty.
    #[error("{0} is empty")]
    EmptyRegion(String),
    /// A region is not page-aligned.
    #[error("{what} {base:#x}+{size:#x} is not page-aligned")]
    Unaligned {
        /// Which region.
        what: String,
        /// Base.
        base: u64,
        /// Size.
        size: u64,
    },
    /// A region ends past guest RAM.
    #[error("{what} {base:#x}+{size:#x} lies outside guest memory ({mib} MiB); raise --memory")]
    RegionOutsideMemory {
        /// Which region.
        what: String,
        /// Base.
        base: u64,
        /// Size.
        size: u64,
        /// Guest RAM in MiB.
        mib: u64,
    },
    /// A region overlaps the reserved low area.
    #[error("{0} overlaps the VMM's reserved low memory 0x0..{RESERVED_END:#x}")]
    RegionInReserved(String),
    /// Two regions overlap.
    #[error("{0} overlaps {1}")]
    RegionsOverlap(String, String),
    /// A server's text area is not inside the kernel region.
    #[error("server `{server}` text area {base:#x}+{size:#x} is not inside the kernel region")]
    TextOutsideKernel {
        /// The server.
        server: String,
        /// Its text area.
        base: u64,
        /// Its size.
        size: u64,
    },
}

struct Declared {
    what: String,
    range: Range,
    kind: MemKind,
    server: u32,
}

/// Validates `image` against `mem_size` bytes of guest RAM and plans memory.
pub fn plan(image: &Image, mem_size: u64) -> Result<Layout, LayoutError> {
    plan_inner(image, mem_size).map_err(|reason| LayoutError {
        image: image.label.clone(),
        reason,
    })
}

fn plan_inner(image: &Image, mem_size: u64) -> Result<Layout, LayoutErrorKind> {
    let mib = mem_size >> 20;
    for s in &image.segments {
        if s.end() > mem_size {
            return Err(LayoutErrorKind::SegmentOutsideMemory {
                base: s.paddr,
                end: s.end(),
                mib,
            });
        }
        if s.paddr < RESERVED_END {
            return Err(LayoutErrorKind::SegmentInReserved {
                base: s.paddr,
                end: s.end(),
            });
        }
    }
    let manifest = match &image.kind {
        ImageKind::Plain => return Ok(plain_layout(mem_size)),
        ImageKind::Ours(m) => m,
    };
    let declared = declared_regions(manifest, mem_size)?;
    for s in &image.segments {
        let seg = Range::new(s.paddr, s.memsz);
        let inside = declared
            .iter()
            .any(|d| d.kind != MemKind::Monitor && d.range.contains_range(&seg));
        if !inside {
            return Err(LayoutErrorKind::SegmentOutsideRegions {
                base: s.paddr,
                end: s.end(),
            });
        }
    }
    let servers = manifest
        .declared_servers()
        .iter()
        .enumerate()
        .map(|(i, d)| ServerRegions {
            name: d.name_str().unwrap_or_default().to_owned(),
            state: d.state,
            scratch: d.scratch,
            text: manifest.text[i],
            app: manifest.is_app(i),
            requests: image
                .requests
                .iter()
                .find(|t| t.server_str() == d.name_str())
                .copied(),
        })
        .collect();
    Ok(Layout {
        mem_size,
        slots: plan_slots(&declared, mem_size),
        memmap: plan_memmap(&declared, mem_size),
        servers,
        monitor_page: Some(manifest.monitor_page),
    })
}

fn plain_layout(mem_size: u64) -> Layout {
    Layout {
        mem_size,
        slots: vec![Slot {
            base: 0,
            size: mem_size,
            kind: SlotKind::Ram,
        }],
        memmap: vec![
            MemRange {
                base: 0,
                size: RESERVED_END,
                kind: MemKind::Reserved as u32,
                server: 0,
            },
            MemRange {
                base: RESERVED_END,
                size: mem_size - RESERVED_END,
                kind: MemKind::Free as u32,
                server: 0,
            },
        ],
        servers: Vec::new(),
        monitor_page: None,
    }
}

/// Checks the manifest and returns its regions sorted by base.
fn declared_regions(m: &Manifest, mem_size: u64) -> Result<Vec<Declared>, LayoutErrorKind> {
    if m.version != MANIFEST_VERSION {
        return Err(LayoutErrorKind::ManifestVersion(m.version));
    }
    if usize::from(m.server_count) > MAX_SERVERS {
        return Err(LayoutErrorKind::TooManyServers(m.server_count));
    }
    // server_count is at most MAX_SERVERS (16) here.
    if m.apps >> m.server_count != 0 {
        return Err(LayoutErrorKind::AppMask(m.apps));
    }
    let mut regions = vec![
        Declared {
            what: "kernel region".into(),
            range: m.kernel,
            kind: MemKind::Kernel,
            server: 0,
        },
        Declared {
            what: "monitor page".into(),
            range: Range::new(m.monitor_page, PAGE_SIZE),
            kind: MemKind::Monitor,
            server: 0,
        },
    ];
    let mut names: Vec<&str> = Vec::new();
    for (i, d) in m.declared_servers().iter().enumerate() {
        let name = server_name(i, d)?;
        if names.contains(&name) {
            return Err(LayoutErrorKind::DuplicateServerName(name.to_owned()));
        }
        names.push(name);
        let text = m.text[i];
        if text.size != 0 && !m.kernel.contains_range(&text) {
            return Err(LayoutErrorKind::TextOutsideKernel {
                server: name.to_owned(),
                base: text.base,
                size: text.size,
            });
        }
        let server = i as u32;
        regions.push(Declared {
            what: format!("server `{name}` state arena"),
            range: d.state,
            kind: MemKind::ServerState,
            server,
        });
        regions.push(Declared {
            what: format!("server `{name}` scratch"),
            range: d.scratch,
            kind: MemKind::ServerScratch,
            server,
        });
    }
    let mib = mem_size >> 20;
    for r in &regions {
        let Range { base, size } = r.range;
        if size == 0 {
            return Err(LayoutErrorKind::EmptyRegion(r.what.clone()));
        }
        if !is_page_aligned(base) || !is_page_aligned(size) {
            return Err(LayoutErrorKind::Unaligned {
                what: r.what.clone(),
                base,
                size,
            });
        }
        if r.range.end().is_none_or(|end| end > mem_size) {
            return Err(LayoutErrorKind::RegionOutsideMemory {
                what: r.what.clone(),
                base,
                size,
                mib,
            });
        }
        if base < RESERVED_END {
            return Err(LayoutErrorKind::RegionInReserved(r.what.clone()));
        }
    }
    regions.sort_by_key(|r| r.range.base);
    for pair in regions.windows(2) {
        if pair[0].range.overlaps(&pair[1].range) {
            return Err(LayoutErrorKind::RegionsOverlap(
                pair[0].what.clone(),
                pair[1].what.clone(),
            ));
        }
    }
    Ok(regions)
}

fn server_name(index: usize, d: &ServerDecl) -> Result<&str, LayoutErrorKind> {
    d.name_str().ok_or(LayoutErrorKind::BadServerName(index))
}

/// Server regions get their own slots; the gaps between them are plain RAM slots.
fn plan_slots(declared: &[Declared], mem_size: u64) -> Vec<Slot> {
    let mut slots = Vec::new();
    let mut at = 0;
    for d in declared {
        let kind = match d.kind {
            MemKind::ServerState => SlotKind::ServerState(d.server as usize),
            MemKind::ServerScratch => SlotKind::ServerScratch(d.server as usize),
            _ => continue,
        };
        if d.range.base > at {
            slots.push(Slot {
                base: at,
                size: d.range.base - at,
                kind: SlotKind::Ram,
            });
        }
        slots.push(Slot {
            base: d.range.base,
            size: d.range.size,
            kind,
        });
        at = d.range.base + d.range.size;
    }
    if at < mem_size {
        slots.push(Slot {
            base: at,
            size: mem_size - at,
            kind: SlotKind::Ram,
        });
    }
    slots
}

/// Reserved area, declared regions and free gaps, in address order.
fn plan_memmap(declared: &[Declared], mem_size: u64) -> Vec<MemRange> {
    let mut map = vec![MemRange {
        base: 0,
        size: RESERVED_END,
        kind: MemKind::Reserved as u32,
        server: 0,
    }];
    let mut at = RESERVED_END;
    let free = |base, end| MemRange {
        base,
        size: end - base,
        kind: MemKind::Free as u32,
        server: 0,
    };
    for d in declared {
        if d.range.base > at {
            map.push(free(at, d.range.base));
        }
        map.push(MemRange {
            base: d.range.base,
            size: d.range.size,
            kind: d.kind as u32,
            server: d.server,
        });
        at = d.range.base + d.range.size;
    }
    if at < mem_size {
        map.push(free(at, mem_size));
    }
    debug_assert!(map.len() <= MAX_MEMMAP);
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testelf::{Seg, build};
    use abi::manifest::ServerDecl;

    const MIB: u64 = 1 << 20;

    fn manifest() -> Manifest {
        let mut m = Manifest::EMPTY;
        m.kernel = Range::new(MIB, 3 * MIB);
        m.monitor_page = 4 * MIB;
        m.server_count = 2;
        m.servers[0] = ServerDecl::new(
            b"kv",
            Range::new(8 * MIB, MIB),
            Range::new(9 * MIB, 64 << 10),
        );
        m.servers[1] = ServerDecl::new(
            b"fs",
            Range::new(10 * MIB, MIB),
            Range::new(11 * MIB, 64 << 10),
        );
        m
    }

    fn image(m: Option<&Manifest>, segs: &[Seg]) -> Image {
        Image::from_bytes("t.elf".into(), build(segs[0].0, segs, m, &[])).expect("valid image")
    }

    fn ours(m: &Manifest) -> Result<Layout, LayoutErrorKind> {
        plan(&image(Some(m), &[Seg(MIB, vec![0; 64], 0x1000)]), 128 * MIB).map_err(|e| e.reason)
    }

    fn covers_exactly(ranges: impl Iterator<Item = (u64, u64)>, mem: u64) {
        let mut at = 0;
        for (base, size) in ranges {
            assert_eq!(base, at, "gap or overlap at {at:#x}");
            assert!(size > 0 && size % PAGE_SIZE == 0);
            at = base + size;
        }
        assert_eq!(at, mem);
    }

    #[test]
    fn servers_get_a_logged_and_an_unlogged_slot() {
        let l = ours(&manifest()).expect("valid");
        covers_exactly(l.slots.iter().map(|s| (s.base, s.size)), 128 * MIB);
        covers_exactly(l.memmap.iter().map(|r| (r.base, r.size)), 128 * MIB);
        let logged: Vec<_> = l
            .slots
            .iter()
            .filter(|s| s.log_dirty())
            .map(|s| (s.base, s.kind))
            .collect();
        assert_eq!(
            logged,
            vec![
                (8 * MIB, SlotKind::ServerState(0)),
                (10 * MIB, SlotKind::ServerState(1))
            ]
        );
        assert!(l.slots.contains(&Slot {
            base: 9 * MIB,
            size: 64 << 10,
            kind: SlotKind::ServerScratch(0)
        }));
        assert_eq!(l.servers[1].name, "fs");
        assert_eq!(l.monitor_page, Some(4 * MIB));
        let kinds: Vec<u32> = l.memmap.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds[..4],
            [
                MemKind::Reserved as u32,
                MemKind::Free as u32,
                MemKind::Kernel as u32,
                MemKind::Monitor as u32
            ]
        );
    }

    #[test]
    fn plain_images_get_one_slot() {
        let l = plan(&image(None, &[Seg(MIB, vec![0; 4], 4)]), 16 * MIB).expect("valid");
        assert_eq!(
            l.slots,
            vec![Slot {
                base: 0,
                size: 16 * MIB,
                kind: SlotKind::Ram
            }]
        );
        assert!(l.servers.is_empty());
    }

    #[test]
    fn segments_must_fit_memory_and_avoid_the_reserved_area() {
        let e = plan(&image(None, &[Seg(MIB, vec![0; 4], 16 * MIB)]), 16 * MIB).unwrap_err();
        assert_eq!(
            e.reason,
            LayoutErrorKind::SegmentOutsideMemory {
                base: MIB,
                end: 17 * MIB,
                mib: 16
            }
        );
        assert!(
            e.to_string().starts_with(
                "t.elf: segment 0x100000..0x1100000 lies outside guest memory (16 MiB)"
            )
        );
        let e = plan(&image(None, &[Seg(0x8000, vec![0; 4], 0x10)]), 16 * MIB).unwrap_err();
        assert!(matches!(
            e.reason,
            LayoutErrorKind::SegmentInReserved { base: 0x8000, .. }
        ));
        // Low-linked images above the reserved area are fine.
        assert!(
            plan(
                &image(None, &[Seg(RESERVED_END, vec![0; 4], 0x10)]),
                16 * MIB
            )
            .is_ok()
        );
    }

    #[test]
    fn our_segments_must_lie_in_declared_regions() {
        let m = manifest();
        let in_kv = image(
            Some(&m),
            &[Seg(MIB, vec![0; 4], 0x10), Seg(8 * MIB, vec![1; 4], 0x1000)],
        );
        assert!(plan(&in_kv, 128 * MIB).is_ok());
        let stray = image(
            Some(&m),
            &[Seg(MIB, vec![0; 4], 0x10), Seg(20 * MIB, vec![1; 4], 0x10)],
        );
        let e = plan(&stray, 128 * MIB).unwrap_err();
        assert!(
            matches!(e.reason, LayoutErrorKind::SegmentOutsideRegions { base, .. } if base == 20 * MIB)
        );
        let on_monitor = image(Some(&m), &[Seg(4 * MIB, vec![0; 4], 0x10)]);
        assert!(plan(&on_monitor, 128 * MIB).is_err());
    }

    #[test]
    fn manifest_errors() {
        let mut m = manifest();
        m.version = 9;
        assert_eq!(ours(&m).unwrap_err(), LayoutErrorKind::ManifestVersion(9));
        let mut m = manifest();
        m.server_count = 17;
        assert_eq!(ours(&m).unwrap_err(), LayoutErrorKind::TooManyServers(17));
        let mut m = manifest();
        m.apps = 1 << 5;
        assert_eq!(ours(&m).unwrap_err(), LayoutErrorKind::AppMask(1 << 5));
        let mut m = manifest();
        m.apps = 0b10;
        let apps: Vec<bool> = ours(&m)
            .expect("valid")
            .servers
            .iter()
            .map(|s| s.app)
            .collect();
        assert_eq!(apps, [false, true]);
        let mut m = manifest();
        m.servers[1].name = m.servers[0].name;
        assert_eq!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::DuplicateServerName("kv".into())
        );
        let mut m = manifest();
        m.servers[1].name = [0; 16];
        assert_eq!(ours(&m).unwrap_err(), LayoutErrorKind::BadServerName(1));
        let mut m = manifest();
        m.servers[0].scratch.size = 0;
        assert!(
            matches!(ours(&m).unwrap_err(), LayoutErrorKind::EmptyRegion(w) if w.contains("kv"))
        );
        let mut m = manifest();
        m.servers[0].state.base += 8;
        assert!(matches!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::Unaligned { .. }
        ));
        let mut m = manifest();
        m.servers[1].state = Range::new(200 * MIB, MIB);
        assert!(matches!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::RegionOutsideMemory { mib: 128, .. }
        ));
        let mut m = manifest();
        m.servers[1].state = Range::new(!0xfff, 0x2000);
        assert!(matches!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::RegionOutsideMemory { .. }
        ));
        let mut m = manifest();
        m.monitor_page = 0x1000;
        assert_eq!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::RegionInReserved("monitor page".into())
        );
        let mut m = manifest();
        m.servers[1].scratch = Range::new(8 * MIB + 0x1000, 0x1000);
        assert!(matches!(
            ours(&m).unwrap_err(),
            LayoutErrorKind::RegionsOverlap(..)
        ));
        let mut m = manifest();
        m.monitor_page = 2 * MIB;
        let e = ours(&m).unwrap_err();
        assert_eq!(e.to_string(), "kernel region overlaps monitor page");
    }

    /// Whatever disjoint regions a manifest declares, an accepted layout's slots and memory
    /// map tile guest memory exactly, and every server keeps exactly its two slots, at the
    /// addresses it declared. Most generated layouts fit their memory; at least half must be
    /// accepted, so the property is not vacuous.
    #[test]
    fn accepted_layouts_tile_memory() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        use std::sync::atomic::{AtomicU32, Ordering};
        const CASES: u32 = 256;
        let accepted = AtomicU32::new(0);
        // Distinct half-MiB slots (1.5 to 33.5 MiB) for 1 to 4 servers' two regions each, in
        // any order, 1 to 3 pages each; memory mostly large enough to hold them.
        let strategy = (1usize..5)
            .prop_flat_map(|pairs| {
                (
                    proptest::sample::subsequence((0u64..64).collect::<Vec<_>>(), 2 * pairs)
                        .prop_shuffle(),
                    proptest::collection::vec(1u64..4, 2 * pairs),
                )
            })
            .prop_flat_map(|(slots, sizes)| {
                let top = slots.iter().max().copied().unwrap_or(0);
                let fits = ((3 + top) / 2 + 2)..64;
                (
                    Just(slots),
                    Just(sizes),
                    prop_oneof![4 => fits, 1 => 8u64..64],
                )
            });
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy, |(slots, sizes, mem_mib)| {
                let mut m = Manifest::EMPTY;
                m.kernel = Range::new(MIB, MIB);
                m.monitor_page = 2 * MIB;
                let pairs = slots.len() / 2;
                m.server_count = pairs as u16;
                let region = |j: usize| Range::new((3 + slots[j]) * MIB / 2, sizes[j] * PAGE_SIZE);
                for i in 0..pairs {
                    let name = [b'a' + i as u8];
                    m.servers[i] = ServerDecl::new(&name, region(2 * i), region(2 * i + 1));
                }
                let img = image(Some(&m), &[Seg(MIB, vec![0; 4], 0x1000)]);
                let Ok(l) = plan(&img, mem_mib * MIB) else {
                    return Ok(());
                };
                accepted.fetch_add(1, Ordering::Relaxed);
                covers_exactly(l.slots.iter().map(|s| (s.base, s.size)), mem_mib * MIB);
                covers_exactly(l.memmap.iter().map(|r| (r.base, r.size)), mem_mib * MIB);
                for i in 0..pairs {
                    let of = |kind: SlotKind| -> Vec<u64> {
                        l.slots
                            .iter()
                            .filter(|s| s.kind == kind)
                            .map(|s| s.base)
                            .collect()
                    };
                    prop_assert_eq!(of(SlotKind::ServerState(i)), [region(2 * i).base]);
                    prop_assert_eq!(of(SlotKind::ServerScratch(i)), [region(2 * i + 1).base]);
                }
                Ok(())
            })
            .expect("property holds");
        let n = accepted.into_inner();
        assert!(n >= CASES / 2, "only {n} of {CASES} layouts were accepted");
    }
}
