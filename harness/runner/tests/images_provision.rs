//! Provisions the 5.10 kernel of the repository's matrix for real (downloads ~55 MB from the
//! Debian mirror) into a temporary cache, and checks the result: a PVH-bootable ELF, raw BTF,
//! config, release; the warm path; concurrent provisioning; a corrupt cached .deb.
//!
//! `cargo test -p harness --test images_provision -- --ignored --nocapture all_kernels` also
//! provisions every matrix kernel cold then warm and prints timings (set `HARNESS_IMAGES` to
//! keep the cache).

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use harness::images::{ImageError, Images, KernelImage, NoProgress, Progress};
use harness::matrix::config::{KernelEntry, KernelSource, Matrix};
use harness::matrix::lockfile::Lockfile;

use support::*;

/// Counts what the provisioner reports.
#[derive(Default)]
struct Counting {
    downloads: AtomicU64,
    max_bytes: AtomicU64,
}

impl Progress for Counting {
    fn download(&self, kernel: &str, package: &str, done: u64, total: u64) {
        if done == 0 {
            self.downloads.fetch_add(1, Ordering::SeqCst);
        }
        self.max_bytes.fetch_max(done, Ordering::SeqCst);
        if done == total {
            eprintln!("{kernel}: {package}: {total} bytes downloaded");
        }
    }
    fn stage(&self, kernel: &str, message: &str) {
        eprintln!("{kernel}: {message}");
    }
}

/// A bootable image (see `assert_bootable_image`) whose config has PVH and BTF.
fn check_image(img: &KernelImage) {
    let summary = assert_bootable_image(img);
    let config = std::fs::read_to_string(img.config.as_ref().expect("config")).unwrap();
    assert!(config.contains("CONFIG_PVH=y"));
    assert!(config.contains("CONFIG_DEBUG_INFO_BTF=y"));
    eprintln!(
        "{}: release {}, vmlinux {} bytes, {} BTF types",
        img.name,
        img.release,
        std::fs::metadata(&img.vmlinux).unwrap().len(),
        summary.types
    );
}

fn entry<'m>(m: &'m Matrix, name: &str) -> &'m KernelEntry {
    m.kernel(name).unwrap()
}

#[test]
fn provision_5_10() {
    let (matrix, lock) = (repository_matrix(), repository_lock());
    let cache = tempfile::tempdir().unwrap();
    let images = Images::new(cache.path(), &matrix);
    let k = entry(&matrix, "5.10");
    let progress = Counting::default();

    // Two concurrent cold provisions: one downloads and builds, the other waits and reuses.
    let t = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let h1 = s.spawn(|| images.provision(k, &lock, &progress));
        let h2 = s.spawn(|| images.provision(k, &lock, &progress));
        (h1.join().unwrap().unwrap(), h2.join().unwrap().unwrap())
    });
    eprintln!("cold: {:?}", t.elapsed());
    assert_eq!(a, b);
    assert_eq!(
        progress.downloads.load(Ordering::SeqCst),
        1,
        "downloaded once"
    );
    let locked = lock.kernel("5.10").unwrap();
    assert_eq!(
        progress.max_bytes.load(Ordering::SeqCst),
        locked.packages[0].size
    );
    assert_eq!(a.release, "5.10.0-32-amd64");
    assert_eq!(a.cache_key, locked.cache_key());
    assert!(a.vmlinux.starts_with(cache.path()));
    check_image(&a);
    let release = std::fs::read_to_string(a.vmlinux.with_file_name("release")).unwrap();
    assert_eq!(release.trim(), "5.10.0-32-amd64");
    // Nothing left behind in tmp/.
    assert_eq!(
        std::fs::read_dir(cache.path().join("tmp")).unwrap().count(),
        0
    );

    // Warm: no download, fast.
    let t = Instant::now();
    let warm = images.provision(k, &lock, &progress).unwrap();
    let warm_time = t.elapsed();
    eprintln!("warm: {warm_time:?}");
    assert_eq!(warm, a);
    assert!(warm_time.as_millis() < 500, "{warm_time:?}");
    assert_eq!(progress.downloads.load(Ordering::SeqCst), 1);

    // A truncated cached .deb (and no built kernel) is detected and downloaded again.
    std::fs::remove_dir_all(cache.path().join("kernels").join(&a.cache_key)).unwrap();
    let deb = cache
        .path()
        .join("debs")
        .join(format!("{}.deb", locked.packages[0].sha256));
    let f = std::fs::OpenOptions::new().write(true).open(&deb).unwrap();
    f.set_len(locked.packages[0].size / 2).unwrap();
    drop(f);
    let again = images.provision(k, &lock, &NoProgress).unwrap();
    assert_eq!(again, a);
    assert_eq!(
        std::fs::metadata(&deb).unwrap().len(),
        locked.packages[0].size
    );

    // The same vmlinux as a local `vmlinux` kernel: used in place, BTF extracted to the cache.
    let local_dir = tempfile::tempdir().unwrap();
    let local = local_dir.path().join("vmlinux-5.10.0-32-amd64");
    std::fs::copy(&a.vmlinux, &local).unwrap();
    let toml = format!(
        "[[kernel]]\nname = \"local\"\nvmlinux = \"{}\"\nconfig = \"{}\"\n",
        local.display(),
        a.config.as_ref().unwrap().display()
    );
    let m2 = Matrix::parse(&toml, Path::new("/nonexistent/kernels.toml")).unwrap();
    let images2 = Images::new(cache.path(), &m2);
    let img = images2
        .provision(&m2.kernels[0], &Lockfile::default(), &NoProgress)
        .unwrap();
    assert_eq!(img.vmlinux, local);
    assert_eq!(img.release, "5.10.0-32-amd64");
    check_image(&img);
}

