//! The kernel matrix: `kernels.toml`.
//!
//! The file lists the kernels one BPF object is run on, where each kernel comes from, and the
//! limits of each guest. Unknown keys are errors, and every error names the file, the line and
//! the column, and what was expected there.
//!
//! ```toml
//! # mirror = "http://..."   # optional: Debian mirror base URL (the directory holding dists/ and
//! #                         # pool/); default: the first Debian `URIs:`/`deb` line of the host's
//! #                         # apt configuration
//! # keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"   # optional (this is the default)
//!
//! [defaults]                # all optional; the values shown are the built-in defaults
//! memory_mib = 1024         # guest memory
//! boot_timeout_s = 60       # QEMU start -> agent hello
//! test_timeout_s = 30       # per object: the longest the agent may stay silent
//! guest_timeout_s = 180     # the whole guest
//! cmdline = ""              # extra kernel arguments, appended to the harness's own
//!                           # (each timeout: 1 to 86400 seconds)
//!
//! [[kernel]]
//! name = "5.10"             # unique; what `--kernel` selects
//! arch = "x86_64"           # x86_64 (default) or aarch64
//! debian = { suite = "bullseye", packages = ["linux-image-5.10.*-amd64-unsigned"] }
//! # memory_mib, boot_timeout_s, test_timeout_s, guest_timeout_s, cmdline: per-kernel overrides
//! # enabled = false         # listed, but run only when named with --kernel
//! # group = "nightly"       # run only when its group is selected (`--group nightly`); the
//! #                         # default group is `default`, which a run without --group selects
//! # btf = "path"            # external raw BTF used instead of the kernel's own, on the host
//! #                         # (predictions, vmlinux.h) and in the guest (shipped in its bundle)
//!
//! [[kernel]]
//! name = "host"             # the running kernel, no VM
//! host = true
//! enabled = false
//!
//! [[kernel]]
//! name = "mine"             # a local kernel: vmlinux = "path" (used in place) or
//! vmlinuz = "build/bzImage" # vmlinuz = "path" (decompressed into the image cache);
//! # btf = "path"            # optional: raw BTF instead of the image's .BTF (see above)
//! # config = "path"         # optional, with vmlinux/vmlinuz: the kernel's .config
//!
//! [[kernel]]
//! name = "6.12-src"         # a kernel built from its source tree when needed: tinyconfig, the
//! source = { tree = "linux" } # harness's BPF fragment, then yours (`config = ["a.config"]`);
//! #                         # `build = "dir"` (default: in the image cache) is make's O=
//! # btf_from_dwarf = true   # its BTF made with `pahole` from the vmlinux's DWARF, used on the
//! #                         # host and shipped to the guest (a kernel without DEBUG_INFO_BTF)
//! # backend = "virtme-ng"   # booted by `vng --run` (host root over 9p, virtme-ng's init)
//! #                         # instead of the harness's QEMU command (`qemu`, the default);
//! #                         # for source, vmlinux and vmlinuz kernels, x86_64
//! ```
//!
//! Each kernel has exactly one source: `debian`, `host = true`, `vmlinux`, `vmlinuz` or
//! `source`. Relative paths are relative to the directory of `kernels.toml`.
//!
//! In Debian package patterns, `*` stands for a version number: one or more digits, dots and
//! hyphens. So `linux-image-5.10.*-amd64-unsigned` matches `linux-image-5.10.0-32-amd64-unsigned`
//! but not `linux-image-5.10.0-32-cloud-amd64-unsigned`, and `linux-image-6.1.*-amd64-unsigned`
//! does not match a 6.12 package. `kernels.lock` pins what each pattern resolved to.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The keyring used to verify Debian archive metadata unless `keyring` says otherwise.
pub const DEFAULT_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The group of a kernel without `group = ...`: what a run without `--group` selects.
pub const DEFAULT_GROUP: &str = "default";

/// Built-in defaults, overridden by `[defaults]`, overridden per kernel.
/// Guest RAM: bcc-style tools preallocate maps of tens of MiB, which 256 MiB guests refused with
/// ENOMEM after a few objects (under TCG only the pages a guest touches cost host memory).
pub const DEFAULT_MEMORY_MIB: u32 = 1024;
pub const DEFAULT_BOOT_TIMEOUT_S: u64 = 60;
pub const DEFAULT_TEST_TIMEOUT_S: u64 = 30;
pub const DEFAULT_GUEST_TIMEOUT_S: u64 = 180;
/// The longest any timeout may be: a day. Larger values (up to `u64::MAX` seconds) would
/// overflow the clock arithmetic of the guest supervisor.
pub const MAX_TIMEOUT_S: u64 = 86_400;

/// Errors reading, parsing or validating `kernels.toml`, or selecting kernels from it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is in the message, not also a `#[source]`: a chain printer would say it twice.
    #[error("{}: cannot read: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Syntax or schema error (unknown key, wrong type, missing key).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parses but says something impossible (two sources, duplicate names, ...).
    #[error("{}{}: {message}", path.display(), location(*line, *column))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    #[error("unknown kernel group `{group}`; {path} has: {}", known.join(", "), path = path.display())]
    UnknownGroup {
        path: PathBuf,
        group: String,
        known: Vec<String>,
    },
    #[error("unknown kernel `{name}`; {path} defines: {}", known.join(", "), path = path.display())]
    UnknownKernel {
        path: PathBuf,
        name: String,
        known: Vec<String>,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// CPU architecture of a kernel (and of the guest that boots it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "aarch64")]
    Aarch64,
}

