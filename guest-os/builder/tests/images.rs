//! Builds every guest image the way the VMM's build scripts do and checks what the VMM and
//! KVM-PVM rely on: x86_64 `ET_EXEC` images loaded where they should be, the region manifest in
//! a `PT_NOTE` (our images) or no note at all (plain images), and no SSE/AVX instruction in
//! ring-0 code except the one `testguest` executes on purpose (`mode=sse`).
//!
//! Needs `objdump` (GNU binutils) for the disassembly check and fails saying so when it is
//! missing.

use abi::manifest::{MANIFEST_MAGIC, Manifest, NOTE_NAME, NOTE_NAMESZ, NOTE_TYPE_MANIFEST};
use guest_builder::{Flavor, build_guest, build_guests};
use std::path::{Path, PathBuf};
use std::process::Command;

const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

/// The one function allowed to hold an xmm instruction.
const DELIBERATE_SSE: &str = "sse_instruction_on_purpose";

struct Phdr {
    p_type: u32,
    offset: usize,
    paddr: u64,
    filesz: usize,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Checks the ELF header and returns the program headers.
fn program_headers(elf: &[u8], path: &Path) -> Vec<Phdr> {
    assert_eq!(
        &elf[..4],
        b"\x7fELF",
        "{} is not an ELF file",
        path.display()
    );
    assert_eq!(
        u16_at(elf, 16),
        ET_EXEC,
        "{} is not ET_EXEC",
        path.display()
    );
    assert_eq!(
        u16_at(elf, 18),
        EM_X86_64,
        "{} is not x86_64",
        path.display()
    );
    let phoff = u64_at(elf, 32) as usize;
    let phnum = usize::from(u16_at(elf, 56));
    (0..phnum)
        .map(|i| {
            let ph = &elf[phoff + i * 56..][..56];
            Phdr {
                p_type: u32_at(ph, 0),
                offset: u64_at(ph, 8) as usize,
                paddr: u64_at(ph, 24),
                filesz: u64_at(ph, 32) as usize,
            }
        })
        .collect()
}

/// The descriptors of the notes named CRASHMON in all `PT_NOTE` segments.
fn manifest_notes(elf: &[u8], phdrs: &[Phdr]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for ph in phdrs.iter().filter(|p| p.p_type == PT_NOTE) {
        let data = &elf[ph.offset..ph.offset + ph.filesz];
        let mut at = 0;
        while at + 12 <= data.len() {
            let namesz = u32_at(data, at) as usize;
            let descsz = u32_at(data, at + 4) as usize;
            let ntype = u32_at(data, at + 8);
            let name_at = at + 12;
            let desc_at = name_at + namesz.next_multiple_of(4);
            if namesz == NOTE_NAMESZ as usize
                && data[name_at..name_at + 12] == NOTE_NAME
                && ntype == NOTE_TYPE_MANIFEST
            {
                found.push(data[desc_at..desc_at + descsz].to_vec());
            }
            at = desc_at + descsz.next_multiple_of(4);
        }
    }
    found
}

fn lowest_load(phdrs: &[Phdr]) -> u64 {
    phdrs
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .map(|p| p.paddr)
        .min()
        .expect("at least one PT_LOAD")
}

/// Lines `function: instruction` of every instruction using an SSE/AVX register or MXCSR.
fn sse_instructions(path: &Path) -> Vec<String> {
    let out = Command::new("objdump")
        .args(["-d", "-C", "--no-show-raw-insn"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("this test needs objdump (GNU binutils) on PATH: {e}"));
    assert!(out.status.success(), "objdump failed on {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut function = String::new();
    let mut found = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            function = name.1.to_owned();
        } else if ["xmm", "ymm", "zmm", "mxcsr"]
            .iter()
            .any(|r| line.contains(r))
        {
            found.push(format!("{function}: {}", line.trim()));
        }
    }
    found
}

fn check_our_image(path: &Path, base: u64) {
    let elf = std::fs::read(path).expect("read image");
    let phdrs = program_headers(&elf, path);
    assert_eq!(lowest_load(&phdrs), base, "{}", path.display());
    let notes = manifest_notes(&elf, &phdrs);
    assert_eq!(notes.len(), 1, "{}: want one manifest note", path.display());
    assert_eq!(
        notes[0].len(),
        size_of::<Manifest>(),
        "{}: descsz",
        path.display()
    );
    assert_eq!(
        u32_at(&notes[0], 0),
        MANIFEST_MAGIC,
        "{}: magic",
        path.display()
    );
}

fn check_plain_image(path: &Path, base: u64) {
    let elf = std::fs::read(path).expect("read image");
    let phdrs = program_headers(&elf, path);
    assert_eq!(lowest_load(&phdrs), base, "{}", path.display());
    assert!(
        phdrs.iter().all(|p| p.p_type != PT_NOTE),
        "{} has a PT_NOTE",
        path.display()
    );
}

fn built(result: Result<PathBuf, guest_builder::BuildError>) -> PathBuf {
    result.unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_kernel_is_an_image_of_our_kind_without_sse() {
    let kernel = built(build_guest("kernel", "kernel", Flavor::Kernel));
    check_our_image(&kernel, sysmap::KERNEL_BASE);
    assert_eq!(sse_instructions(&kernel), Vec::<String>::new());
}

#[test]
fn the_test_guests_have_the_right_headers_and_only_the_deliberate_sse() {
    let images = build_guests(
        &["testguests"],
        &["testguest", "plainguest", "plainlow"],
        Flavor::Kernel,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let [testguest, plainguest, plainlow] = &images[..] else {
        panic!("want three images, got {images:?}");
    };
    check_our_image(testguest, 0x10_0000);
    check_plain_image(plainguest, 0x10_0000);
    check_plain_image(plainlow, 0x1_0000);

    let sse = sse_instructions(testguest);
    assert_eq!(sse.len(), 1, "{sse:#?}");
    assert!(sse[0].contains(DELIBERATE_SSE), "{sse:#?}");
    for plain in [plainguest, plainlow] {
        assert_eq!(sse_instructions(plain), Vec::<String>::new());
    }
}

#[test]
fn a_failed_guest_build_reports_cargo_s_stderr() {
    let err =
        build_guest("kernel", "no-such-bin", Flavor::Kernel).expect_err("a missing bin must fail");
    let text = err.to_string();
    assert!(text.contains("no-such-bin"), "{text}");
    assert!(text.contains("nested cargo said"), "{text}");
}
