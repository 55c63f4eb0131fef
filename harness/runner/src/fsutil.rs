//! File writes that never leave a half-written file behind.

use std::io::Write;
use std::path::Path;

/// Writes to a temporary file in the same directory, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
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
