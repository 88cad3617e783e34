//! Just enough ELF64 reading for bundling: the entry point, the `PT_LOAD` segments and named
//! sections of a guest binary this workspace built (so malformed input is a build error, never
//! a panic).

use std::path::{Path, PathBuf};

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;

/// One loadable segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Physical load address.
    pub paddr: u64,
    /// Bytes in memory (the tail past `data` is zero).
    pub memsz: u64,
    /// The file bytes.
    pub data: Vec<u8>,
    /// Executable.
    pub exec: bool,
    /// Writable.
    pub write: bool,
}

/// A loaded view of an ELF executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    /// `e_entry`.
    pub entry: u64,
    /// The `PT_LOAD` segments in file order.
    pub segments: Vec<Segment>,
}

/// Why an ELF file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed ELF64 little-endian executable.
    #[error("{}: not a well-formed ELF64 executable ({what})", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: &'static str,
    },
}

fn field<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    field(b, at).map(u16::from_le_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    field(b, at).map(u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    field(b, at).map(u64::from_le_bytes)
}

/// Parses `bytes` (read from `path`, used in errors).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Executable, ElfError> {
    let bad = |what| ElfError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(bad("magic, class or byte order"));
    }
    let entry = u64_at(bytes, 24).ok_or(bad("header"))?;
    let phoff = u64_at(bytes, 32).ok_or(bad("header"))? as usize;
    let phentsize = usize::from(u16_at(bytes, 54).ok_or(bad("header"))?);
    let phnum = usize::from(u16_at(bytes, 56).ok_or(bad("header"))?);
    let mut segments = Vec::new();
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(bytes, ph).ok_or(bad("program header"))? != PT_LOAD {
            continue;
        }
        let flags = u32_at(bytes, ph + 4).ok_or(bad("program header"))?;
        let offset = u64_at(bytes, ph + 8).ok_or(bad("program header"))? as usize;
        let paddr = u64_at(bytes, ph + 24).ok_or(bad("program header"))?;
        let filesz = u64_at(bytes, ph + 32).ok_or(bad("program header"))? as usize;
        let memsz = u64_at(bytes, ph + 40).ok_or(bad("program header"))?;
        let data = offset
            .checked_add(filesz)
            .and_then(|end| bytes.get(offset..end))
            .ok_or(bad("segment outside the file"))?;
        if (filesz as u64) > memsz {
            return Err(bad("segment file size above its memory size"));
        }
        segments.push(Segment {
            paddr,
            memsz,
            data: data.to_vec(),
            exec: flags & PF_X != 0,
            write: flags & PF_W != 0,
        });
    }
    Ok(Executable { entry, segments })
}

/// The contents of the section called `name`, if the file has one with contents.
pub fn section<'b>(path: &Path, bytes: &'b [u8], name: &str) -> Result<Option<&'b [u8]>, ElfError> {
    let bad = |what| ElfError::Malformed {
        path: path.to_path_buf(),
        what,
    };
    let shoff = u64_at(bytes, 40).ok_or(bad("header"))? as usize;
    let shentsize = usize::from(u16_at(bytes, 58).ok_or(bad("header"))?);
    let shnum = usize::from(u16_at(bytes, 60).ok_or(bad("header"))?);
    let shstrndx = usize::from(u16_at(bytes, 62).ok_or(bad("header"))?);
    if shnum == 0 {
        return Ok(None);
    }
    // A section header: (name offset, type, file offset, size).
    let header = |i: usize| -> Result<(usize, u32, usize, usize), ElfError> {
        let at = shoff + i * shentsize;
        let name = u32_at(bytes, at).ok_or(bad("section header"))? as usize;
        let kind = u32_at(bytes, at + 4).ok_or(bad("section header"))?;
        let offset = u64_at(bytes, at + 24).ok_or(bad("section header"))? as usize;
        let size = u64_at(bytes, at + 32).ok_or(bad("section header"))? as usize;
        Ok((name, kind, offset, size))
    };
    let contents = |offset: usize, size: usize| {
        offset
            .checked_add(size)
            .and_then(|end| bytes.get(offset..end))
            .ok_or(bad("section outside the file"))
    };
    let (_, _, str_off, str_size) = header(shstrndx)?;
    let names = contents(str_off, str_size)?;
    for i in 0..shnum {
        let (name_at, kind, offset, size) = header(i)?;
        let this = names
            .get(name_at..)
            .and_then(|n| n.split(|&b| b == 0).next())
            .ok_or(bad("section name"))?;
        // SHT_NOBITS (8) has no contents in the file.
        if this == name.as_bytes() && kind != 8 {
            return contents(offset, size).map(Some);
        }
    }
    Ok(None)
}

/// Reads and parses the ELF file at `path`.
pub fn read(path: &Path) -> Result<Executable, ElfError> {
    let bytes = std::fs::read(path).map_err(|source| ElfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with one PT_LOAD of `data` at `paddr`.
    pub(crate) fn tiny_elf(paddr: u64, data: &[u8], memsz: u64) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[24..32].copy_from_slice(&paddr.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        b[ph..ph + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        b[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes());
        b[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        b[ph + 24..ph + 32].copy_from_slice(&paddr.to_le_bytes());
        b[ph + 32..ph + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        b[ph + 40..ph + 48].copy_from_slice(&memsz.to_le_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_entry_and_segments() {
        let elf = tiny_elf(0x30_0000, b"\xcc\xc3", 0x10);
        let exe = parse(Path::new("t"), &elf).expect("valid");
        assert_eq!(exe.entry, 0x30_0000);
        assert_eq!(exe.segments.len(), 1);
        let s = &exe.segments[0];
        assert_eq!(
            (s.paddr, s.memsz, s.exec, s.write),
            (0x30_0000, 0x10, true, false)
        );
        assert_eq!(s.data, b"\xcc\xc3");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let elf = tiny_elf(0x1000, b"abcd", 4);
        for cut in [0, 3, 20, 70, 121] {
            assert!(parse(Path::new("t"), &elf[..cut]).is_err(), "cut at {cut}");
        }
        let mut big = elf.clone();
        big[64 + 32..64 + 40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(Path::new("t"), &big).is_err());
    }
}
