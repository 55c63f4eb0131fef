//! Kernel images: from a matrix entry (and `kernels.lock`) to a PVH-bootable `vmlinux`, its raw
//! BTF and its config, cached under `images/`.
//!
//! - [`Images::resolve`] (`harness lock`): reads the Debian archive's signed indexes through a
//!   private apt configuration and pins each Debian kernel's packages in a [`Lockfile`].
//! - [`Images::provision`]: makes the image of one kernel available. A warm cache costs a few
//!   file reads: no apt, no network. A cold one downloads the locked `.deb`s (checked against
//!   the lock's SHA-256), extracts `vmlinuz` and `config`, decompresses `vmlinuz` into `vmlinux`,
//!   checks its PVH note and extracts `.BTF`.
//!
//! The `host` kernel needs no image: `provision` refuses it with [`ImageError::HostKernel`];
//! use [`host_kernel`] for its release, BTF and config.

pub mod vmlinux_h;

pub mod apt;
pub mod arm64;
pub mod bzimage;
pub mod cache;
pub mod deb;
pub mod dwarf_btf;
pub mod elf;
pub mod progress;
pub mod source_tree;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::matrix::config::{Arch, DebianSource, KernelEntry, KernelSource, Matrix};
use crate::matrix::lockfile::{self, LockedKernel, LockedPackage, Lockfile, ResolveError};

pub use apt::AptError;
pub use cache::{default_cache_dir, Cache, IMAGES_ENV};
pub use progress::{IndicatifProgress, NoProgress, Progress};

/// A kernel ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelImage {
    /// The matrix kernel name.
    pub name: String,
    /// The uncompressed kernel QEMU boots with `-kernel`: an ELF with a PVH entry note on
    /// x86_64, the raw `Image` on aarch64 (cached as `vmlinux` all the same).
    pub vmlinux: PathBuf,
    /// Raw BTF (`.BTF` section bytes), when the kernel has BTF.
    pub btf: Option<PathBuf>,
    /// `btf` was made from the kernel's DWARF (`btf_from_dwarf`), not carried by the kernel:
    /// the guest gets it in its bundle.
    pub btf_from_dwarf: bool,
    /// The kernel's `.config`, when known.
    pub config: Option<PathBuf>,
    /// `uname -r`.
    pub release: String,
    /// Key of the image in the cache (`kernels/<key>/`).
    pub cache_key: String,
}

/// The running kernel, for `host = true` entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKernel {
    pub release: String,
    /// `/sys/kernel/btf/vmlinux`, when present.
    pub btf: Option<PathBuf>,
    /// `/boot/config-<release>`, when present.
    pub config: Option<PathBuf>,
}

/// The running kernel's release, BTF and config.
pub fn host_kernel() -> Result<HostKernel> {
    let p = Path::new("/proc/sys/kernel/osrelease");
    let release = std::fs::read_to_string(p)
        .map_err(|e| io_err(p, e))?
        .trim()
        .to_string();
    let btf = Some(PathBuf::from("/sys/kernel/btf/vmlinux")).filter(|p| p.exists());
    let config = Some(PathBuf::from(format!("/boot/config-{release}"))).filter(|p| p.exists());
    Ok(HostKernel {
        release,
        btf,
        config,
    })
}

/// What was built into `kernels/<key>/`, recorded in `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelMeta {
    pub format: u32,
    /// `debian`, `vmlinuz` or `vmlinux`.
    pub source: String,
    pub release: String,
    /// `Linux version ...` line of the image.
    pub banner: Option<String>,
    /// Compression of the vmlinuz payload (`xz`, `zstd`, `gzip`, `none`).
    pub compression: String,
    /// Size of `vmlinux` in the cache (`None` when the vmlinux is used in place).
    pub vmlinux_bytes: Option<u64>,
    /// The PVH entry point (x86_64); 0 for an arm64 Image, which is entered at its start.
    pub pvh_entry: u64,
    pub btf: Option<elf::BtfSummary>,
    pub has_config: bool,
    /// The packages it came from (Debian kernels).
    #[serde(default)]
    pub packages: Vec<LockedPackage>,
    /// Each cached file as written: a warm run trusts a file whose size and mtime are unchanged
    /// and re-hashes one whose mtime moved, so a corrupted entry is rebuilt, not booted.
    #[serde(default)]
    pub files: BTreeMap<String, FileStamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub bytes: u64,
    pub mtime_ns: i128,
    pub sha256: String,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        use sha2::Digest;
        let data = std::fs::read(path)?;
        Ok(FileStamp {
            bytes: data.len() as u64,
            mtime_ns: mtime_ns(path)?,
            sha256: hex::encode(sha2::Sha256::digest(&data)),
        })
    }

    /// Whether the file is still the one that was stamped.
    fn matches(&self, path: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(path) else {
            return false;
        };
        if meta.len() != self.bytes {
            return false;
        }
        if mtime_ns(path).ok() == Some(self.mtime_ns) {
            return true;
        }
        use sha2::Digest;
        std::fs::read(path)
            .is_ok_and(|data| hex::encode(sha2::Sha256::digest(&data)) == self.sha256)
    }
}

