//! The isolation check (`--check-isolation`): every other server's state arena is hashed
//! before and after a restore, and must come out the same, unless it was rolled back as part of
//! the consistent cut. A test instrument: its time is reported apart from the recovery's.

use crate::memory::GuestMemory;
use crate::recovery::server::Server;
use snapshot::PAGE_SIZE;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};
use vm_memory::Bytes;

/// Hashes of the state arena of every server but `except`, and how long hashing took.
pub(super) fn hashes(mem: &GuestMemory, servers: &[Server], except: usize) -> (Vec<u64>, Duration) {
    let started = Instant::now();
    let mut hashes = Vec::new();
    let mut page = vec![0u8; PAGE_SIZE];
    for (i, server) in servers.iter().enumerate().filter(|(i, _)| *i != except) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        if let Ok(region) = server.region(mem) {
            for p in 0..server.store.pages() {
                let addr = vm_memory::MemoryRegionAddress((p * PAGE_SIZE) as u64);
                if region.read_slice(&mut page, addr).is_ok() {
                    page.hash(&mut h);
                }
            }
        }
        (i, h.finish()).hash(&mut h);
        hashes.push(h.finish());
    }
    (hashes, started.elapsed())
}

/// True when every server but `except` hashed the same `before` and `after`, or is in `cut`
/// (the peers rolled back with it).
pub(super) fn intact(
    servers: usize,
    except: usize,
    before: &[u64],
    after: &[u64],
    cut: &[(usize, u64)],
) -> bool {
    (0..servers)
        .filter(|&i| i != except)
        .zip(before.iter().zip(after))
        .all(|(i, (x, y))| x == y || cut.iter().any(|(p, _)| *p == i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cut_may_change() {
        // Four servers, 1 crashed: hashes are of 0, 2, 3.
        let before = [10, 20, 30];
        assert!(intact(4, 1, &before, &[10, 20, 30], &[]));
        assert!(!intact(4, 1, &before, &[10, 21, 30], &[]), "2 changed");
        assert!(
            intact(4, 1, &before, &[10, 21, 30], &[(2, 5)]),
            "2 is in the cut"
        );
        assert!(!intact(4, 1, &before, &[11, 21, 30], &[(2, 5)]), "0 is not");
        assert!(!intact(4, 1, &before, &[10, 20, 31], &[(1, 5)]), "3 is not");
    }
}
