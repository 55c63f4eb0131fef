//! Host tools the harness and its tests need, and how they get there.
//!
//! On a fresh Debian machine, as root, the harness installs what is missing itself (that is what
//! makes README's two commands enough); anywhere else it stops and names the exact command.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// One thing the run needs from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub what: &'static str,
    pub present: bool,
    pub install: Install,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Install {
    Apt(&'static str),
    RustupTarget(&'static str),
}

impl Install {
    pub fn command(&self) -> String {
        match self {
            Install::Apt(package) => format!("apt-get install {package}"),
            Install::RustupTarget(target) => format!("rustup target add {target}"),
        }
    }
}

pub const AGENT_TARGET: &str = "x86_64-unknown-linux-musl";

/// What a matrix run needs: `qemu` only when a kernel is booted (not for the host entry), a
/// compiler and libbpf's headers only when there are sources to build (`clang`). The guest agent
/// is embedded in the harness when it is built, so running needs no Rust target.
pub fn requirements(qemu: bool, clang: Option<&str>) -> Vec<Requirement> {
    let mut needs = vec![Requirement {
        what: "dpkg-deb (unpacks kernel packages)",
        present: on_path("dpkg-deb"),
        install: Install::Apt("dpkg"),
    }];
    if let Some(clang) = clang {
        needs.push(Requirement {
            what: "clang-19 (compiles the BPF sources)",
            present: on_path(clang),
            install: Install::Apt("clang-19"),
        });
        needs.push(Requirement {
            what: "libbpf headers (bpf_helpers.h)",
            present: Path::new("/usr/include/bpf/bpf_helpers.h").exists(),
            install: Install::Apt("libbpf-dev"),
        });
    }
    if qemu {
        needs.push(Requirement {
            what: "qemu-system-x86_64",
            present: on_path("qemu-system-x86_64"),
            install: Install::Apt("qemu-system-x86"),
        });
    }
    needs
}

/// What booting arm64 guests needs besides [`requirements`]: Debian ships
/// `qemu-system-aarch64` in `qemu-system-arm`, from the same QEMU source (and version) as
/// `qemu-system-x86`. The aarch64 agent is embedded at build time like the x86_64 one.
pub fn aarch64_requirements() -> Vec<Requirement> {
    vec![Requirement {
        what: "qemu-system-aarch64 (boots arm64 kernels)",
        present: on_path("qemu-system-aarch64"),
        install: Install::Apt("qemu-system-arm"),
    }]
}

/// What making BTF from a kernel's DWARF needs (`btf_from_dwarf = true`).
pub fn dwarf_btf_requirements() -> Vec<Requirement> {
    vec![Requirement {
        what: "pahole (makes BTF from a vmlinux's DWARF)",
        present: on_path("pahole"),
        install: Install::Apt("dwarves"),
    }]
}

/// What building a kernel from its source tree needs (`source = { tree }`): the kernel's
/// documented minimal requirements for an x86_64 build with BTF.
pub fn kernel_build_requirements() -> Vec<Requirement> {
    let tool = |what: &'static str, binary: &str, package: &'static str| Requirement {
        what,
        present: on_path(binary),
        install: Install::Apt(package),
    };
    let mut needs = vec![
        tool("make (builds kernels from source)", "make", "make"),
        tool("gcc (builds kernels from source)", "gcc", "gcc"),
        tool("flex (kernel configuration)", "flex", "flex"),
        tool("bison (kernel configuration)", "bison", "bison"),
        tool("bc (kernel build)", "bc", "bc"),
        Requirement {
            what: "libelf headers (the kernel's objtool and resolve_btfids)",
            present: Path::new("/usr/include/libelf.h").exists(),
            install: Install::Apt("libelf-dev"),
        },
        Requirement {
            what: "OpenSSL headers (the kernel's certificate tools)",
            present: Path::new("/usr/include/openssl/ssl.h").exists(),
            install: Install::Apt("libssl-dev"),
        },
    ];
    needs.extend(dwarf_btf_requirements());
    needs
}

/// The virtme-ng release the `virtme-ng` backend installs when no `vng` is on PATH: the one its
/// command line (`--force-9p`, `--qemu-opts`, `--exec`) was written and tested against.
pub const VIRTME_NG_VERSION: &str = "1.42";

/// What the `virtme-ng` backend needs besides QEMU: Python with `venv` to install virtme-ng
/// itself when it is not on PATH ([`ensure_virtme_ng`]).
pub fn virtme_ng_requirements() -> Vec<Requirement> {
    if on_path("vng") {
        return Vec::new();
    }
    let venv = Command::new("python3")
        .args(["-c", "import venv, ensurepip"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    vec![Requirement {
        what: "python3 with venv (installs virtme-ng for `backend = \"virtme-ng\"`)",
        present: venv,
        install: Install::Apt("python3-venv"),
    }]
}

/// The `vng` to run: the one on PATH (the user's own), else virtme-ng [`VIRTME_NG_VERSION`]
/// in a virtual environment under `tools_dir`, installed from PyPI when missing and allowed.
pub fn ensure_virtme_ng(tools_dir: &Path, allow_install: bool) -> Result<std::path::PathBuf> {
    if let Some(vng) = find_on_path("vng") {
        return Ok(vng);
    }
    let venv = tools_dir.join(format!("virtme-ng-{VIRTME_NG_VERSION}"));
    let vng = venv.join("bin/vng");
    if vng.is_file() {
        return Ok(vng);
    }
    let command = format!(
        "python3 -m venv {0} && {0}/bin/pip install virtme-ng=={VIRTME_NG_VERSION}",
        venv.display()
    );
    if !allow_install {
        bail!(
            "virtme-ng (`vng`) is not on PATH, and installing it was not allowed: install it \
             (`pip install virtme-ng`), or run without --no-install, which runs: {command}"
        );
    }
    let _guard = install_lock()?;
    if vng.is_file() {
        return Ok(vng);
    }
    eprintln!(
        "installing virtme-ng {VIRTME_NG_VERSION} into {}",
        venv.display()
    );
    // A half-made environment would be taken for a whole one by the check above.
    let _ = std::fs::remove_dir_all(&venv);
    let installed = run_quietly(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )
    .and_then(|()| {
        run_quietly(
            Command::new(venv.join("bin/pip")).args([
                "install",
                "-q",
                &format!("virtme-ng=={VIRTME_NG_VERSION}"),
            ]),
            &format!("pip install virtme-ng=={VIRTME_NG_VERSION}"),
        )
    });
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&venv);
        return Err(e.context(format!("installing virtme-ng ({command})")));
    }
    if !vng.is_file() {
        bail!(
            "pip installed virtme-ng, but {} is not there",
            vng.display()
        );
    }
    Ok(vng)
}

/// What building the static libbpf loader (`harness --libbpf`) needs: a C compiler and the static
/// archives of libbpf and of what it links (libelf, zlib, and zstd where libelf uses it).
pub fn libbpf_loader_requirements(cc: &str) -> Vec<Requirement> {
    let compiler = on_path(cc);
    let archive = |name: &str| static_archive(cc, compiler, name);
    let mut needs = vec![
        Requirement {
            what: "a C compiler (builds the static libbpf loader)",
            present: compiler,
            install: Install::Apt("gcc"),
        },
        Requirement {
            what: "libbpf.a and libbpf headers",
            present: archive("libbpf.a").is_some()
                && Path::new("/usr/include/bpf/libbpf.h").exists(),
            install: Install::Apt("libbpf-dev"),
        },
        Requirement {
            what: "libelf.a",
            present: archive("libelf.a").is_some(),
            install: Install::Apt("libelf-dev"),
        },
        Requirement {
            what: "libz.a",
            present: archive("libz.a").is_some(),
            install: Install::Apt("zlib1g-dev"),
        },
    ];
    if libelf_needs_zstd(cc, compiler) {
        needs.push(Requirement {
            what: "libzstd.a (libelf is built with zstd)",
            present: archive("libzstd.a").is_some(),
            install: Install::Apt("libzstd-dev"),
        });
    }
    needs
}

/// Whether this machine's static libelf calls into zstd (elfutils built with it).
pub fn libelf_needs_zstd(cc: &str, compiler: bool) -> bool {
    static_archive(cc, compiler, "libelf.a")
        .and_then(|p| std::fs::read(p).ok())
        .is_some_and(|bytes| bytes.windows(5).any(|w| w == b"ZSTD_"))
}

/// Where the compiler (or, without one, the usual directories) finds a static archive.
fn static_archive(cc: &str, compiler: bool, name: &str) -> Option<std::path::PathBuf> {
    if compiler {
        let out = Command::new(cc)
            .arg(format!("-print-file-name={name}"))
            .output()
            .ok()?;
        let path = std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        return path.is_absolute().then_some(path).filter(|p| p.is_file());
    }
    ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

/// Installs what is missing when allowed and possible; otherwise fails with the commands to run.
pub fn ensure(needs: &[Requirement], allow_install: bool) -> Result<()> {
    let missing: Vec<&Requirement> = needs.iter().filter(|r| !r.present).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let apt: Vec<&str> = missing
        .iter()
        .filter_map(|r| match r.install {
            Install::Apt(p) => Some(p),
            _ => None,
        })
        .collect();
    let targets: Vec<&str> = missing
        .iter()
        .filter_map(|r| match r.install {
            Install::RustupTarget(t) => Some(t),
            _ => None,
        })
        .collect();
    let can_apt = nix::unistd::geteuid().is_root() && on_path("apt-get");
    if !allow_install
        || (!apt.is_empty() && !can_apt)
        || (!targets.is_empty() && !on_path("rustup"))
    {
        let mut message = String::from("missing on this machine:\n");
        for r in &missing {
            message.push_str(&format!("  - {}: {}\n", r.what, r.install.command()));
        }
        if !apt.is_empty() {
            message.push_str(&format!(
                "install with: sudo apt-get install -y {}\n",
                apt.join(" ")
            ));
        }
        if !allow_install {
            message.push_str(
                "(the harness installs these itself when run as root without --no-install)",
            );
        }
        bail!(message.trim_end().to_string());
    }
    // Two runs at once (parallel tests, two terminals) must not both drive dpkg.
    let _guard = install_lock()?;
    // Another run may have installed them while we waited for the lock.
    let apt: Vec<&str> = apt.into_iter().filter(|p| !apt_installed(p)).collect();
    if !apt.is_empty() {
        eprintln!("installing host packages: {}", apt.join(" "));
        run_quietly(
            Command::new("apt-get").arg("update").arg("-q"),
            "apt-get update",
        )?;
        run_quietly(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&apt),
            &format!("apt-get install {}", apt.join(" ")),
        )?;
    }
    for target in targets.into_iter().filter(|t| !rust_target_installed(t)) {
        eprintln!("installing Rust target {target}");
        run_quietly(
            Command::new("rustup").args(["target", "add", target]),
            &format!("rustup target add {target}"),
        )?;
    }
    Ok(())
}

fn install_lock() -> Result<nix::fcntl::Flock<std::fs::File>> {
    let euid = nix::unistd::geteuid();
    // Never a world-writable directory such as a shared TMPDIR: another user could plant a
    // symlink there and have root create or truncate a file wherever it points.
    let dir = if euid.is_root() {
        std::path::PathBuf::from("/run/harness")
    } else {
        std::env::temp_dir().join(format!("harness-{euid}"))
    };
    let file = open_private_lock(&dir, "host-tools.lock", euid.as_raw())?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
        anyhow::anyhow!("cannot lock {}: {e}", dir.join("host-tools.lock").display())
    })
}

