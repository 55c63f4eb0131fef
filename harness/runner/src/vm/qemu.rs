//! QEMU backend: PVH boot of an uncompressed vmlinux (x86_64), or direct boot of a raw `Image`
//! on `-M virt` (aarch64), with the harness initramfs.
//!
//! The results port is a second UART the kernel drives without a module: the second 8250 of a
//! PC (ttyS1) on x86_64; on arm64 `virt`, whose only UART is the PL011 console (ttyAMA0), a
//! PCI 16550 (`-device pci-serial`, ttyS0), which Debian's arm64 kernels drive built in
//! (`CONFIG_SERIAL_8250_PCI=y`; virtio-console and virtio-pci are modules on 6.1).

use std::path::{Path, PathBuf};

use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::accel::Accel;
use super::supervise::{run_vm, GuestEvent};
use super::GuestLimits;
use crate::guest::GuestRun;

/// Kernel arguments that shorten a TCG boot (measured, see design.md), plus the results port.
pub const BASE_CMDLINE: &str =
    "console=ttyS0 quiet loglevel=1 panic=-1 no_timer_check tsc=reliable \
rcupdate.rcu_expedited=1 i8042.noaux i8042.nokbd i8042.nopnp cryptomgr.notests mitigations=off";

/// The arm64 counterpart of [`BASE_CMDLINE`]: the PL011 console, and none of the PC-only flags.
pub const BASE_CMDLINE_AARCH64: &str = "console=ttyAMA0 quiet loglevel=1 panic=-1 \
rcupdate.rcu_expedited=1 cryptomgr.notests mitigations=off";

/// The CPU of an arm64 guest under TCG.
pub const AARCH64_TCG_CPU: &str = "max,pauth=off";

/// `$TMPDIR/harness-sock.<pid>.*/results.sock` (see [`crate::leftovers`]).
pub(crate) const SOCKET_DIR_PREFIX: &str = "harness-sock.";

pub struct QemuGuest {
    pub kernel: String,
    pub arch: String,
    pub vmlinux: PathBuf,
    pub initramfs: PathBuf,
    pub memory_mib: u32,
    pub extra_cmdline: String,
    pub accel: Accel,
    pub limits: GuestLimits,
    /// Where the console log and the results socket go.
    pub work_dir: PathBuf,
}

impl QemuGuest {
    /// A guest for a matrix kernel with its provisioned image.
    pub fn for_kernel(
        kernel: &crate::matrix::config::KernelEntry,
        image: &crate::images::KernelImage,
        initramfs: PathBuf,
        accel: Accel,
        limits: GuestLimits,
        work_dir: PathBuf,
    ) -> QemuGuest {
        // KVM runs guests of the host's own architecture only.
        let accel = if kernel.arch.as_str() == std::env::consts::ARCH {
            accel
        } else {
            Accel::Tcg
        };
        QemuGuest {
            kernel: kernel.name.clone(),
            arch: kernel.arch.as_str().to_string(),
            vmlinux: image.vmlinux.clone(),
            initramfs,
            memory_mib: kernel.memory_mib,
            extra_cmdline: kernel.cmdline.clone(),
            accel,
            limits,
            work_dir,
        }
    }

    fn is_aarch64(&self) -> bool {
        self.arch == "aarch64"
    }

    pub fn binary(&self) -> &'static str {
        match self.arch.as_str() {
            "aarch64" => "qemu-system-aarch64",
            _ => "qemu-system-x86_64",
        }
    }

    pub fn cmdline(&self) -> String {
        let (base, port) = if self.is_aarch64() {
            (BASE_CMDLINE_AARCH64, "ttyS0")
        } else {
            (BASE_CMDLINE, "ttyS1")
        };
        let mut cmdline = format!("{base} {}={port}", guest_protocol::RESULTS_PORT_PARAM);
        if !self.extra_cmdline.trim().is_empty() {
            cmdline.push(' ');
            cmdline.push_str(self.extra_cmdline.trim());
        }
        cmdline
    }

    pub fn args(&self, results_socket: &Path) -> Vec<String> {
        let (machine, results_device) = if self.is_aarch64() {
            ("virt", ["-device", "pci-serial,chardev=results"])
        } else {
            // q35 boots these kernels about a second faster than the default i440fx under TCG.
            ("q35", ["-serial", "chardev:results"])
        };
        let mut args: Vec<String> = vec![
            "-machine".into(),
            machine.into(),
            "-accel".into(),
            self.accel.qemu_name().into(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-smp".into(),
            "1".into(),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-no-reboot".into(),
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            "stdio,id=console,signal=off".into(),
            "-serial".into(),
            "chardev:console".into(),
            "-chardev".into(),
            format!("socket,id=results,path={}", results_socket.display()),
            results_device[0].into(),
            results_device[1].into(),
            "-kernel".into(),
            self.vmlinux.display().to_string(),
            "-initrd".into(),
            self.initramfs.display().to_string(),
            "-append".into(),
            self.cmdline(),
        ];
        if self.accel == Accel::Kvm {
            args.extend(["-cpu".into(), "host".into()]);
        } else if self.is_aarch64() {
            // `max` emulates every feature; emulating pointer authentication is most of its
            // cost under TCG (6.1 corpus run: 11.0 CPU-s with it, 2.8 with QEMU's cheaper
            // `pauth-impdef`, 2.2 without), and no BPF behaviour depends on it.
            args.extend(["-cpu".into(), AARCH64_TCG_CPU.into()]);
        }
        args
    }
}