impl Arch {
    /// Debian's name for the architecture (`amd64`, `arm64`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }
}

/// What boots a kernel's guest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum Backend {
    /// The harness's own QEMU command: PVH boot, its initramfs, ready snapshots.
    #[default]
    #[serde(rename = "qemu")]
    Qemu,
    /// virtme-ng's `vng --run`: the host's root filesystem over 9p, virtme-ng's init, and the
    /// agent started as its command; booted fresh every time.
    #[serde(rename = "virtme-ng")]
    VirtmeNg,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Qemu => "qemu",
            Backend::VirtmeNg => "virtme-ng",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Debian package name pattern: `*` stands for a version number (one or more of digits, `.`
/// and `-`); everything else matches literally.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
#[serde(transparent)]
pub struct PackagePattern(pub String);

impl PackagePattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        fn go(p: &[u8], n: &[u8]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some((b'*', rest)) => {
                    let run = n
                        .iter()
                        .take_while(|c| c.is_ascii_digit() || **c == b'.' || **c == b'-')
                        .count();
                    (1..=run).rev().any(|k| go(rest, &n[k..]))
                }
                Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
            }
        }
        go(self.0.as_bytes(), name.as_bytes())
    }

    /// The literal text before the first `*`: every matching name starts with it.
    pub fn prefix(&self) -> &str {
        self.0.split('*').next().unwrap_or("")
    }
}

impl fmt::Display for PackagePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Kernels taken from the Debian archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianSource {
    /// Suite (codename) such as `bullseye`, `bookworm`, `trixie`, `sid`.
    pub suite: String,
    /// One pattern per package to fetch. Together the packages must hold the kernel image
    /// (`vmlinuz`) and usually its config.
    pub packages: Vec<PackagePattern>,
}

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// Packages from the Debian archive, pinned in `kernels.lock`.
    Debian(DebianSource),
    /// The kernel the harness runs on: no VM, no image.
    Host,
    /// A local uncompressed kernel ELF, used in place.
    Vmlinux {
        path: PathBuf,
        btf: Option<PathBuf>,
        config: Option<PathBuf>,
    },
    /// A local compressed kernel (bzImage), decompressed into the image cache.
    Vmlinuz {
        path: PathBuf,
        btf: Option<PathBuf>,
        config: Option<PathBuf>,
    },
    /// A kernel source tree, configured and built by the harness when needed
    /// ([`crate::images::source_tree`]), then used like a local vmlinux.
    Tree(SourceTree),
}

/// `source = { tree, build, config }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTree {
    /// The kernel source tree (holding its top Makefile and Kconfig).
    pub tree: PathBuf,
    /// make's `O=` directory; `None`: one in the image cache.
    pub build: Option<PathBuf>,
    /// Config fragments merged after the harness's own, in order.
    pub config: Vec<PathBuf>,
}

impl KernelSource {
    pub fn kind(&self) -> &'static str {
        match self {
            KernelSource::Debian(_) => "debian",
            KernelSource::Host => "host",
            KernelSource::Vmlinux { .. } => "vmlinux",
            KernelSource::Vmlinuz { .. } => "vmlinuz",
            KernelSource::Tree(_) => "source",
        }
    }
}

/// `[defaults]` with built-in defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub memory_mib: u32,
    pub boot_timeout: Duration,
    pub test_timeout: Duration,
    pub guest_timeout: Duration,
    pub cmdline: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            memory_mib: DEFAULT_MEMORY_MIB,
            boot_timeout: Duration::from_secs(DEFAULT_BOOT_TIMEOUT_S),
            test_timeout: Duration::from_secs(DEFAULT_TEST_TIMEOUT_S),
            guest_timeout: Duration::from_secs(DEFAULT_GUEST_TIMEOUT_S),
            cmdline: String::new(),
        }
    }
}

/// One `[[kernel]]`, with `[defaults]` applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelEntry {
    pub name: String,
    pub arch: Arch,
    pub source: KernelSource,
    pub memory_mib: u32,
    /// QEMU start to the agent's hello.
    pub boot_timeout: Duration,
    /// Per object: the longest the agent may stay silent.
    pub test_timeout: Duration,
    /// The whole guest.
    pub guest_timeout: Duration,
    /// Extra kernel arguments, appended to the harness's own.
    pub cmdline: String,
    /// `false`: run only when named with `--kernel`.
    pub enabled: bool,
    /// Which selection runs it: [`DEFAULT_GROUP`] unless `group = ...` says otherwise.
    pub group: String,
    /// `btf = "path"`: raw BTF used instead of the kernel's own, both for host-side predictions
    /// and in the guest (for a kernel without BTF, or to test against another BTF).
    pub btf: Option<PathBuf>,
    /// `btf_from_dwarf = true`: the harness makes the kernel's BTF from its vmlinux's DWARF
    /// (`pahole`) and uses it as it would an external `btf`.
    pub btf_from_dwarf: bool,
    /// `backend = "virtme-ng"`: booted by virtme-ng instead of the harness's own QEMU command.
    pub backend: Backend,
}

