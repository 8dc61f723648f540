//! Safe output files: every file the library writes goes to a temporary file beside its target,
//! is synced to disk and then renamed over the target, so a crash, a full disk or a second writer
//! never leaves a half-written or spliced file, and an old file survives a failed write. Also the
//! identity test ([`same_file`]) that keeps an output from overwriting an input under another name.

use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A temporary path in `path`'s folder, unique to this process and call: `.NAME.PID-N.tmp`.
pub fn temp_beside(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    path.with_file_name(format!(".{name}.{}-{n}.tmp", std::process::id()))
}

/// Syncs the finished temporary file `tmp` to disk and renames it to `path` (then syncs the
/// folder, where the platform allows). On failure `tmp` is removed and `path` is untouched.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    let synced = std::fs::File::open(tmp).and_then(|f| f.sync_all());
    let renamed = synced.and_then(|()| std::fs::rename(tmp, path));
    if let Err(e) = renamed {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::io(path, e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: a folder cannot be opened for syncing on every platform.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Writes `path` through a temporary file: `write` fills the temporary path, then [`commit`].
/// A failed `write` removes the temporary file and leaves `path` as it was.
pub fn write_atomic(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temp_beside(path);
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    commit(&tmp, path)
}

/// Whether `a` and `b` name the same file: the same device and inode on Unix (so hard links,
/// symbolic links and other spellings of a path are caught), the same canonical path elsewhere.
/// A path that does not exist is no other file.
pub fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        match (a.canonicalize(), b.canonicalize()) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_keeps_the_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.wav");
        std::fs::write(&path, b"old").unwrap();
        let r = write_atomic(&path, |tmp| {
            std::fs::write(tmp, b"half").unwrap();
            Err(Error::input("x", "disk full"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic(&path, |tmp| {
            std::fs::write(tmp, b"new").map_err(|e| Error::io(tmp, e))
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn hard_and_symbolic_links_are_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.wav");
        std::fs::write(&a, b"x").unwrap();
        let hard = dir.path().join("hard.wav");
        std::fs::hard_link(&a, &hard).unwrap();
        assert!(same_file(&a, &hard));
        #[cfg(unix)]
        {
            let soft = dir.path().join("soft.wav");
            std::os::unix::fs::symlink(&a, &soft).unwrap();
            assert!(same_file(&soft, &a));
        }
        let other = dir.path().join("other.wav");
        std::fs::write(&other, b"x").unwrap();
        assert!(!same_file(&a, &other));
        assert!(!same_file(&a, &dir.path().join("missing.wav")));
    }

    #[test]
    fn temporary_names_are_unique_and_beside_the_target() {
        let p = Path::new("/some/dir/out.wav");
        let (a, b) = (temp_beside(p), temp_beside(p));
        assert_ne!(a, b);
        assert_eq!(a.parent(), p.parent());
    }
}
