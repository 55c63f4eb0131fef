//! What every guest receives: the agent, the objects (same bytes everywhere) and a manifest.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use guest_protocol::{CaseSpec, Manifest, ObjectEntry, MANIFEST_PATH, PROTOCOL_VERSION};

use crate::guest::initramfs::{write_newc, Entry};

pub struct Bundle {
    pub agent: Vec<u8>,
    /// Each object's manifest entry and bytes.
    pub objects: Vec<(ObjectEntry, Vec<u8>)>,
    pub cases: Vec<CaseSpec>,
    pub fault: Option<String>,
    /// The static libbpf loader (`--libbpf`), shipped at [`guest_protocol::LIBBPF_LOADER_PATH`].
    pub libbpf_loader: Option<Vec<u8>>,
    /// Also let each kernel relocate the programs itself and compare (`--kernel-core`).
    pub kernel_core: bool,
    /// The kernel entry's external BTF (`btf = "path"`), shipped at
    /// [`guest_protocol::EXTERNAL_BTF_PATH`] and used by the agent instead of the kernel's own.
    pub kernel_btf: Option<Vec<u8>>,
}

pub const OBJECTS_DIR: &str = "harness/objects";
/// The guest kernel's `.config` inside the bundle (the agent's `kernel_facts::SHIPPED_CONFIG`).
pub const KERNEL_CONFIG_PATH: &str = "harness/kernel-config";

impl Bundle {
    pub fn object_entry(name: &str, bytes: &[u8]) -> ObjectEntry {
        use sha2::Digest;
        ObjectEntry {
            name: name.to_string(),
            path: format!("{OBJECTS_DIR}/{name}.bpf.o"),
            sha256: hex::encode(sha2::Sha256::digest(bytes)),
            data_overrides: Vec::new(),
            load: Default::default(),
        }
    }