/// The parsed `kernels.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// The file it came from.
    pub path: PathBuf,
    /// Debian mirror base URL; `None`: take it from the host's apt configuration.
    pub mirror: Option<String>,
    /// Keyring verifying the archive's signed metadata.
    pub keyring: PathBuf,
    pub defaults: Defaults,
    pub kernels: Vec<KernelEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    mirror: Option<Spanned<String>>,
    keyring: Option<PathBuf>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default, rename = "kernel")]
    kernels: Vec<RawKernel>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    memory_mib: Option<Spanned<u32>>,
    boot_timeout_s: Option<Spanned<u64>>,
    test_timeout_s: Option<Spanned<u64>>,
    guest_timeout_s: Option<Spanned<u64>>,
    cmdline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKernel {
    name: Spanned<String>,
    arch: Option<Arch>,
    debian: Option<Spanned<RawDebian>>,
    host: Option<Spanned<bool>>,
    vmlinux: Option<PathBuf>,
    vmlinuz: Option<PathBuf>,
    source: Option<Spanned<RawSourceTree>>,
    btf: Option<Spanned<PathBuf>>,
    btf_from_dwarf: Option<Spanned<bool>>,
    backend: Option<Spanned<Backend>>,
    config: Option<Spanned<PathBuf>>,
    memory_mib: Option<Spanned<u32>>,
    boot_timeout_s: Option<Spanned<u64>>,
    test_timeout_s: Option<Spanned<u64>>,
    guest_timeout_s: Option<Spanned<u64>>,
    cmdline: Option<String>,
    enabled: Option<bool>,
    group: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSourceTree {
    tree: PathBuf,
    build: Option<PathBuf>,
    #[serde(default)]
    config: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDebian {
    suite: String,
    packages: Vec<String>,
}

/// Validation of one matrix file: every error names the file, and the line and column of the
/// value at fault; relative paths are resolved against the file's directory.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
    base: PathBuf,
}

impl Checker<'_> {
    fn invalid(&self, span: Option<std::ops::Range<usize>>, message: String) -> ConfigError {
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
        }
    }

    fn rel(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn mirror(&self, raw: Option<&Spanned<String>>) -> Result<Option<String>, ConfigError> {
        let Some(m) = raw else {
            return Ok(None);
        };
        let v = m.get_ref().trim().trim_end_matches('/').to_string();
        if !(v.starts_with("http://") || v.starts_with("https://") || v.starts_with("file:/")) {
            return Err(self.invalid(
                Some(m.span()),
                format!("`mirror` must be an http://, https:// or file:/ URL, found `{v}`"),
            ));
        }
        Ok(Some(v))
    }

    fn secs(
        &self,
        v: &Option<Spanned<u64>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if *s.get_ref() == 0 => Err(self.invalid(
                Some(s.span()),
                format!("`{key}` must be at least 1 (seconds)"),
            )),
            Some(s) if *s.get_ref() > MAX_TIMEOUT_S => Err(self.invalid(
                Some(s.span()),
                format!(
                    "`{key}` must be at most {MAX_TIMEOUT_S} (seconds, one day), found {}",
                    s.get_ref()
                ),
            )),
            Some(s) => Ok(Duration::from_secs(*s.get_ref())),
        }
    }

    fn mem(&self, v: &Option<Spanned<u32>>, default: u32) -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(s) if *s.get_ref() < 32 => Err(self.invalid(
                Some(s.span()),
                format!("`memory_mib` must be at least 32, found {}", s.get_ref()),
            )),
            Some(s) => Ok(*s.get_ref()),
        }
    }

    fn defaults(&self, d: &RawDefaults) -> Result<Defaults, ConfigError> {
        let built_in = Defaults::default();
        Ok(Defaults {
            memory_mib: self.mem(&d.memory_mib, built_in.memory_mib)?,
            boot_timeout: self.secs(&d.boot_timeout_s, "boot_timeout_s", built_in.boot_timeout)?,
            test_timeout: self.secs(&d.test_timeout_s, "test_timeout_s", built_in.test_timeout)?,
            guest_timeout: self.secs(
                &d.guest_timeout_s,
                "guest_timeout_s",
                built_in.guest_timeout,
            )?,
            cmdline: d.cmdline.clone().unwrap_or_default(),
        })
    }

    /// One `[[kernel]]` table, with `defaults` for what it leaves out.
    fn kernel(&self, k: &RawKernel, defaults: &Defaults) -> Result<KernelEntry, ConfigError> {
        let name = self.kernel_name(&k.name)?;
        let source = self.source(&name, k)?;
        let arch = k.arch.unwrap_or(Arch::X86_64);
        if let (Some(s), true) = (&k.source, arch != Arch::X86_64) {
            return Err(self.invalid(
                Some(s.span()),
                format!(
                    "kernel `{name}`: kernels built from source are x86_64 builds (the host's); \
                     build an {} kernel yourself and give its image as `vmlinuz = \"path\"`",
                    arch.as_str()
                ),
            ));
        }
        let btf_from_dwarf = self.btf_from_dwarf(&name, k)?;
        let backend = self.backend(&name, k)?;
        Ok(KernelEntry {
            arch,
            source,
            memory_mib: self.mem(&k.memory_mib, defaults.memory_mib)?,
            boot_timeout: self.secs(&k.boot_timeout_s, "boot_timeout_s", defaults.boot_timeout)?,
            test_timeout: self.secs(&k.test_timeout_s, "test_timeout_s", defaults.test_timeout)?,
            guest_timeout: self.secs(
                &k.guest_timeout_s,
                "guest_timeout_s",
                defaults.guest_timeout,
            )?,
            cmdline: k
                .cmdline
                .clone()
                .unwrap_or_else(|| defaults.cmdline.clone()),
            enabled: k.enabled.unwrap_or(true),
            group: self.group(&name, k.group.as_ref())?,
            btf: k.btf.as_ref().map(|p| self.rel(p.get_ref())),
            btf_from_dwarf,
            backend,
            name,
        })
    }

    /// `backend = "virtme-ng"`: for a kernel the user built (its drivers for 9p and virtio built
    /// in), on x86_64, where its results port is the PC's second UART.
    fn backend(&self, name: &str, k: &RawKernel) -> Result<Backend, ConfigError> {
        let Some(backend) = &k.backend else {
            return Ok(Backend::Qemu);
        };
        if *backend.get_ref() == Backend::Qemu {
            return Ok(Backend::Qemu);
        }
        let why = if k.debian.is_some() || k.host.is_some() {
            Some(
                "boots kernels you built (`source = { tree }`, `vmlinux` or `vmlinuz`): a \
                 Debian kernel's 9p and virtio drivers are modules virtme-ng would look for on \
                 this host, and the host entry boots nothing",
            )
        } else if k.arch.unwrap_or(Arch::X86_64) != Arch::X86_64 {
            Some("runs x86_64 kernels only here (the results port is the PC's second UART)")
        } else {
            None
        };
        match why {
            Some(why) => Err(self.invalid(
                Some(backend.span()),
                format!("kernel `{name}`: `backend = \"virtme-ng\"` {why}; use the default `qemu`"),
            )),
            None => Ok(Backend::VirtmeNg),
        }
    }

    /// `btf_from_dwarf`: only where a vmlinux with DWARF can exist, and not beside `btf`.
    fn btf_from_dwarf(&self, name: &str, k: &RawKernel) -> Result<bool, ConfigError> {
        let Some(flag) = &k.btf_from_dwarf else {
            return Ok(false);
        };
        if !flag.get_ref() {
            return Ok(false);
        }
        if k.btf.is_some() {
            return Err(self.invalid(
                Some(flag.span()),
                format!(
                    "kernel `{name}`: `btf = \"path\"` and `btf_from_dwarf = true` both say \
                     where its BTF comes from; keep one"
                ),
            ));
        }
        if k.vmlinux.is_none() && k.source.is_none() {
            return Err(self.invalid(
                Some(flag.span()),
                format!(
                    "kernel `{name}`: `btf_from_dwarf` needs a vmlinux with DWARF, which only \
                     `vmlinux = \"path\"` and `source = {{ tree }}` kernels have (Debian's \
                     DWARF is in its -dbg package: run `pahole --btf_encode_detached` on it and \
                     give `btf = \"path\"`)"
                ),
            ));
        }
        Ok(true)
    }

    fn kernel_name(&self, raw: &Spanned<String>) -> Result<String, ConfigError> {
        let name = raw.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
        {
            return Err(self.invalid(
                Some(raw.span()),
                format!(
                    "kernel name `{name}` must be non-empty and use only letters, digits, \
                     `.`, `-`, `_` and `+`"
                ),
            ));
        }
        Ok(name)
    }

    fn group(&self, name: &str, raw: Option<&Spanned<String>>) -> Result<String, ConfigError> {
        let Some(g) = raw else {
            return Ok(DEFAULT_GROUP.to_string());
        };
        let v = g.get_ref().trim();
        if !valid_group_name(v) {
            return Err(self.invalid(
                Some(g.span()),
                format!(
                    "kernel `{name}`: group `{v}` must be non-empty and use only lowercase \
                     letters, digits, `-` and `_`"
                ),
            ));
        }
        Ok(v.to_string())
    }

    /// Where the kernel comes from: exactly one of `debian`, `host`, `vmlinux`, `vmlinuz`,
    /// `source`.
    fn source(&self, name: &str, k: &RawKernel) -> Result<KernelSource, ConfigError> {
        let name_span = Some(k.name.span());
        let host = k.host.as_ref().map(|h| *h.get_ref()).unwrap_or(false);
        if let Some(h) = &k.host {
            if !h.get_ref() {
                return Err(self.invalid(
                    Some(h.span()),
                    format!("kernel `{name}`: `host = false` means nothing; remove it"),
                ));
            }
        }
        let given: Vec<&str> = [
            ("debian", k.debian.is_some()),
            ("host", host),
            ("vmlinux", k.vmlinux.is_some()),
            ("vmlinuz", k.vmlinuz.is_some()),
            ("source", k.source.is_some()),
        ]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(n, _)| *n)
        .collect();
        if given.len() != 1 {
            let found = if given.is_empty() {
                "none".to_string()
            } else {
                given.join(" and ")
            };
            return Err(self.invalid(
                name_span,
                format!(
                    "kernel `{name}` needs exactly one source: `debian = {{ suite, packages }}`, \
                     `host = true`, `vmlinux = \"path\"`, `vmlinuz = \"path\"` or \
                     `source = {{ tree = \"path\" }}`; found {found}"
                ),
            ));
        }
        let btf = k.btf.as_ref().map(|p| self.rel(p.get_ref()));
        let config = k.config.as_ref().map(|p| self.rel(p.get_ref()));
        if k.debian.is_some() || host || k.source.is_some() {
            if let Some(s) = k.config.as_ref() {
                return Err(self.invalid(
                    Some(s.span()),
                    format!(
                        "kernel `{name}`: `config` goes only with `vmlinux` or `vmlinuz` (a \
                         source kernel's fragments are `source = {{ config = [...] }}`)"
                    ),
                ));
            }
        }
        Ok(if let Some(deb) = &k.debian {
            self.debian(name, deb)?
        } else if host {
            KernelSource::Host
        } else if let Some(p) = &k.vmlinux {
            KernelSource::Vmlinux {
                path: self.rel(p),
                btf,
                config,
            }
        } else if let Some(p) = &k.vmlinuz {
            KernelSource::Vmlinuz {
                path: self.rel(p),
                btf,
                config,
            }
        } else if let Some(tree) = &k.source {
            let tree = tree.get_ref();
            KernelSource::Tree(SourceTree {
                tree: self.rel(&tree.tree),
                build: tree.build.as_ref().map(|b| self.rel(b)),
                config: tree.config.iter().map(|c| self.rel(c)).collect(),
            })
        } else {
            unreachable!("exactly one source was checked above")
        })
    }

    fn debian(&self, name: &str, deb: &Spanned<RawDebian>) -> Result<KernelSource, ConfigError> {
        let span = Some(deb.span());
        let deb = deb.get_ref();
        if deb.suite.trim().is_empty() {
            return Err(self.invalid(span, format!("kernel `{name}`: `debian.suite` is empty")));
        }
        if deb.packages.is_empty() {
            return Err(self.invalid(
                span,
                format!(
                    "kernel `{name}`: `debian.packages` is empty; list the package patterns \
                     holding the kernel image and its config"
                ),
            ));
        }
        let mut packages = Vec::new();
        for p in &deb.packages {
            let ok = !p.is_empty()
                && p.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '.' | '-' | '+' | '*')
                })
                && !p.contains("**");
            if !ok {
                return Err(self.invalid(
                    span,
                    format!(
                        "kernel `{name}`: package pattern `{p}` is not a Debian package name \
                         (lowercase letters, digits, `.`, `-`, `+`) with `*` for a version number"
                    ),
                ));
            }
            packages.push(PackagePattern(p.clone()));
        }
        Ok(KernelSource::Debian(DebianSource {
            suite: deb.suite.trim().to_string(),
            packages,
        }))
    }
}

