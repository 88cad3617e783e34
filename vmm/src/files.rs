//! Writing result files safely: whole or not at all (a temporary file in the same directory,
//! synced, then renamed over the target), and never over something that is not a regular file
//! (a directory, a symlink, a device or pipe keeps what it is; the write is refused).

use std::io::Write;
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

/// Writes `bytes` to `path` atomically; refused when `path` is there but not a regular file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    check_replaceable(path)?;
    // tempfile's errors name the temporary file; the caller names the file asked for.
    let plain = |e: std::io::Error| std::io::Error::from(e.kind());
    let mut tmp = tempfile::NamedTempFile::new_in(parent_dir(path)).map_err(plain)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| plain(e.error))?;
    Ok(())
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
}
