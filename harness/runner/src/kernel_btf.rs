//! Which BTF describes a matrix kernel: the entry's external `btf = "path"` when it has one,
//! else the kernel's own (the image's `.BTF`, or the host's /sys/kernel/btf/vmlinux). The same
//! choice serves the host (predictions, `reloc`, `vmlinux-h`) and the guest (an external BTF
//! travels in the bundle), so both relocate against the same bytes.

use std::path::{Path, PathBuf};

use crate::images::KernelImage;
use crate::matrix::config::{KernelEntry, KernelSource};

/// The running kernel's BTF.
pub const HOST_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The largest external BTF accepted: it must fit in a bundle transfer
/// ([`guest_protocol::MAX_BUNDLE_BYTES`]) beside the objects; a vmlinux BTF is 4-6 MB.
pub const MAX_EXTERNAL_BTF_BYTES: u64 = 48 << 20;

#[derive(Debug, thiserror::Error)]
pub enum KernelBtfError {
    #[error(
        "kernel `{kernel}` has no BTF: {why}, and its matrix entry gives no external one; add \
         `btf = \"path/to/vmlinux.btf\"` (raw BTF, e.g. from `pahole -J` or btfhub) to run CO-RE \
         objects on it"
    )]
    NoBtf { kernel: String, why: String },
    #[error("kernel `{kernel}`: external BTF {}: {cause}", path.display())]
    External {
        kernel: String,
        path: PathBuf,
        cause: String,
    },
}

/// Where the BTF of `kernel` is on the host. `image`: its provisioned image (`None` for the
/// host entry).
pub fn btf_path(
    kernel: &KernelEntry,
    image: Option<&KernelImage>,
) -> Result<PathBuf, KernelBtfError> {
    if let Some(path) = &kernel.btf {
        return Ok(path.clone());
    }
    let found = match (&kernel.source, image) {
        (KernelSource::Host, _) => Some(PathBuf::from(HOST_BTF)).filter(|p| p.exists()),
        (_, Some(image)) => image.btf.clone(),
        (_, None) => None,
    };
    found.ok_or_else(|| KernelBtfError::NoBtf {
        kernel: kernel.name.clone(),
        why: match kernel.source {
            KernelSource::Host => format!("the running kernel publishes no {HOST_BTF}"),
            _ => "its image has no .BTF section (built without CONFIG_DEBUG_INFO_BTF?)".into(),
        },
    })
}

/// The BTF to ship to the guest of `kernel` (its entry's external one, or the one made from its
/// DWARF for `image`), checked to be raw BTF of a bounded size (`None`: the guest uses its
/// kernel's own).
pub fn external_btf(
    kernel: &KernelEntry,
    image: Option<&KernelImage>,
) -> Result<Option<Vec<u8>>, KernelBtfError> {
    let made = image
        .filter(|i| i.btf_from_dwarf)
        .and_then(|i| i.btf.as_ref());
    let Some(path) = kernel.btf.as_ref().or(made) else {
        return Ok(None);
    };
    read_external(&kernel.name, path).map(Some)
}

fn read_external(kernel: &str, path: &Path) -> Result<Vec<u8>, KernelBtfError> {
    let err = |cause: String| KernelBtfError::External {
        kernel: kernel.to_string(),
        path: path.to_path_buf(),
        cause,
    };
    let len = std::fs::metadata(path)
        .map_err(|e| err(e.to_string()))?
        .len();
    if len > MAX_EXTERNAL_BTF_BYTES {
        return Err(err(format!(
            "{len} bytes, more than the {MAX_EXTERNAL_BTF_BYTES} a guest bundle takes"
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    check_raw_btf(&bytes).map_err(err)?;
    Ok(bytes)
}

/// Whether `bytes` start as raw BTF does (an ELF or anything else is refused with a hint).
pub fn check_raw_btf(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&[0x9f, 0xeb]) {
        return Ok(());
    }
    if bytes.starts_with(b"\x7fELF") {
        return Err(
            "an ELF file, not raw BTF: extract its .BTF section (`objcopy -O binary \
             --only-section=.BTF vmlinux out.btf`) or let pahole write raw BTF"
                .into(),
        );
    }
    Err(format!(
        "not raw BTF (no 0xeB9F magic; first bytes {})",
        hex::encode(&bytes[..bytes.len().min(4)])
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::config::Matrix;

    fn matrix(extra: &str) -> Matrix {
        Matrix::parse(
            &format!(
                "[[kernel]]\nname = \"k\"\ndebian = {{ suite = \"sid\", packages = [\"p\"] }}\n{extra}"
            ),
            Path::new("/m/kernels.toml"),
        )
        .unwrap()
    }

    fn image(btf: Option<&str>) -> KernelImage {
        KernelImage {
            name: "k".into(),
            vmlinux: "/c/vmlinux".into(),
            btf: btf.map(PathBuf::from),
            btf_from_dwarf: false,
            config: None,
            release: "r".into(),
            cache_key: "key".into(),
        }
    }

    #[test]
    fn the_external_btf_wins_and_a_kernel_without_any_is_named() {
        let own = matrix("");
        let ext = matrix("btf = \"b/k.btf\"\n");
        let cases: &[(&Matrix, Option<&str>, Result<&str, &str>)] = &[
            (&own, Some("/c/vmlinux.btf"), Ok("/c/vmlinux.btf")),
            (&ext, Some("/c/vmlinux.btf"), Ok("/m/b/k.btf")),
            (&ext, None, Ok("/m/b/k.btf")),
            (
                &own,
                None,
                Err("kernel `k` has no BTF: its image has no .BTF section"),
            ),
        ];
        for (m, own_btf, want) in cases {
            let img = image(*own_btf);
            let got = btf_path(&m.kernels[0], Some(&img));
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p, PathBuf::from(w)),
                (Err(e), Err(w)) => {
                    let e = e.to_string();
                    assert!(e.contains(w) && e.contains("btf = "), "{e}");
                }
                (got, want) => panic!("{own_btf:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn external_btf_is_checked_before_it_is_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, data: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, data).unwrap();
            p
        };
        let raw = write("raw.btf", b"\x9f\xeb\x01\x00rest");
        let elf = write("vmlinux", b"\x7fELF\x02\x01");
        let junk = write("junk", b"hello");
        assert_eq!(read_external("k", &raw).unwrap(), b"\x9f\xeb\x01\x00rest");
        let e = read_external("k", &elf).unwrap_err().to_string();
        assert!(e.contains("an ELF file, not raw BTF"), "{e}");
        let e = read_external("k", &junk).unwrap_err().to_string();
        assert!(
            e.contains("not raw BTF (no 0xeB9F magic; first bytes 68656c6c)"),
            "{e}"
        );
        let e = read_external("k", &dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("kernel `k`: external BTF "), "{e}");
        assert_eq!(external_btf(&matrix("").kernels[0], None).unwrap(), None);
        // A kernel's own BTF stays in the guest; one made from its DWARF travels.
        let own = image(Some(raw.to_str().unwrap()));
        assert_eq!(
            external_btf(&matrix("").kernels[0], Some(&own)).unwrap(),
            None
        );
        let made = KernelImage {
            btf_from_dwarf: true,
            ..own
        };
        assert_eq!(
            external_btf(&matrix("").kernels[0], Some(&made)).unwrap(),
            Some(b"\x9f\xeb\x01\x00rest".to_vec())
        );
    }
}
