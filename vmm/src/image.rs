//! Guest images: read an ELF file, check it is something we can boot, find our region manifest.
//!
//! Only the file is judged here (ELF identity, program headers inside the file, notes well
//! formed); whether the segments fit guest memory and the declared regions is [`crate::layout`]'s
//! job, since that depends on the memory size.

use abi::layout::MAX_MEMORY_MIB;
use abi::manifest::{
    MANIFEST_MAGIC, MAX_SERVERS, Manifest, NOTE_NAME, NOTE_NAMESZ, NOTE_TYPE_MANIFEST,
};
use abi::requests::{NOTE_TYPE_REQUESTS, RequestTable, TableError};
use std::io::Read;
use std::path::Path;
use zerocopy::FromBytes;

const EHDR64_SIZE: usize = 64;
const PHDR64_SIZE: usize = 56;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// Xen's PVH 32-bit entry note: Firecracker enters such images in 32-bit mode; we do not.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Largest image file accepted: it could never fit guest memory anyway.
pub const MAX_IMAGE_BYTES: u64 = MAX_MEMORY_MIB << 20;
/// Most program headers accepted.
pub const MAX_PHDRS: usize = 256;

/// One loadable segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub paddr: u64,
    /// Bytes in memory (`filesz` from the file, the rest zero).
    pub memsz: u64,
    /// Bytes from the file.
    pub filesz: u64,
    /// Offset of those bytes in the file.
    pub offset: u64,
    /// `p_flags`: [`Segment::EXEC`], [`Segment::WRITE`], read (4).
    pub flags: u32,
}

impl Segment {
    /// `flags` bit: executable.
    pub const EXEC: u32 = 1;
    /// `flags` bit: writable.
    pub const WRITE: u32 = 2;

    /// True for an executable segment.
    pub fn exec(&self) -> bool {
        self.flags & Self::EXEC != 0
    }

    /// True for a writable segment.
    pub fn write(&self) -> bool {
        self.flags & Self::WRITE != 0
    }

    /// One past the last byte in memory (checked for overflow when the image was read).
    pub fn end(&self) -> u64 {
        self.paddr + self.memsz
    }
}

/// Whose conventions the image follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// Carries our region manifest: per-server memslots, boot-info, hypercalls.
    Ours(Box<Manifest>),
    /// A plain x86_64 ELF: one RAM region, Firecracker's 64-bit boot convention.
    Plain,
}

/// A checked image, ready for layout and loading.
#[derive(Clone, Debug)]
pub struct Image {
    /// How errors name it: the path, or "bundled demo guest".
    pub label: String,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// ELF entry point (identity-mapped, so also the physical address).
    pub entry: u64,
    /// `PT_LOAD` segments with memory size > 0.
    pub segments: Vec<Segment>,
    /// Ours or plain.
    pub kind: ImageKind,
    /// The servers' request tables ([`abi::requests`]), each checked and naming a server the
    /// manifest declares, at most one per server (plain images have none).
    pub requests: Vec<RequestTable>,
}

/// A rejected image: which one, and why.
#[derive(Debug, thiserror::Error)]
#[error("{image}: {reason}")]
pub struct ImageError {
    /// The image's label.
    pub image: String,
    /// Why it was rejected.
    pub reason: ImageErrorKind,
}

