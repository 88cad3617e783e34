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

/// Reads the regular file at `path`, at most `limit` bytes: opened without blocking, so that a
/// FIFO (or a device) there is an error at once instead of a wait.
pub fn read_regular(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
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
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: mkfifo(3) on a NUL-terminated path we own; no memory is shared.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 100).expect_err("a FIFO");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, [b'a'; 200]).expect("write");
        assert!(read_regular(&big, 100).is_err());
        assert_eq!(read_text(&big, 200).expect("read").len(), 200);
        assert!(read_regular(dir.path(), 100).is_err(), "a directory");
    }
}
