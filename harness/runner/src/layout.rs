//! Where a run reads and writes: resolved once from the command line and the environment.

use std::path::{Path, PathBuf};

/// Environment variable overriding the work directory.
pub const WORK_DIR_ENV: &str = "HARNESS_WORK_DIR";

/// Paths the run reads from and writes to.
pub struct Layout {
    pub matrix: PathBuf,
    /// `<matrix stem>.lock` beside the matrix.
    pub lockfile: PathBuf,
    /// `programs/` beside the matrix: scanned when no object or directory is named.
    pub default_programs: PathBuf,
    pub images: PathBuf,
    /// Console logs, built objects and scratch files.
    pub work: PathBuf,
}

impl Layout {
    pub fn new(common: &crate::cli::CommonArgs, work: Option<&Path>) -> Layout {
        let matrix_dir = common
            .matrix
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let images = common
            .images
            .clone()
            .unwrap_or_else(|| crate::images::default_cache_dir(&common.matrix));
        let work = work
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(WORK_DIR_ENV)
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| crate::fsutil::user_cache_dir().join("harness/work"));
        Layout {
            matrix: common.matrix.clone(),
            lockfile: common.matrix.with_extension("lock"),
            default_programs: matrix_dir.join("programs"),
            images,
            work,
        }
    }

    /// Where built objects are cached.
    pub fn object_cache(&self) -> PathBuf {
        self.work.join("objects")
    }
}