/// The file as text, or where its first byte that is not UTF-8 is.
fn utf8_text<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str, ConfigError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let valid = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let (line, column) = line_col(std::str::from_utf8(valid).unwrap_or(""), valid.len());
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: format!(
                "not UTF-8: byte 0x{:02x} (TOML files are UTF-8 text)",
                bytes[e.valid_up_to()]
            ),
        }
    })
}

/// A group name: what `--group` takes on a command line and a workflow file.
fn valid_group_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

impl Matrix {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Matrix, ConfigError> {
        let bytes = std::fs::read(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        let text = utf8_text(&bytes, path)?;
        Matrix::parse(text, path)
    }

    /// Parses and validates `text`, which came from `path` (used in errors and to resolve
    /// relative paths). Pure: touches no file.
    pub fn parse(text: &str, path: &Path) -> Result<Matrix, ConfigError> {
        let raw: RawMatrix = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim_end().to_string(),
            }
        })?;
        let check = Checker {
            text,
            path,
            base: path.parent().unwrap_or(Path::new("")).to_path_buf(),
        };
        let mirror = check.mirror(raw.mirror.as_ref())?;
        let defaults = check.defaults(&raw.defaults)?;
        let mut kernels: Vec<KernelEntry> = Vec::new();
        for k in &raw.kernels {
            let entry = check.kernel(k, &defaults)?;
            if kernels.iter().any(|e| e.name == entry.name) {
                return Err(check.invalid(
                    Some(k.name.span()),
                    format!(
                        "kernel `{}` is defined twice; names must be unique",
                        entry.name
                    ),
                ));
            }
            kernels.push(entry);
        }
        if kernels.is_empty() {
            return Err(check.invalid(
                None,
                "no kernels: add at least one `[[kernel]]` table".to_string(),
            ));
        }
        Ok(Matrix {
            path: path.to_path_buf(),
            mirror,
            keyring: raw
                .keyring
                .map(|k| check.rel(&k))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KEYRING)),
            defaults,
            kernels,
        })
    }

    /// The kernel called `name`.
    pub fn kernel(&self, name: &str) -> Option<&KernelEntry> {
        self.kernels.iter().find(|k| k.name == name)
    }

    /// The kernels to run: every enabled kernel of the default group when `names` is empty,
    /// else exactly the named ones (disabled ones included), in the order given, without
    /// duplicates.
    pub fn select(&self, names: &[String]) -> Result<Vec<&KernelEntry>, ConfigError> {
        self.select_in(names, &[])
    }

    /// [`Matrix::select`] with groups: without names, every enabled kernel whose group is one
    /// of `groups` (none given: [`DEFAULT_GROUP`]); named kernels are taken whatever their
    /// group. A group no kernel has is an error, as an unknown kernel is.
    pub fn select_in(
        &self,
        names: &[String],
        groups: &[String],
    ) -> Result<Vec<&KernelEntry>, ConfigError> {
        for g in groups {
            if !self.kernels.iter().any(|k| &k.group == g) {
                let mut known: Vec<String> = self.kernels.iter().map(|k| k.group.clone()).collect();
                known.sort();
                known.dedup();
                return Err(ConfigError::UnknownGroup {
                    path: self.path.clone(),
                    group: g.clone(),
                    known,
                });
            }
        }
        if names.is_empty() {
            let wanted = |k: &&KernelEntry| {
                if groups.is_empty() {
                    k.group == DEFAULT_GROUP
                } else {
                    groups.contains(&k.group)
                }
            };
            return Ok(self
                .kernels
                .iter()
                .filter(|k| k.enabled)
                .filter(wanted)
                .collect());
        }
        let mut out: Vec<&KernelEntry> = Vec::new();
        for n in names {
            match self.kernel(n) {
                Some(k) => {
                    if !out.iter().any(|o| o.name == k.name) {
                        out.push(k)
                    }
                }
                None => {
                    return Err(ConfigError::UnknownKernel {
                        path: self.path.clone(),
                        name: n.clone(),
                        known: self.kernels.iter().map(|k| k.name.clone()).collect(),
                    })
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.0-32-amd64-unsigned",
                true,
            ),
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.0-32-cloud-amd64-unsigned",
                false,
            ),
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.0-32-rt-amd64-unsigned",
                false,
            ),
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.0-32-amd64",
                false,
            ),
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.-amd64-unsigned",
                false,
            ),
            (
                "linux-image-5.10.*-amd64-unsigned",
                "linux-image-5.10.0-amd64-unsigned",
                true,
            ),
            (
                "linux-image-6.1.*-amd64-unsigned",
                "linux-image-6.1.0-50-amd64-unsigned",
                true,
            ),
            (
                "linux-image-6.1.*-amd64-unsigned",
                "linux-image-6.12.117+deb13-amd64-unsigned",
                false,
            ),
            (
                "linux-image-6.12.*+deb13-amd64-unsigned",
                "linux-image-6.12.117+deb13-amd64-unsigned",
                true,
            ),
            (
                "linux-image-6.12.*+deb13-amd64-unsigned",
                "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
                false,
            ),
            (
                "linux-binary-unsigned-7.2.*+deb14-amd64",
                "linux-binary-unsigned-7.2.13+deb14-amd64",
                true,
            ),
            (
                "linux-binary-unsigned-7.2.*+deb14-amd64",
                "linux-binary-unsigned-7.2.13+deb14-rt-amd64",
                false,
            ),
            (
                "linux-base-7.2.*+deb14-amd64",
                "linux-base-7.2.13+deb14-amd64",
                true,
            ),
            (
                "linux-base-7.2.*+deb14-amd64",
                "linux-base-7.20.1+deb14-amd64",
                false,
            ),
            (
                "linux-base-7.2*+deb14-amd64",
                "linux-base-7.20.1+deb14-amd64",
                true,
            ),
            ("exact-name", "exact-name", true),
            ("exact-name", "exact-name2", false),
            ("a-*-*-b", "a-1-2-b", true),
            ("a-*-*-b", "a-1-b", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(
                PackagePattern(p.to_string()).matches(n),
                *want,
                "{p} vs {n}"
            );
        }
        assert_eq!(
            PackagePattern("linux-image-5.10.*-amd64".into()).prefix(),
            "linux-image-5.10."
        );
    }

    const FULL: &str = r#"
