//! The image cache directory (default `<dir of kernels.toml>/images`, overridable with
//! `--images` / `HARNESS_IMAGES`):
//!
//! ```text
//! debs/<sha256>.deb                    downloaded packages, verified against kernels.lock
//! kernels/<key>/vmlinux                PVH-bootable kernel ELF (absent for local vmlinux kernels)
//! kernels/<key>/vmlinux.btf            raw .BTF section
//! kernels/<key>/config                 the kernel's .config (when the packages carry it)
//! kernels/<key>/release                `uname -r`
//! kernels/<key>/meta.json              what was built from what (KernelMeta)
//! locks/<key>.lock                     flock: one builder per key across processes
//! tmp/                                 work in progress, renamed into place whole
//! ```
//!
//! `<key>` is the SHA-256 of the locked kernel package (of the package hashes when a kernel
//! needs several), or of the local vmlinux/vmlinuz file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

/// Environment variable overriding the cache location.
pub const IMAGES_ENV: &str = "HARNESS_IMAGES";

/// `$HARNESS_IMAGES`; else `images/` next to the matrix file when that directory exists (this
/// repository keeps one); else `harness/images` in the user's cache directory, which suits an
/// installed tool run from a user's own repository.
pub fn default_cache_dir(matrix_path: &Path) -> PathBuf {
    if let Some(d) = std::env::var_os(IMAGES_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = match matrix_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let beside = base.join("images");
    if beside.is_dir() {
        return beside;
    }
    crate::fsutil::user_cache_dir().join("harness/images")
}

/// Paths inside the cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn debs_dir(&self) -> PathBuf {
        self.root.join("debs")
    }
    pub fn deb_path(&self, sha256: &str) -> PathBuf {
        self.debs_dir().join(format!("{sha256}.deb"))
    }
    pub fn kernel_dir(&self, key: &str) -> PathBuf {
        self.root.join("kernels").join(key)
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Creates the cache's directories.
    pub fn ensure_dirs(&self) -> io::Result<()> {
        for d in ["debs", "kernels", "locks", "tmp"] {
            std::fs::create_dir_all(self.root.join(d))?;
        }
        Ok(())
    }

    /// Takes the exclusive lock for `key`: `Ok(lock)` at once when free, else calls `waiting`
    /// and blocks until the holder (another thread or process) releases it.
    pub fn lock(&self, key: &str, waiting: impl FnOnce()) -> io::Result<Flock<File>> {
        std::fs::create_dir_all(self.root.join("locks"))?;
        let path = self.root.join("locks").join(format!("{key}.lock"));
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        };
        match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(l) => Ok(l),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                waiting();
                Flock::lock(open()?, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))
            }
            Err((_, e)) => Err(io::Error::from(e)),
        }
    }
}

pub use crate::fsutil::write_atomic;

/// Lowercase hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Whether `path` is exactly the file the lock describes (size first, as a cheap filter).
pub fn file_matches(path: &Path, size: u64, sha256: &str) -> io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.len() == size => Ok(sha256_file(path)?.eq_ignore_ascii_case(sha256)),
        Ok(_) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_hash() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"abc").unwrap();
        write_atomic(&p, b"abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&p).unwrap(), sha);
        assert!(file_matches(&p, 3, sha).unwrap());
        assert!(!file_matches(&p, 4, sha).unwrap());
        assert!(!file_matches(&d.path().join("none"), 3, sha).unwrap());
        std::fs::write(&p, b"abd").unwrap();
        assert!(!file_matches(&p, 3, sha).unwrap());
        // Only the file itself is left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn lock_serializes_holders() {
        let d = tempfile::tempdir().unwrap();
        let c = Cache::new(d.path());
        let l1 = c.lock("k", || panic!("free lock must not wait")).unwrap();
        let c2 = c.clone();
        let waited = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let w2 = waited.clone();
        let t = std::thread::spawn(move || {
            let _l = c2
                .lock("k", || w2.store(true, std::sync::atomic::Ordering::SeqCst))
                .unwrap();
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        drop(l1);
        t.join().unwrap();
        assert!(waited.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[test]
    fn default_dir() {
        if std::env::var_os(IMAGES_ENV).is_none() {
            let repo = tempfile::tempdir().unwrap();
            std::fs::create_dir(repo.path().join("images")).unwrap();
            assert_eq!(
                default_cache_dir(&repo.path().join("kernels.toml")),
                repo.path().join("images")
            );
            let user = tempfile::tempdir().unwrap();
            assert_eq!(
                default_cache_dir(&user.path().join("kernels.toml")),
                crate::fsutil::user_cache_dir().join("harness/images")
            );
        }
    }
}
