//! Routes the vCPU's port-I/O and MMIO exits to devices.

use super::i8042::{self, I8042Action};
use super::serial::{self, COM1_BASE, SharedSerial};
use crate::outcome::{Stop, Violation};
use abi::hypercall::HYPERCALL_PORT;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, MutexGuard};

/// Accesses nobody claimed (plain images without `--strict-io`), reported at exit.
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Port reads and writes.
    pub unknown_pio: AtomicU64,
    /// MMIO reads and writes.
    pub unknown_mmio: AtomicU64,
    /// Bytes of the guest's console output that could not be written (stdout full or closed).
    pub console_lost: Arc<AtomicU64>,
}

/// What a port write asks of the vCPU loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PioAction {
    /// Resume the guest.
    Continue,
    /// A hypercall with this number: the loop reads the registers and calls the monitor.
    Hypercall(u32),
}

/// The width of one access of an exit that moved `len` bytes: 1, 2 or 4, dividing `len`
/// (KVM reports them so; anything else is refused rather than guessed at).
fn access_width(width: usize, len: usize) -> Option<usize> {
    matches!(width, 1 | 2 | 4)
        .then_some(width)
        .filter(|w| len > 0 && len.is_multiple_of(*w))
}

/// The devices behind the exits.
#[derive(Debug)]
pub struct Bus<W: Write> {
    serial: SharedSerial<W>,
    /// Our images: the hypercall port is live and unknown accesses are violations.
    ours: bool,
    /// Plain images: unknown accesses stop the VM instead of being counted.
    strict: bool,
    counters: Arc<IoCounters>,
}

impl<W: Write> Bus<W> {
    /// A bus for an image of our kind (`ours`) or a plain one.
    pub fn new(
        serial: SharedSerial<W>,
        ours: bool,
        strict: bool,
        counters: Arc<IoCounters>,
    ) -> Self {
        Self {
            serial,
            ours,
            strict,
            counters,
        }
    }