    pub fn manifest(&self, kernel_name: &str, probe_only: bool) -> Manifest {
        Manifest {
            protocol_version: PROTOCOL_VERSION,
            kernel_name: kernel_name.to_string(),
            objects: self.objects.iter().map(|(e, _)| e.clone()).collect(),
            cases: self.cases.clone(),
            probe_only,
            fault: self.fault.clone(),
            libbpf_loader: self
                .libbpf_loader
                .as_ref()
                .map(|_| guest_protocol::LIBBPF_LOADER_PATH.to_string()),
            kernel_core: self.kernel_core,
            kernel_btf: self
                .kernel_btf
                .as_ref()
                .map(|btf| guest_protocol::KernelBtfFile {
                    path: guest_protocol::EXTERNAL_BTF_PATH.to_string(),
                    sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(btf)),
                }),
        }
    }

    /// The initramfs for one kernel: /init is the agent; /dev/console exists before devtmpfs.
    pub fn initramfs(&self, kernel_name: &str, probe_only: bool) -> Result<Vec<u8>> {
        self.initramfs_with_config(kernel_name, probe_only, None)
    }

    /// [`Bundle::initramfs`] carrying the kernel's `.config` at [`KERNEL_CONFIG_PATH`], where the
    /// agent reads `CONFIG_*` values for `.kconfig` externs (a guest has no /boot, and Debian
    /// kernels no /proc/config.gz).
    pub fn initramfs_with_config(
        &self,
        kernel_name: &str,
        probe_only: bool,
        kernel_config: Option<&[u8]>,
    ) -> Result<Vec<u8>> {
        let manifest = serde_json::to_vec_pretty(&self.manifest(kernel_name, probe_only))?;
        let mut entries = guest_skeleton(&self.agent);
        entries.extend([
            Entry::Dir {
                path: OBJECTS_DIR.into(),
            },
            Entry::File {
                path: MANIFEST_PATH.into(),
                mode: 0o644,
                data: manifest,
            },
        ]);
        for (entry, bytes) in &self.objects {
            entries.push(Entry::File {
                path: entry.path.clone(),
                mode: 0o644,
                data: bytes.clone(),
            });
        }
        if let Some(loader) = &self.libbpf_loader {
            entries.push(Entry::File {
                path: guest_protocol::LIBBPF_LOADER_PATH.into(),
                mode: 0o755,
                data: loader.clone(),
            });
        }
        if let Some(config) = kernel_config {
            entries.push(Entry::File {
                path: KERNEL_CONFIG_PATH.into(),
                mode: 0o644,
                data: config.to_vec(),
            });
        }
        if let Some(btf) = &self.kernel_btf {
            entries.push(Entry::File {
                path: guest_protocol::EXTERNAL_BTF_PATH.into(),
                mode: 0o644,
                data: btf.clone(),
            });
        }
        let mut out = Vec::new();
        write_newc(&entries, &mut out)?;
        Ok(out)
    }

    pub fn write_initramfs(
        &self,
        kernel_name: &str,
        probe_only: bool,
        path: &Path,
    ) -> Result<PathBuf> {
        self.write_initramfs_with_config(kernel_name, probe_only, None, path)
    }

    /// [`Bundle::write_initramfs`] with the kernel's config (see [`Bundle::initramfs_with_config`]).
    pub fn write_initramfs_with_config(
        &self,
        kernel_name: &str,
        probe_only: bool,
        kernel_config: Option<&[u8]>,
        path: &Path,
    ) -> Result<PathBuf> {
        let bytes = self.initramfs_with_config(kernel_name, probe_only, kernel_config)?;
        crate::fsutil::write_atomic(path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_path_buf())
    }

    /// The same files as the initramfs minus the agent, for a guest restored from a ready
    /// snapshot (its agent is already running), sent over the results port.
    pub fn transfer(
        &self,
        kernel_name: &str,
        kernel_config: Option<&[u8]>,
    ) -> Result<guest_protocol::BundleTransfer> {
        let manifest = serde_json::to_vec_pretty(&self.manifest(kernel_name, false))?;
        let mut files = vec![guest_protocol::BundleFile {
            path: MANIFEST_PATH.into(),
            data: manifest,
        }];
        for (entry, bytes) in &self.objects {
            files.push(guest_protocol::BundleFile {
                path: entry.path.clone(),
                data: bytes.clone(),
            });
        }
        if let Some(config) = kernel_config {
            files.push(guest_protocol::BundleFile {
                path: KERNEL_CONFIG_PATH.into(),
                data: config.to_vec(),
            });
        }
        if let Some(loader) = &self.libbpf_loader {
            files.push(guest_protocol::BundleFile {
                path: guest_protocol::LIBBPF_LOADER_PATH.into(),
                data: loader.clone(),
            });
        }
        if let Some(btf) = &self.kernel_btf {
            files.push(guest_protocol::BundleFile {
                path: guest_protocol::EXTERNAL_BTF_PATH.into(),
                data: btf.clone(),
            });
        }
        let host_time_unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(guest_protocol::BundleTransfer {
            host_time_unix_ns,
            files,
        })
    }

    /// The initramfs of a guest booted to be snapshotted: the agent, the directories it needs and
    /// the kernel's config (fixed per kernel, so not resent with every bundle), but no manifest,
    /// which puts the agent in ready mode. The same bytes for the same inputs.
    pub fn ready_initramfs(agent: &[u8], kernel_config: Option<&[u8]>) -> Result<Vec<u8>> {
        let mut entries = guest_skeleton(agent);
        if let Some(config) = kernel_config {
            entries.push(Entry::File {
                path: KERNEL_CONFIG_PATH.into(),
                mode: 0o644,
                data: config.to_vec(),
            });
        }
        let mut out = Vec::new();
        write_newc(&entries, &mut out)?;
        Ok(out)
    }

    /// The same content as a directory, for an agent run as a process (the host entry, and
    /// virtme-ng's command), with the kernel's `.config` as in [`Bundle::initramfs_with_config`].
    pub fn write_dir(
        &self,
        kernel_name: &str,
        kernel_config: Option<&[u8]>,
        dir: &Path,
    ) -> Result<()> {
        let manifest = serde_json::to_vec_pretty(&self.manifest(kernel_name, false))?;
        std::fs::create_dir_all(dir.join(OBJECTS_DIR))
            .with_context(|| format!("creating {}", dir.display()))?;
        crate::fsutil::write_atomic(&dir.join(MANIFEST_PATH), &manifest)?;
        for (entry, bytes) in &self.objects {
            crate::fsutil::write_atomic(&dir.join(&entry.path), bytes)?;
        }
        if let Some(loader) = &self.libbpf_loader {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.join(guest_protocol::LIBBPF_LOADER_PATH);
            crate::fsutil::write_atomic(&path, loader)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
        if let Some(btf) = &self.kernel_btf {
            crate::fsutil::write_atomic(&dir.join(guest_protocol::EXTERNAL_BTF_PATH), btf)?;
        }
        if let Some(config) = kernel_config {
            crate::fsutil::write_atomic(&dir.join(KERNEL_CONFIG_PATH), config)?;
        }
        Ok(())
    }
}