mirror = "http://example.invalid/debian/"
[defaults]
memory_mib = 512
boot_timeout_s = 90
cmdline = "foo=1"

[[kernel]]
name = "5.10"
debian = { suite = "bullseye", packages = ["linux-image-5.10.*-amd64-unsigned"] }
test_timeout_s = 5

[[kernel]]
name = "7.2"
arch = "x86_64"
debian = { suite = "sid", packages = ["linux-binary-unsigned-7.2.*+deb14-amd64", "linux-base-7.2.*+deb14-amd64"] }
cmdline = ""

[[kernel]]
name = "host"
host = true
enabled = false

[[kernel]]
name = "local"
vmlinuz = "build/bzImage"
btf = "/abs/vmlinux.btf"
enabled = false
"#;

    #[test]
    fn parses_full_matrix() {
        let m = Matrix::parse(FULL, Path::new("/repo/kernels.toml")).unwrap();
        assert_eq!(m.mirror.as_deref(), Some("http://example.invalid/debian"));
        assert_eq!(m.keyring, PathBuf::from(DEFAULT_KEYRING));
        assert_eq!(m.kernels.len(), 4);
        let k = &m.kernels[0];
        assert_eq!(k.memory_mib, 512);
        assert_eq!(k.boot_timeout, Duration::from_secs(90));
        assert_eq!(k.test_timeout, Duration::from_secs(5));
        assert_eq!(
            k.guest_timeout,
            Duration::from_secs(DEFAULT_GUEST_TIMEOUT_S)
        );
        assert_eq!(k.cmdline, "foo=1");
        assert_eq!(k.arch, Arch::X86_64);
        assert!(matches!(&k.source, KernelSource::Debian(d) if d.suite == "bullseye"));
        assert_eq!(m.kernels[1].cmdline, "");
        assert_eq!(m.kernels[2].source, KernelSource::Host);
        assert!(!m.kernels[2].enabled);
        assert_eq!(
            m.kernels[3].source,
            KernelSource::Vmlinuz {
                path: PathBuf::from("/repo/build/bzImage"),
                btf: Some(PathBuf::from("/abs/vmlinux.btf")),
                config: None
            }
        );
    }

    #[test]
    fn select() {
        let m = Matrix::parse(FULL, Path::new("kernels.toml")).unwrap();
        let names = |v: Vec<&KernelEntry>| v.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(m.select(&[]).unwrap()), ["5.10", "7.2"]);
        assert_eq!(
            names(
                m.select(&["host".into(), "5.10".into(), "host".into()])
                    .unwrap()
            ),
            ["host", "5.10"]
        );
        let e = m.select(&["6.1".into()]).unwrap_err().to_string();
        assert!(e.contains("unknown kernel `6.1`"), "{e}");
        assert!(e.contains("5.10, 7.2, host, local"), "{e}");
    }

    const GROUPS: &str = r#"