fn mtime_ns(path: &Path) -> std::io::Result<i128> {
    let modified = std::fs::metadata(path)?.modified()?;
    Ok(match modified.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    })
}

/// The received file's SHA-256 in apt's "Hash Sum mismatch" report, if it gives one.
fn received_sha256(apt_output: &str) -> Option<String> {
    let received = apt_output.split("received").nth(1)?;
    let after = received.split("SHA256:").nth(1)?;
    let hash: String = after
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (hash.len() == 64).then_some(hash)
}

/// 2: per-file stamps.
const META_FORMAT: u32 = 2;

/// Everything that can go wrong getting an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("kernel `{kernel}` is not in {lock}: run `cargo run -p harness -- lock`")]
    NotLocked { kernel: String, lock: String },
    #[error("kernel `{kernel}`: kernels.lock is out of date ({reason}): run `cargo run -p harness -- lock --update {kernel}`")]
    StaleLock { kernel: String, reason: String },
    #[error(
        "kernel `{kernel}`: the pinned package {package} {version} is gone from Debian `{suite}` \
         (no longer on the mirror); pick the current version with \
         `cargo run -p harness -- lock --update {kernel}`"
    )]
    PinnedVersionGone {
        kernel: String,
        package: String,
        version: String,
        suite: String,
    },
    #[error("kernel `{kernel}` is the host kernel: it runs without a VM and needs no image")]
    HostKernel { kernel: String },
    #[error("kernel `{kernel}`: {}: {source}", path.display())]
    BadArm64Image {
        kernel: String,
        path: PathBuf,
        #[source]
        source: arm64::Arm64ImageError,
    },
    #[error("kernel `{kernel}`: none of the packages {packages:?} holds a kernel image (looked for ./boot/vmlinuz-* and ./usr/lib/modules/*/vmlinuz*)")]
    NoKernelInPackages {
        kernel: String,
        packages: Vec<String>,
    },
    #[error("kernel `{kernel}`: {}: {source}", path.display())]
    NotPvh {
        kernel: String,
        path: PathBuf,
        #[source]
        source: elf::ElfError,
    },
    #[error(
        "kernel `{kernel}`: downloaded {package} has SHA-256 {actual}, but kernels.lock says {expected}; \
         nothing was cached. Rerun to retry the download; if it persists the archive changed: \
         re-resolve with `cargo run -p harness -- lock --update {kernel}`"
    )]
    Checksum {
        kernel: String,
        package: String,
        expected: String,
        actual: String,
    },
    #[error("kernel `{kernel}`: {}: {source}", path.display())]
    BadImage {
        kernel: String,
        path: PathBuf,
        #[source]
        source: bzimage::BzImageError,
    },
    #[error("kernel `{kernel}`: {message}")]
    BadElf { kernel: String, message: String },
    #[error(transparent)]
    SourceBuild(#[from] Box<source_tree::SourceBuildError>),
    #[error("kernel `{kernel}`: btf_from_dwarf: {message}")]
    DwarfBtf { kernel: String, message: String },
    #[error(transparent)]
    Apt(#[from] AptError),
    #[error(transparent)]
    Deb(#[from] deb::DebError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

fn io_err(path: &Path, source: std::io::Error) -> ImageError {
    ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Temporaries in the cache: `tmp/kernel.<pid>.*` (an image being built) and
/// `debs/.download.<pid>.*` (a package being downloaded); see [`crate::leftovers`].
const TMP_KERNEL_PREFIX: &str = "kernel.";
const TMP_DOWNLOAD_PREFIX: &str = ".download.";

/// The image cache plus what is needed to fill it.
pub struct Images {
    cache: Cache,
    mirror: Option<String>,
    keyring: PathBuf,
    matrix_path: PathBuf,
}

impl Images {
    /// `cache_dir`: usually [`default_cache_dir`]`(&matrix.path)` or `--images`. Touches nothing
    /// until used.
    pub fn new(cache_dir: impl Into<PathBuf>, matrix: &Matrix) -> Images {
        Images {
            cache: Cache::new(cache_dir),
            mirror: matrix.mirror.clone(),
            keyring: matrix.keyring.clone(),
            matrix_path: matrix.path.clone(),
        }
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The Debian mirror: `mirror` from kernels.toml, else the host's apt configuration.
    pub fn mirror(&self) -> Result<String> {
        self.mirror
            .clone()
            .or_else(apt::host_debian_mirror)
            .ok_or_else(|| {
                AptError::NoMirror {
                    matrix: self.matrix_path.display().to_string(),
                }
                .into()
            })
    }

    /// Resolves the Debian kernels among `kernels` against the archive (network), and merges
    /// them into `existing`: other matrix kernels keep their existing pins; kernels no longer
    /// in the matrix are dropped. `harness lock` passes every Debian kernel; `lock --update X`
    /// passes X. Non-Debian entries in `kernels` are ignored.
    pub fn resolve(
        &self,
        matrix: &Matrix,
        kernels: &[&KernelEntry],
        existing: Option<&Lockfile>,
    ) -> Result<Lockfile> {
        let debian: Vec<(&KernelEntry, &DebianSource)> = kernels
            .iter()
            .filter_map(|k| match &k.source {
                KernelSource::Debian(d) => Some((*k, d)),
                _ => None,
            })
            .collect();
        let mut fresh = Vec::new();
        if !debian.is_empty() {
            let mirror = self.mirror()?;
            // One private apt root per (suite, arch), updated in parallel.
            let mut groups: BTreeMap<(String, &'static str), Vec<(&KernelEntry, &DebianSource)>> =
                BTreeMap::new();
            for (k, d) in &debian {
                groups
                    .entry((d.suite.clone(), k.arch.debian()))
                    .or_default()
                    .push((k, d));
            }
            let results: Vec<Result<Vec<LockedKernel>>> = std::thread::scope(|s| {
                let handles: Vec<_> = groups
                    .iter()
                    .map(|((suite, arch), members)| {
                        let mirror = &mirror;
                        s.spawn(move || -> Result<Vec<LockedKernel>> {
                            let root = apt::AptRoot::new(mirror, suite, arch, &self.keyring)
                                .map_err(|e| io_err(Path::new("temporary apt directory"), e))?;
                            root.update(arch)?;
                            let mut out = Vec::new();
                            for (k, d) in members {
                                let mut names: Vec<String> = Vec::new();
                                for p in &d.packages {
                                    for n in root.pkgnames(arch, p.prefix())? {
                                        if p.matches(&n) && !names.contains(&n) {
                                            names.push(n);
                                        }
                                    }
                                }
                                let candidates = root.show(arch, &names)?;
                                out.push(lockfile::resolve_kernel(&k.name, d, arch, &candidates)?);
                            }
                            Ok(out)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("resolver thread panicked"))
                    .collect()
            });
            for r in results {
                fresh.extend(r?);
            }
        }
        Ok(lockfile::merge(&matrix.kernels, existing, fresh))
    }

    /// Makes the image of `entry` available (blocking). Debian kernels need their pins in
    /// `lock`. Safe to call concurrently from threads and processes: one builds, the others
    /// wait for it and reuse the result.
    pub fn provision(
        &self,
        entry: &KernelEntry,
        lock: &Lockfile,
        progress: &dyn Progress,
    ) -> Result<KernelImage> {
        match &entry.source {
            KernelSource::Host => Err(ImageError::HostKernel {
                kernel: entry.name.clone(),
            }),
            KernelSource::Debian(d) => self.provision_debian(entry, d, lock, progress),
            KernelSource::Vmlinuz { path, btf, config } => {
                self.provision_local(entry, path, true, btf, config, progress)
            }
            KernelSource::Vmlinux { path, btf, config } => {
                self.provision_local(entry, path, false, btf, config, progress)
            }
            KernelSource::Tree(tree) => {
                let built = self.built_from_source(entry, tree, progress)?;
                self.provision_local(
                    entry,
                    &built.vmlinux,
                    false,
                    &None,
                    &Some(built.config),
                    progress,
                )
            }
        }
        .and_then(|image| self.with_dwarf_btf(entry, image, progress))
    }

    /// Builds a source kernel when needed, one builder per build directory across processes.
    fn built_from_source(
        &self,
        entry: &KernelEntry,
        tree: &crate::matrix::config::SourceTree,
        progress: &dyn Progress,
    ) -> Result<source_tree::BuiltKernel> {
        let dir = source_tree::build_dir(tree, self.cache.root());
        let key = format!(
            "build-{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                dir.as_os_str().as_encoded_bytes()
            ))
        );
        let _guard = self.lock_key(entry, &key, progress)?;
        source_tree::build(&entry.name, tree, self.cache.root(), progress)
            .map_err(|e| ImageError::SourceBuild(Box::new(e)))
    }

    /// With `btf_from_dwarf`, the image's BTF is the one pahole makes from its DWARF, made once
    /// per image and kept beside it.
    fn with_dwarf_btf(
        &self,
        entry: &KernelEntry,
        mut image: KernelImage,
        progress: &dyn Progress,
    ) -> Result<KernelImage> {
        if !entry.btf_from_dwarf {
            return Ok(image);
        }
        let path = self
            .cache
            .kernel_dir(&image.cache_key)
            .join(dwarf_btf::FILE);
        if !path.is_file() {
            let _guard = self.lock_key(entry, &image.cache_key, progress)?;
            if !path.is_file() {
                progress.stage(
                    &entry.name,
                    &format!(
                        "making BTF from the DWARF of {} (pahole)",
                        image.vmlinux.display()
                    ),
                );
                dwarf_btf::generate(&image.vmlinux, &path).map_err(|message| {
                    ImageError::DwarfBtf {
                        kernel: entry.name.clone(),
                        message,
                    }
                })?;
            }
        }
        image.btf = Some(path);
        image.btf_from_dwarf = true;
        Ok(image)
    }

    /// The image in `kernels/<key>/`, if complete.
    fn ready(
        &self,
        entry: &KernelEntry,
        key: &str,
        vmlinux_in_place: Option<&Path>,
    ) -> Option<KernelImage> {
        let dir = self.cache.kernel_dir(key);
        let meta: KernelMeta =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
        if meta.format != META_FORMAT {
            return None;
        }
        if !meta
            .files
            .iter()
            .all(|(name, stamp)| stamp.matches(&dir.join(name)))
        {
            return None;
        }
        let vmlinux = match vmlinux_in_place {
            Some(p) => p.to_path_buf(),
            None => {
                let p = dir.join("vmlinux");
                let len = std::fs::metadata(&p).ok()?.len();
                if Some(len) != meta.vmlinux_bytes {
                    return None;
                }
                p
            }
        };
        let btf = match meta.btf {
            Some(_) => {
                let p = dir.join("vmlinux.btf");
                p.is_file().then_some(p)?;
                Some(dir.join("vmlinux.btf"))
            }
            None => None,
        };
        let config = if meta.has_config {
            let p = dir.join("config");
            p.is_file().then_some(p)?;
            Some(dir.join("config"))
        } else {
            None
        };
        Some(KernelImage {
            name: entry.name.clone(),
            vmlinux,
            btf,
            btf_from_dwarf: false,
            config,
            release: meta.release,
            cache_key: key.to_string(),
        })
    }

    fn lock_key(
        &self,
        entry: &KernelEntry,
        key: &str,
        progress: &dyn Progress,
    ) -> Result<nix::fcntl::Flock<std::fs::File>> {
        self.cache
            .ensure_dirs()
            .map_err(|e| io_err(self.cache.root(), e))?;
        let guard = self
            .cache
            .lock(key, || {
                progress.stage(
                    &entry.name,
                    "waiting for another harness run building the same image",
                )
            })
            .map_err(|e| io_err(&self.cache.root().join("locks"), e))?;
        // What a killed run left half-done (a download, an extraction) goes now.
        crate::leftovers::remove_stale(&self.cache.tmp_dir(), TMP_KERNEL_PREFIX);
        crate::leftovers::remove_stale(&self.cache.debs_dir(), TMP_DOWNLOAD_PREFIX);
        Ok(guard)
    }

    fn provision_debian(
        &self,
        entry: &KernelEntry,
        source: &DebianSource,
        lock: &Lockfile,
        progress: &dyn Progress,
    ) -> Result<KernelImage> {
        let locked = lock
            .kernel(&entry.name)
            .ok_or_else(|| ImageError::NotLocked {
                kernel: entry.name.clone(),
                lock: "kernels.lock".into(),
            })?;
        if let Some(reason) = locked.stale_reason(source, entry.arch.debian()) {
            return Err(ImageError::StaleLock {
                kernel: entry.name.clone(),
                reason,
            });
        }
        let key = locked.cache_key();
        if let Some(img) = self.ready(entry, &key, None) {
            return Ok(img);
        }
        let _guard = self.lock_key(entry, &key, progress)?;
        if let Some(img) = self.ready(entry, &key, None) {
            return Ok(img);
        }
        let mut debs = Vec::new();
        for p in &locked.packages {
            debs.push(self.ensure_deb(entry, locked, p, progress)?);
        }
        progress.stage(&entry.name, "extracting the kernel");
        let work = self.work_dir()?;
        let mut vmlinuz: Option<(PathBuf, String)> = None;
        let mut config = false;
        for deb in &debs {
            let got = deb::extract(
                deb,
                |name| match classify_member(name) {
                    Some(Member::Vmlinuz(_)) if vmlinuz.is_none() => {
                        Some(work.path().join("vmlinuz"))
                    }
                    Some(Member::Config) if !config => Some(work.path().join("config")),
                    _ => None,
                },
                |written| {
                    // Debian kernel packages list boot/ first: stop once both are out.
                    let kinds: Vec<_> = written
                        .iter()
                        .filter_map(|(n, _)| classify_member(n))
                        .collect();
                    (vmlinuz.is_some() || kinds.iter().any(|m| matches!(m, Member::Vmlinuz(_))))
                        && (config || kinds.contains(&Member::Config))
                },
            )?;
            for (name, _) in got {
                match classify_member(&name) {
                    Some(Member::Vmlinuz(rel)) => {
                        vmlinuz = Some((work.path().join("vmlinuz"), rel))
                    }
                    Some(Member::Config) => config = true,
                    None => {}
                }
            }
        }
        let Some((vmlinuz_path, release)) = vmlinuz else {
            return Err(ImageError::NoKernelInPackages {
                kernel: entry.name.clone(),
                packages: locked.packages.iter().map(|p| p.name.clone()).collect(),
            });
        };
        let bytes = std::fs::read(&vmlinuz_path).map_err(|e| io_err(&vmlinuz_path, e))?;
        std::fs::remove_file(&vmlinuz_path).map_err(|e| io_err(&vmlinuz_path, e))?;
        self.build(
            entry,
            &key,
            work,
            BuildInput {
                image: &bytes,
                image_path: &vmlinuz_path,
                release_hint: Some(release),
                write_vmlinux: true,
                source: "debian",
                packages: locked.packages.clone(),
                has_config: config,
            },
            progress,
        )?;
        self.ready(entry, &key, None)
            .ok_or_else(|| ImageError::BadElf {
                kernel: entry.name.clone(),
                message: "the freshly built image is incomplete".into(),
            })
    }

    fn work_dir(&self) -> Result<tempfile::TempDir> {
        let tmp = self.cache.tmp_dir();
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        tempfile::Builder::new()
            .prefix(&crate::leftovers::owned_prefix(TMP_KERNEL_PREFIX))
            .tempdir_in(&tmp)
            .map_err(|e| io_err(&tmp, e))
    }

    /// `debs/<sha256>.deb`, verified; downloaded when missing or corrupt.
    fn ensure_deb(
        &self,
        entry: &KernelEntry,
        locked: &LockedKernel,
        p: &LockedPackage,
        progress: &dyn Progress,
    ) -> Result<PathBuf> {
        let path = self.cache.deb_path(&p.sha256);
        if cache::file_matches(&path, p.size, &p.sha256).map_err(|e| io_err(&path, e))? {
            return Ok(path);
        }
        if path.exists() {
            progress.stage(
                &entry.name,
                &format!("cached {} is corrupt; downloading it again", p.name),
            );
            let _ = std::fs::remove_file(&path);
        }
        let mirror = self.mirror()?;
        let dir = self.cache.debs_dir();
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(&crate::leftovers::owned_prefix(TMP_DOWNLOAD_PREFIX))
            .tempdir_in(&dir)
            .map_err(|e| io_err(&dir, e))?;
        let part = tmp.path().join(format!("{}.deb", p.sha256));
        progress.download(&entry.name, &p.name, 0, p.size);
        let dl = apt::start_download(&mirror, &p.filename, &p.sha256, &part)?;
        // Report the growing file's size, only when it changed.
        let last = std::cell::Cell::new(0u64);
        let report = |done: u64| {
            if done != last.get() {
                last.set(done);
                progress.download(&entry.name, &p.name, done, p.size);
            }
        };
        let result = dl.wait(|| {
            let done = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
            // The last byte is reported once the file is verified.
            report(done.min(p.size.saturating_sub(1)));
        });
        match result {
            Ok(()) => {}
            Err(AptError::NotFound { .. }) => {
                return Err(ImageError::PinnedVersionGone {
                    kernel: entry.name.clone(),
                    package: p.name.clone(),
                    version: p.version.clone(),
                    suite: locked.suite.clone(),
                })
            }
            // apt checks the locked hash itself: report its refusal as the checksum error it is.
            Err(e) if e.to_string().contains("Hash Sum mismatch") => {
                let _ = std::fs::remove_file(&part);
                return Err(ImageError::Checksum {
                    kernel: entry.name.clone(),
                    package: p.name.clone(),
                    expected: p.sha256.clone(),
                    actual: received_sha256(&e.to_string())
                        .unwrap_or_else(|| "something else".into()),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let actual = cache::sha256_file(&part).map_err(|e| io_err(&part, e))?;
        if !actual.eq_ignore_ascii_case(&p.sha256) {
            return Err(ImageError::Checksum {
                kernel: entry.name.clone(),
                package: p.name.clone(),
                expected: p.sha256.clone(),
                actual,
            });
        }
        report(p.size);
        std::fs::rename(&part, &path).map_err(|e| io_err(&path, e))?;
        Ok(path)
    }

    fn provision_local(
        &self,
        entry: &KernelEntry,
        path: &Path,
        compressed: bool,
        btf: &Option<PathBuf>,
        config: &Option<PathBuf>,
        progress: &dyn Progress,
    ) -> Result<KernelImage> {
        let key = self.local_key(path)?;
        let in_place = (!compressed).then_some(path);
        let mut img = match self.ready(entry, &key, in_place) {
            Some(img) => img,
            None => {
                let _guard = self.lock_key(entry, &key, progress)?;
                match self.ready(entry, &key, in_place) {
                    Some(img) => img,
                    None => {
                        progress.stage(&entry.name, &format!("preparing {}", path.display()));
                        let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
                        let work = self.work_dir()?;
                        let release_hint = path
                            .file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.strip_prefix("vmlinuz-").or(n.strip_prefix("vmlinux-")))
                            .map(str::to_string);
                        self.build(
                            entry,
                            &key,
                            work,
                            BuildInput {
                                image: &bytes,
                                image_path: path,
                                release_hint,
                                write_vmlinux: compressed,
                                source: if compressed { "vmlinuz" } else { "vmlinux" },
                                packages: Vec::new(),
                                has_config: false,
                            },
                            progress,
                        )?;
                        self.ready(entry, &key, in_place)
                            .ok_or_else(|| ImageError::BadElf {
                                kernel: entry.name.clone(),
                                message: "the freshly built image is incomplete".into(),
                            })?
                    }
                }
            }
        };
        if let Some(b) = btf {
            img.btf = Some(b.clone());
        }
        if let Some(c) = config {
            img.config = Some(c.clone());
        }
        Ok(img)
    }

    /// The key of a local kernel file, its SHA-256, remembered by size and mtime in
    /// `local/<SHA-256 of its path>.json`: a warm run does not hash a 100 MB vmlinux with DWARF
    /// again, and a rebuilt one (make writes a new mtime) is hashed anew.
    fn local_key(&self, path: &Path) -> Result<String> {
        use sha2::Digest;
        let absolute = std::path::absolute(path).map_err(|e| io_err(path, e))?;
        let memo = self.cache.root().join("local").join(format!(
            "{}.json",
            hex::encode(sha2::Sha256::digest(
                absolute.as_os_str().as_encoded_bytes()
            ))
        ));
        let identity = |p: &Path| -> std::io::Result<(u64, i128)> {
            Ok((std::fs::metadata(p)?.len(), mtime_ns(p)?))
        };
        let before = identity(path).map_err(|e| io_err(path, e))?;
        let remembered = std::fs::read(&memo)
            .ok()
            .and_then(|b| serde_json::from_slice::<FileStamp>(&b).ok());
        if let Some(stamp) = remembered {
            if (stamp.bytes, stamp.mtime_ns) == before {
                return Ok(stamp.sha256);
            }
        }
        let sha256 = cache::sha256_file(path).map_err(|e| io_err(path, e))?;
        // Remembered only if the file did not change while it was read; best effort.
        if identity(path).ok() == Some(before) {
            let stamp = FileStamp {
                bytes: before.0,
                mtime_ns: before.1,
                sha256: sha256.clone(),
            };
            if let Some(dir) = memo.parent() {
                let _ = std::fs::create_dir_all(dir);
                let tmp = memo.with_extension(format!("json.{}", std::process::id()));
                if std::fs::write(&tmp, serde_json::to_vec(&stamp).unwrap_or_default()).is_ok() {
                    let _ = std::fs::rename(&tmp, &memo);
                }
            }
        }
        Ok(sha256)
    }

    /// Decompresses, checks and writes a kernel dir in `work`, then renames it into place.
    fn build(
        &self,
        entry: &KernelEntry,
        key: &str,
        work: tempfile::TempDir,
        input: BuildInput<'_>,
        progress: &dyn Progress,
    ) -> Result<()> {
        let kernel = &entry.name;
        let (vmlinux, compression, pvh_entry, btf) = unpack(entry, &input, progress)?;
        let btf_summary = btf_summary(entry, btf.as_deref(), progress)?;
        let banner = elf::linux_banner(&vmlinux);
        let banner_release = banner
            .as_deref()
            .and_then(elf::banner_release)
            .map(str::to_string);
        let release = input
            .release_hint
            .clone()
            .or(banner_release.clone())
            .unwrap_or_else(|| "unknown".to_string());
        if let (Some(h), Some(b)) = (&input.release_hint, &banner_release) {
            if h != b {
                progress.stage(
                    kernel,
                    &format!("warning: file name says release {h}, the image's banner says {b}"),
                );
            }
        }
        let dir = work.path();
        let w = |name: &str, data: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, data).map_err(|e| io_err(&p, e))
        };
        if input.write_vmlinux {
            w("vmlinux", &vmlinux)?;
        }
        if let Some(b) = &btf {
            w("vmlinux.btf", b)?;
        }
        w("release", format!("{release}\n").as_bytes())?;
        let mut files = BTreeMap::new();
        for name in ["vmlinux", "vmlinux.btf", "config"] {
            let path = dir.join(name);
            if path.is_file() {
                files.insert(
                    name.to_string(),
                    FileStamp::of(&path).map_err(|e| io_err(&path, e))?,
                );
            }
        }
        let meta = KernelMeta {
            format: META_FORMAT,
            source: input.source.to_string(),
            release,
            banner,
            compression: serde_json::to_value(compression)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            vmlinux_bytes: input.write_vmlinux.then_some(vmlinux.len() as u64),
            pvh_entry,
            btf: btf_summary,
            has_config: input.has_config,
            packages: input.packages,
            files,
        };
        w(
            "meta.json",
            &serde_json::to_vec_pretty(&meta).expect("meta serializes"),
        )?;
        self.publish(kernel, key, work, progress)
    }

    /// Moves a finished build directory to its final name, durably: a reader never sees a
    /// half-written image.
    fn publish(
        &self,
        kernel: &str,
        key: &str,
        work: tempfile::TempDir,
        progress: &dyn Progress,
    ) -> Result<()> {
        let dir = work.path();
        // Make the contents durable before the directory appears under its final name.
        for f in std::fs::read_dir(dir)
            .map_err(|e| io_err(dir, e))?
            .flatten()
        {
            if let Ok(file) = std::fs::File::open(f.path()) {
                let _ = file.sync_all();
            }
        }
        let final_dir = self.cache.kernel_dir(key);
        if let Some(parent) = final_dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        if final_dir.exists() {
            // An incomplete leftover (ready() said no): replace it.
            std::fs::remove_dir_all(&final_dir).map_err(|e| io_err(&final_dir, e))?;
        }
        let work_path = work.keep();
        std::fs::rename(&work_path, &final_dir).map_err(|e| {
            let _ = std::fs::remove_dir_all(&work_path);
            io_err(&final_dir, e)
        })?;
        progress.stage(kernel, &format!("image ready: {}", final_dir.display()));
        Ok(())
    }
}

/// The bootable image, how it was compressed, its PVH entry (x86) and its BTF, from the package's
/// vmlinuz.
#[allow(clippy::type_complexity)]
fn unpack(
    entry: &KernelEntry,
    input: &BuildInput<'_>,
    progress: &dyn Progress,
) -> Result<(Vec<u8>, bzimage::Compression, u64, Option<Vec<u8>>), ImageError> {
    let kernel = &entry.name;
    Ok(match entry.arch {
        Arch::X86_64 => {
            if !input.image.starts_with(b"\x7fELF") {
                progress.stage(kernel, "decompressing vmlinuz into vmlinux");
            }
            let (vmlinux, compression) =
                bzimage::decompress(input.image).map_err(|source| ImageError::BadImage {
                    kernel: kernel.clone(),
                    path: input.image_path.to_path_buf(),
                    source,
                })?;
            let pvh_entry = elf::pvh_entry(&vmlinux)
                .and_then(|e| e.ok_or(elf::ElfError::NoPvhNote))
                .map_err(|source| ImageError::NotPvh {
                    kernel: kernel.clone(),
                    path: input.image_path.to_path_buf(),
                    source,
                })?;
            let btf = elf::btf_section(&vmlinux).map_err(|e| ImageError::BadElf {
                kernel: kernel.clone(),
                message: e.to_string(),
            })?;
            (vmlinux, compression, pvh_entry, btf)
        }
        Arch::Aarch64 => {
            progress.stage(kernel, "decompressing vmlinuz into the raw arm64 Image");
            let (image, compression) =
                arm64::decompress(input.image).map_err(|source| ImageError::BadArm64Image {
                    kernel: kernel.clone(),
                    path: input.image_path.to_path_buf(),
                    source,
                })?;
            // No ELF, so no section table: the BTF is found by its header in the bytes.
            let btf = arm64::find_btf(&image).map(<[u8]>::to_vec);
            // arm64 boots the Image's own entry: there is no PVH note.
            (image, compression, 0, btf)
        }
    })
}

/// The BTF's summary for the metadata, or a warning that the kernel has none.
fn btf_summary(
    entry: &KernelEntry,
    btf: Option<&[u8]>,
    progress: &dyn Progress,
) -> Result<Option<elf::BtfSummary>, ImageError> {
    let kernel = &entry.name;
    Ok(match btf {
        Some(b) => Some(elf::btf_summary(b).map_err(|m| ImageError::BadElf {
            kernel: kernel.clone(),
            message: format!(".BTF section: {m}"),
        })?),
        None => {
            let hint = if entry.btf.is_some() {
                "; the matrix entry's external `btf` is used instead"
            } else if entry.btf_from_dwarf {
                "; the harness makes it from the kernel's DWARF instead (`btf_from_dwarf`)"
            } else {
                "; CO-RE objects cannot be relocated for it unless its matrix entry names \
                     an external BTF (`btf = \"path\"`)"
            };
            progress.stage(
                kernel,
                &format!(
                    "warning: the kernel has no .BTF section (CONFIG_DEBUG_INFO_BTF off?){hint}"
                ),
            );
            None
        }
    })
}

struct BuildInput<'a> {
    image: &'a [u8],
    image_path: &'a Path,
    release_hint: Option<String>,
    write_vmlinux: bool,
    source: &'static str,
    packages: Vec<LockedPackage>,
    has_config: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Member {
    /// A kernel image, with the release its path names.
    Vmlinuz(String),
    Config,
}

/// Recognizes the kernel image and config in a kernel package's file list.
fn classify_member(path: &str) -> Option<Member> {
    let p = path.strip_prefix("./").unwrap_or(path);
    let p = p.strip_prefix('/').unwrap_or(p);
    if let Some(rest) = p.strip_prefix("boot/") {
        if let Some(rel) = rest.strip_prefix("vmlinuz-") {
            return (!rel.contains('/')).then(|| Member::Vmlinuz(rel.to_string()));
        }
        if rest.starts_with("config-") && !rest.contains('/') {
            return Some(Member::Config);
        }
        return None;
    }
    let rest = p
        .strip_prefix("usr/lib/modules/")
        .or_else(|| p.strip_prefix("lib/modules/"))?;
    let (rel, file) = rest.split_once('/')?;
    if file == "vmlinuz" || file == "vmlinuz.unsigned" {
        return Some(Member::Vmlinuz(rel.to_string()));
    }
    (file == "config").then_some(Member::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_kernels_key_is_remembered_until_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let matrix = Matrix::parse(
            "[[kernel]]\nname = \"h\"\nhost = true\n",
            Path::new("k.toml"),
        )
        .unwrap();
        let images = Images::new(dir.path().join("cache"), &matrix);
        let file = dir.path().join("vmlinux");
        std::fs::write(&file, b"first").unwrap();
        let first = images.local_key(&file).unwrap();
        assert_eq!(first, cache::sha256_file(&file).unwrap());
        // A memo that lies is believed while size and mtime hold: it is what spares the hash.
        let memo = std::fs::read_dir(dir.path().join("cache/local"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut stamp: FileStamp = serde_json::from_slice(&std::fs::read(&memo).unwrap()).unwrap();
        stamp.sha256 = "remembered".into();
        std::fs::write(&memo, serde_json::to_vec(&stamp).unwrap()).unwrap();
        assert_eq!(images.local_key(&file).unwrap(), "remembered");
        // Rewritten (same size, a new mtime): hashed again.
        std::fs::write(&file, b"again").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let again = images.local_key(&file).unwrap();
        assert_eq!(again, cache::sha256_file(&file).unwrap());
        assert_ne!(again, first);
    }

    #[test]
    fn member_table() {
        let v = |r: &str| Some(Member::Vmlinuz(r.to_string()));
        let cases: &[(&str, Option<Member>)] = &[
            ("./boot/vmlinuz-5.10.0-32-amd64", v("5.10.0-32-amd64")),
            ("./boot/config-5.10.0-32-amd64", Some(Member::Config)),
            ("./boot/System.map-5.10.0-32-amd64", None),
            (
                "./usr/lib/modules/7.2.13+deb14-amd64/vmlinuz.unsigned",
                v("7.2.13+deb14-amd64"),
            ),
            (
                "./usr/lib/modules/7.2.13+deb14-amd64/vmlinuz",
                v("7.2.13+deb14-amd64"),
            ),
            (
                "./usr/lib/modules/7.2.13+deb14-amd64/config",
                Some(Member::Config),
            ),
            (
                "./lib/modules/5.10.0-32-amd64/kernel/fs/configfs/configfs.ko",
                None,
            ),
            (
                "./usr/lib/modules/6.12.117+deb13-amd64/kernel/fs/configfs/config",
                None,
            ),
            ("./usr/share/doc/linux-image/changelog.gz", None),
        ];
        for (p, want) in cases {
            assert_eq!(&classify_member(p), want, "{p}");
        }
    }
}
