//! The in-memory file server `fs`: its interface, defined once.
//!
//! Files have names of 1 to 16 bytes and hold at most [`FILE_MAX`] bytes; data moves in
//! register-sized chunks (24 bytes per WRITE, 40 per READ). A handle names one file until it
//! is unlinked (a handle to an unlinked file is `STALE`, even if the name is reused).
//!
//! ```text
//!  op      label  request words                     reply words (label 0 = ok)
//!  CREATE  1      name[2]                           handle
//!  OPEN    2      name[2]                           handle, size
//!  WRITE   3      handle, offset, len, data[3]      new size
//!  READ    4      handle, offset, len               len, data[5]
//!  UNLINK  5      name[2]                           -
//!  LIST    6      cursor                            next cursor, name[2], size
//! ```
//!
//! Errors: `NOT_FOUND`, `EXISTS` (CREATE), `FULL` (no free file), `STALE` (handle),
//! `TOO_BIG` (write past [`FILE_MAX`]), `BAD_REQUEST`. A WRITE past the end fills the gap with
//! zeros; a READ past the end returns fewer bytes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{
    Client, ClientError, TaskId, Transport, pack_bytes, pack_name, unpack_bytes, unpack_name,
};

/// The server's name in the system map.
pub const SERVER: &str = "fs";
/// Largest file, in bytes.
pub const FILE_MAX: usize = 1024;
/// Files the server holds.
pub const FILES: usize = 32;
/// Bytes one WRITE carries.
pub const WRITE_CHUNK: usize = 24;
/// Bytes one READ returns.
pub const READ_CHUNK: usize = 40;

abi::declare_requests! {
    server "fs";
    /// Make an empty file.
    CREATE = 1, changes_state;
    /// Handle and size of a file.
    OPEN = 2, idempotent;
    /// Write bytes at an offset.
    WRITE = 3, changes_state, idempotent;
    /// Read bytes at an offset.
    READ = 4, idempotent;
    /// Remove a file.
    UNLINK = 5, changes_state;
    /// The next file from a cursor.
    LIST = 6, idempotent;
}

/// Reply codes other than 0.
pub mod code {
    /// No such file (or nothing left to list).
    pub const NOT_FOUND: u64 = 1;
    /// CREATE of an existing name.
    pub const EXISTS: u64 = 2;
    /// No free file.
    pub const FULL: u64 = 3;
    /// The handle's file was unlinked.
    pub const STALE: u64 = 4;
    /// The write would pass the largest file size.
    pub const TOO_BIG: u64 = 5;
    /// Malformed request.
    pub const BAD_REQUEST: u64 = 6;
}

/// One LIST result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listing {
    /// Where the next LIST starts.
    pub next: u64,
    /// The name, NUL-padded.
    pub name: [u8; 16],
    /// Its size.
    pub size: usize,
}

/// A client of `fs`.
#[derive(Clone, Copy, Debug)]
pub struct Fs(pub Client);

impl Fs {
    /// A client of the server with id `id`.
    pub const fn new(id: TaskId) -> Self {
        Self(Client::new(id))
    }

    /// Creates an empty file; returns its handle.
    pub fn create(&mut self, t: &mut impl Transport, name: &[u8]) -> Result<u64, ClientError> {
        let [a, b] = pack_name(name);
        Ok(self.0.request(t, op::CREATE, [a, b])?[0])
    }

    /// Handle and size of a file.
    pub fn open(
        &mut self,
        t: &mut impl Transport,
        name: &[u8],
    ) -> Result<(u64, usize), ClientError> {
        let [a, b] = pack_name(name);
        let r = self.0.request(t, op::OPEN, [a, b])?;
        Ok((r[0], r[1] as usize))
    }

    /// Writes up to [`WRITE_CHUNK`] bytes at `offset`; returns the new size.
    pub fn write(
        &mut self,
        t: &mut impl Transport,
        handle: u64,
        offset: usize,
        data: &[u8],
    ) -> Result<usize, ClientError> {
        let len = data.len().min(WRITE_CHUNK);
        let [a, b, c] = pack_bytes(&data[..len]);
        let r = self
            .0
            .request(t, op::WRITE, [handle, offset as u64, len as u64, a, b, c])?;
        Ok(r[0] as usize)
    }

    /// Reads up to `out.len()` (at most [`READ_CHUNK`]) bytes at `offset`; returns how many.
    pub fn read(
        &mut self,
        t: &mut impl Transport,
        handle: u64,
        offset: usize,
        out: &mut [u8],
    ) -> Result<usize, ClientError> {
        let want = out.len().min(READ_CHUNK);
        let r = self
            .0
            .request(t, op::READ, [handle, offset as u64, want as u64])?;
        let got = (r[0] as usize).min(want);
        unpack_bytes(&r[1..6], &mut out[..got]);
        Ok(got)
    }

    /// Removes a file.
    pub fn unlink(&mut self, t: &mut impl Transport, name: &[u8]) -> Result<(), ClientError> {
        let [a, b] = pack_name(name);
        self.0.request(t, op::UNLINK, [a, b]).map(|_| ())
    }

    /// The first file at or after `cursor`, or `None` at the end.
    pub fn list(
        &mut self,
        t: &mut impl Transport,
        cursor: u64,
    ) -> Result<Option<Listing>, ClientError> {
        match self.0.request(t, op::LIST, [cursor]) {
            Ok(r) => Ok(Some(Listing {
                next: r[0],
                name: unpack_name([r[1], r[2]]),
                size: r[3] as usize,
            })),
            Err(ClientError::Server(code::NOT_FOUND)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_table_is_well_formed() {
        assert_eq!(REQUESTS.check(), Ok(()));
    }
}
