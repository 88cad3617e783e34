//! x86_64 boot state: the structures the VMM writes into guest memory below
//! [`abi::layout::RESERVED_END`] and the vCPU registers at entry.
//!
//! Both kinds of image are entered the same way, in 64-bit long mode at the ELF entry point with
//! the first 4 GiB identity-mapped (2 MiB pages), a flat GDT (CS = 0x08, DS = 0x10), a stack at
//! [`abi::layout::BOOT_STACK_TOP`], interrupts off and SSE enabled (CR0.MP, CR4.OSFXSR,
//! CR4.OSXMMEXCPT). RDI and RSI both point at [`abi::layout::BOOT_INFO_ADDR`]: our images find an
//! [`abi::BootInfo`] there, plain images a Linux zero page (Firecracker's convention).

use crate::image::{Image, ImageKind};
use crate::layout::Layout;
use crate::memory::GuestMemory;
use abi::boot::MAX_MEMMAP;
use abi::hypercall::HYPERCALL_PORT;
use abi::layout::*;
use abi::manifest::MAX_SERVERS;
use abi::{Backend, BootInfo, MemKind};
use kvm_bindings::{CpuId, KVM_MAX_CPUID_ENTRIES, kvm_fpu, kvm_regs, kvm_segment};
use kvm_ioctls::{Kvm, VcpuFd};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use vm_memory::{Bytes, GuestAddress};
use zerocopy::IntoBytes;

const GDT: [u64; GDT_ENTRIES] = [
    0,                     // null
    0x00af_9b00_0000_ffff, // 0x08 kernel code: 64-bit, DPL 0
    0x00cf_9300_0000_ffff, // 0x10 kernel data: DPL 0
    0x00cf_f300_0000_ffff, // 0x18 user data: DPL 3
    0x00af_fb00_0000_ffff, // 0x20 user code: 64-bit, DPL 3
];

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_HUGE: u64 = 1 << 7;

const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

const E820_RAM: u32 = 1;
const E820_RESERVED: u32 = 2;

/// Why the boot state could not be written.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Writing guest memory failed (the layout guarantees the low area exists, so this is a bug).
    #[error("cannot write {what} into guest memory: {source}")]
    Memory {
        /// Which structure.
        what: &'static str,
        /// vm-memory's error.
        source: vm_memory::GuestMemoryError,
    },
    /// The ELF loader failed.
    #[error("{image}: cannot load segments: {source}")]
    Load {
        /// Image label.
        image: String,
        /// linux-loader's error.
        source: linux_loader::loader::Error,
    },
    /// A vCPU ioctl failed.
    #[error("cannot set up the vCPU ({what}): {source}")]
    Vcpu {
        /// Which step.
        what: &'static str,
        /// The ioctl's error.
        source: kvm_ioctls::Error,
    },
    /// CPUID list could not be built.
    #[error("cannot read the supported CPUID: {0}")]
    Cpuid(kvm_ioctls::Error),
}

fn write<T: IntoBytes + zerocopy::Immutable + ?Sized>(
    mem: &GuestMemory,
    addr: u64,
    what: &'static str,
    value: &T,
) -> Result<(), BootError> {
    mem.write_slice(value.as_bytes(), GuestAddress(addr))
        .map_err(|source| BootError::Memory { what, source })
}

/// Loads the image's segments at their physical addresses (low-linked images included).
pub fn load_image(mem: &GuestMemory, image: &Image) -> Result<(), BootError> {
    use linux_loader::loader::{KernelLoader, elf::Elf};
    let mut reader = std::io::Cursor::new(&image.bytes);
    // No high-memory floor: the layout already checked every segment against memory and the
    // reserved area, and plain images may be linked below 1 MiB.
    Elf::load(mem, None, &mut reader, None)
        .map(|_| ())
        .map_err(|source| BootError::Load {
            image: image.label.clone(),
            source,
        })
}

/// Writes the GDT, page tables, command line and boot-info (or zero page).
pub fn write_boot_structures(
    mem: &GuestMemory,
    layout: &Layout,
    image: &Image,
    cmdline: &str,
    backend: Backend,
) -> Result<(), BootError> {
    write(mem, GDT_ADDR, "GDT", &GDT)?;
    write_page_tables(mem)?;
    let mut line = cmdline.as_bytes().to_vec();
    line.push(0);
    write(mem, CMDLINE_ADDR, "command line", line.as_slice())?;
    match image.kind {
        ImageKind::Ours(_) => write(
            mem,
            BOOT_INFO_ADDR,
            "boot-info",
            &boot_info(layout, cmdline, backend),
        ),
        ImageKind::Plain => write_zero_page(mem, layout, cmdline),
    }
}

