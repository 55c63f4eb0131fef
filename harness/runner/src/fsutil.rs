//! File writes that never leave a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes to a temporary file in the same directory, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    write_atomic_in_existing_dir(path, bytes)
}

/// As [`write_atomic`], but the directory must exist: a path the user gave (a report) never
/// makes the harness create directories.
pub fn write_atomic_in_existing_dir(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new().prefix(".tmp.").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The per-user cache directory: `$XDG_CACHE_HOME`, else `~/.cache`, else a folder of the
/// user's own under the system's temporary directory.
pub fn user_cache_dir() -> std::path::PathBuf {
    use std::path::PathBuf;
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return dir;
    }
    if let Some(home) = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
    {
        return home.join(".cache");
    }
    std::env::temp_dir().join(format!("cache-{}", nix::unistd::getuid()))
}

/// Errors that a report path is found to have before the run spends minutes booting guests.
#[derive(Debug, thiserror::Error)]
pub enum ReportPathError {
    #[error("{}: the directory {} does not exist (create it first; the harness does not)", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("{}: is a directory", path.display())]
    IsDirectory { path: PathBuf },
    #[error("{}: cannot write in {}: {cause}", path.display(), dir.display())]
    NotWritable {
        path: PathBuf,
        dir: PathBuf,
        cause: std::io::Error,
    },
}

/// Checks that `path` can be written as [`write_atomic`] writes it (a temporary file next to it,
/// renamed over it), creating nothing that stays: its directory must already exist.
pub fn check_writable(path: &Path) -> Result<(), ReportPathError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(ReportPathError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    if path.is_dir() {
        return Err(ReportPathError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let probe = tempfile::Builder::new()
        .prefix(".tmp.")
        .tempfile_in(dir)
        .map_err(|cause| ReportPathError::NotWritable {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            cause,
        })?;
    drop(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_paths_are_checked_without_creating_anything() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(check_writable(&tmp.path().join("r.json")).is_ok());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

        let missing = tmp.path().join("nonexistent/dir/r.json");
        let e = check_writable(&missing).unwrap_err();
        assert!(matches!(e, ReportPathError::NoDirectory { .. }), "{e}");
        assert!(!tmp.path().join("nonexistent").exists());

        let e = check_writable(tmp.path()).unwrap_err();
        assert!(matches!(e, ReportPathError::IsDirectory { .. }), "{e}");

        let e = check_writable(Path::new("/proc/r.json")).unwrap_err();
        assert!(matches!(e, ReportPathError::NotWritable { .. }), "{e}");
    }
}
