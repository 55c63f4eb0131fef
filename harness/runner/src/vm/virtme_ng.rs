//! virtme-ng backend (`backend = "virtme-ng"`): `vng --run` boots the kernel with the host's
//! root filesystem over 9p and virtme-ng's own init, which starts the agent as its command
//! (`--in-guest`). The agent reads its bundle from the work directory (the guest sees the
//! host's files at the same paths) and writes its frames to the results port every guest of
//! the harness has: the PC's second UART (ttyS1), added with `--qemu-opts` and connected to a
//! socket the runner listens on. So the supervisor, the frames and the verdict are the ones of
//! the QEMU backend; only who builds the QEMU command line differs. Booted fresh every time:
//! virtme-ng's guest shares the host's live filesystem, which a snapshot cannot hold.

use std::path::{Path, PathBuf};

use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::accel::Accel;
use super::supervise::{run_vm, GuestEvent};
use super::GuestLimits;
use crate::guest::GuestRun;

pub struct VirtmeNgGuest {
    /// The `vng` executable.
    pub vng: PathBuf,
    pub kernel: String,
    /// The kernel image `vng --run` boots (the vmlinux: QEMU boots it by its PVH entry).
    pub image: PathBuf,
    /// The agent binary and its bundle directory, both on the host's filesystem.
    pub agent: PathBuf,
    pub bundle_dir: PathBuf,
    pub memory_mib: u32,
    pub extra_cmdline: String,
    pub accel: Accel,
    pub limits: GuestLimits,
    /// Where the console log goes.
    pub work_dir: PathBuf,
}

impl VirtmeNgGuest {
    /// Kernel arguments added to virtme-ng's own: the harness's boot shortcuts (later ones win,
    /// so its `loglevel` too), the results port, and the root's 9p mount tag. Without an
    /// initramfs (none is needed: the drivers are built in) the kernel mounts the 9p root
    /// itself, by the name `root=` gives; since 6.5 it no longer falls back to `/dev/root`,
    /// and says "9pnet_virtio: no channels available for device" instead.
    pub fn cmdline(&self) -> String {
        let mut cmdline = format!(
            "{} {}=ttyS1 root=/dev/root",
            super::qemu::BASE_CMDLINE,
            guest_protocol::RESULTS_PORT_PARAM
        );
        if !self.extra_cmdline.trim().is_empty() {
            cmdline.push(' ');
            cmdline.push_str(self.extra_cmdline.trim());
        }
        cmdline
    }

    /// The command virtme-ng runs in the guest, as its shell reads it.
    pub fn exec(&self) -> String {
        format!(
            "{} --bundle {} --in-guest",
            shell_quote(&self.agent.display().to_string()),
            shell_quote(&self.bundle_dir.display().to_string())
        )
    }

    /// PATH for `vng`: its own directory first, where a virtual environment keeps the
    /// `virtme-run` it runs by name.
    pub fn search_path(&self) -> std::ffi::OsString {
        let mut dirs: Vec<PathBuf> = self
            .vng
            .parent()
            .map(Path::to_path_buf)
            .into_iter()
            .collect();
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).unwrap_or_else(|_| std::env::var_os("PATH").unwrap_or_default())
    }

    pub fn args(&self, results_socket: &Path) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--run".into(),
            self.image.display().to_string(),
            // The kernel's console on stderr, which the runner keeps as the console log.
            "--verbose".into(),
            // Otherwise virtiofsd is tried first, and where it cannot start (no user namespace,
            // no FUSE) virtme-ng waits seconds for it before falling back to 9p.
            "--force-9p".into(),
            // The results port is the second UART of a PC machine; microvm (virtme-ng's choice
            // under KVM) was not what this backend was tested on.
            "--disable-microvm".into(),
            "--memory".into(),
            format!("{}M", self.memory_mib),
            "--cpus".into(),
            "1".into(),
            "--cwd".into(),
            "/".into(),
            "--append".into(),
            self.cmdline(),
            "--exec".into(),
            self.exec(),
        ];
        if self.accel == Accel::Tcg {
            args.push("--disable-kvm".into());
        }
        // Last: virtme-ng appends it to QEMU's command line. Joined with `=`: a separate value
        // starting with `-` would be taken for an option of vng's own.
        args.push(format!(
            "--qemu-opts=-chardev socket,id=results,path={} -serial chardev:results",
            results_socket.display()
        ));
        args
    }
}

/// Whether `vng` can get a PID namespace of its own: root, with util-linux's `unshare`.
fn can_isolate() -> bool {
    nix::unistd::geteuid().is_root() && host_tools::on_path("unshare")
}

impl VirtmeNgGuest {
    /// The command that starts `vng`. With `isolate`, in a PID namespace of its own whose init
    /// is vng, under `unshare --kill-child`: QEMU is vng's grandchild (vng → sh → virtme-run →
    /// QEMU), which no death signal of ours reaches; a namespace whose init dies takes every
    /// process in it along, so when the runner dies (even by SIGKILL) `unshare` does, then vng,
    /// then QEMU.
    pub fn command(&self, results_socket: &Path, isolate: bool) -> Command {
        let mut command = if isolate {
            let mut unshare = Command::new("unshare");
            unshare
                .args(["--pid", "--fork", "--kill-child", "--"])
                .arg(&self.vng);
            unshare
        } else {
            Command::new(&self.vng)
        };
        command
            .args(self.args(results_socket))
            .env("PATH", self.search_path());
        command
    }
}

