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
}

/// What a port write asks of the vCPU loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PioAction {
    /// Resume the guest.
    Continue,
    /// A hypercall with this number: the loop reads the registers and calls the monitor.
    Hypercall(u32),
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

    /// A port read; `data` is filled with the answer.
    pub fn pio_read(&self, port: u16, data: &mut [u8]) -> Result<(), Stop> {
        if serial::claims(port) {
            // The UART's registers are bytes; a string read (`rep insb`) is one read per byte.
            let mut serial = self.serial();
            for byte in data.iter_mut() {
                *byte = serial.read((port - COM1_BASE) as u8);
            }
            return Ok(());
        }
        if i8042::claims(port) {
            i8042::read(port, data);
            return Ok(());
        }
        if self.ours && port == HYPERCALL_PORT {
            return Err(Stop::Protocol(Violation::BadAccess {
                size: data.len(),
                write: false,
            }));
        }
        data.fill(0xff);
        self.unknown(
            &self.counters.unknown_pio,
            Violation::UnknownPort { port, write: false },
        )
    }

    /// A port write.
    pub fn pio_write(&self, port: u16, data: &[u8]) -> Result<PioAction, Stop> {
        if serial::claims(port) {
            // A string write (`rep outsb`) arrives as many bytes in one exit: one write each.
            let mut serial = self.serial();
            for &byte in data {
                // Only the interrupt trigger can fail; a lost interrupt must not stop the guest.
                let _ = serial.write((port - COM1_BASE) as u8, byte);
            }
            return Ok(PioAction::Continue);
        }
        if i8042::claims(port) {
            return match i8042::write(port, data) {
                I8042Action::Reset => Err(Stop::Reset),
                I8042Action::None => Ok(PioAction::Continue),
            };
        }
        if self.ours && port == HYPERCALL_PORT {
            return match <[u8; 4]>::try_from(data) {
                Ok(word) => Ok(PioAction::Hypercall(u32::from_le_bytes(word))),
                Err(_) => Err(Stop::Protocol(Violation::BadAccess {
                    size: data.len(),
                    write: true,
                })),
            };
        }
        self.unknown(
            &self.counters.unknown_pio,
            Violation::UnknownPort { port, write: true },
        )?;
        Ok(PioAction::Continue)
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
        );
        Bus::new(s, ours, strict, Arc::default())
    }

    #[test]
    fn plain_images_count_unknown_accesses_and_read_all_ones() {
        let b = bus(false, false);
        let mut d = [0u8; 4];
        b.pio_read(0x99, &mut d).expect("ignored");
        assert_eq!(d, [0xff; 4]);
        assert_eq!(
            b.pio_write(HYPERCALL_PORT, &[1, 0, 0, 0])
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
                b.pio_write(0x99, &[0]),
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
            b.pio_write(HYPERCALL_PORT, &[2, 0, 0, 0]).expect("call"),
            PioAction::Hypercall(2)
        );
        assert!(matches!(
            b.pio_write(HYPERCALL_PORT, &[2]),
            Err(Stop::Protocol(Violation::BadAccess {
                size: 1,
                write: true
            }))
        ));
        assert!(matches!(
            b.pio_read(HYPERCALL_PORT, &mut [0; 4]),
            Err(Stop::Protocol(Violation::BadAccess { write: false, .. }))
        ));
    }

    #[test]
    fn i8042_reset_stops_and_serial_output_flows() {
        let b = bus(false, false);
        assert!(matches!(b.pio_write(0x64, &[0xfe]), Err(Stop::Reset)));
        b.pio_write(COM1_BASE, b"x").expect("serial");
        b.pio_write(COM1_BASE, b"yz").expect("string write");
        assert_eq!(b.serial().writer().inner().as_slice(), b"xyz");
    }
}
