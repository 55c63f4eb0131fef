//! Whether guests run under KVM: decided from what the machine says where it can be, else by
//! booting one probe guest under KVM and using KVM only if it answers (a nested hypervisor may
//! offer `/dev/kvm` and still hang every stock kernel).

use std::collections::HashMap;
use std::path::Path;

use tokio::sync::{mpsc, watch};

use super::workdir::KVM_PROBE_PREFIX;
use crate::guest::bundle::Bundle;
use crate::images::KernelImage;
use crate::layout::Layout;
use crate::matrix::config::KernelEntry;
use crate::vm::accel::{self, Accel, AccelChoice};
use crate::vm::{qemu, GuestLimits};

/// Ok: decided without a probe. Err(reason): KVM is not ruled out, so a probe boot decides.
pub(super) fn decide_accel(choice: AccelChoice) -> Result<(Accel, String), String> {
    match choice {
        AccelChoice::Tcg => Ok((Accel::Tcg, "requested with --accel tcg".into())),
        AccelChoice::Kvm => Ok((Accel::Kvm, "requested with --accel kvm".into())),
        AccelChoice::Auto => {
            match accel::kvm_ruled_out(Path::new("/dev/kvm"), Path::new("/sys/module")) {
                Some(reason) => Ok((Accel::Tcg, reason)),
                None => Err("a KVM probe guest did not boot".into()),
            }
        }
    }
}

/// Boots the first kernel under KVM with a hello-only agent; KVM is used only if it answers.
pub(super) async fn probe_kvm(
    kernels: &[&KernelEntry],
    images: &HashMap<String, Result<KernelImage, String>>,
    agent: &[u8],
    layout: &Layout,
    cancel: watch::Receiver<bool>,
) -> Option<(Accel, String)> {
    // KVM runs guests of the host's architecture only: the probe boots one of those, with the
    // agent of that architecture.
    let (kernel, image) = kernels
        .iter()
        .filter(|k| k.arch.as_str() == std::env::consts::ARCH)
        .find_map(|k| images.get(&k.name)?.as_ref().ok().map(|i| (*k, i)))?;
    let agent = match kernel.arch {
        crate::matrix::config::Arch::X86_64 => agent.to_vec(),
        arch => crate::guest::agent::for_arch(arch).ok()?.to_vec(),
    };
    let bundle = Bundle {
        agent,
        objects: vec![],
        cases: vec![],
        fault: None,
        libbpf_loader: None,
        kernel_core: false,
        kernel_btf: None,
    };
    let work = layout.work.join(format!(
        "{}d",
        crate::leftovers::owned_prefix(KVM_PROBE_PREFIX)
    ));
    let initramfs = bundle
        .write_initramfs(&kernel.name, true, &work.join("initramfs.cpio"))
        .ok()?;
    let limits = GuestLimits {
        boot: std::time::Duration::from_secs(10),
        test: std::time::Duration::from_secs(5),
        guest: std::time::Duration::from_secs(15),
    };
    let guest = qemu::QemuGuest::for_kernel(kernel, image, initramfs, Accel::Kvm, limits, work);
    let (events, _) = mpsc::unbounded_channel();
    let run = qemu::run(&guest, cancel, events).await;
    if run.hello.is_some() {
        Some((
            Accel::Kvm,
            format!("a probe guest ({}) booted under KVM", kernel.name),
        ))
    } else {
        Some((
            Accel::Tcg,
            format!(
                "a probe guest ({}) did not boot under KVM: {}",
                kernel.name,
                run.status.describe()
            ),
        ))
    }
}