/// Why an image was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ImageErrorKind {
    /// Could not be read.
    #[error("cannot read image: {0}")]
    Read(std::io::Error),
    /// Larger than guest memory.
    #[error("image is {len} bytes, more than guest memory can hold ({max} bytes)")]
    TooLarge {
        /// File size.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A directory, FIFO, device or socket.
    #[error("not a regular file")]
    NotRegularFile,
    /// Program headers overlapping the ELF header.
    #[error("program header offset {0} overlaps the ELF header")]
    PhdrOffset(u64),
    /// No ELF magic.
    #[error("not an ELF file (no \\x7fELF magic at offset 0)")]
    NotElf,
    /// ELFCLASS32.
    #[error("32-bit ELF: vmm boots 64-bit x86_64 images only")]
    Elf32,
    /// Neither class 1 nor 2.
    #[error("unknown ELF class {0}")]
    BadClass(u8),
    /// Big-endian.
    #[error("big-endian ELF: x86_64 images are little-endian")]
    BigEndian,
    /// Wrong machine.
    #[error("ELF for machine {machine} ({name}), not x86_64 (62)")]
    Machine {
        /// e_machine.
        machine: u16,
        /// Its usual name.
        name: &'static str,
    },
    /// Not an executable.
    #[error("ELF type {0} is not an executable (ET_EXEC); link the image at a fixed address")]
    NotExecutable(u16),
    /// File ends inside a structure.
    #[error("truncated ELF: {what} needs bytes up to offset {needed}, file has {len}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// End offset required.
        needed: u64,
        /// File length.
        len: u64,
    },
    /// Odd program header size.
    #[error("program header entry size {0}, expected 56")]
    PhentSize(u16),
    /// Too many program headers.
    #[error("{0} program headers: at most {MAX_PHDRS} accepted")]
    TooManyPhdrs(usize),
    /// A segment says more file bytes than memory bytes.
    #[error("segment {index} has {filesz} file bytes but only {memsz} memory bytes")]
    FileszExceedsMemsz {
        /// Program header index.
        index: usize,
        /// p_filesz.
        filesz: u64,
        /// p_memsz.
        memsz: u64,
    },
    /// Address arithmetic overflowed.
    #[error("segment {0} wraps around the address space")]
    SegmentOverflow(usize),
    /// Two loadable segments share memory.
    #[error("segments at {a:#x} and {b:#x} overlap")]
    SegmentsOverlap {
        /// First segment address.
        a: u64,
        /// Second segment address.
        b: u64,
    },
    /// Nothing to load.
    #[error("no loadable segment")]
    NoLoadableSegment,
    /// Entry point not in any segment.
    #[error("entry point {0:#x} is outside every loadable segment")]
    EntryOutsideSegments(u64),
    /// A note header or payload runs past its segment.
    #[error("malformed note in segment {0}")]
    BadNote(usize),
    /// Our manifest note with the wrong size.
    #[error(
        "region manifest note has {got} bytes, expected {expected} (built against another abi version?)"
    )]
    ManifestSize {
        /// descsz.
        got: u32,
        /// size_of::<Manifest>().
        expected: usize,
    },
    /// Our manifest note with a bad magic.
    #[error("region manifest has magic {0:#x}, expected {MANIFEST_MAGIC:#x}")]
    ManifestMagic(u32),
    /// More than one manifest.
    #[error("more than one region manifest note")]
    DuplicateManifest,
    /// A request-table note of the wrong size.
    #[error(
        "request table note has {got} bytes, expected {expected} (built against another abi version?)"
    )]
    RequestsSize {
        /// descsz.
        got: u32,
        /// size_of::<RequestTable>().
        expected: usize,
    },
    /// A malformed request table.
    #[error("request table {index}: {reason}")]
    Requests {
        /// Its position among the image's request tables.
        index: usize,
        /// What is wrong.
        reason: TableError,
    },
    /// More request tables than servers an image may declare.
    #[error("more than {MAX_SERVERS} request tables")]
    TooManyRequestTables,
    /// A request table for a server the manifest does not declare (or a second one for a
    /// server).
    #[error("request table of server {server:?}: {why}")]
    RequestsServer {
        /// The name it gives.
        server: String,
        /// Why it does not fit.
        why: &'static str,
    },
    /// Xen PVH entry note.
    #[error(
        "image has a Xen PVH entry note: vmm does not implement the 32-bit PVH boot path; \
         build the image without it (see docs/boot.md)"
    )]
    PvhNote,
}

