//! The virtme-ng backend's command line, read by the real virtme-ng: `vng --dry-run` must accept
//! every argument the harness passes and make of them the QEMU command the backend relies on:
//! the kernel it was given, the results UART on the runner's socket as the guest's second port
//! (ttyS1), the harness's kernel arguments after virtme-ng's (so they win), and the agent as
//! virtme-ng's command, byte for byte. Booting it needs a kernel with 9p built in, which takes
//! minutes to build: `scripts/source-kernel.sh` runs the corpus on one that way.

use std::process::Command;
use std::time::Duration;

use harness::vm::accel::Accel;
use harness::vm::virtme_ng::VirtmeNgGuest;
use harness::vm::GuestLimits;

fn vng() -> std::path::PathBuf {
    let tools = harness::fsutil::user_cache_dir().join("harness/work/tools");
    host_tools::ensure(&host_tools::virtme_ng_requirements(), true).unwrap();
    host_tools::ensure_virtme_ng(&tools, true).unwrap()
}

fn base64_decoded(text: &str) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import base64, sys; sys.stdout.write(base64.b64decode(sys.argv[1]).decode())",
            text,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn virtme_ng_turns_the_backends_arguments_into_the_qemu_command_it_relies_on() {
    let vng = vng();
    let dir = tempfile::tempdir().unwrap();
    // virtme-ng reads the image only for its release (for modules, which this backend does not
    // use); the dry run boots nothing.
    let image = dir.path().join("vmlinux");
    std::fs::write(&image, b"not booted by a dry run").unwrap();
    let guest = VirtmeNgGuest {
        vng: vng.clone(),
        kernel: "6.12-src-vng".into(),
        image: image.clone(),
        agent: dir.path().join("guest-agent"),
        bundle_dir: dir.path().join("run/bundle"),
        memory_mib: 768,
        extra_cmdline: "nokaslr".into(),
        accel: Accel::Tcg,
        limits: GuestLimits {
            boot: Duration::from_secs(60),
            test: Duration::from_secs(30),
            guest: Duration::from_secs(180),
        },
        work_dir: dir.path().join("run"),
    };
    let socket = dir.path().join("results.sock");
    let out = Command::new(&vng)
        .arg("--dry-run")
        .args(guest.args(&socket))
        .env("PATH", guest.search_path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vng --dry-run refused:\n{text}");
    let qemu = text
        .lines()
        .find(|l| l.contains("qemu-system-x86_64") && l.contains("-kernel"))
        .unwrap_or_else(|| panic!("no QEMU command in:\n{text}"));

    assert!(
        qemu.contains(&format!("-kernel {}", image.display())),
        "{qemu}"
    );
    assert!(qemu.contains("-m 768M"), "{qemu}");
    assert!(qemu.contains("-smp 1"), "{qemu}");
    assert!(qemu.contains("-machine q35"), "{qemu}");
    assert!(qemu.contains("rootfstype=9p"), "{qemu}");
    assert!(qemu.contains("root=/dev/root "), "{qemu}");
    assert!(qemu.contains("mount_tag=/dev/root"), "{qemu}");
    // The results port: a second `-serial`, after virtme-ng's console, so the guest's ttyS1.
    let console = qemu
        .find("-serial chardev:console")
        .expect("console serial");
    let results = qemu
        .find(&format!(
            "-chardev socket,id=results,path={} -serial chardev:results",
            socket.display()
        ))
        .unwrap_or_else(|| panic!("no results port in {qemu}"));
    assert!(console < results, "{qemu}");
    assert_eq!(qemu.matches("-serial ").count(), 2, "{qemu}");
    // The kernel arguments: the harness's after virtme-ng's, so its quieter loglevel wins.
    assert!(qemu.contains("harness.port=ttyS1"), "{qemu}");
    assert!(qemu.contains(" nokaslr"), "{qemu}");
    let loglevels: Vec<&str> = qemu
        .split_whitespace()
        .filter(|w| w.starts_with("loglevel="))
        .collect();
    assert_eq!(loglevels.last(), Some(&"loglevel=1"), "{qemu}");
    // The agent is virtme-ng's command, exactly as the backend wrote it.
    let exec = qemu
        .split_whitespace()
        .find_map(|w| w.strip_prefix("virtme.exec=`"))
        .and_then(|w| w.strip_suffix('`'))
        .unwrap_or_else(|| panic!("no virtme.exec in {qemu}"));
    assert_eq!(base64_decoded(exec), guest.exec());
    assert!(guest.exec().ends_with("--in-guest"));
}
