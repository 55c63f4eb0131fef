//! Choosing between KVM and TCG by what works, not by what exists.
//!
//! `/dev/kvm` can be a nested hypervisor (PVM) under which stock kernels hang or die, so its
//! presence proves nothing. `auto` rules out the cases known not to work at once, and otherwise
//! boots a real guest under KVM with a short limit: KVM is used only if that guest says hello.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelChoice {
    /// KVM if a probe guest boots under it, TCG otherwise
    Auto,
    Kvm,
    Tcg,
}

/// What can be decided without booting: Some(reason) when KVM is certainly unusable.
pub fn kvm_ruled_out(dev_kvm: &Path, sys_module: &Path) -> Option<String> {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev_kvm)
        .is_ok();
    if !usable {
        return Some(format!(
            "{} is missing or not accessible",
            dev_kvm.display()
        ));
    }
    if sys_module.join("kvm_pvm").exists() {
        return Some(
            "/dev/kvm is provided by kvm_pvm, a nested PVM hypervisor under which stock kernels do not boot".into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_rules_kvm_out() {
        let dir = tempfile::tempdir().unwrap();
        let reason = kvm_ruled_out(&dir.path().join("kvm"), dir.path()).unwrap();
        assert!(reason.contains("missing"));
    }

    #[test]
    fn pvm_module_rules_kvm_out() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path().join("kvm");
        std::fs::write(&dev, b"").unwrap();
        std::fs::create_dir(dir.path().join("kvm_pvm")).unwrap();
        assert!(kvm_ruled_out(&dev, dir.path()).unwrap().contains("PVM"));
        std::fs::remove_dir(dir.path().join("kvm_pvm")).unwrap();
        assert_eq!(kvm_ruled_out(&dev, dir.path()), None);
    }
}
