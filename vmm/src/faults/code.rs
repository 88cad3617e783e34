//! Code faults: finding the instructions a code fault kind can rewrite in a stretch of machine
//! code, and rewriting one, with a real x86-64 decoder and encoder (iced-x86). Pure: bytes in,
//! bytes out; the injector reads and writes guest memory.
//!
//! | kind | a site is | the rewrite |
//! |---|---|---|
//! | text-flip | any instruction but `int3` padding | one bit of its bytes flipped |
//! | nop | any instruction but `int3` padding | all its bytes `nop` (0x90) |
//! | flip-branch | a conditional jump (`jcc`) | its condition inverted (`je` <-> `jne`, ...) |
//! | drop-branch | a direct jump, conditional or not | all its bytes `nop`: execution falls through |
//! | corrupt-src | a read general-register operand | another register of its size, same length |
//! | corrupt-dst | a written general-register operand | another register of its size, same length |
//! | corrupt-ptr | a memory access (not `lea`) | a displacement bit flipped, or the base register replaced |
//! | no-store | an explicit store to memory | all its bytes `nop` |
//!
//! A rewrite keeps the instruction's length (what follows stays where it was); a register that
//! would not encode in the same length is not a candidate.

use super::spec::Reg;
use abi::fault::FaultKind;
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, FlowControl, Formatter, Instruction,
    InstructionInfoFactory, IntelFormatter, OpAccess, OpKind, Register,
};

/// One decoded instruction.
#[derive(Clone, Debug)]
pub struct Insn {
    /// Its address.
    pub addr: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
    instr: Instruction,
}

impl Insn {
    /// Its text (Intel syntax).
    pub fn asm(&self) -> String {
        format_instr(&self.instr)
    }
}

/// A rewrite of one instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// The instruction's address.
    pub addr: u64,
    /// Its bytes before.
    pub before: Vec<u8>,
    /// And after (as many).
    pub after: Vec<u8>,
    /// The bit flipped: of the bytes (`text-flip`), of the displacement (`corrupt-ptr`).
    pub bit: Option<u32>,
    /// The register put in (`corrupt-src`, `corrupt-dst`, `corrupt-ptr`'s base), by the name
    /// of its 64-bit register.
    pub reg: Option<Reg>,
}

/// Decodes `bytes` at `base` from start to end (a linear sweep: the code of our images has no
/// data between functions, only `int3` padding); undecodable bytes become one-byte invalid
/// instructions, never sites.
pub fn decode(base: u64, bytes: &[u8]) -> Vec<Insn> {
    let mut decoder = Decoder::with_ip(64, bytes, base, DecoderOptions::NONE);
    let mut out = Vec::new();
    let mut instr = Instruction::default();
    while decoder.can_decode() {
        let offset = decoder.position();
        decoder.decode_out(&mut instr);
        let len = if instr.code() == Code::INVALID {
            // Resynchronise one byte on.
            decoder
                .set_position(offset + 1)
                .map_or(bytes.len() - offset, |()| 1)
        } else {
            instr.len()
        };
        out.push(Insn {
            addr: base + offset as u64,
            bytes: bytes[offset..offset + len].to_vec(),
            instr,
        });
    }
    out
}