    fn serial(&self) -> MutexGuard<'_, serial::SerialDevice<W>> {
        // panic = "abort": a holder can never panic while holding the lock, so it is never poisoned.
        self.serial.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn unknown(&self, counter: &AtomicU64, violation: Violation) -> Result<(), Stop> {
        if self.ours || self.strict {
            return Err(Stop::Protocol(violation));
        }
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A port read of `data.len() / width` accesses of `width` bytes each (`in al/ax/eax` is
    /// one access of 1, 2 or 4 bytes; string I/O such as `rep insb` repeats one access): `data` is
    /// filled with the answers. A wide access to a byte-wide device reads its consecutive
    /// registers, as the bus splits it on a PC (`in ax, dx` at COM1's base reads RBR and IER).
    pub fn pio_read(&self, port: u16, width: usize, data: &mut [u8]) -> Result<(), Stop> {
        if self.ours && port == HYPERCALL_PORT {
            return Err(Stop::Protocol(Violation::BadAccess {
                size: data.len(),
                write: false,
            }));
        }
        let Some(width) = access_width(width, data.len()) else {
            data.fill(0xff);
            return self.unknown(
                &self.counters.unknown_pio,
                Violation::UnknownPort { port, write: false },
            );
        };
        for access in data.chunks_mut(width) {
            self.read_access(port, access)?;
        }
        Ok(())
    }

    fn read_access(&self, port: u16, bytes: &mut [u8]) -> Result<(), Stop> {
        if serial::claims(port) {
            let mut serial = self.serial();
            for (i, byte) in bytes.iter_mut().enumerate() {
                let p = port.wrapping_add(i as u16);
                *byte = if serial::claims(p) {
                    serial.read((p - COM1_BASE) as u8)
                } else {
                    0xff
                };
            }
            return Ok(());
        }
        if i8042::claims(port) {
            i8042::read(port, bytes);
            return Ok(());
        }
        bytes.fill(0xff);
        self.unknown(
            &self.counters.unknown_pio,
            Violation::UnknownPort { port, write: false },
        )
    }

    /// A port write of `data.len() / width` accesses of `width` bytes each (see
    /// [`Bus::pio_read`]). A hypercall is exactly one 4-byte `out` to the hypercall port.
    pub fn pio_write(&self, port: u16, width: usize, data: &[u8]) -> Result<PioAction, Stop> {
        if self.ours && port == HYPERCALL_PORT {
            return match <[u8; 4]>::try_from(data) {
                Ok(word) if width == 4 => Ok(PioAction::Hypercall(u32::from_le_bytes(word))),
                _ => Err(Stop::Protocol(Violation::BadAccess {
                    size: data.len(),
                    write: true,
                })),
            };
        }
        let Some(width) = access_width(width, data.len()) else {
            self.unknown(
                &self.counters.unknown_pio,
                Violation::UnknownPort { port, write: true },
            )?;
            return Ok(PioAction::Continue);
        };
        for access in data.chunks(width) {
            self.write_access(port, access)?;
        }
        Ok(PioAction::Continue)
    }

    fn write_access(&self, port: u16, bytes: &[u8]) -> Result<(), Stop> {
        if serial::claims(port) {
            let mut serial = self.serial();
            for (i, &byte) in bytes.iter().enumerate() {
                let p = port.wrapping_add(i as u16);
                if serial::claims(p) {
                    // Only the interrupt trigger can fail; a lost interrupt must not stop the
                    // guest.
                    let _ = serial.write((p - COM1_BASE) as u8, byte);
                }
            }
            return Ok(());
        }
        if i8042::claims(port) {
            return match i8042::write(port, bytes) {
                I8042Action::Reset => Err(Stop::Reset),
                I8042Action::None => Ok(()),
            };
        }
        self.unknown(
            &self.counters.unknown_pio,
            Violation::UnknownPort { port, write: true },
        )
    }

    /// An MMIO read (no MMIO device exists: all ones, or a violation).
    pub fn mmio_read(&self, addr: u64, data: &mut [u8]) -> Result<(), Stop> {
        data.fill(0xff);
        self.unknown(
            &self.counters.unknown_mmio,
            Violation::UnmappedMmio { addr, write: false },
        )
    }

    /// An MMIO write (ignored, or a violation).
    pub fn mmio_write(&self, addr: u64, _data: &[u8]) -> Result<(), Stop> {
        self.unknown(
            &self.counters.unknown_mmio,
            Violation::UnmappedMmio { addr, write: true },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EventFd;

    fn bus(ours: bool, strict: bool) -> Bus<Vec<u8>> {
        let drained = serial::InputDrained {
            fd: EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"),
            waiting: Arc::default(),
        };
        let s = serial::new_serial(
            EventFd::new(libc::EFD_NONBLOCK).expect("eventfd"),
            drained,
            Vec::new(),
            Arc::default(),
        );
        Bus::new(s, ours, strict, Arc::default())
    }

    #[test]
    fn plain_images_count_unknown_accesses_and_read_all_ones() {
        let b = bus(false, false);
        let mut d = [0u8; 4];
        b.pio_read(0x99, 4, &mut d).expect("ignored");
        assert_eq!(d, [0xff; 4]);
        assert_eq!(
            b.pio_write(HYPERCALL_PORT, 4, &[1, 0, 0, 0])
                .expect("not a monitor"),
            PioAction::Continue
        );
        b.mmio_read(0xd000_0000, &mut d).expect("ignored");
        assert_eq!(d, [0xff; 4]);
        b.mmio_write(0xd000_0000, &d).expect("ignored");
        assert_eq!(b.counters.unknown_pio.load(Ordering::Relaxed), 2);
        assert_eq!(b.counters.unknown_mmio.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn strict_and_our_images_stop_on_unknown_accesses() {
        for b in [bus(false, true), bus(true, false)] {
            assert!(matches!(
                b.pio_write(0x99, 1, &[0]),
                Err(Stop::Protocol(Violation::UnknownPort { port: 0x99, .. }))
            ));
            assert!(matches!(
                b.mmio_read(0xd000_0000, &mut [0; 4]),
                Err(Stop::Protocol(_))
            ));
        }
    }

    #[test]
    fn hypercall_port_takes_4_byte_writes_only() {
        let b = bus(true, false);
        assert_eq!(
            b.pio_write(HYPERCALL_PORT, 4, &[2, 0, 0, 0]).expect("call"),
            PioAction::Hypercall(2)
        );
        assert!(matches!(
            b.pio_write(HYPERCALL_PORT, 1, &[2]),
            Err(Stop::Protocol(Violation::BadAccess {
                size: 1,
                write: true
            }))
        ));
        assert!(matches!(
            b.pio_read(HYPERCALL_PORT, 4, &mut [0; 4]),
            Err(Stop::Protocol(Violation::BadAccess { write: false, .. }))
        ));
    }

    #[test]
    fn i8042_reset_stops_and_serial_output_flows() {
        let b = bus(false, false);
        assert!(matches!(b.pio_write(0x64, 1, &[0xfe]), Err(Stop::Reset)));
        b.pio_write(COM1_BASE, 1, b"x").expect("serial");
        b.pio_write(COM1_BASE, 1, b"yz").expect("string write");
        assert_eq!(b.serial().writer().inner().as_slice(), b"xyz");
    }

    #[test]
    fn accesses_keep_their_width() {
        let b = bus(true, false);
        // A 4-byte `rep outsb` (four 1-byte accesses) is not a hypercall.
        assert!(matches!(
            b.pio_write(HYPERCALL_PORT, 1, &[2, 0, 0, 0]),
            Err(Stop::Protocol(Violation::BadAccess { size: 4, .. }))
        ));
        assert!(matches!(
            b.pio_write(HYPERCALL_PORT, 2, &[2, 0, 0, 0]),
            Err(Stop::Protocol(Violation::BadAccess { .. }))
        ));
        // A 2-byte write at COM1's base writes THR then IER: one byte of output, not two.
        b.pio_write(COM1_BASE, 2, b"a\0").expect("word write");
        assert_eq!(b.serial().writer().inner().as_slice(), b"a");
        // A 2-byte read at the line status register reads LSR and MSR, never the receive
        // buffer twice.
        let mut lsr = [0u8; 2];
        b.pio_read(COM1_BASE + 5, 2, &mut lsr).expect("word read");
        assert_ne!(lsr[0] & 0x20, 0, "THR empty: {lsr:?}");
        // A string of 2-byte accesses is split per access.
        b.pio_write(COM1_BASE, 2, b"b\0c\0").expect("rep outsw");
        assert_eq!(b.serial().writer().inner().as_slice(), b"abc");
        // Widths KVM never reports are refused, not guessed at.
        let plain = bus(false, false);
        let mut d = [0u8; 3];
        plain.pio_read(COM1_BASE, 2, &mut d).expect("counted");
        assert_eq!(d, [0xff; 3]);
        plain.pio_write(COM1_BASE, 3, b"xyz").expect("counted");
        assert_eq!(plain.counters.unknown_pio.load(Ordering::Relaxed), 2);
        assert!(plain.serial().writer().inner().is_empty());
    }
}