fn machine_name(m: u16) -> &'static str {
    match m {
        3 => "i386",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        40 => "ARM",
        183 => "AArch64",
        243 => "RISC-V",
        _ => "unknown",
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

impl Image {
    /// Reads and checks an image file.
    ///
    /// Only regular files are read (a FIFO or a device could block or never end), and only up to
    /// `max_bytes` (the guest memory size: a larger image could never fit).
    pub fn from_file(path: &Path, max_bytes: u64) -> Result<Self, ImageError> {
        let label = path.display().to_string();
        let err = |reason| ImageError {
            image: label.clone(),
            reason,
        };
        // Opened without blocking: a FIFO is refused at once, not waited on.
        let file =
            crate::files::open_nonblocking(path).map_err(|e| err(ImageErrorKind::Read(e)))?;
        let meta = file.metadata().map_err(|e| err(ImageErrorKind::Read(e)))?;
        if !meta.is_file() {
            return Err(err(ImageErrorKind::NotRegularFile));
        }
        let max_bytes = max_bytes.min(MAX_IMAGE_BYTES);
        if meta.len() > max_bytes {
            return Err(err(ImageErrorKind::TooLarge {
                len: meta.len(),
                max: max_bytes,
            }));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| err(ImageErrorKind::Read(e)))?;
        if bytes.len() as u64 > max_bytes {
            return Err(err(ImageErrorKind::TooLarge {
                len: bytes.len() as u64,
                max: max_bytes,
            }));
        }
        Self::from_bytes(label, bytes)
    }

    /// Checks an image held in memory; `label` names it in errors.
    pub fn from_bytes(label: String, bytes: Vec<u8>) -> Result<Self, ImageError> {
        match inspect(&bytes) {
            Ok((entry, segments, kind, requests)) => Ok(Self {
                label,
                bytes,
                entry,
                segments,
                kind,
                requests,
            }),
            Err(reason) => Err(ImageError {
                image: label,
                reason,
            }),
        }
    }

    /// The manifest, for our images.
    pub fn manifest(&self) -> Option<&Manifest> {
        match &self.kind {
            ImageKind::Ours(m) => Some(m),
            ImageKind::Plain => None,
        }
    }
}

/// What [`inspect`] finds: entry, loadable segments, kind, request tables.
type Inspected = (u64, Vec<Segment>, ImageKind, Vec<RequestTable>);

fn inspect(b: &[u8]) -> Result<Inspected, ImageErrorKind> {
    let len = b.len() as u64;
    if b.len() < 4 || b[..4] != *b"\x7fELF" {
        return Err(ImageErrorKind::NotElf);
    }
    let truncated = |what, needed: u64| ImageErrorKind::Truncated { what, needed, len };
    if b.len() < 6 {
        return Err(truncated("the ELF identification", 16));
    }
    match b[4] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Err(ImageErrorKind::Elf32),
        c => return Err(ImageErrorKind::BadClass(c)),
    }
    if b[5] != ELFDATA2LSB {
        return Err(ImageErrorKind::BigEndian);
    }
    if b.len() < EHDR64_SIZE {
        return Err(truncated("the ELF header", EHDR64_SIZE as u64));
    }
    let machine = u16_at(b, 18);
    if machine != EM_X86_64 {
        return Err(ImageErrorKind::Machine {
            machine,
            name: machine_name(machine),
        });
    }
    let e_type = u16_at(b, 16);
    if e_type != ET_EXEC {
        return Err(ImageErrorKind::NotExecutable(e_type));
    }
    debug_assert_ne!(e_type, ET_DYN);
    let entry = u64_at(b, 24);
    let phoff = u64_at(b, 32);
    let phentsize = u16_at(b, 54);
    let phnum = usize::from(u16_at(b, 56));
    if phentsize as usize != PHDR64_SIZE && phnum > 0 {
        return Err(ImageErrorKind::PhentSize(phentsize));
    }
    if phnum > MAX_PHDRS {
        return Err(ImageErrorKind::TooManyPhdrs(phnum));
    }
    if phnum > 0 && phoff < EHDR64_SIZE as u64 {
        return Err(ImageErrorKind::PhdrOffset(phoff));
    }
    let ph_end = phoff.saturating_add((phnum * PHDR64_SIZE) as u64);
    if ph_end > len {
        return Err(truncated("the program headers", ph_end));
    }

    let mut segments = Vec::new();
    let mut manifest = None;
    let mut requests = Vec::new();
    for index in 0..phnum {
        let ph = &b[phoff as usize + index * PHDR64_SIZE..][..PHDR64_SIZE];
        let p_type = u32_at(ph, 0);
        let flags = u32_at(ph, 4);
        let offset = u64_at(ph, 8);
        let paddr = u64_at(ph, 24);
        let filesz = u64_at(ph, 32);
        let memsz = u64_at(ph, 40);
        if p_type != PT_LOAD && p_type != PT_NOTE {
            continue;
        }
        let file_end = offset
            .checked_add(filesz)
            .ok_or(ImageErrorKind::SegmentOverflow(index))?;
        if file_end > len {
            return Err(truncated("a segment's contents", file_end));
        }
        if p_type == PT_NOTE {
            let data = &b[offset as usize..file_end as usize];
            scan_notes(data, index, &mut manifest, &mut requests)?;
            continue;
        }
        if filesz > memsz {
            return Err(ImageErrorKind::FileszExceedsMemsz {
                index,
                filesz,
                memsz,
            });
        }
        if memsz == 0 {
            continue;
        }
        paddr
            .checked_add(memsz)
            .ok_or(ImageErrorKind::SegmentOverflow(index))?;
        segments.push(Segment {
            paddr,
            memsz,
            filesz,
            offset,
            flags,
        });
    }
    if segments.is_empty() {
        return Err(ImageErrorKind::NoLoadableSegment);
    }
    segments.sort_by_key(|s| s.paddr);
    for pair in segments.windows(2) {
        if pair[0].end() > pair[1].paddr {
            return Err(ImageErrorKind::SegmentsOverlap {
                a: pair[0].paddr,
                b: pair[1].paddr,
            });
        }
    }
    if !segments.iter().any(|s| entry >= s.paddr && entry < s.end()) {
        return Err(ImageErrorKind::EntryOutsideSegments(entry));
    }
    check_request_servers(manifest.as_ref(), &requests)?;
    let kind = match manifest {
        Some(m) => ImageKind::Ours(Box::new(m)),
        None => ImageKind::Plain,
    };
    Ok((entry, segments, kind, requests))
}

