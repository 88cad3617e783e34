//! Result files, safely. Written whole or not at all (a temporary file in the same directory,
//! synced, then renamed over the target), with the mode an existing file had (and its owner,
//! where allowed) or, for a new file, what the umask leaves of 0666; never over something that
//! is not a regular file (a directory, a symlink, a device or pipe keeps what it is; the write
//! is refused). Read only when regular, opened without blocking (a FIFO is refused, never
//! waited on) and up to a size limit.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The directory a file at `path` goes into (`.` for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Refuses `path` when something other than a regular file is there.
pub fn check_replaceable(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(std::io::Error::other(format!(
            "{} is not a regular file; not replacing it",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// This process's umask (from /proc; 022 if it cannot be read), without changing it.
fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

/// Writes `bytes` to `path` atomically; refused when `path` is there but not a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    check_replaceable(path)?;
    let existing = std::fs::metadata(path).ok();
    // tempfile's errors name the temporary file; the caller names the file asked for.
    let plain = |e: std::io::Error| std::io::Error::from(e.kind());
    let mut tmp = tempfile::NamedTempFile::new_in(parent_dir(path)).map_err(plain)?;
    let mode = existing
        .as_ref()
        .map_or(0o666 & !umask(), |m| m.permissions().mode() & 0o7777);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some(m) = &existing {
        // Keeps the owner where this process may (root); otherwise the file becomes ours.
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(m.uid()), Some(m.gid()));
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| plain(e.error))?;
    Ok(())
}

/// Why an output file (`--report`, `--json`: a path the user names) cannot be written at
/// `path`, checked before the run whose results it is to hold, so that a bad path is reported
/// at once (64), not after the run. Taken: a new path in a directory that takes a new file, a
/// regular file (replaced atomically), a character device or a FIFO (written in place), each
/// through any symlinks. Refused: a path ending in `/`, a directory, a parent that is not a
/// directory, anything else.
pub fn check_output(path: &Path) -> Result<(), String> {
    let shown = path.display();
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(format!("{shown}: ends in /: name a file, not a directory"));
    }
    let new_file_in = |dir: &Path| match tempfile::NamedTempFile::new_in(dir) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!(
            "{shown}: cannot create a file in {}: {}",
            dir.display(),
            e.kind()
        )),
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(format!("{shown} is a directory")),
        Ok(m) if m.is_file() => {
            let real = std::fs::canonicalize(path).map_err(|e| format!("{shown}: {e}"))?;
            new_file_in(&parent_dir(&real))
        }
        Ok(m) if in_place(&m) => Ok(()),
        Ok(_) => Err(format!(
            "{shown} is not a regular file, character device or FIFO"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let target = link_target(path).map_err(|e| format!("{shown}: {e}"))?;
            let dir = parent_dir(&target);
            if !dir.is_dir() {
                return Err(format!(
                    "{shown}: directory {} does not exist",
                    dir.display()
                ));
            }
            new_file_in(&dir)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            Err(format!("{shown}: a parent of it is not a directory"))
        }
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// True for what an output is written into in place: a character device or a FIFO.
fn in_place(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device() || m.file_type().is_fifo()
}

/// Where `path` leads through symlinks (the path itself when it is none; a dangling link's
/// target, which is where a new file goes).
fn link_target(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p)?;
                p = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&p).join(link)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

/// Writes an output file the user named (see [`check_output`]): a regular file or a new path
/// atomically ([`write_atomic`], keeping an old file's mode and owner), a character device or a
/// FIFO in place (a FIFO nobody reads is an error, never a wait), through symlinks (the link
/// stays, its target is written).
pub fn write_output(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => write_atomic(&std::fs::canonicalize(path)?, bytes),
        Ok(m) if in_place(&m) => write_in_place(path, bytes),
        Ok(m) if m.is_dir() => Err(std::io::Error::other("is a directory")),
        Ok(_) => Err(std::io::Error::other(
            "not a regular file, character device or FIFO",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_atomic(&link_target(path)?, bytes)
        }
        Err(e) => Err(e),
    }
}

/// Writes `bytes` into the device or FIFO at `path`: opened without blocking (a FIFO with no
/// reader fails at once), then written blocking.
fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ENXIO) {
                std::io::Error::other("a FIFO nobody reads")
            } else {
                e
            }
        })?;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl(2) F_GETFL/F_SETFL on a descriptor this function owns; no memory is shared.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
    file.write_all(bytes)?;
    file.flush()
}

