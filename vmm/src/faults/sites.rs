//! `vmm fault-sites TARGET KIND`: the places a fault kind can strike in an image, counted and
//! listed (read from the image, as the VM would load it: no VM runs).

use super::code;
use super::injector::image_bytes;
use super::spec::{KERNEL, Target};
use super::targets::{self, Ranges};
use crate::image::Image;
use crate::layout::Layout;
use abi::fault::{Family, FaultKind};
use abi::monitor::InjectRegs;
use std::fmt::Write as _;

/// What `fault-sites` prints for `target` and `kind`: a count line, then up to `limit` sites.
pub fn listing(
    image: &Image,
    layout: &Layout,
    target: &Target,
    kind: FaultKind,
    limit: usize,
) -> Result<String, String> {
    let all = targets::of(image, layout);
    let ranges: &Ranges = match target {
        Target::Kernel => &all.kernel,
        Target::Server(name) => {
            let i = layout
                .servers
                .iter()
                .position(|s| !s.app && s.name == *name)
                .ok_or_else(|| {
                    let servers: Vec<&str> = layout
                        .servers
                        .iter()
                        .filter(|s| !s.app)
                        .map(|s| s.name.as_str())
                        .collect();
                    format!(
                        "unknown server {name:?} (this image declares {})",
                        servers.join(", ")
                    )
                })?;
            &all.tasks[i]
        }
    };
    if target == &Target::Kernel && !matches!(kind, FaultKind::TextFlip | FaultKind::StateFlip) {
        return Err(format!(
            "`{KERNEL}` takes text-flip and state-flip faults only, not {}",
            kind.name()
        ));
    }
    let mut out = String::new();
    match kind.family() {
        Family::Crash => {
            return Err(format!(
                "{} is a kind the server executes itself: it strikes wherever the message finds it",
                kind.name()
            ));
        }
        Family::Code => {
            let mut sites = Vec::new();
            for r in &ranges.code {
                let (base, bytes) = image_bytes(image, r).ok_or_else(|| {
                    format!("{target}'s code at {:#x} is not in the image", r.base)
                })?;
                sites.extend(
                    code::decode(base, &bytes)
                        .into_iter()
                        .filter(|i| code::is_site(kind, i)),
                );
            }
            let _ = writeln!(
                out,
                "{target}: {} {} site(s) in {}",
                sites.len(),
                kind.name(),
                spans(&ranges.code)
            );
            for i in sites.iter().take(limit) {
                let _ = writeln!(
                    out,
                    "  {:#x}  {:<24} {}",
                    i.addr,
                    super::record::hex(&i.bytes),
                    i.asm()
                );
            }
            if sites.len() > limit {
                let _ = writeln!(
                    out,
                    "  ... and {} more (--limit {} lists them all)",
                    sites.len() - limit,
                    sites.len()
                );
            }
        }
        Family::Data => {
            let (what, areas, bits) = match kind {
                FaultKind::StateFlip => (
                    if *target == Target::Kernel {
                        "data"
                    } else {
                        "state"
                    },
                    ranges.data.clone(),
                    8,
                ),
                FaultKind::StackFlip => ("stack region", ranges.stack.into_iter().collect(), 8),
                _ => {
                    let regs = if kind == FaultKind::MsgCorrupt {
                        InjectRegs::PAYLOAD
                            .iter()
                            .map(|&i| InjectRegs::NAMES[i])
                            .collect()
                    } else {
                        InjectRegs::NAMES.to_vec()
                    };
                    let _ = writeln!(
                        out,
                        "{target}: {} x 64 bits: {}",
                        regs.len(),
                        regs.join(", ")
                    );
                    return Ok(out);
                }
            };
            let bytes: u64 = areas.iter().map(|a| a.size).sum();
            let _ = writeln!(
                out,
                "{target}: {} bits in {bytes} bytes of its {what}: {}{}",
                bytes * bits,
                spans(&areas),
                if kind == FaultKind::StackFlip {
                    " (the live part, from the stack pointer up, when the message comes)"
                } else {
                    ""
                }
            );
        }
    }
    Ok(out)
}

fn spans(ranges: &[abi::manifest::Range]) -> String {
    if ranges.is_empty() {
        return "nothing".into();
    }
    ranges
        .iter()
        .map(|r| format!("{:#x}..{:#x}", r.base, r.base + r.size))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled() -> (Image, Layout) {
        let image = Image::from_bytes("bundled".into(), crate::cli::BUNDLED_GUEST.to_vec())
            .expect("the bundled image");
        let layout = crate::layout::plan(&image, 128 << 20).expect("its layout");
        (image, layout)
    }

    #[test]
    fn listings_count_what_they_leave_out_and_refuse_what_cannot_strike() {
        let (image, layout) = bundled();
        let kv = Target::Server("kv".into());
        let count = |text: &str| -> usize {
            let first = text.lines().next().expect("a count line");
            first
                .strip_prefix("kv: ")
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{first}"))
        };
        let all = listing(&image, &layout, &kv, FaultKind::TextFlip, usize::MAX).expect("sites");
        let n = count(&all);
        assert!(n > 3, "{all}");
        assert_eq!(
            all.lines().count(),
            n + 1,
            "every site listed, nothing more"
        );
        let three = listing(&image, &layout, &kv, FaultKind::TextFlip, 3).expect("sites");
        let lines: Vec<&str> = three.lines().collect();
        assert_eq!(count(&three), n);
        assert_eq!(lines[1..4], all.lines().collect::<Vec<_>>()[1..4]);
        assert_eq!(
            lines[4],
            format!("  ... and {} more (--limit {n} lists them all)", n - 3)
        );
        assert_eq!(lines.len(), 5);
        for kind in [FaultKind::RegFlip, FaultKind::MsgCorrupt, FaultKind::Nop] {
            let e = listing(&image, &layout, &Target::Kernel, kind, 3).expect_err("refused");
            assert!(
                e.contains("takes text-flip and state-flip faults only"),
                "{e}"
            );
        }
        let e = listing(&image, &layout, &kv, FaultKind::Panic, 3).expect_err("a server's own");
        assert!(e.contains("the server executes itself"), "{e}");
    }
}