/// The text of `bytes` decoded at `addr`: its instructions joined by "; " ("(bad)" for bytes
/// that are none).
pub fn asm(addr: u64, bytes: &[u8]) -> String {
    decode(addr, bytes)
        .iter()
        .map(|i| {
            if i.instr.code() == Code::INVALID {
                "(bad)".to_owned()
            } else {
                i.asm()
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn format_instr(instr: &Instruction) -> String {
    let mut out = String::new();
    IntelFormatter::new().format(instr, &mut out);
    out
}

/// True when `kind` can rewrite `insn`.
pub fn is_site(kind: FaultKind, insn: &Insn) -> bool {
    let i = &insn.instr;
    if i.code() == Code::INVALID || i.code() == Code::Int3 {
        return false;
    }
    match kind {
        FaultKind::TextFlip | FaultKind::Nop => true,
        FaultKind::FlipBranch => i.is_jcc_short_or_near(),
        FaultKind::DropBranch => i.is_jcc_short_or_near() || i.is_jmp_short_or_near(),
        FaultKind::CorruptSrc => !register_choices(i, Side::Read).is_empty(),
        FaultKind::CorruptDst => !register_choices(i, Side::Write).is_empty(),
        FaultKind::CorruptPtr => !pointer_choices(i).is_empty(),
        FaultKind::NoStore => is_store(i),
        _ => false,
    }
}

/// The sites of `kind` among `code`.
pub fn sites(kind: FaultKind, code: &[Insn]) -> Vec<&Insn> {
    code.iter().filter(|i| is_site(kind, i)).collect()
}

/// Rewrites `insn` as `kind` says; `pick(n)` chooses among `n` possibilities (the seed's
/// choice) what `bit` and `reg` leave open. `Err` says why this instruction cannot take that
/// rewrite (not a site, a bit past its bytes, a register that does not fit).
pub fn rewrite(
    kind: FaultKind,
    insn: &Insn,
    pick: &mut dyn FnMut(usize) -> usize,
    bit: Option<u32>,
    reg: Option<Reg>,
) -> Result<Rewrite, String> {
    if !is_site(kind, insn) {
        return Err(format!(
            "{:#x} ({}) is not a {} site",
            insn.addr,
            insn.asm(),
            kind.name()
        ));
    }
    let before = insn.bytes.clone();
    let len = before.len();
    let nops = || vec![0x90; len];
    let mut out = Rewrite {
        addr: insn.addr,
        before: before.clone(),
        after: before.clone(),
        bit: None,
        reg: None,
    };
    match kind {
        FaultKind::TextFlip => {
            let bits = len as u32 * 8;
            let b = match bit {
                Some(b) if b < bits => b,
                Some(b) => return Err(format!("{b} is past the {bits} bits of {}", insn.asm())),
                None => pick(bits as usize) as u32,
            };
            out.after[(b / 8) as usize] ^= 1 << (b % 8);
            out.bit = Some(b);
        }
        FaultKind::Nop | FaultKind::DropBranch | FaultKind::NoStore => out.after = nops(),
        FaultKind::FlipBranch => {
            // The condition is the opcode's low bit: 0x7X for a short jcc, 0x0F 0x8X for a near.
            let at = if insn.instr.is_jcc_short() {
                len - 2
            } else {
                len - 5
            };
            out.after[at] ^= 1;
        }
        FaultKind::CorruptSrc | FaultKind::CorruptDst => {
            let side = if kind == FaultKind::CorruptSrc {
                Side::Read
            } else {
                Side::Write
            };
            let choices = register_choices(&insn.instr, side);
            let chosen = match reg {
                Some(r) => choices.iter().find(|c| c.reg == Some(r)).ok_or_else(|| {
                    let current = operand(&insn.instr, side)
                        .map(|op| insn.instr.op_register(op))
                        .and_then(reg_index);
                    if current == Some(r.0) {
                        format!(
                            "{} is the register {} already uses; the fault puts in another",
                            r.name(),
                            insn.asm()
                        )
                    } else {
                        format!(
                            "{} in {} does not encode in its {len} bytes (these do: {})",
                            r.name(),
                            insn.asm(),
                            choices
                                .iter()
                                .filter_map(|c| c.reg.map(Reg::name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    }
                })?,
                None => &choices[pick(choices.len())],
            };
            out.after = chosen.bytes.clone();
            out.reg = chosen.reg;
        }
        FaultKind::CorruptPtr => {
            let choices = pointer_choices(&insn.instr);
            let chosen = match bit {
                Some(b) => choices
                    .iter()
                    .find(|c| c.bit == Some(b))
                    .ok_or_else(|| format!("displacement bit {b} does not fit {}", insn.asm()))?,
                None => &choices[pick(choices.len())],
            };
            out.after = chosen.bytes.clone();
            out.bit = chosen.bit;
            out.reg = chosen.reg;
        }
        _ => return Err(format!("{} is not a code fault", kind.name())),
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Read,
    Write,
}

/// One way to rewrite an instruction: its bytes, and the bit or register it puts in.
#[derive(Clone, Debug)]
struct Choice {
    bytes: Vec<u8>,
    bit: Option<u32>,
    reg: Option<Reg>,
}

/// The 64-bit general registers in [`Reg`] order (`InjectRegs::NAMES`).
const GPR64: [Register; 16] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDX,
    Register::RSI,
    Register::RDI,
    Register::RBP,
    Register::RSP,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
    Register::R12,
    Register::R13,
    Register::R14,
    Register::R15,
];

/// The register of `size` bytes whose 64-bit register is `GPR64[index]` (no `ah`-style
/// high bytes).
fn sized(index: usize, size: usize) -> Option<Register> {
    let full = GPR64[index];
    if size == 8 {
        return Some(full);
    }
    Register::values()
        .filter(|r| r.is_gpr() && r.size() == size && r.full_register() == full)
        .find(|r| !matches!(r, Register::AH | Register::BH | Register::CH | Register::DH))
}

fn reg_index(r: Register) -> Option<usize> {
    GPR64.iter().position(|g| *g == r.full_register())
}

fn encode(instr: &Instruction) -> Option<Vec<u8>> {
    let mut encoder = Encoder::new(64);
    encoder.encode(instr, instr.ip()).ok()?;
    Some(encoder.take_buffer())
}

/// The operand a register fault on `side` changes: for a source, the last register operand
/// the instruction only reads (else one it reads and writes); for a destination, the first it
/// only writes (else one it reads and writes). One operand per instruction, so that the
/// register put in names the rewrite exactly (`reg=` replays it).
fn operand(instr: &Instruction, side: Side) -> Option<u32> {
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(instr);
    let registers: Vec<(u32, OpAccess)> = (0..instr.op_count())
        .filter(|&op| instr.op_kind(op) == OpKind::Register)
        .filter(|&op| {
            let r = instr.op_register(op);
            r.is_gpr() && reg_index(r).is_some()
        })
        .map(|op| (op, info.op_access(op)))
        .collect();
    let only = |a: &OpAccess| match side {
        Side::Read => matches!(a, OpAccess::Read | OpAccess::CondRead),
        Side::Write => matches!(a, OpAccess::Write | OpAccess::CondWrite),
    };
    let both = |a: &OpAccess| matches!(a, OpAccess::ReadWrite | OpAccess::ReadCondWrite);
    let pick = |f: &dyn Fn(&OpAccess) -> bool| {
        let mut it = registers.iter().filter(|(_, a)| f(a)).map(|(op, _)| *op);
        match side {
            Side::Read => it.next_back(),
            Side::Write => it.next(),
        }
    };
    pick(&only).or_else(|| pick(&both))
}

/// Every other register of the operand's size put into the operand a register fault on `side`
/// changes, where it encodes in the same length.
fn register_choices(instr: &Instruction, side: Side) -> Vec<Choice> {
    let Some(op) = operand(instr, side) else {
        return Vec::new();
    };
    let current = instr.op_register(op);
    (0..GPR64.len())
        .filter_map(|index| {
            let other = sized(index, current.size()).filter(|o| *o != current)?;
            let mut changed = *instr;
            changed.set_op_register(op, other);
            let bytes = encode(&changed).filter(|b| b.len() == instr.len())?;
            Some(Choice {
                bytes,
                bit: None,
                reg: Some(Reg(index)),
            })
        })
        .collect()
}

/// A memory access's rewrites: each bit of its displacement flipped (when it has one), or its
/// base register replaced (when it has none); only those that keep the length.
fn pointer_choices(instr: &Instruction) -> Vec<Choice> {
    let accesses_memory = (0..instr.op_count()).any(|op| instr.op_kind(op) == OpKind::Memory)
        && instr.mnemonic() != iced_x86::Mnemonic::Lea
        && !is_stack_only(instr);
    if !accesses_memory {
        return Vec::new();
    }
    let mut out = Vec::new();
    let displ_bits = instr.memory_displ_size() * 8;
    if displ_bits > 0 {
        for bit in 0..displ_bits.min(32) {
            let mut changed = *instr;
            changed.set_memory_displacement64(instr.memory_displacement64() ^ (1 << bit));
            if let Some(bytes) = encode(&changed).filter(|b| b.len() == instr.len()) {
                out.push(Choice {
                    bytes,
                    bit: Some(bit),
                    reg: None,
                });
            }
        }
    } else if let Some(base) = Some(instr.memory_base()).filter(|b| b.is_gpr() && b.size() == 8) {
        for (index, other) in GPR64.iter().enumerate() {
            if *other == base {
                continue;
            }
            let mut changed = *instr;
            changed.set_memory_base(*other);
            if let Some(bytes) = encode(&changed).filter(|b| b.len() == instr.len()) {
                out.push(Choice {
                    bytes,
                    bit: None,
                    reg: Some(Reg(index)),
                });
            }
        }
    }
    out
}

/// Pushes, pops, calls and returns touch memory only through the stack pointer: not the
/// pointer faults or the stores meant here.
fn is_stack_only(instr: &Instruction) -> bool {
    matches!(
        instr.flow_control(),
        FlowControl::Call | FlowControl::Return | FlowControl::IndirectCall
    ) || instr.is_stack_instruction()
        && !(0..instr.op_count()).any(|op| instr.op_kind(op) == OpKind::Memory)
}

/// An explicit store: a memory operand the instruction writes.
fn is_store(instr: &Instruction) -> bool {
    if is_stack_only(instr) || instr.mnemonic() == iced_x86::Mnemonic::Lea {
        return false;
    }
    let mut factory = InstructionInfoFactory::new();
    let info = factory.info(instr);
    (0..instr.op_count()).any(|op| {
        instr.op_kind(op) == OpKind::Memory
            && matches!(
                info.op_access(op),
                OpAccess::Write
                    | OpAccess::CondWrite
                    | OpAccess::ReadWrite
                    | OpAccess::ReadCondWrite
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small function, as a compiler lays it out.
    const CODE: &[u8] = &[
        0x48, 0x8b, 0x47, 0x08, // mov rax, [rdi+8]
        0x48, 0x85, 0xc0, // test rax, rax
        0x74, 0x05, // je +5
        0x48, 0x89, 0x47, 0x10, // mov [rdi+0x10], rax
        0xc3, // ret
        0x0f, 0x84, 0x10, 0x00, 0x00, 0x00, // je near +0x10
        0xeb, 0xfe, // jmp self
        0x48, 0x01, 0xd8, // add rax, rbx
        0x48, 0x8d, 0x47, 0x08, // lea rax, [rdi+8]
        0x48, 0x89, 0x07, // mov [rdi], rax
        0xcc, 0xcc, // padding
    ];
    const BASE: u64 = 0x40_1000;

    fn code() -> Vec<Insn> {
        decode(BASE, CODE)
    }

    fn at(offset: u64) -> Insn {
        code()
            .into_iter()
            .find(|i| i.addr == BASE + offset)
            .expect("an instruction there")
    }

    fn first(_: usize) -> usize {
        0
    }

    #[test]
    fn the_sweep_decodes_every_instruction_in_order() {
        let c = code();
        let starts: Vec<u64> = c.iter().map(|i| i.addr - BASE).collect();
        assert_eq!(starts, [0, 4, 7, 9, 13, 14, 20, 22, 25, 29, 32, 33]);
        assert_eq!(c[0].asm(), "mov rax,[rdi+8]");
        assert_eq!(c.iter().map(|i| i.bytes.len()).sum::<usize>(), CODE.len());
        let junk = decode(BASE, &[0x0f, 0xff, 0x90]);
        assert_eq!(junk.iter().map(|i| i.bytes.len()).sum::<usize>(), 3);
    }

    #[test]
    fn each_kind_finds_its_sites_and_nothing_else() {
        let c = code();
        let offsets =
            |kind| -> Vec<u64> { sites(kind, &c).iter().map(|i| i.addr - BASE).collect() };
        assert_eq!(offsets(FaultKind::FlipBranch), [7, 14]);
        assert_eq!(offsets(FaultKind::DropBranch), [7, 14, 20]);
        assert_eq!(offsets(FaultKind::NoStore), [9, 29]);
        assert_eq!(offsets(FaultKind::CorruptPtr), [0, 9, 29], "no lea, no ret");
        assert_eq!(
            offsets(FaultKind::Nop).len(),
            10,
            "all but the int3 padding"
        );
        assert!(offsets(FaultKind::CorruptSrc).contains(&22));
        assert!(offsets(FaultKind::CorruptDst).contains(&0));
        assert!(
            !offsets(FaultKind::CorruptDst).contains(&9),
            "a store writes no register"
        );
        assert!(offsets(FaultKind::StateFlip).is_empty(), "not a code kind");
    }

    #[test]
    fn rewrites_do_what_their_kind_says_in_the_same_length() {
        let je = at(7);
        let flipped = rewrite(FaultKind::FlipBranch, &je, &mut first, None, None).expect("jcc");
        assert_eq!(flipped.after, [0x75, 0x05]);
        assert_eq!(
            asm(flipped.addr, &flipped.after),
            "jne short 000000000040100Eh"
        );
        let near = rewrite(FaultKind::FlipBranch, &at(14), &mut first, None, None).expect("jcc");
        assert_eq!(near.after, [0x0f, 0x85, 0x10, 0, 0, 0]);
        let dropped = rewrite(FaultKind::DropBranch, &at(20), &mut first, None, None).expect("jmp");
        assert_eq!(dropped.after, [0x90, 0x90]);
        let nostore = rewrite(FaultKind::NoStore, &at(9), &mut first, None, None).expect("store");
        assert_eq!(nostore.after, [0x90; 4]);
        let flip = rewrite(FaultKind::TextFlip, &at(0), &mut first, Some(17), None).expect("bit");
        assert_eq!(flip.after, [0x48, 0x8b, 0x45, 0x08]);
        assert_eq!(flip.bit, Some(17));
        assert!(rewrite(FaultKind::TextFlip, &at(0), &mut first, Some(32), None).is_err());
        let ptr = rewrite(FaultKind::CorruptPtr, &at(0), &mut first, Some(4), None).expect("disp");
        assert_eq!(asm(ptr.addr, &ptr.after), "mov rax,[rdi+18h]");
        let base = rewrite(FaultKind::CorruptPtr, &at(29), &mut first, None, None).expect("base");
        assert_eq!(base.after.len(), 3);
        assert_ne!(base.after, base.before);
        assert!(base.reg.is_some() && base.bit.is_none());
        // add rax,rbx: the source is rbx (rax is read and written: the destination).
        let rcx = Reg::from_name("rcx").expect("a register");
        let src =
            rewrite(FaultKind::CorruptSrc, &at(22), &mut first, None, Some(rcx)).expect("src");
        assert_eq!(asm(src.addr, &src.after), "add rax,rcx");
        assert_eq!(src.reg, Some(rcx));
        let dst =
            rewrite(FaultKind::CorruptDst, &at(22), &mut first, None, Some(rcx)).expect("dst");
        assert_eq!(asm(dst.addr, &dst.after), "add rcx,rbx");
        // mov rax,[rdi+8]: the destination is rax; no register source.
        let load =
            rewrite(FaultKind::CorruptDst, &at(0), &mut first, None, Some(rcx)).expect("dst");
        assert_eq!(asm(load.addr, &load.after), "mov rcx,[rdi+8]");
        assert!(rewrite(FaultKind::CorruptSrc, &at(0), &mut first, None, None).is_err());
        // r9 needs REX.B, but the instruction has a REX prefix already: the same length.
        let r9 = Reg::from_name("r9").expect("a register");
        let src = rewrite(FaultKind::CorruptSrc, &at(22), &mut first, None, Some(r9)).expect("r9");
        assert_eq!(asm(src.addr, &src.after), "add rax,r9");
        // test rax,rax has no REX-free form for r8-r15 in a shorter length, and none longer:
        // every choice keeps three bytes.
        let test = rewrite(FaultKind::CorruptSrc, &at(4), &mut first, None, None).expect("test");
        assert_eq!(test.after.len(), 3);
        for kind in FaultKind::ALL {
            for insn in sites(kind, &code()) {
                let mut n = 0;
                let mut pick = |k: usize| {
                    n += 1;
                    n % k
                };
                let r = rewrite(kind, insn, &mut pick, None, None).expect("a site rewrites");
                assert_eq!(r.after.len(), r.before.len(), "{kind:?} at {:#x}", r.addr);
                assert_ne!(r.after, r.before, "{kind:?} at {:#x}", r.addr);
            }
        }
        assert!(rewrite(FaultKind::FlipBranch, &at(0), &mut first, None, None).is_err());
    }

    #[test]
    fn registers_map_to_the_operand_size() {
        assert_eq!(sized(0, 4), Some(Register::EAX));
        assert_eq!(sized(8, 1), Some(Register::R8L));
        assert_eq!(sized(1, 1), Some(Register::BL));
        assert_eq!(sized(15, 2), Some(Register::R15W));
    }
}