/// Opens `path` for reading without blocking (opening a FIFO for reading would wait for a
/// writer); whoever reads it checks that it is a regular file before reading.
pub fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Reads the regular file at `path`, at most `limit` bytes: opened without blocking, so that a
/// FIFO (or a device) there is an error at once instead of a wait.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > limit {
        return Err(std::io::Error::other(format!(
            "{} bytes: more than the {limit} read",
            meta.len()
        )));
    }
    let mut out = Vec::with_capacity(meta.len() as usize);
    file.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_replaced_whole_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("r.json");
        std::fs::write(&file, "old").expect("write");
        write_atomic(&file, b"new").expect("replaced");
        assert_eq!(std::fs::read(&file).expect("read"), b"new");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).expect("dir");
        assert!(write_atomic(&sub, b"x").is_err());
        assert!(sub.is_dir());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let e = write_atomic(&link, b"through").expect_err("a symlink");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert_eq!(
            std::fs::read(&file).expect("read"),
            b"new",
            "the link's target kept"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            3,
            "no temp left"
        );
    }

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo(3) on a NUL-terminated path we own; no memory is shared.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn outputs_go_into_devices_and_fifos_in_place_and_through_symlinks() {
        let dir = tempfile::tempdir().expect("tmp");
        // /dev/null takes it and stays a device.
        check_output(Path::new("/dev/null")).expect("a device");
        write_output(Path::new("/dev/null"), b"gone").expect("discarded");
        let m = std::fs::metadata("/dev/null").expect("meta");
        assert!(in_place(&m), "/dev/null is still a device");
        // /dev/full: the write fails, it is not replaced.
        let e = write_output(Path::new("/dev/full"), b"x").expect_err("no space");
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
        // A FIFO nobody reads: an error at once.
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        check_output(&fifo).expect("a FIFO is taken");
        let e = write_output(&fifo, b"x").expect_err("no reader");
        assert!(e.to_string().contains("nobody reads"), "{e}");
        // A FIFO with a reader gets the bytes.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(&fifo).expect("read"))
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match write_output(&fifo, b"report") {
                Ok(()) => break,
                // The reader may not have opened its end yet.
                Err(e) if e.to_string().contains("nobody reads") => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the reader never came"
                    );
                    std::thread::yield_now();
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(reader.join().expect("reader"), b"report");
        // A symlink: followed, the link stays, its target is written; a dangling one creates
        // its target.
        let target = dir.path().join("target.json");
        std::fs::write(&target, "old").expect("write");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        write_output(&link, b"new").expect("through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("made.json", &dangling).expect("symlink");
        check_output(&dangling).expect("a dangling link's target can be made");
        write_output(&dangling, b"made").expect("made");
        assert_eq!(
            std::fs::read(dir.path().join("made.json")).expect("read"),
            b"made"
        );
        // Refused before the run.
        let e = check_output(Path::new("/tmp/newdir.json/")).expect_err("trailing /");
        assert!(e.contains("ends in /"), "{e}");
        let e = check_output(&target.join("x.json")).expect_err("parent is a file");
        assert!(e.contains("not a directory"), "{e}");
        let e = check_output(dir.path()).expect_err("a directory");
        assert!(e.contains("is a directory"), "{e}");
        let e = check_output(&dir.path().join("none/x.json")).expect_err("no directory");
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn modes_follow_the_old_file_or_the_umask() {
        let dir = tempfile::tempdir().expect("tmp");
        let new = dir.path().join("new.json");
        write_atomic(&new, b"x").expect("new");
        let mode = std::fs::metadata(&new).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask(), "a new file: the umask's");
        let old = dir.path().join("old.json");
        std::fs::write(&old, "old").expect("write");
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&old, b"new").expect("replaced");
        let mode = std::fs::metadata(&old).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "an existing file keeps its mode");
    }

    #[test]
    fn reads_refuse_fifos_at_once_and_big_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let e = read_regular(&fifo, 100).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, [b'a'; 200]).expect("write");
        assert!(read_regular(&big, 100).is_err());
        assert_eq!(read_text(&big, 200).expect("read").len(), 200);
        assert!(read_regular(dir.path(), 100).is_err(), "a directory");
    }
}