fn write_page_tables(mem: &GuestMemory) -> Result<(), BootError> {
    let table = PTE_PRESENT | PTE_WRITE | PTE_USER;
    write(mem, PML4_ADDR, "PML4", &(PDPT_ADDR | table))?;
    let pdpt: Vec<u64> = (0..PD_COUNT)
        .map(|i| (PD_ADDR + i * PAGE_SIZE) | table)
        .collect();
    write(mem, PDPT_ADDR, "PDPT", pdpt.as_slice())?;
    let pds: Vec<u64> = (0..PD_COUNT * 512)
        .map(|i| (i << 21) | table | PTE_HUGE)
        .collect();
    write(mem, PD_ADDR, "page directories", pds.as_slice())
}

/// The boot-info block for our images.
pub fn boot_info(layout: &Layout, cmdline: &str, backend: Backend) -> BootInfo {
    let mut info = BootInfo::empty();
    info.backend = backend as u32;
    info.hypercall_port = u32::from(HYPERCALL_PORT);
    info.mem_size = layout.mem_size;
    info.monitor_page = layout.monitor_page.unwrap_or(0);
    info.cmdline_addr = CMDLINE_ADDR;
    info.cmdline_len = cmdline.len() as u64;
    let n = layout.memmap.len().min(MAX_MEMMAP);
    info.memmap[..n].copy_from_slice(&layout.memmap[..n]);
    info.memmap_len = n as u32;
    for (slot, s) in info
        .servers
        .iter_mut()
        .zip(layout.servers.iter().take(MAX_SERVERS))
    {
        *slot = abi::ServerDecl::new(s.name.as_bytes(), s.state, s.scratch);
    }
    info.server_count = layout.servers.len().min(MAX_SERVERS) as u32;
    info
}

fn write_zero_page(mem: &GuestMemory, layout: &Layout, cmdline: &str) -> Result<(), BootError> {
    let mut params = boot_params::default();
    params.hdr.boot_flag = 0xaa55;
    params.hdr.header = 0x5372_6448; // "HdrS"
    params.hdr.type_of_loader = 0xff;
    params.hdr.cmd_line_ptr = CMDLINE_ADDR as u32;
    params.hdr.cmdline_size = cmdline.len() as u32;
    params.hdr.kernel_alignment = 0x0100_0000;
    let mut n = 0;
    for r in &layout.memmap {
        if n == params.e820_table.len() {
            break;
        }
        let r#type = if r.kind == MemKind::Reserved as u32 {
            E820_RESERVED
        } else {
            E820_RAM
        };
        params.e820_table[n] = boot_e820_entry {
            addr: r.base,
            size: r.size,
            r#type,
        };
        n += 1;
    }
    params.e820_entries = n as u8;
    mem.write_obj(params, GuestAddress(BOOT_INFO_ADDR))
        .map_err(|source| BootError::Memory {
            what: "zero page",
            source,
        })
}

fn code_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: KERNEL_CS,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 1,
        l: 1,
        g: 1,
        ..Default::default()
    }
}

fn data_segment() -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector: KERNEL_DS,
        type_: 0x3,
        present: 1,
        dpl: 0,
        db: 1,
        s: 1,
        l: 0,
        g: 1,
        ..Default::default()
    }
}

