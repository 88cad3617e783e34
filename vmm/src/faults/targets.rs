//! What a fault can corrupt in an image, by target: a server's code (the executable segments
//! inside the text area its manifest declares), its state (the writable segments inside its
//! state arena: its statics, the part of the arena in use), its stack (its scratch region);
//! the kernel's code and data (the executable and writable segments of the kernel region that
//! no task's area holds). Read from the image and the validated layout; nothing else.

use crate::image::{Image, Segment};
use crate::layout::Layout;
use abi::manifest::Range;

/// The ranges of one target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges {
    /// Its code.
    pub code: Vec<Range>,
    /// Its data (a server's statics in its state arena; the kernel's data and bss).
    pub data: Vec<Range>,
    /// Its stack region (servers; the live part is from the stack pointer up).
    pub stack: Option<Range>,
}

impl Ranges {
    /// True when `addr` lies in one of its code ranges.
    pub fn in_code(&self, addr: u64) -> bool {
        self.code.iter().any(|r| r.contains(addr))
    }

    /// True when `addr` lies in one of its data ranges.
    pub fn in_data(&self, addr: u64) -> bool {
        self.data.iter().any(|r| r.contains(addr))
    }
}

/// Every target of an image: the tasks in manifest order, then the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Targets {
    /// Per task.
    pub tasks: Vec<Ranges>,
    /// The kernel's.
    pub kernel: Ranges,
}

fn range(s: &Segment) -> Range {
    Range::new(s.paddr, s.memsz)
}

/// The part of `segment` inside `area` (segments never straddle an area in our images; one
/// that does is cut to it).
fn inside(segment: &Segment, area: &Range) -> Option<Range> {
    let start = segment.paddr.max(area.base);
    let end = segment.end().min(area.end()?);
    (start < end).then(|| Range::new(start, end - start))
}

/// The targets of `image` as `layout` places it.
pub fn of(image: &Image, layout: &Layout) -> Targets {
    let tasks: Vec<Ranges> = layout
        .servers
        .iter()
        .map(|s| Ranges {
            code: image
                .segments
                .iter()
                .filter(|seg| seg.exec() && s.text.size != 0)
                .filter_map(|seg| inside(seg, &s.text))
                .collect(),
            data: image
                .segments
                .iter()
                .filter(|seg| seg.write())
                .filter_map(|seg| inside(seg, &s.state))
                .collect(),
            stack: Some(s.scratch),
        })
        .collect();
    let owned = |seg: &Segment| {
        layout.servers.iter().any(|s| {
            [s.text, s.state, s.scratch]
                .iter()
                .any(|area| area.size != 0 && area.overlaps(&range(seg)))
        })
    };
    let kernel = Ranges {
        code: image
            .segments
            .iter()
            .filter(|seg| seg.exec() && !owned(seg))
            .map(range)
            .collect(),
        data: image
            .segments
            .iter()
            .filter(|seg| seg.write() && !owned(seg))
            .map(range)
            .collect(),
        stack: None,
    };
    Targets { tasks, kernel }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(paddr: u64, memsz: u64, flags: u32) -> Segment {
        Segment {
            paddr,
            memsz,
            filesz: memsz,
            offset: 0,
            flags,
        }
    }

    #[test]
    fn a_segment_is_cut_to_its_area() {
        let area = Range::new(0x1000, 0x1000);
        let s = seg(0x1800, 0x1000, Segment::EXEC);
        assert_eq!(inside(&s, &area), Some(Range::new(0x1800, 0x800)));
        assert_eq!(inside(&seg(0x3000, 0x10, 0), &area), None);
        let r = Ranges {
            code: vec![Range::new(0x10, 0x10)],
            data: vec![Range::new(0x100, 1)],
            stack: None,
        };
        assert!(r.in_code(0x1f) && !r.in_code(0x20) && r.in_data(0x100) && !r.in_data(0x101));
    }
}