/// What every guest's initramfs starts with: the mount points, a console before devtmpfs, and
/// the agent as `/init`.
fn guest_skeleton(agent: &[u8]) -> Vec<Entry> {
    vec![
        Entry::Dir { path: "dev".into() },
        Entry::CharDevice {
            path: "dev/console".into(),
            major: 5,
            minor: 1,
        },
        Entry::Dir {
            path: "proc".into(),
        },
        Entry::Dir { path: "sys".into() },
        Entry::Dir {
            path: "harness".into(),
        },
        Entry::File {
            path: "init".into(),
            mode: 0o755,
            data: agent.to_vec(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle() -> Bundle {
        let object = b"\x7fELF-object".to_vec();
        Bundle {
            agent: b"agent".to_vec(),
            objects: vec![(Bundle::object_entry("counter", &object), object)],
            cases: vec![],
            fault: None,
            libbpf_loader: None,
            kernel_core: false,
            kernel_btf: None,
        }
    }

    #[test]
    fn manifest_carries_each_objects_hash() {
        let manifest = bundle().manifest("6.1", false);
        assert_eq!(manifest.objects[0].path, "harness/objects/counter.bpf.o");
        assert_eq!(manifest.objects[0].sha256.len(), 64);
        assert_eq!(manifest.kernel_name, "6.1");
    }

    #[test]
    fn initramfs_holds_init_manifest_and_objects() {
        let bytes = bundle().initramfs("6.1", false).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for needle in [
            "init\0",
            "harness/manifest.json\0",
            "harness/objects/counter.bpf.o\0",
            "dev/console\0",
        ] {
            assert!(text.contains(needle), "missing {needle:?}");
        }
    }

    #[test]
    fn transfer_carries_what_the_initramfs_carries_but_the_agent() {
        let transfer = bundle().transfer("6.1", Some(b"CONFIG_BPF=y\n")).unwrap();
        let paths: Vec<&str> = transfer.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "harness/manifest.json",
                "harness/objects/counter.bpf.o",
                "harness/kernel-config"
            ]
        );
        let decoded = guest_protocol::decode_bundle(&transfer.encode().unwrap()).unwrap();
        assert_eq!(decoded, transfer);
        let ready = String::from_utf8_lossy(
            &Bundle::ready_initramfs(b"agent", Some(b"CONFIG_X=y")).unwrap(),
        )
        .into_owned();
        assert!(ready.contains("init\0") && !ready.contains("manifest.json"));
        assert!(ready.contains("harness/kernel-config\0"));
    }

    #[test]
    fn an_external_btf_travels_with_its_hash_in_every_form() {
        let mut b = bundle();
        b.kernel_btf = Some(b"\x9f\xeb\x01\x00btf".to_vec());
        let manifest = b.manifest("6.1", false);
        let file = manifest.kernel_btf.unwrap();
        assert_eq!(file.path, "harness/kernel.btf");
        assert_eq!(
            file.sha256,
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                b"\x9f\xeb\x01\x00btf"
            ))
        );
        let initramfs = b.initramfs("6.1", false).unwrap();
        assert!(String::from_utf8_lossy(&initramfs).contains("harness/kernel.btf\0"));
        let transfer = b.transfer("6.1", None).unwrap();
        assert!(transfer
            .files
            .iter()
            .any(|f| f.path == "harness/kernel.btf"));
        let dir = tempfile::tempdir().unwrap();
        b.write_dir("host", None, dir.path()).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("harness/kernel.btf")).unwrap(),
            b"\x9f\xeb\x01\x00btf"
        );
        assert!(bundle().manifest("6.1", false).kernel_btf.is_none());
    }

    #[test]
    fn host_bundle_matches_the_guest_layout() {
        let dir = tempfile::tempdir().unwrap();
        bundle().write_dir("host", None, dir.path()).unwrap();
        assert!(dir.path().join("harness/manifest.json").is_file());
        assert_eq!(
            std::fs::read(dir.path().join("harness/objects/counter.bpf.o")).unwrap(),
            b"\x7fELF-object"
        );
        assert!(!dir.path().join(KERNEL_CONFIG_PATH).exists());
        // virtme-ng's command reads the kernel's config where an initramfs would carry it.
        let with_config = tempfile::tempdir().unwrap();
        bundle()
            .write_dir("6.12-src-vng", Some(b"CONFIG_BPF=y\n"), with_config.path())
            .unwrap();
        assert_eq!(
            std::fs::read(with_config.path().join(KERNEL_CONFIG_PATH)).unwrap(),
            b"CONFIG_BPF=y\n"
        );
    }
}