[[kernel]]
name = "6.1"
debian = { suite = "bookworm", packages = ["linux-image-6.1.*-amd64-unsigned"] }
btf = "btf/6.1.btf"

[[kernel]]
name = "6.1-arm64"
arch = "aarch64"
group = "nightly"
debian = { suite = "bookworm", packages = ["linux-image-6.1.*-arm64-unsigned"] }

[[kernel]]
name = "7.2-arm64"
arch = "aarch64"
group = "nightly"
enabled = false
debian = { suite = "sid", packages = ["linux-binary-unsigned-7.2.*+deb14-arm64"] }

[[kernel]]
name = "host"
host = true
group = "dev"
btf = "/abs/host.btf"
"#;

    #[test]
    fn groups_select_kernels_and_names_override_them() {
        let m = Matrix::parse(GROUPS, Path::new("/repo/kernels.toml")).unwrap();
        let names = |v: Vec<&KernelEntry>| v.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], &[&str], &[&str])] = &[
            // (names, groups, selected)
            (&[], &[], &["6.1"]),
            (&[], &["nightly"], &["6.1-arm64"]),
            (&[], &["default", "nightly"], &["6.1", "6.1-arm64"]),
            (&[], &["nightly", "dev"], &["6.1-arm64", "host"]),
            (&["7.2-arm64"], &[], &["7.2-arm64"]),
            (&["host", "6.1"], &["nightly"], &["host", "6.1"]),
        ];
        for (n, g, want) in cases {
            assert_eq!(
                names(m.select_in(&groups(n), &groups(g)).unwrap()),
                *want,
                "names {n:?} groups {g:?}"
            );
        }
        let e = m.select_in(&[], &groups(&["weekly"])).unwrap_err();
        assert!(matches!(e, ConfigError::UnknownGroup { .. }), "{e}");
        assert!(
            e.to_string().contains(
                "unknown kernel group `weekly`; /repo/kernels.toml has: default, dev, nightly"
            ),
            "{e}"
        );
        assert_eq!(m.kernels[0].group, DEFAULT_GROUP);
        assert_eq!(m.kernels[1].arch, Arch::Aarch64);
    }

    #[test]
    fn external_btf_is_relative_to_the_matrix_and_goes_with_every_source() {
        let m = Matrix::parse(GROUPS, Path::new("/repo/kernels.toml")).unwrap();
        assert_eq!(m.kernels[0].btf, Some(PathBuf::from("/repo/btf/6.1.btf")));
        assert_eq!(m.kernels[1].btf, None);
        assert_eq!(m.kernels[3].btf, Some(PathBuf::from("/abs/host.btf")));
        let local = Matrix::parse(FULL, Path::new("/repo/kernels.toml")).unwrap();
        assert_eq!(
            local.kernels[3].btf,
            Some(PathBuf::from("/abs/vmlinux.btf"))
        );
    }

    #[test]
    fn a_source_kernel_resolves_its_paths_against_the_matrix() {
        let text = "[[kernel]]\nname = \"src\"\n\
                    source = { tree = \"linux\", build = \"/b\", config = [\"a.config\", \"/x/b.config\"] }\n\
                    btf_from_dwarf = true\n\
                    [[kernel]]\nname = \"plain\"\nsource = { tree = \"/abs/linux\" }\n";
        let m = Matrix::parse(text, Path::new("/repo/kernels.toml")).unwrap();
        assert_eq!(
            m.kernels[0].source,
            KernelSource::Tree(SourceTree {
                tree: PathBuf::from("/repo/linux"),
                build: Some(PathBuf::from("/b")),
                config: vec![
                    PathBuf::from("/repo/a.config"),
                    PathBuf::from("/x/b.config")
                ],
            })
        );
        assert!(m.kernels[0].btf_from_dwarf);
        assert_eq!(m.kernels[0].source.kind(), "source");
        assert_eq!(
            m.kernels[1].source,
            KernelSource::Tree(SourceTree {
                tree: PathBuf::from("/abs/linux"),
                build: None,
                config: Vec::new(),
            })
        );
        assert!(!m.kernels[1].btf_from_dwarf);
    }

    #[test]
    fn a_kernel_you_built_may_be_booted_by_virtme_ng() {
        let text =
            "[[kernel]]\nname = \"src\"\nsource = { tree = \"linux\" }\nbackend = \"virtme-ng\"\n\
                    [[kernel]]\nname = \"mine\"\nvmlinux = \"v\"\nbackend = \"qemu\"\n\
                    [[kernel]]\nname = \"plain\"\nvmlinuz = \"z\"\n";
        let m = Matrix::parse(text, Path::new("/repo/kernels.toml")).unwrap();
        let backends: Vec<Backend> = m.kernels.iter().map(|k| k.backend).collect();
        assert_eq!(backends, [Backend::VirtmeNg, Backend::Qemu, Backend::Qemu]);
        assert_eq!(Backend::VirtmeNg.as_str(), "virtme-ng");
    }

    fn err(text: &str) -> String {
        Matrix::parse(text, Path::new("k.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn error_table() {
        let k = "[[kernel]]\nname = \"a\"\n";
        let cases: Vec<(String, &str)> = vec![
            (
                "mirrors = 1\n".into(),
                "k.toml:1:1: unknown field `mirrors`",
            ),
            (
                format!("{k}host = true\nfoo = 1\n"),
                "k.toml:4:1: unknown field `foo`",
            ),
            (
                format!("{k}host = true\nmemory_mib = \"x\"\n"),
                "k.toml:4:14: invalid type",
            ),
            (
                k.to_string(),
                "k.toml:2:8: kernel `a` needs exactly one source",
            ),
            (
                format!("{k}host = true\nvmlinux = \"x\"\n"),
                "found host and vmlinux",
            ),
            (format!("{k}host = false\n"), "`host = false` means nothing"),
            (
                format!("{k}source = {{ tree = \"l\" }}\nvmlinux = \"x\"\n"),
                "found vmlinux and source",
            ),
            (
                format!("{k}source = {{ tree = \"l\", configs = [] }}\n"),
                "unknown field `configs`",
            ),
            (
                format!("{k}arch = \"aarch64\"\nsource = {{ tree = \"l\" }}\n"),
                "k.toml:4:10: kernel `a`: kernels built from source are x86_64 builds",
            ),
            (
                format!("{k}debian = {{ suite = \"sid\", packages = [\"p\"] }}\nbackend = \"virtme-ng\"\n"),
                "k.toml:4:11: kernel `a`: `backend = \"virtme-ng\"` boots kernels you built",
            ),
            (
                format!("{k}host = true\nbackend = \"virtme-ng\"\n"),
                "`backend = \"virtme-ng\"` boots kernels you built",
            ),
            (
                format!("{k}arch = \"aarch64\"\nvmlinuz = \"z\"\nbackend = \"virtme-ng\"\n"),
                "runs x86_64 kernels only here",
            ),
            (
                format!("{k}vmlinux = \"v\"\nbackend = \"vng\"\n"),
                "k.toml:4:11: unknown variant `vng`, expected `qemu` or `virtme-ng`",
            ),
            (
                format!("{k}source = {{ tree = \"l\" }}\nconfig = \"c\"\n"),
                "fragments are `source = { config = [...] }`",
            ),
            (
                format!("{k}vmlinux = \"v\"\nbtf = \"b\"\nbtf_from_dwarf = true\n"),
                "k.toml:5:18: kernel `a`: `btf = \"path\"` and `btf_from_dwarf = true`",
            ),
            (
                format!("{k}debian = {{ suite = \"sid\", packages = [\"p\"] }}\nbtf_from_dwarf = true\n"),
                "`btf_from_dwarf` needs a vmlinux with DWARF",
            ),
            (
                format!("{k}vmlinuz = \"z\"\nbtf_from_dwarf = true\n"),
                "`btf_from_dwarf` needs a vmlinux with DWARF",
            ),
            (
                format!("{k}host = true\n{k}host = true\n"),
                "k.toml:5:8: kernel `a` is defined twice",
            ),
            (
                format!("{k}debian = {{ suite = \"sid\", packages = [] }}\n"),
                "k.toml:3:10: kernel `a`: `debian.packages` is empty",
            ),
            (
                format!("{k}debian = {{ suite = \"sid\", packages = [\"Linux*\"] }}\n"),
                "is not a Debian package name",
            ),
            (
                format!("{k}debian = {{ suite = \"sid\" }}\n"),
                "missing field `packages`",
            ),
            (
                format!("{k}host = true\nconfig = \"x\"\n"),
                "k.toml:4:10: kernel `a`: `config` goes only with",
            ),
            (
                format!("{k}host = true\ngroup = \"Night ly\"\n"),
                "k.toml:4:9: kernel `a`: group `Night ly` must be non-empty",
            ),
            (
                format!("{k}host = true\ngroup = \"\"\n"),
                "k.toml:4:9: kernel `a`: group `` must be non-empty",
            ),
            (
                format!("{k}host = true\narch = \"riscv\"\n"),
                "unknown variant `riscv`",
            ),
            (
                format!("{k}host = true\nboot_timeout_s = 0\n"),
                "k.toml:4:18: `boot_timeout_s` must be at least 1",
            ),
            (
                format!("{k}host = true\nguest_timeout_s = 9223372036854775807\n"),
                "k.toml:4:19: `guest_timeout_s` must be at most 86400",
            ),
            (
                format!("[defaults]\ntest_timeout_s = 86401\n{k}host = true\n"),
                "k.toml:2:18: `test_timeout_s` must be at most 86400",
            ),
            (
                format!("mirror = \"deb.example\"\n{k}host = true\n"),
                "k.toml:1:10: `mirror` must be an http",
            ),
            ("[defaults]\n".into(), "no kernels"),
            (
                "[[kernel]]\nname = \"a b\"\nhost = true\n".into(),
                "k.toml:2:8: kernel name `a b`",
            ),
            ("[[kernel\n".into(), "k.toml:1:"),
        ];
        for (text, want) in cases {
            let got = err(&text);
            assert!(
                got.contains(want),
                "input:\n{text}\nwant: {want}\ngot: {got}"
            );
        }
    }

    #[test]
    fn non_utf8_matrix_names_line_and_column() {
        let e = utf8_text(b"[[kernel]]\nname = \"a\xff\"\n", Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "k.toml:2:10: not UTF-8: byte 0xff (TOML files are UTF-8 text)"
        );
    }

    #[test]
    fn line_col_table() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("abc\ndef", 5), (2, 2));
        assert_eq!(line_col("abc\n", 4), (2, 1));
        assert_eq!(line_col("é\nx", 4), (2, 2));
    }
}