/// Puts the vCPU at `entry` in 64-bit mode, with the CPUID KVM supports and SSE enabled.
pub fn setup_vcpu(kvm: &Kvm, vcpu: &VcpuFd, entry: u64) -> Result<(), BootError> {
    let vcpu_err = |what| move |source| BootError::Vcpu { what, source };
    let cpuid: CpuId = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(BootError::Cpuid)?;
    vcpu.set_cpuid2(&cpuid)
        .map_err(vcpu_err("KVM_SET_CPUID2"))?;

    let mut sregs = vcpu.get_sregs().map_err(vcpu_err("KVM_GET_SREGS"))?;
    sregs.cs = code_segment();
    let data = data_segment();
    (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (GDT_ENTRIES * 8 - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr3 = PML4_ADDR;
    sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
    sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
    sregs.efer = EFER_LME | EFER_LMA;
    vcpu.set_sregs(&sregs).map_err(vcpu_err("KVM_SET_SREGS"))?;

    let regs = kvm_regs {
        rip: entry,
        rsp: BOOT_STACK_TOP,
        rbp: BOOT_STACK_TOP,
        rdi: BOOT_INFO_ADDR,
        rsi: BOOT_INFO_ADDR,
        rflags: 0x2,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(vcpu_err("KVM_SET_REGS"))?;

    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(vcpu_err("KVM_SET_FPU"))?;
    set_lint(vcpu).map_err(vcpu_err("KVM_SET_LAPIC"))
}

/// LINT0 as ExtINT (the PIC's output) and LINT1 as NMI, as a PC's firmware leaves them.
fn set_lint(vcpu: &VcpuFd) -> Result<(), kvm_ioctls::Error> {
    const APIC_LVT0: usize = 0x350;
    const APIC_LVT1: usize = 0x360;
    const MODE_EXTINT: u32 = 0x7;
    const MODE_NMI: u32 = 0x4;
    let mut lapic = vcpu.get_lapic()?;
    for (offset, mode) in [(APIC_LVT0, MODE_EXTINT), (APIC_LVT1, MODE_NMI)] {
        let reg = &mut lapic.regs[offset..offset + 4];
        let mut value =
            u32::from_le_bytes([reg[0] as u8, reg[1] as u8, reg[2] as u8, reg[3] as u8]);
        value = (value & !0x700) | (mode << 8);
        for (dst, src) in reg.iter_mut().zip(value.to_le_bytes()) {
            *dst = src as _;
        }
    }
    vcpu.set_lapic(&lapic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::testelf::{Seg, build};
    use crate::layout::plan;
    use abi::manifest::{Manifest, Range, ServerDecl};
    use vm_memory::Bytes;
    use zerocopy::FromBytes;

    const MIB: u64 = 1 << 20;

    fn ours() -> (Image, Layout, GuestMemory) {
        let mut m = Manifest::EMPTY;
        m.kernel = Range::new(MIB, MIB);
        m.monitor_page = 2 * MIB;
        m.server_count = 1;
        m.servers[0] = ServerDecl::new(b"kv", Range::new(4 * MIB, MIB), Range::new(5 * MIB, MIB));
        let bytes = build(
            MIB,
            &[Seg(MIB, vec![0xf4, 0x90, 0x90], 0x1000)],
            Some(&m),
            &[],
        );
        let image = Image::from_bytes("t".into(), bytes).expect("valid");
        let layout = plan(&image, 16 * MIB).expect("valid");
        let mem = crate::memory::create(&layout).expect("mmap");
        (image, layout, mem)
    }

    #[test]
    fn identity_map_covers_4_gib_with_2_mib_pages() {
        let (image, layout, mem) = ours();
        write_boot_structures(&mem, &layout, &image, "", Backend::Pvm).expect("written");
        let pml4: u64 = mem.read_obj(GuestAddress(PML4_ADDR)).expect("read");
        assert_eq!(pml4 & !0xfff, PDPT_ADDR);
        for gib in 0..4u64 {
            let pdpte: u64 = mem
                .read_obj(GuestAddress(PDPT_ADDR + gib * 8))
                .expect("read");
            let pd = pdpte & !0xfff;
            let last: u64 = mem.read_obj(GuestAddress(pd + 511 * 8)).expect("read");
            assert_eq!(last & !0xfff, (gib << 30) + 511 * (2 * MIB));
            assert_eq!(last & 0x87, 0x87);
        }
    }

    #[test]
    fn boot_info_describes_the_layout() {
        let (image, layout, mem) = ours();
        write_boot_structures(&mem, &layout, &image, "ops=5 seed=7", Backend::Pvm)
            .expect("written");
        let mut raw = vec![0u8; core::mem::size_of::<BootInfo>()];
        mem.read_slice(&mut raw, GuestAddress(BOOT_INFO_ADDR))
            .expect("read");
        let info = BootInfo::read_from_bytes(&raw).expect("layout");
        assert!(info.is_valid());
        assert_eq!(Backend::from_number(info.backend), Some(Backend::Pvm));
        assert_eq!(info.mem_size, 16 * MIB);
        assert_eq!(info.monitor_page, 2 * MIB);
        assert_eq!(info.declared_servers()[0].name_str(), Some("kv"));
        assert_eq!(info.memory_map(), layout.memmap.as_slice());
        let mut line = vec![0u8; info.cmdline_len as usize + 1];
        mem.read_slice(&mut line, GuestAddress(info.cmdline_addr))
            .expect("read");
        assert_eq!(line, b"ops=5 seed=7\0");
    }

    #[test]
    fn image_segments_land_at_their_physical_addresses() {
        let (image, _, mem) = ours();
        load_image(&mem, &image).expect("loaded");
        let mut code = [0u8; 3];
        mem.read_slice(&mut code, GuestAddress(MIB)).expect("read");
        assert_eq!(code, [0xf4, 0x90, 0x90]);
    }
}
