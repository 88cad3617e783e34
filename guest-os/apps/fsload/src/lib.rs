//! fsload's mix: one file of its own ([`FILE`], made first), written 60 % and read 40 %, within
//! its first [`FILE_SPAN`] bytes. The workload never names that file.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{TaskId, Transport};
use fs_api::Fs;
use load::{Mix, Rng, Tally};

/// fsload's file.
pub const FILE: &[u8] = b"load";
/// Bytes of the file fsload writes into.
pub const FILE_SPAN: usize = 128;

/// The mix, and what fsload believes its file holds: (handle, size, bytes).
#[derive(Debug)]
pub struct FsMix {
    fs: Fs,
    rng: Rng,
    file: Option<(u64, usize, [u8; FILE_SPAN])>,
    made: u64,
}

impl Mix for FsMix {
    fn new(server: TaskId) -> Self {
        Self {
            fs: Fs::new(server),
            rng: Rng::new(0x9e37_79b9 ^ 2),
            file: None,
            made: 0,
        }
    }

    fn step(&mut self, t: &mut impl Transport, tally: &mut Tally) {
        self.made += 1;
        let Some((handle, size, data)) = self.file else {
            let got = self.fs.create(t, FILE);
            if let Ok(handle) = got {
                self.file = Some((handle, 0, [0; FILE_SPAN]));
            } else {
                tally.check(got.map(|_| ()), Ok(()));
            }
            return;
        };
        let offset = self.rng.below((FILE_SPAN - fs_api::WRITE_CHUNK) as u64) as usize;
        if self.rng.below(100) < 60 {
            let len = 1 + self.rng.below(fs_api::WRITE_CHUNK as u64) as usize;
            let byte = self.made as u8;
            let bytes = [byte; fs_api::WRITE_CHUNK];
            let got = self.fs.write(t, handle, offset, &bytes[..len]);
            let end = size.max(offset + len);
            if tally.check(got, Ok(end)) {
                let mut data = data;
                data[offset..offset + len].copy_from_slice(&bytes[..len]);
                self.file = Some((handle, end, data));
            }
        } else {
            let mut out = [0u8; fs_api::READ_CHUNK];
            let got = self.fs.read(t, handle, offset, &mut out);
            let n = fs_api::READ_CHUNK.min(size.saturating_sub(offset));
            let same = got.map(|g| g == n && out[..n] == data[offset..offset + n]);
            tally.check(same, Ok(true));
        }
    }

    fn forget(&mut self) {
        self.file = None;
    }

    fn retries(&self) -> u64 {
        self.fs.0.ep.retries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn checks_out_against_the_real_server_logic() {
        let mut fs = Box::new(fs::Files::new_zeroed());
        let (f, _) = load::run_against::<FsMix>(2000, |m| fs.handle(m));
        assert_eq!(
            (f.ops, f.errors, f.mismatches, f.lost),
            (2000, 0, 0, 0),
            "{f:?}"
        );
    }
}
