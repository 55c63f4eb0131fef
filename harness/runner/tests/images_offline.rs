//! Errors when the mirror cannot be reached (no network needed: the mirror is a closed local
//! port).

mod support;

use std::path::Path;

use harness::images::{AptError, ImageError, Images, NoProgress};

use support::*;

const MATRIX: &str = r#"
mirror = "http://127.0.0.1:9/debian"
[[kernel]]
name = "5.10"
debian = { suite = "bullseye", packages = ["linux-image-5.10.*-amd64-unsigned"] }
"#;

#[test]
fn unreachable_mirror_is_a_clear_error() {
    let m = harness::matrix::config::Matrix::parse(MATRIX, Path::new("/x/kernels.toml")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let images = Images::new(cache.path(), &m);

    let all: Vec<_> = m.kernels.iter().collect();
    let e = images.resolve(&m, &all, None).unwrap_err();
    assert!(
        matches!(e, ImageError::Apt(AptError::Network { .. })),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach the Debian mirror http://127.0.0.1:9/debian"),
        "{msg}"
    );

    let e = images
        .provision(&m.kernels[0], &repository_lock(), &NoProgress)
        .unwrap_err();
    assert!(
        matches!(e, ImageError::Apt(AptError::Network { .. })),
        "{e:?}"
    );
    // Nothing half-written is left in the cache.
    let debs: Vec<_> = std::fs::read_dir(cache.path().join("debs"))
        .unwrap()
        .collect();
    assert!(debs.is_empty(), "{debs:?}");
}