/// Every request table names a server the manifest declares (an app has no requests), one
/// table per server.
fn check_request_servers(
    manifest: Option<&Manifest>,
    requests: &[RequestTable],
) -> Result<(), ImageErrorKind> {
    for (i, table) in requests.iter().enumerate() {
        // Checked when read: the name is valid.
        let server = table.server_str().unwrap_or_default();
        let bad = |why| {
            Err(ImageErrorKind::RequestsServer {
                server: server.to_owned(),
                why,
            })
        };
        let Some(m) = manifest else {
            return bad("the image has no region manifest");
        };
        let Some(index) = m
            .declared_servers()
            .iter()
            .position(|d| d.name_str() == Some(server))
        else {
            return bad("the manifest declares no such server");
        };
        if m.is_app(index) {
            return bad("it is an app, which serves no requests");
        }
        if requests[..i].iter().any(|t| t.server == table.server) {
            return bad("a second table for it");
        }
    }
    Ok(())
}

/// Walks the notes of one `PT_NOTE` segment (4-byte aligned entries).
fn scan_notes(
    data: &[u8],
    index: usize,
    manifest: &mut Option<Manifest>,
    requests: &mut Vec<RequestTable>,
) -> Result<(), ImageErrorKind> {
    let align4 = |n: usize| n.checked_add(3).map(|v| v & !3);
    let mut at = 0usize;
    while at < data.len() {
        let hdr = data
            .get(at..at + 12)
            .ok_or(ImageErrorKind::BadNote(index))?;
        let namesz = u32_at(hdr, 0) as usize;
        let descsz = u32_at(hdr, 4) as usize;
        let ntype = u32_at(hdr, 8);
        let name_at = at + 12;
        let desc_at = align4(namesz)
            .and_then(|n| name_at.checked_add(n))
            .ok_or(ImageErrorKind::BadNote(index))?;
        let next = align4(descsz)
            .and_then(|n| desc_at.checked_add(n))
            .ok_or(ImageErrorKind::BadNote(index))?;
        if next > data.len() {
            return Err(ImageErrorKind::BadNote(index));
        }
        let name = &data[name_at..name_at + namesz];
        let desc = &data[desc_at..desc_at + descsz];
        if name == &NOTE_NAME[..NOTE_NAMESZ as usize] && ntype == NOTE_TYPE_MANIFEST {
            if manifest.is_some() {
                return Err(ImageErrorKind::DuplicateManifest);
            }
            let m = Manifest::read_from_bytes(desc).map_err(|_| ImageErrorKind::ManifestSize {
                got: descsz as u32,
                expected: core::mem::size_of::<Manifest>(),
            })?;
            if m.magic != MANIFEST_MAGIC {
                return Err(ImageErrorKind::ManifestMagic(m.magic));
            }
            *manifest = Some(m);
        } else if name == &NOTE_NAME[..NOTE_NAMESZ as usize] && ntype == NOTE_TYPE_REQUESTS {
            if requests.len() == MAX_SERVERS {
                return Err(ImageErrorKind::TooManyRequestTables);
            }
            let table =
                RequestTable::read_from_bytes(desc).map_err(|_| ImageErrorKind::RequestsSize {
                    got: descsz as u32,
                    expected: core::mem::size_of::<RequestTable>(),
                })?;
            table.check().map_err(|reason| ImageErrorKind::Requests {
                index: requests.len(),
                reason,
            })?;
            requests.push(table);
        } else if name == b"Xen\0" && ntype == XEN_ELFNOTE_PHYS32_ENTRY {
            return Err(ImageErrorKind::PvhNote);
        }
        at = next;
    }
    Ok(())
}

