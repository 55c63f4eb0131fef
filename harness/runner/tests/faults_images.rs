//! Image cache faults not covered by images_provision.rs (truncated cached .deb, pinned version
//! gone) and images_offline.rs (no network): a corrupted extracted kernel in
//! `kernels/<key>/`, and a download whose SHA-256 differs from the lockfile. Each must give a
//! clear error or be repaired, and never leave the cache half-written.

mod support;

use std::path::Path;

use harness::images::{ImageError, Images, NoProgress};
use harness::matrix::config::Matrix;
use harness::matrix::lockfile::Lockfile;

use support::*;

fn overwrite_same_size(path: &Path, byte: u8) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    // Replace, never write through: the file may share its inode with another cache.
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, vec![byte; len]).unwrap();
}

#[test]
fn corrupted_extracted_kernel_is_detected_and_rebuilt() {
    let matrix = repository_matrix();
    let lock = repository_lock();
    let cache = cache_with_packages_of(&lock, "5.10");
    let images = Images::new(cache.path(), &matrix);
    let k = matrix.kernel("5.10").unwrap();
    let good = images.provision(k, &lock, &NoProgress).unwrap();
    assert_bootable_image(&good);

    // Same size, garbage content: a disk error, an interrupted copy, a stray write.
    overwrite_same_size(&good.vmlinux, 0);
    let again = images
        .provision(k, &lock, &NoProgress)
        .expect("a corrupted cache entry is rebuilt from the cached package");
    assert_bootable_image(&again);

    // A damaged BTF (truncated) or config (emptied) likewise.
    let btf = again.btf.clone().unwrap();
    let bytes = std::fs::read(&btf).unwrap();
    std::fs::remove_file(&btf).unwrap();
    std::fs::write(&btf, &bytes[..bytes.len() / 2]).unwrap();
    let again = images.provision(k, &lock, &NoProgress).unwrap();
    assert_bootable_image(&again);
    let config = again.config.clone().unwrap();
    std::fs::remove_file(&config).unwrap();
    std::fs::write(&config, b"").unwrap();
    let again = images.provision(k, &lock, &NoProgress).unwrap();
    let text = std::fs::read_to_string(again.config.as_ref().unwrap()).unwrap();
    assert!(
        text.contains("CONFIG_DEBUG_INFO_BTF=y"),
        "config not rebuilt"
    );
}

/// bookworm's `hello` (a small package that never changes within a stable release).
const HELLO_SHA256: &str = "2e6e2f1a0007dc43bc91c273fd36e91e40a4f1c2765a03eca68b70a42103878a";

fn hello_lock(sha256: &str) -> Lockfile {
    let text = format!(
        r#"version = 1

[[kernel]]
name = "hello"
suite = "bookworm"
arch = "amd64"

[[kernel.package]]
pattern = "hello"
name = "hello"
version = "2.10-3"
filename = "pool/main/h/hello/hello_2.10-3_amd64.deb"
size = 53080
sha256 = "{sha256}"
"#
    );
    Lockfile::parse(&text, Path::new("/x/kernels.lock")).unwrap()
}

fn debs_in(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("debs"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Network: downloads a 53 kB package from the Debian mirror (as provision_5_10 downloads 55 MB).
#[test]
fn download_whose_sha256_differs_from_the_lock_is_refused_and_not_cached() {
    let m = Matrix::parse(
        "[[kernel]]\nname = \"hello\"\ndebian = { suite = \"bookworm\", packages = [\"hello\"] }\n",
        Path::new("/x/kernels.toml"),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let images = Images::new(cache.path(), &m);
    let wrong = format!("{}0", &HELLO_SHA256[..63]);
    let e = images
        .provision(&m.kernels[0], &hello_lock(&wrong), &NoProgress)
        .unwrap_err();
    let msg = e.to_string();
    // Both hashes, and in the harness's own terms: which kernel, and that kernels.lock pins it.
    assert!(msg.contains(HELLO_SHA256) && msg.contains(&wrong), "{msg}");
    assert!(
        matches!(e, ImageError::Checksum { .. })
            || (msg.contains("kernel `hello`") && msg.contains("kernels.lock")),
        "{e:?}"
    );
    assert!(
        debs_in(cache.path()).is_empty(),
        "{:?}",
        debs_in(cache.path())
    );

    // With the right hash the package is cached; it holds no kernel, which is said clearly.
    let e = images
        .provision(&m.kernels[0], &hello_lock(HELLO_SHA256), &NoProgress)
        .unwrap_err();
    assert!(matches!(e, ImageError::NoKernelInPackages { .. }), "{e}");
    assert_eq!(debs_in(cache.path()), [format!("{HELLO_SHA256}.deb")]);
}
