//! One kernel's guest, once: the host entry as a process, a QEMU guest restored from its
//! ready snapshot (`--snapshot`) or booted fresh from an initramfs, or a guest virtme-ng boots
//! (`backend = "virtme-ng"`).

use std::path::Path;

use tokio::sync::{mpsc, watch};

use crate::guest::bundle::Bundle;
use crate::guest::GuestRun;
use crate::images::KernelImage;
use crate::matrix::config::{Backend, KernelEntry, KernelSource};
use crate::vm::accel::Accel;
use crate::vm::{qemu, GuestLimits};

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_kernel(
    kernel: &KernelEntry,
    image: Option<Result<KernelImage, String>>,
    bundle: &Bundle,
    agent_path: &Path,
    vng: Option<&Path>,
    work: &Path,
    accel: Accel,
    snapshot_cache: Option<&Path>,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<crate::vm::GuestEvent>,
) -> GuestRun {
    let limits = GuestLimits {
        boot: kernel.boot_timeout,
        test: kernel.test_timeout,
        guest: kernel.guest_timeout,
    };
    if matches!(kernel.source, KernelSource::Host) {
        let dir = work.join("bundle");
        if let Err(e) = bundle.write_dir(&kernel.name, None, &dir) {
            return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("{e:#}"));
        }
        return crate::vm::host::run(&kernel.name, agent_path, &dir, work, limits, cancel, events)
            .await;
    }
    let image = match image {
        Some(Ok(image)) => image,
        Some(Err(e)) => {
            return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("image: {e}"))
        }
        None => {
            return GuestRun::not_run(
                &kernel.name,
                kernel.arch.as_str(),
                "no image was provisioned".into(),
            )
        }
    };
    // The kernel's config rides along for `.kconfig` externs; a missing one is the agent's to
    // report (an object that needs it is then refused, as libbpf refuses it).
    let config = image.config.as_ref().and_then(|p| std::fs::read(p).ok());
    if kernel.backend == Backend::VirtmeNg {
        let Some(vng) = vng else {
            return GuestRun::not_run(
                &kernel.name,
                kernel.arch.as_str(),
                "virtme-ng was not provisioned".into(),
            );
        };
        let dir = work.join("bundle");
        if let Err(e) = bundle.write_dir(&kernel.name, config.as_deref(), &dir) {
            return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("{e:#}"));
        }
        let guest = crate::vm::virtme_ng::VirtmeNgGuest {
            vng: vng.to_path_buf(),
            kernel: kernel.name.clone(),
            image: image.vmlinux.clone(),
            agent: agent_path.to_path_buf(),
            bundle_dir: dir,
            memory_mib: kernel.memory_mib,
            extra_cmdline: kernel.cmdline.clone(),
            accel,
            limits,
            work_dir: work.to_path_buf(),
        };
        return crate::vm::virtme_ng::run(&guest, cancel, events).await;
    }
    if let Some(cache_root) = snapshot_cache {
        use crate::vm::snapshot::{run_kernel as run_restored, Restored};
        let restored = run_restored(
            kernel,
            &image,
            bundle,
            config.as_deref(),
            cache_root,
            accel,
            limits,
            work,
            cancel.clone(),
            events.clone(),
        )
        .await;
        match restored {
            Restored::Ran(run) => return *run,
            Restored::Unavailable(why) => {
                eprintln!("note: [{}] booting fresh: {why}", kernel.name)
            }
        }
    }
    let initramfs = match bundle.write_initramfs_with_config(
        &kernel.name,
        false,
        config.as_deref(),
        &work.join("initramfs.cpio"),
    ) {
        Ok(path) => path,
        Err(e) => return GuestRun::not_run(&kernel.name, kernel.arch.as_str(), format!("{e:#}")),
    };
    let guest =
        qemu::QemuGuest::for_kernel(kernel, &image, initramfs, accel, limits, work.to_path_buf());
    let run = qemu::run(&guest, cancel, events).await;
    // The console log stays for the record; the initramfs is a few MB of rebuildable bytes.
    let _ = std::fs::remove_file(&guest.initramfs);
    run
}