/// `text` single-quoted for a POSIX shell (pure).
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub async fn run(
    guest: &VirtmeNgGuest,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> GuestRun {
    let mut run = GuestRun::new(&guest.kernel, "x86_64", guest.accel.qemu_name());
    run.backend = crate::matrix::config::Backend::VirtmeNg.as_str().into();
    run.logs
        .push(format!("booted by virtme-ng ({})", guest.vng.display()));
    let isolate = can_isolate();
    let cannot_start = |e| {
        format!(
            "cannot start {}: {e} (install virtme-ng: pip install virtme-ng)",
            guest.vng.display()
        )
    };
    // The kernel's console reaches vng's stderr too (`--verbose`).
    run_vm(
        run,
        |socket: &Path| guest.command(socket, isolate),
        cannot_start,
        &guest.work_dir,
        guest.limits,
        cancel,
        events,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn guest(accel: Accel) -> VirtmeNgGuest {
        VirtmeNgGuest {
            vng: "/venv/bin/vng".into(),
            kernel: "6.12-src-vng".into(),
            image: "/b/vmlinux".into(),
            agent: "/w/guest-agent-0123".into(),
            bundle_dir: "/w/run/it's/bundle".into(),
            memory_mib: 1024,
            extra_cmdline: " nokaslr ".into(),
            accel,
            limits: GuestLimits {
                boot: Duration::from_secs(1),
                test: Duration::from_secs(1),
                guest: Duration::from_secs(1),
            },
            work_dir: "/w/run".into(),
        }
    }

    fn value_of<'a>(args: &'a [String], flag: &str) -> &'a str {
        let at = args.iter().position(|a| a == flag).unwrap();
        &args[at + 1]
    }

    #[test]
    fn the_agent_is_virtme_ngs_command_with_its_bundle_quoted() {
        let args = guest(Accel::Tcg).args(Path::new("/tmp/s/results.sock"));
        assert_eq!(value_of(&args, "--run"), "/b/vmlinux");
        assert_eq!(
            value_of(&args, "--exec"),
            r"'/w/guest-agent-0123' --bundle '/w/run/it'\''s/bundle' --in-guest"
        );
        assert_eq!(value_of(&args, "--memory"), "1024M");
        assert_eq!(value_of(&args, "--cpus"), "1");
        for flag in [
            "--force-9p",
            "--disable-microvm",
            "--disable-kvm",
            "--verbose",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} missing: {args:?}");
        }
    }

    #[test]
    fn the_results_port_is_a_second_uart_given_to_qemu_last() {
        let args = guest(Accel::Tcg).args(Path::new("/tmp/s/results.sock"));
        assert_eq!(
            args[args.len() - 1],
            "--qemu-opts=-chardev socket,id=results,path=/tmp/s/results.sock -serial chardev:results"
        );
        let append = value_of(&args, "--append");
        assert!(append.contains("harness.port=ttyS1"), "{append}");
        assert!(append.contains(" root=/dev/root"), "{append}");
        assert!(append.ends_with(" nokaslr"), "{append}");
    }

    #[test]
    fn kvm_is_left_to_virtme_ng() {
        let args = guest(Accel::Kvm).args(Path::new("/s"));
        assert!(!args.iter().any(|a| a == "--disable-kvm"), "{args:?}");
    }

    #[test]
    fn isolated_vng_runs_as_the_init_of_its_own_pid_namespace() {
        let g = guest(Accel::Tcg);
        let isolated = g.command(Path::new("/s"), true);
        let std = isolated.as_std();
        assert_eq!(std.get_program(), "unshare");
        let args: Vec<_> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[..5],
            ["--pid", "--fork", "--kill-child", "--", "/venv/bin/vng"]
        );
        assert_eq!(args[5], "--run");
        let plain = g.command(Path::new("/s"), false);
        assert_eq!(plain.as_std().get_program(), "/venv/bin/vng");
    }

    /// What the namespace is for: the launcher killed by SIGKILL (as when the runner is, its
    /// death signal) takes the grandchildren with it. A stand-in for vng that starts a
    /// grandchild, as vng's shell starts QEMU.
    #[test]
    fn killing_the_isolated_launcher_kills_what_vng_started() {
        if !can_isolate() {
            eprintln!("not root or no unshare: the namespace is not used here, nothing to test");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let fake_vng = dir.path().join("vng");
        let pid_file = dir.path().join("grandchild.pid");
        std::fs::write(
            &fake_vng,
            format!(
                "#!/bin/sh\nsleep 1000 &\necho $! > {}.tmp && mv {0}.tmp {0}\nwait\n",
                pid_file.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_vng, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut g = guest(Accel::Tcg);
        g.vng = fake_vng;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut child = g.command(Path::new("/s"), true).spawn().unwrap();
            let mut waited = 0;
            while !pid_file.exists() && waited < 100 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                waited += 1;
            }
            let pid = std::fs::read_to_string(&pid_file).unwrap();
            // The stand-in's grandchild, seen from here (the namespace's pids differ).
            let host_pid = find_sleeper(&dir);
            child.start_kill().unwrap();
            let _ = child.wait().await;
            let mut gone = false;
            for _ in 0..40 {
                if !crate::vm::supervise::is_running(host_pid) {
                    gone = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                gone,
                "the grandchild ({} in its namespace, {host_pid} here) outlived the launcher",
                pid.trim()
            );
        });
    }

    /// The pid, in this namespace, of the `sleep 1000` whose parent runs the stand-in in `dir`.
    fn find_sleeper(dir: &tempfile::TempDir) -> i32 {
        let script = dir.path().join("vng").display().to_string();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline != b"sleep\x001000\x00" {
                continue;
            }
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid: i32 = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            let parent = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&parent).contains(&script) {
                return pid;
            }
        }
        panic!("the stand-in's sleep is not running");
    }

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