/// Builds small ELF files for tests of this module and of [`crate::layout`].
#[cfg(test)]
pub(crate) mod testelf {
    use abi::manifest::{Manifest, ManifestNote};
    use zerocopy::IntoBytes;

    /// A loadable segment: (paddr, file bytes, memsz).
    pub struct Seg(pub u64, pub Vec<u8>, pub u64);

    /// An x86_64 ET_EXEC with these segments and, if given, our manifest note and other
    /// notes (name, type, descriptor).
    pub fn build(
        entry: u64,
        segs: &[Seg],
        manifest: Option<&Manifest>,
        extra_notes: &[(&[u8], u32, &[u8])],
    ) -> Vec<u8> {
        let mut notes = Vec::new();
        if let Some(m) = manifest {
            notes.extend_from_slice(ManifestNote::new(*m).as_bytes());
        }
        for &(name, ty, desc) in extra_notes {
            notes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&ty.to_le_bytes());
            notes.extend_from_slice(name);
            notes.resize(notes.len().next_multiple_of(4), 0);
            notes.extend_from_slice(desc);
            notes.resize(notes.len().next_multiple_of(4), 0);
        }
        let phnum = segs.len() + usize::from(!notes.is_empty());
        let mut data_off = 64 + 56 * phnum;
        let mut out = vec![0u8; data_off];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[6] = 1;
        out[16..18].copy_from_slice(&2u16.to_le_bytes());
        out[18..20].copy_from_slice(&62u16.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&entry.to_le_bytes());
        out[32..40].copy_from_slice(&64u64.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&56u16.to_le_bytes());
        out[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut phdrs = Vec::new();
        for Seg(paddr, bytes, memsz) in segs {
            phdrs.push((1u32, data_off as u64, *paddr, bytes.len() as u64, *memsz));
            data_off += bytes.len();
        }
        if !notes.is_empty() {
            phdrs.push((4u32, data_off as u64, 0, notes.len() as u64, 0));
        }
        for (i, (ty, off, paddr, filesz, memsz)) in phdrs.into_iter().enumerate() {
            let ph = &mut out[64 + i * 56..64 + (i + 1) * 56];
            ph[0..4].copy_from_slice(&ty.to_le_bytes());
            ph[4..8].copy_from_slice(&5u32.to_le_bytes());
            ph[8..16].copy_from_slice(&off.to_le_bytes());
            ph[16..24].copy_from_slice(&paddr.to_le_bytes());
            ph[24..32].copy_from_slice(&paddr.to_le_bytes());
            ph[32..40].copy_from_slice(&filesz.to_le_bytes());
            ph[40..48].copy_from_slice(&memsz.to_le_bytes());
            ph[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        for Seg(_, bytes, _) in segs {
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&notes);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testelf::{Seg, build};
    use super::*;

    fn check(bytes: Vec<u8>) -> Result<Image, ImageErrorKind> {
        Image::from_bytes("t.elf".into(), bytes).map_err(|e| e.reason)
    }

    fn plain() -> Vec<u8> {
        build(
            0x10_0000,
            &[Seg(0x10_0000, vec![0xf4; 16], 0x2000)],
            None,
            &[],
        )
    }

    #[test]
    fn plain_image_is_accepted() {
        let img = check(plain()).expect("valid");
        assert_eq!(img.entry, 0x10_0000);
        assert_eq!(
            img.segments,
            vec![Segment {
                paddr: 0x10_0000,
                memsz: 0x2000,
                filesz: 16,
                offset: 120,
                flags: Segment::EXEC | 4,
            }]
        );
        assert_eq!(img.kind, ImageKind::Plain);
    }

    #[test]
    fn manifest_note_marks_our_images() {
        let mut m = Manifest::EMPTY;
        m.server_count = 1;
        let img = check(build(
            0x10_0000,
            &[Seg(0x10_0000, vec![0; 8], 8)],
            Some(&m),
            &[],
        ))
        .expect("valid");
        assert_eq!(img.manifest(), Some(&m));
    }

    #[test]
    fn header_errors() {
        assert!(matches!(
            check(b"hello world".to_vec()),
            Err(ImageErrorKind::NotElf)
        ));
        assert!(matches!(check(vec![]), Err(ImageErrorKind::NotElf)));
        let mut b = plain();
        b[4] = 1;
        assert!(matches!(check(b), Err(ImageErrorKind::Elf32)));
        let mut b = plain();
        b[4] = 9;
        assert!(matches!(check(b), Err(ImageErrorKind::BadClass(9))));
        let mut b = plain();
        b[5] = 2;
        assert!(matches!(check(b), Err(ImageErrorKind::BigEndian)));
        let mut b = plain();
        b[18..20].copy_from_slice(&183u16.to_le_bytes());
        let e = check(b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ELF for machine 183 (AArch64), not x86_64 (62)"
        );
        let mut b = plain();
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        assert!(matches!(check(b), Err(ImageErrorKind::NotExecutable(3))));
    }

    #[test]
    fn truncation_anywhere_is_reported_not_panicked() {
        let full = plain();
        for cut in 0..full.len() {
            let r = check(full[..cut].to_vec());
            assert!(r.is_err(), "accepted a file cut at {cut}");
        }
        let e = check(full[..100].to_vec()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("truncated ELF: the program headers"),
            "{e}"
        );
    }

    #[test]
    fn segment_errors() {
        let e = check(build(0x1000, &[Seg(0x1000, vec![0; 32], 16)], None, &[])).unwrap_err();
        assert!(matches!(
            e,
            ImageErrorKind::FileszExceedsMemsz {
                filesz: 32,
                memsz: 16,
                ..
            }
        ));
        let e = check(build(
            0x1000,
            &[Seg(u64::MAX - 4, vec![0; 1], 16)],
            None,
            &[],
        ))
        .unwrap_err();
        assert!(matches!(e, ImageErrorKind::SegmentOverflow(0)));
        let two = [
            Seg(0x1000, vec![0; 1], 0x2000),
            Seg(0x2000, vec![0; 1], 0x10),
        ];
        assert!(matches!(
            check(build(0x1000, &two, None, &[])),
            Err(ImageErrorKind::SegmentsOverlap { .. })
        ));
        let e = check(build(0x9000, &[Seg(0x1000, vec![0; 1], 0x10)], None, &[])).unwrap_err();
        assert!(matches!(e, ImageErrorKind::EntryOutsideSegments(0x9000)));
        assert!(matches!(
            check(build(0, &[], None, &[])),
            Err(ImageErrorKind::NoLoadableSegment)
        ));
    }

    #[test]
    fn note_errors() {
        let seg = [Seg(0x10_0000, vec![0; 8], 8)];
        let e = check(build(0x10_0000, &seg, None, &[(b"Xen\0", 18, &[0; 4])])).unwrap_err();
        assert!(matches!(e, ImageErrorKind::PvhNote));
        let e = check(build(
            0x10_0000,
            &seg,
            None,
            &[(b"CRASHMON\0", NOTE_TYPE_MANIFEST, &[0; 16])],
        ))
        .unwrap_err();
        assert!(matches!(e, ImageErrorKind::ManifestSize { got: 16, .. }));
        let mut m = Manifest::EMPTY;
        m.magic = 7;
        assert!(matches!(
            check(build(0x10_0000, &seg, Some(&m), &[])),
            Err(ImageErrorKind::ManifestMagic(7))
        ));
        let m = Manifest::EMPTY;
        let dup = zerocopy::IntoBytes::as_bytes(&m).to_vec();
        let e = check(build(
            0x10_0000,
            &seg,
            Some(&m),
            &[(b"CRASHMON\0", NOTE_TYPE_MANIFEST, &dup)],
        ))
        .unwrap_err();
        assert!(matches!(e, ImageErrorKind::DuplicateManifest));
        // Other vendors' notes are skipped.
        assert!(check(build(0x10_0000, &seg, None, &[(b"GNU\0", 3, &[1; 20])])).is_ok());
    }

    /// A manifest declaring server `kv` (state and scratch) and app `client`, with the
    /// segment of `seg` inside kv's state arena.
    fn kv_manifest() -> Manifest {
        use abi::manifest::{Range, ServerDecl};
        let mut m = Manifest::EMPTY;
        m.kernel = Range::new(0x10_0000, 0x10_0000);
        m.monitor_page = 0x20_0000;
        m.server_count = 2;
        m.servers[0] = ServerDecl::new(
            b"kv",
            Range::new(0x40_0000, 0x1000),
            Range::new(0x50_0000, 0x1000),
        );
        m.servers[1] = ServerDecl::new(
            b"client",
            Range::new(0x60_0000, 0x1000),
            Range::new(0x70_0000, 0x1000),
        );
        m.apps = 1 << 1;
        m
    }

    /// Request tables are read from the image, checked, and matched with the manifest's
    /// servers; a bad one refuses the image with its reason.
    #[test]
    fn request_tables_are_read_and_checked() {
        use abi::requests::RequestDecl;
        use zerocopy::IntoBytes;
        let seg = [Seg(0x10_0000, vec![0; 8], 8)];
        let m = kv_manifest();
        let table = |server: &str| {
            RequestTable::new(
                server,
                &[
                    RequestDecl::new(1, "PUT", RequestDecl::CHANGES_STATE),
                    RequestDecl::new(2, "GET", RequestDecl::IDEMPOTENT),
                ],
            )
        };
        let kv = table("kv");
        let note = |t: &RequestTable| -> Vec<u8> { t.as_bytes().to_vec() };
        let with = |notes: &[Vec<u8>]| {
            let list: Vec<(&[u8], u32, &[u8])> = notes
                .iter()
                .map(|d| (&b"CRASHMON\0"[..], NOTE_TYPE_REQUESTS, d.as_slice()))
                .collect();
            check(build(0x10_0000, &seg, Some(&m), &list))
        };
        let img = with(&[note(&kv)]).expect("valid");
        assert_eq!(img.requests, vec![kv]);
        assert!(check(build(0x10_0000, &seg, Some(&m), &[])).is_ok_and(|i| i.requests.is_empty()));
        let mut bad = kv;
        bad.requests[1].label = 1;
        assert!(matches!(
            with(&[note(&bad)]),
            Err(ImageErrorKind::Requests {
                index: 0,
                reason: TableError::DuplicateLabel(1)
            })
        ));
        let e = with(&[note(&kv)[..100].to_vec()]).unwrap_err();
        assert!(
            matches!(e, ImageErrorKind::RequestsSize { got: 100, .. }),
            "{e}"
        );
        for (notes, why) in [
            (vec![note(&table("fs"))], "no such server"),
            (vec![note(&table("client"))], "an app"),
            (vec![note(&kv), note(&kv)], "a second table"),
        ] {
            let e = with(&notes).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let e = with(&vec![note(&kv); MAX_SERVERS + 1]).unwrap_err();
        assert!(matches!(e, ImageErrorKind::TooManyRequestTables), "{e}");
        // A plain image with a request table: there is no server for it.
        let plain_notes = [(&b"CRASHMON\0"[..], NOTE_TYPE_REQUESTS, kv.as_bytes())];
        let e = check(build(0x10_0000, &seg, None, &plain_notes)).unwrap_err();
        assert!(e.to_string().contains("no region manifest"), "{e}");
    }

    #[test]
    fn note_lengths_are_bounds_checked() {
        let seg = [Seg(0x10_0000, vec![0; 8], 8)];
        let mut b = build(0x10_0000, &seg, None, &[(b"GNU\0", 3, &[1; 8])]);
        let n = b.len();
        // Note header is 24 bytes from the end: namesz at -24, descsz at -20.
        b[n - 20..n - 16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(check(b), Err(ImageErrorKind::BadNote(1))));
    }

    #[test]
    fn program_headers_may_not_overlap_the_elf_header() {
        let mut b = plain();
        b[32..40].copy_from_slice(&8u64.to_le_bytes());
        assert!(matches!(check(b), Err(ImageErrorKind::PhdrOffset(8))));
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let e = Image::from_file(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(matches!(e.reason, ImageErrorKind::NotRegularFile), "{e}");
        let e = Image::from_file(Path::new("/tmp"), 1 << 20).unwrap_err();
        assert!(matches!(e.reason, ImageErrorKind::NotRegularFile), "{e}");
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, &plain()).expect("write");
        let e = Image::from_file(f.path(), 100).unwrap_err();
        assert!(
            matches!(e.reason, ImageErrorKind::TooLarge { max: 100, .. }),
            "{e}"
        );
        assert!(Image::from_file(f.path(), 1 << 20).is_ok());
    }

    #[test]
    fn missing_file_names_the_path() {
        let e = Image::from_file(Path::new("/nonexistent/guest.elf"), 1 << 20).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/guest.elf: cannot read image: "),
            "{e}"
        );
    }
}