/// Opens (creating) `dir/name` for locking, where `dir` must be a real directory (not a
/// symlink) owned by `owner` that no one else can write, and `name` must not be a symlink.
/// `dir` is created (mode 0700) when missing.
fn open_private_lock(dir: &Path, name: &str, owner: u32) -> Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir)
        .with_context(|| format!("cannot inspect {}", dir.display()))?;
    if !meta.file_type().is_dir() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        bail!(
            "{} is not a private directory (it must be a directory, not a symlink, owned by uid \
             {owner} and writable by no one else); remove it and rerun",
            dir.display()
        );
    }
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_CLOEXEC.bits())
        .open(&path)
        .with_context(|| format!("cannot open the lock file {}", path.display()))
}

fn run_quietly(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(15)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

fn apt_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Where `program` is found on PATH (or itself, when it is a path to a file).
pub fn find_on_path(program: &str) -> Option<std::path::PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| program.into());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

pub fn on_path(program: &str) -> bool {
    find_on_path(program).is_some()
}

fn rust_target_installed(target: &str) -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == target)
        })
        // Without rustup (a distribution toolchain) we cannot tell; let the build say.
        .unwrap_or(true)
}

/// For tests that compile BPF C: makes sure clang-19 and the libbpf headers are there,
/// installing them as the harness would (once per process), or panics with what to run.
pub fn ensure_bpf_toolchain_for_tests() {
    static ONCE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let outcome = ONCE.get_or_init(|| {
        let clang = std::env::var("HARNESS_CLANG").unwrap_or_else(|_| "clang-19".into());
        let needs: Vec<Requirement> = requirements(false, Some(&clang))
            .into_iter()
            .filter(|r| matches!(r.install, Install::Apt(_)))
            .collect();
        ensure(&needs, std::env::var_os("HARNESS_NO_INSTALL").is_none())
            .map_err(|e| format!("{e:#}"))
    });
    if let Err(message) = outcome {
        panic!("the BPF toolchain is missing and could not be installed:\n{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_by_path() {
        assert!(on_path("sh"));
        assert!(on_path("/bin/sh"));
        assert!(!on_path("no-such-program-for-sure"));
    }

    #[test]
    fn refusal_names_the_commands() {
        let needs = vec![Requirement {
            what: "qemu",
            present: false,
            install: Install::Apt("qemu-system-x86"),
        }];
        let error = ensure(&needs, false).unwrap_err().to_string();
        assert!(
            error.contains("apt-get install -y qemu-system-x86"),
            "{error}"
        );
    }

    #[test]
    fn arm64_guests_ask_for_debians_qemu_system_arm() {
        let needs = aarch64_requirements();
        assert_eq!(needs.len(), 1);
        assert_eq!(needs[0].install, Install::Apt("qemu-system-arm"));
        assert_eq!(needs[0].present, on_path("qemu-system-aarch64"));
        let missing = Requirement {
            present: false,
            ..needs[0].clone()
        };
        let error = ensure(&[missing], false).unwrap_err().to_string();
        assert!(
            error.contains(
                "qemu-system-aarch64 (boots arm64 kernels): apt-get install qemu-system-arm"
            ),
            "{error}"
        );
    }

    #[test]
    fn without_a_compiler_the_libbpf_loader_asks_for_gcc() {
        let needs = libbpf_loader_requirements("no-such-cc-for-sure");
        let compiler = &needs[0];
        assert!(!compiler.present);
        assert_eq!(compiler.install, Install::Apt("gcc"));
        let error = ensure(&needs, false).unwrap_err().to_string();
        assert!(error.contains("apt-get install gcc"), "{error}");
        // The archives are still looked for where Debian puts them.
        let libbpf = needs
            .iter()
            .find(|r| r.what.starts_with("libbpf.a"))
            .unwrap();
        assert_eq!(
            libbpf.present,
            Path::new("/usr/lib/x86_64-linux-gnu/libbpf.a").is_file()
                && Path::new("/usr/include/bpf/libbpf.h").exists()
        );
    }

    #[test]
    fn the_lock_file_never_follows_a_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let owner = nix::unistd::geteuid().as_raw();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("locks");
        // Created private, and reusable.
        open_private_lock(&dir, "a.lock", owner).unwrap();
        open_private_lock(&dir, "a.lock", owner).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        // A planted symlink is refused, and its target is not created.
        let target = tmp.path().join("victim");
        std::os::unix::fs::symlink(&target, dir.join("b.lock")).unwrap();
        let e = open_private_lock(&dir, "b.lock", owner).unwrap_err();
        assert!(format!("{e:#}").contains("b.lock"), "{e:#}");
        assert!(!target.exists(), "followed the symlink");

        // A directory others can write, or a symlinked directory, is refused.
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let e = open_private_lock(&shared, "c.lock", owner).unwrap_err();
        assert!(
            format!("{e:#}").contains("not a private directory"),
            "{e:#}"
        );
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(open_private_lock(&link, "d.lock", owner).is_err());
        // Owned by someone else.
        assert!(open_private_lock(&dir, "e.lock", owner + 1).is_err());
    }

    #[test]
    fn nothing_missing_is_fine() {
        let needs = vec![Requirement {
            what: "sh",
            present: true,
            install: Install::Apt("dash"),
        }];
        ensure(&needs, false).unwrap();
    }
}