pub async fn run(
    guest: &QemuGuest,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> GuestRun {
    let run = GuestRun::new(&guest.kernel, &guest.arch, guest.accel.qemu_name());
    let command = |socket: &Path| {
        let mut command = Command::new(guest.binary());
        command.args(guest.args(socket));
        command
    };
    let cannot_start = |e| {
        format!(
            "cannot start {}: {e} (install QEMU: apt-get install {})",
            guest.binary(),
            if guest.is_aarch64() {
                "qemu-system-arm"
            } else {
                "qemu-system-x86"
            }
        )
    };
    run_vm(
        run,
        command,
        cannot_start,
        &guest.work_dir,
        guest.limits,
        cancel,
        events,
    )
    .await
}

/// The Unix socket QEMU connects the results port to, listening, in a directory of its own:
/// a socket path is limited to 107 bytes, and a checkout (so the work dir) can be nested deeper
/// than that. Named after this run, so that what a killed run leaves is reclaimed by the next.
pub(super) fn results_socket() -> Result<(tempfile::TempDir, PathBuf, UnixListener), String> {
    let tmp = std::env::temp_dir();
    crate::leftovers::remove_stale(&tmp, SOCKET_DIR_PREFIX);
    let socket_dir = tempfile::Builder::new()
        .prefix(&crate::leftovers::owned_prefix(SOCKET_DIR_PREFIX))
        .tempdir_in(&tmp)
        .map_err(|e| format!("cannot create a socket directory: {e}"))?;
    let socket = socket_dir.path().join("results.sock");
    let listener = UnixListener::bind(&socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    Ok((socket_dir, socket, listener))
}

/// Own process group (a terminal's Ctrl-C reaches the runner only, which then kills its guests
/// deliberately) and death with the parent (a runner killed by SIGKILL leaves no QEMU behind).
pub fn die_with_parent(command: &mut Command) {
    command.process_group(0);
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn guest(accel: Accel) -> QemuGuest {
        QemuGuest {
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            vmlinux: "/img/vmlinux".into(),
            initramfs: "/img/initramfs".into(),
            memory_mib: 256,
            extra_cmdline: " nokaslr ".into(),
            accel,
            limits: GuestLimits {
                boot: Duration::from_secs(1),
                test: Duration::from_secs(1),
                guest: Duration::from_secs(1),
            },
            work_dir: "/tmp/w".into(),
        }
    }

    #[test]
    fn command_line_boots_pvh_without_devices() {
        let args = guest(Accel::Tcg).args(Path::new("/tmp/w/results.sock"));
        let joined = args.join(" ");
        assert!(joined.contains("-accel tcg"));
        assert!(joined.contains("-nodefaults"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.contains("-kernel /img/vmlinux"));
        assert!(joined.contains("socket,id=results,path=/tmp/w/results.sock"));
        assert!(!joined.contains("-cpu host"));
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.starts_with("console=ttyS0 "));
        assert!(append.contains("panic=-1"));
        assert!(append.ends_with("harness.port=ttyS1 nokaslr"));
    }

    #[test]
    fn aarch64_boots_virt_with_a_pci_uart_for_results() {
        let mut g = guest(Accel::Tcg);
        g.arch = "aarch64".into();
        assert_eq!(g.binary(), "qemu-system-aarch64");
        let args = g.args(Path::new("/tmp/w/results.sock"));
        let joined = args.join(" ");
        assert!(joined.contains("-machine virt "), "{joined}");
        assert!(joined.contains("-cpu max"), "{joined}");
        assert!(
            joined.contains("-device pci-serial,chardev=results"),
            "{joined}"
        );
        assert!(!joined.contains("chardev:results"), "{joined}");
        let append = &args[args.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.starts_with("console=ttyAMA0 "), "{append}");
        assert!(
            !append.contains("i8042") && !append.contains("tsc="),
            "{append}"
        );
        assert!(append.ends_with("harness.port=ttyS0 nokaslr"), "{append}");
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let args = guest(Accel::Kvm).args(Path::new("/s"));
        assert!(args.join(" ").contains("-accel kvm"));
        assert!(args.join(" ").contains("-cpu host"));
    }
}
