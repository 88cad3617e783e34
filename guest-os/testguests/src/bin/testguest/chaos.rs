//! `mode=chaos chaos=SEED`: a hostile guest. From the seed, up to 200 steps, each either
//! garbage written into the monitor page or a hypercall with a random number and arguments
//! (addresses inside guest memory, in the monitor page, or anywhere). The VMM must end it with
//! a documented status, one line, within its timeout: never a panic, a hang or a crash of its
//! own. Survives all 200 steps: exit 0.

use crate::manifest::MANIFEST;
use bare::hypercall;
use bare::serial;

/// xorshift64*: small, and the same on every run for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Runs the chaos for `seed`.
pub fn chaos(seed: u64) -> ! {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let page = MANIFEST.desc.monitor_page;
    serial::line(b"chaos: start");
    for _ in 0..200 {
        if rng.below(10) < 3 {
            // Garbage in the monitor page, where the VMM reads the guest's records.
            for _ in 0..rng.below(16) + 1 {
                let offset = rng.below(4096 / 8) * 8;
                let ptr = (page + offset) as *mut u64;
                // SAFETY: the monitor page is the manifest's, identity-mapped by the VMM's boot
                // tables; writing garbage into it is this mode's purpose.
                unsafe { ptr.write_volatile(rng.next()) };
            }
            continue;
        }
        // Mostly calls that go on (a LOG of a few bytes of the image), so that a run gets
        // deep; then the records the VMM reads from the page, any call, any number.
        if rng.below(2) == 0 {
            hypercall::call(2, [0x10_0000 + rng.below(4096), rng.below(64), 0, 0]);
            continue;
        }
        let number = match rng.below(4) {
            0 => rng.next() as u32,
            _ => rng.below(12) as u32,
        };
        let mut arg = || match rng.below(4) {
            0 => rng.below(16 << 20),
            1 => page + rng.below(4096),
            2 => rng.below(2048),
            _ => rng.next(),
        };
        let args = [arg(), arg(), arg(), arg()];
        // An EXIT with a random status stops the run with it (if it is a guest status).
        hypercall::call(number, args);
    }
    serial::line(b"chaos: survived");
    hypercall::exit(0)
}