#[test]
fn lock_problems_are_reported() {
    let (matrix, lock) = (repository_matrix(), repository_lock());
    let cache = tempfile::tempdir().unwrap();
    let images = Images::new(cache.path(), &matrix);
    let k = entry(&matrix, "5.10");

    let e = images
        .provision(k, &Lockfile::default(), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, ImageError::NotLocked { .. }), "{e}");
    assert!(
        e.to_string().contains("cargo run -p harness -- lock"),
        "{e}"
    );

    // A pinned version that is gone from the mirror (network: one 404).
    let mut gone = lock.clone();
    for p in &mut gone
        .kernels
        .iter_mut()
        .find(|k| k.name == "5.10")
        .unwrap()
        .packages
    {
        p.filename = p.filename.replace("5.10.223-1", "5.10.1-1");
        p.version = "5.10.1-1".into();
        p.sha256 = "0".repeat(64);
    }
    let e = images.provision(k, &gone, &NoProgress).unwrap_err();
    assert!(matches!(e, ImageError::PinnedVersionGone { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("5.10.1-1") && msg.contains("bullseye"),
        "{msg}"
    );
    assert!(
        msg.contains("cargo run -p harness -- lock --update 5.10"),
        "{msg}"
    );

    let e = images
        .provision(entry(&matrix, "host"), &lock, &NoProgress)
        .unwrap_err();
    assert!(matches!(e, ImageError::HostKernel { .. }), "{e}");
}

#[test]
#[ignore = "network and time: provisions every kernel of the matrix (~250 MB)"]
fn all_kernels() {
    let (matrix, lock) = (repository_matrix(), repository_lock());
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("HARNESS_IMAGES")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let images = Images::new(&dir, &matrix);
    let kernels: Vec<&KernelEntry> = matrix
        .kernels
        .iter()
        .filter(|k| matches!(k.source, KernelSource::Debian(_)))
        .collect();
    let progress = Counting::default();
    for pass in ["first", "second"] {
        for k in &kernels {
            let t = Instant::now();
            let img = images.provision(k, &lock, &progress).unwrap();
            eprintln!("{pass} {}: {:?}", k.name, t.elapsed());
            check_image(&img);
        }
    }
    // All at once, in parallel, warm.
    let t = Instant::now();
    std::thread::scope(|s| {
        for k in &kernels {
            let (images, lock) = (&images, &lock);
            s.spawn(move || images.provision(k, lock, &NoProgress).unwrap());
        }
    });
    eprintln!("warm, all four in parallel: {:?}", t.elapsed());
}
