//! The file server's state and request handling (interface: `fs-api`): [`FILES`] files of at
//! most [`FILE_MAX`] bytes. Bytes past a file's size are always zero, so a write past the end
//! leaves a zero-filled gap. A handle is the file's slot and its generation, which unlinking
//! bumps, so an old handle can never reach a new file.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use abi::ipc::{MSG_WORDS, Message, REPLY_OK, pack_bytes, unpack_bytes};
use fs_api::{FILE_MAX, FILES, READ_CHUNK, WRITE_CHUNK, code, op};
use zerocopy::FromZeros;

/// One file.
#[derive(Clone, Copy, Debug, FromZeros)]
#[repr(C)]
pub struct File {
    used: u64,
    generation: u64,
    name: [u64; 2],
    size: u64,
    data: [u8; FILE_MAX],
}

/// The whole server state.
#[derive(Debug, FromZeros)]
#[repr(C)]
pub struct Files {
    files: [File; FILES],
}

fn ok(words: [u64; MSG_WORDS]) -> Result<Message, u64> {
    Ok(Message::new(REPLY_OK, words))
}

impl Files {
    fn by_name(&self, name: [u64; 2]) -> Option<usize> {
        self.files
            .iter()
            .position(|f| f.used != 0 && f.name == name)
    }

    fn by_handle(&mut self, handle: u64) -> Result<&mut File, u64> {
        let slot = (handle & 0xffff_ffff) as usize;
        let f = self.files.get_mut(slot).ok_or(code::STALE)?;
        if f.used == 0 || f.generation != handle >> 32 {
            return Err(code::STALE);
        }
        Ok(f)
    }

    /// Handles one request.
    pub fn handle(&mut self, msg: &Message) -> Message {
        self.dispatch(msg)
            .unwrap_or_else(|code| Message::new(code, [0; MSG_WORDS]))
    }

    fn dispatch(&mut self, msg: &Message) -> Result<Message, u64> {
        let w = msg.words;
        let name = [w[0], w[1]];
        match msg.label {
            op::CREATE => {
                if name[0] & 0xff == 0 {
                    return Err(code::BAD_REQUEST);
                }
                if self.by_name(name).is_some() {
                    return Err(code::EXISTS);
                }
                let slot = self
                    .files
                    .iter()
                    .position(|f| f.used == 0)
                    .ok_or(code::FULL)?;
                let f = &mut self.files[slot];
                f.used = 1;
                f.generation += 1;
                f.name = name;
                f.size = 0;
                f.data = [0; FILE_MAX];
                ok([slot as u64 | (f.generation << 32), 0, 0, 0, 0, 0])
            }
            op::OPEN => {
                let slot = self.by_name(name).ok_or(code::NOT_FOUND)?;
                let f = &self.files[slot];
                ok([slot as u64 | (f.generation << 32), f.size, 0, 0, 0, 0])
            }
            op::WRITE => {
                let f = self.by_handle(w[0])?;
                let (offset, len) = (w[1] as usize, w[2] as usize);
                if len > WRITE_CHUNK {
                    return Err(code::BAD_REQUEST);
                }
                let end = offset
                    .checked_add(len)
                    .filter(|&e| e <= FILE_MAX)
                    .ok_or(code::TOO_BIG)?;
                unpack_bytes(&w[3..6], &mut f.data[offset..end]);
                f.size = f.size.max(end as u64);
                ok([f.size, 0, 0, 0, 0, 0])
            }
            op::READ => {
                let f = self.by_handle(w[0])?;
                let size = f.size as usize;
                let offset = (w[1] as usize).min(size);
                let len = (w[2] as usize).min(READ_CHUNK).min(size - offset);
                let [a, b, c, d, e] = pack_bytes(&f.data[offset..offset + len]);
                ok([len as u64, a, b, c, d, e])
            }
            op::UNLINK => {
                let slot = self.by_name(name).ok_or(code::NOT_FOUND)?;
                let f = &mut self.files[slot];
                f.used = 0;
                f.generation += 1;
                ok([0; MSG_WORDS])
            }
            op::LIST => {
                let start = usize::try_from(w[0]).unwrap_or(FILES).min(FILES);
                let slot = (start..FILES)
                    .find(|&i| self.files[i].used != 0)
                    .ok_or(code::NOT_FOUND)?;
                let f = &self.files[slot];
                ok([slot as u64 + 1, f.name[0], f.name[1], f.size, 0, 0])
            }
            _ => Err(code::BAD_REQUEST),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::ipc::{ClientError, Loopback, TaskId};
    use fs_api::Fs;

    fn err<T>(c: u64) -> Result<T, ClientError> {
        Err(ClientError::Server(c))
    }

    #[test]
    fn files_are_created_written_read_listed_and_unlinked() {
        let mut state = Box::new(Files::new_zeroed());
        let mut t = Loopback(|_, m: &Message| state.handle(m));
        let mut fs = Fs::new(TaskId::new(2, 0));
        let h = fs.create(&mut t, b"notes").expect("created");
        assert_eq!(fs.create(&mut t, b"notes"), err(code::EXISTS));
        assert_eq!(fs.write(&mut t, h, 0, b"hello"), Ok(5));
        assert_eq!(fs.write(&mut t, h, 10, b"world"), Ok(15));
        assert_eq!(
            fs.write(&mut t, h, FILE_MAX - 2, b"abc"),
            err(code::TOO_BIG)
        );
        let mut buf = [0xffu8; 40];
        assert_eq!(fs.read(&mut t, h, 0, &mut buf), Ok(15));
        assert_eq!(&buf[..15], b"hello\0\0\0\0\0world");
        assert_eq!(fs.read(&mut t, h, 100, &mut buf), Ok(0));
        assert_eq!(fs.open(&mut t, b"notes"), Ok((h, 15)));
        let l = fs.list(&mut t, 0).expect("ok").expect("a file");
        assert_eq!((&l.name[..6], l.size), (&b"notes\0"[..], 15));
        assert_eq!(fs.list(&mut t, l.next), Ok(None));
        assert_eq!(fs.unlink(&mut t, b"notes"), Ok(()));
        assert_eq!(fs.read(&mut t, h, 0, &mut buf), err(code::STALE));
        let h2 = fs.create(&mut t, b"notes").expect("again");
        assert_ne!(h, h2);
        assert_eq!(
            fs.read(&mut t, h2, 0, &mut buf),
            Ok(0),
            "a new file starts empty"
        );
        assert_eq!(fs.unlink(&mut t, b"other"), err(code::NOT_FOUND));
    }
}
