//! Kernels built from a source tree: `source = { tree = "path" }` in the matrix.
//!
//! A build directory (`O=`) is configured from `make tinyconfig`, then the harness's fragment
//! ([`HARNESS_FRAGMENT`]: what PVH boot, the agent and BPF need), then the entry's own
//! fragments, in that order, and checked: every option the fragments ask for must have held
//! after `make olddefconfig`. `make vmlinux` runs when a source file of the tree is newer than
//! the last vmlinux or the fragments changed; the result is used like `vmlinux = "path"`.
//!
//! Deciding (which step is due, which options did not hold) is pure and tested here; running
//! make is the one side effect, its output kept in the build directory's [`BUILD_LOG`].

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::progress::Progress;
use crate::matrix::config::SourceTree;

/// The harness's fragment, merged over tinyconfig.
pub const HARNESS_FRAGMENT: &str = include_str!("../../kconfig/bpf.config");

/// Records, in the build directory, the digest of the fragments its `.config` was made from.
pub const INPUTS_STAMP: &str = ".harness-config-inputs";
/// make's output of the last configuration or build.
pub const BUILD_LOG: &str = "harness-build.log";

/// A fragment is a list of options: one far larger is not a fragment.
const MAX_FRAGMENT_BYTES: u64 = 1 << 20;
/// A kernel tree holds about 90,000 files; walking stops here (the build then runs, as make
/// decides best).
const MAX_TREE_FILES: usize = 1_000_000;
/// How often a running build reports how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum SourceBuildError {
    #[error(
        "kernel `{kernel}`: {} is not a kernel source tree (no Makefile and Kconfig in it)",
        tree.display()
    )]
    NotATree { kernel: String, tree: PathBuf },
    #[error("kernel `{kernel}`: config fragment {}: {cause}", path.display())]
    Fragment {
        kernel: String,
        path: PathBuf,
        cause: String,
    },
    #[error("kernel `{kernel}`: {}: {source}", path.display())]
    Io {
        kernel: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "kernel `{kernel}`: cannot run `make` ({source}); a kernel build needs make, gcc, flex, \
         bison, bc, libelf-dev and dwarves (apt-get install build-essential flex bison bc \
         libelf-dev libssl-dev dwarves)"
    )]
    NoMake {
        kernel: String,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel `{kernel}`: `{step}` failed ({status}); the end of {}:\n{tail}", log.display())]
    Make {
        kernel: String,
        step: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "kernel `{kernel}`: the kernel's configuration ({}) lacks what the fragments ask for: \
         {}; the tree's Kconfig decides what an option needs (`make O=<build> menuconfig`, then \
         `/` and the option's name): add what is missing to a fragment of \
         `source = {{ config = [...] }}`",
        config.display(), unmet.join(", ")
    )]
    Unmet {
        kernel: String,
        unmet: Vec<String>,
        config: PathBuf,
    },
}

type Result<T> = std::result::Result<T, SourceBuildError>;

/// What a source entry gives the rest of the harness: a local vmlinux and its `.config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltKernel {
    pub vmlinux: PathBuf,
    pub config: PathBuf,
}

/// What is due in a build directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the vmlinux is newer than every source file and made from these fragments.
    UpToDate,
    /// `make vmlinux` (make then decides what to rebuild).
    Build,
    /// The harness's own configuration, then the build.
    Configure,
    /// A `.config` the harness did not make (the user's): checked, kept, then built.
    CheckTheirs,
}

/// The state of a build directory, as [`due`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDirState {
    pub has_config: bool,
    /// What [`INPUTS_STAMP`] holds, if it exists.
    pub stamp: Option<String>,
    pub vmlinux_mtime: Option<SystemTime>,
    /// The newest source file of the tree (`None`: unknown, the walk gave up).
    pub newest_source: Option<SystemTime>,
}

/// Which step the build directory needs for fragments of digest `inputs` (pure).
pub fn due(state: &BuildDirState, inputs: &str) -> Step {
    match (&state.stamp, state.has_config) {
        (_, false) => Step::Configure,
        (Some(stamp), true) if stamp != inputs => Step::Configure,
        (None, true) => Step::CheckTheirs,
        (Some(_), true) => match (state.vmlinux_mtime, state.newest_source) {
            (Some(built), Some(newest)) if newest <= built => Step::UpToDate,
            _ => Step::Build,
        },
    }
}

/// The digest of the configuration inputs: the fragments' texts in order, not where they are
/// (a moved checkout keeps its build) (pure).
pub fn inputs_digest(fragments: &[&str]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"harness kconfig v1\0");
    hash.update(HARNESS_FRAGMENT.as_bytes());
    for text in fragments {
        hash.update(b"\0fragment\0");
        hash.update((text.len() as u64).to_le_bytes());
        hash.update(text.as_bytes());
    }
    hex::encode(hash.finalize())
}

/// The options of `.config`-syntax text: `CONFIG_X=v`, and `n` for `# CONFIG_X is not set`
/// (pure; other lines are comments).
pub fn parse_options(text: &str) -> BTreeMap<String, String> {
    let mut options = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(symbol) = rest.strip_suffix(" is not set") {
                if symbol.starts_with("CONFIG_") && !symbol.contains(char::is_whitespace) {
                    options.insert(symbol.to_string(), "n".to_string());
                }
            }
        } else if let Some((symbol, value)) = line.split_once('=') {
            if symbol.starts_with("CONFIG_") && !symbol.contains(char::is_whitespace) {
                options.insert(symbol.to_string(), value.to_string());
            }
        }
    }
    options
}

/// What the fragments ask for, later fragments overriding earlier ones (pure).
pub fn wanted(fragments: &[&str]) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for text in fragments {
        all.extend(parse_options(text));
    }
    all
}

/// The options of `wanted` that `config` does not hold, each as `CONFIG_X=y (is n)` (pure).
/// An option absent from a `.config` is off.
pub fn unmet(config: &str, wanted: &BTreeMap<String, String>) -> Vec<String> {
    let have = parse_options(config);
    wanted
        .iter()
        .filter_map(|(symbol, value)| {
            let actual = have.get(symbol).map(String::as_str).unwrap_or("n");
            (actual != value).then(|| format!("{symbol}={value} (is {actual})"))
        })
        .collect()
}

/// Options of the harness's fragment that are defaults, not needs: how the kernel's types are
/// described. A kernel without BTF still runs with `btf` or `btf_from_dwarf`, and what is
/// missing then is reported where it matters (no BTF, no DWARF for pahole).
const TYPE_OPTIONS: [&str; 3] = [
    "CONFIG_DEBUG_INFO",
    "CONFIG_DEBUG_INFO_DWARF5",
    "CONFIG_DEBUG_INFO_BTF",
];

/// What a `.config` of the user's own must hold: the harness's fragment without
/// [`TYPE_OPTIONS`] (pure).
pub fn needs_of_theirs() -> BTreeMap<String, String> {
    let mut needs = wanted(&[HARNESS_FRAGMENT]);
    needs.retain(|symbol, _| !TYPE_OPTIONS.contains(&symbol.as_str()));
    needs
}

/// Whether `name` is a file the build reads (sources, headers, Kconfig and Makefiles) rather
/// than one it writes, so an in-tree build's outputs never look like edits (pure).
pub fn is_source_file(name: &str) -> bool {
    const EXTENSIONS: [&str; 6] = [".c", ".h", ".S", ".lds", ".rs", ".sh"];
    EXTENSIONS.iter().any(|e| name.ends_with(e))
        || name.starts_with("Kconfig")
        || name.starts_with("Makefile")
        || name == "Kbuild"
}

/// The newest modification time of the tree's source files, skipping `skip` (the build
/// directory) and `.git`; `None` when the tree is larger than [`MAX_TREE_FILES`].
fn newest_source(tree: &Path, skip: &Path) -> Option<SystemTime> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![tree.to_path_buf()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_TREE_FILES {
                return None;
            }
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                if entry.file_name() != ".git" && path != skip {
                    stack.push(path);
                }
            } else if kind.is_file() && is_source_file(&entry.file_name().to_string_lossy()) {
                if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                    newest = newest.max(modified);
                }
            }
        }
    }
    Some(newest)
}

/// Where the entry is built: its `build`, else a directory of the image cache named after its
/// tree and fragments, so that entries asking for the same kernel (one per boot backend) share
/// one build, and the build lock.
pub fn build_dir(source: &SourceTree, cache_root: &Path) -> PathBuf {
    if let Some(build) = &source.build {
        return build.clone();
    }
    let canonical = |path: &Path| path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let tree = canonical(&source.tree);
    let mut hash = Sha256::new();
    hash.update(tree.as_os_str().as_encoded_bytes());
    for fragment in &source.config {
        hash.update(b"\0");
        hash.update(canonical(fragment).as_os_str().as_encoded_bytes());
    }
    let digest = hex::encode(hash.finalize());
    let name = tree
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tree".into());
    cache_root
        .join("builds")
        .join(format!("{name}-{}", &digest[..12]))
}

/// Configures and builds `source` as needed (blocking; minutes on a first build).
pub fn build(
    kernel: &str,
    source: &SourceTree,
    cache_root: &Path,
    progress: &dyn Progress,
) -> Result<BuiltKernel> {
    let tree = &source.tree;
    if !tree.join("Makefile").is_file() || !tree.join("Kconfig").is_file() {
        return Err(SourceBuildError::NotATree {
            kernel: kernel.to_string(),
            tree: tree.clone(),
        });
    }
    let io = |path: &Path, source: std::io::Error| SourceBuildError::Io {
        kernel: kernel.to_string(),
        path: path.to_path_buf(),
        source,
    };
    // Absolute: make runs in the tree (`-C`), where a relative `O=` would name another place.
    let out = build_dir(source, cache_root);
    let out = std::path::absolute(&out).map_err(|e| io(&out, e))?;
    std::fs::create_dir_all(&out).map_err(|e| io(&out, e))?;
    let fragments = read_fragments(kernel, &source.config)?;
    let texts: Vec<&str> = fragments.iter().map(|(_, t)| t.as_str()).collect();
    let inputs = inputs_digest(&texts);
    let config = out.join(".config");
    let vmlinux = out.join("vmlinux");
    let state = BuildDirState {
        has_config: config.is_file(),
        stamp: std::fs::read_to_string(out.join(INPUTS_STAMP))
            .ok()
            .map(|s| s.trim().to_string()),
        vmlinux_mtime: std::fs::metadata(&vmlinux).and_then(|m| m.modified()).ok(),
        newest_source: newest_source(tree, &out),
    };
    let make = Make {
        kernel,
        tree,
        out: &out,
        in_tree: same_dir(tree, &out),
    };
    let all: Vec<&str> = std::iter::once(HARNESS_FRAGMENT)
        .chain(texts.iter().copied())
        .collect();
    match due(&state, &inputs) {
        Step::UpToDate => {
            return Ok(BuiltKernel { vmlinux, config });
        }
        Step::Configure => {
            progress.stage(
                kernel,
                &format!(
                    "configuring {} (tinyconfig, the harness's BPF fragment{})",
                    out.display(),
                    if fragments.is_empty() { "" } else { ", yours" }
                ),
            );
            // A stale stamp goes first: a configuration cut short must not pass as current.
            let _ = std::fs::remove_file(out.join(INPUTS_STAMP));
            make.run(&["tinyconfig"], progress)?;
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&config)
                .map_err(|e| io(&config, e))?;
            for text in &all {
                writeln!(file, "\n{text}").map_err(|e| io(&config, e))?;
            }
            drop(file);
            make.run(&["olddefconfig"], progress)?;
            check(kernel, &config, &wanted(&all))?;
            std::fs::write(out.join(INPUTS_STAMP), &inputs)
                .map_err(|e| io(&out.join(INPUTS_STAMP), e))?;
        }
        Step::CheckTheirs => {
            // Their configuration is theirs to change: only the harness's needs are checked.
            check(kernel, &config, &needs_of_theirs())?;
        }
        Step::Build => {}
    }
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    progress.stage(
        kernel,
        &format!(
            "building vmlinux in {} (make -j{jobs}; a first build takes minutes, output in {})",
            out.display(),
            out.join(BUILD_LOG).display()
        ),
    );
    make.run(&[&format!("-j{jobs}"), "vmlinux"], progress)?;
    if !vmlinux.is_file() {
        return Err(SourceBuildError::Make {
            kernel: kernel.to_string(),
            step: "make vmlinux".into(),
            status: "no vmlinux was written".into(),
            log: out.join(BUILD_LOG),
            tail: String::new(),
        });
    }
    Ok(BuiltKernel { vmlinux, config })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

fn read_fragments(kernel: &str, paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for path in paths {
        let err = |cause: String| SourceBuildError::Fragment {
            kernel: kernel.to_string(),
            path: path.clone(),
            cause,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| err(e.to_string()))?
            .len();
        if len > MAX_FRAGMENT_BYTES {
            return Err(err(format!(
                "{len} bytes; a fragment lists options and is under {MAX_FRAGMENT_BYTES}"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        out.push((path.clone(), text));
    }
    Ok(out)
}

fn check(kernel: &str, config: &Path, wanted: &BTreeMap<String, String>) -> Result<()> {
    let text = std::fs::read_to_string(config).map_err(|source| SourceBuildError::Io {
        kernel: kernel.to_string(),
        path: config.to_path_buf(),
        source,
    })?;
    let missing = unmet(&text, wanted);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SourceBuildError::Unmet {
            kernel: kernel.to_string(),
            unmet: missing,
            config: config.to_path_buf(),
        })
    }
}

/// The kernel's make, in one build directory.
struct Make<'a> {
    kernel: &'a str,
    tree: &'a Path,
    out: &'a Path,
    /// Built in the tree itself (`build` = `tree`): no `O=`.
    in_tree: bool,
}

impl Make<'_> {
    fn command(&self, targets: &[&str]) -> Command {
        let mut command = Command::new("make");
        command.arg("-C").arg(self.tree).arg("ARCH=x86_64");
        if !self.in_tree {
            command.arg(format!("O={}", self.out.display()));
        }
        command.args(targets);
        command
    }

    /// Runs make with `targets`, its output in the log; a stage line now and then.
    fn run(&self, targets: &[&str], progress: &dyn Progress) -> Result<()> {
        let log_path = self.out.join(BUILD_LOG);
        let io = |source: std::io::Error| SourceBuildError::Io {
            kernel: self.kernel.to_string(),
            path: log_path.clone(),
            source,
        };
        let mut log = std::fs::File::create(&log_path).map_err(io)?;
        let mut command = self.command(targets);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.try_clone().map_err(io)?);
        let mut child = command.spawn().map_err(|source| SourceBuildError::NoMake {
            kernel: self.kernel.to_string(),
            source,
        })?;
        let mut built = 0usize;
        let mut last_report = Instant::now();
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = writeln!(log, "{line}");
                if line.starts_with("  CC") || line.starts_with("  AS") {
                    built += 1;
                }
                if built > 0 && last_report.elapsed() >= PROGRESS_EVERY {
                    last_report = Instant::now();
                    progress.stage(self.kernel, &format!("building: {built} files compiled"));
                }
            }
        }
        let status = child.wait().map_err(io)?;
        if status.success() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        Err(SourceBuildError::Make {
            kernel: self.kernel.to_string(),
            step: format!("make {}", targets.join(" ")),
            status: status.to_string(),
            log: log_path,
            tail: crate::verdict::readable::last_lines(&text, 20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(
        has_config: bool,
        stamp: Option<&str>,
        built: Option<u64>,
        newest: Option<u64>,
    ) -> BuildDirState {
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        BuildDirState {
            has_config,
            stamp: stamp.map(str::to_string),
            vmlinux_mtime: built.map(at),
            newest_source: newest.map(at),
        }
    }

    #[test]
    fn the_due_step_follows_the_build_directory() {
        let cases = [
            // (state, step)
            (state(false, None, None, Some(1)), Step::Configure),
            (state(false, Some("d"), Some(5), Some(1)), Step::Configure),
            (
                state(true, Some("other"), Some(5), Some(1)),
                Step::Configure,
            ),
            (state(true, None, Some(5), Some(1)), Step::CheckTheirs),
            (state(true, Some("d"), None, Some(1)), Step::Build),
            (state(true, Some("d"), Some(5), Some(9)), Step::Build),
            (state(true, Some("d"), Some(5), None), Step::Build),
            (state(true, Some("d"), Some(5), Some(5)), Step::UpToDate),
            (state(true, Some("d"), Some(5), Some(1)), Step::UpToDate),
        ];
        for (s, step) in cases {
            assert_eq!(due(&s, "d"), step, "{s:?}");
        }
    }

    #[test]
    fn options_parse_from_config_syntax_and_later_fragments_win() {
        let text = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x y\"\nNOT_CONFIG=1\n\
                    # CONFIG_bad name is not set\n  CONFIG_N=64\n";
        let o = parse_options(text);
        assert_eq!(o.get("CONFIG_A").map(String::as_str), Some("y"));
        assert_eq!(o.get("CONFIG_B").map(String::as_str), Some("n"));
        assert_eq!(o.get("CONFIG_S").map(String::as_str), Some("\"x y\""));
        assert_eq!(o.get("CONFIG_N").map(String::as_str), Some("64"));
        assert_eq!(o.len(), 4);
        let w = wanted(&["CONFIG_A=y\nCONFIG_C=y\n", "# CONFIG_A is not set\n"]);
        assert_eq!(w.get("CONFIG_A").map(String::as_str), Some("n"));
        assert_eq!(w.get("CONFIG_C").map(String::as_str), Some("y"));
    }

    #[test]
    fn unmet_options_are_named_with_what_the_config_has() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_N=32\n";
        let w =
            wanted(&["CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=y\n# CONFIG_D is not set\nCONFIG_N=64\n"]);
        assert_eq!(
            unmet(config, &w),
            [
                "CONFIG_B=y (is n)",
                "CONFIG_C=y (is n)",
                "CONFIG_N=64 (is 32)"
            ]
        );
        assert!(unmet(
            "CONFIG_A=y\n",
            &wanted(&["CONFIG_A=y\n# CONFIG_Z is not set\n"])
        )
        .is_empty());
    }

    #[test]
    fn the_harness_fragment_asks_for_bpf_and_pvh_and_parses_whole() {
        let w = wanted(&[HARNESS_FRAGMENT]);
        for symbol in [
            "CONFIG_BPF_SYSCALL",
            "CONFIG_PVH",
            "CONFIG_DEBUG_INFO_BTF",
            "CONFIG_SERIAL_8250",
        ] {
            assert_eq!(w.get(symbol).map(String::as_str), Some("y"), "{symbol}");
        }
        // Every non-comment line is an option: a typo would be silently ignored by kconfig.
        let lines = HARNESS_FRAGMENT
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(lines, w.len());
    }

    #[test]
    fn a_config_of_their_own_needs_no_btf_but_everything_else() {
        let needs = needs_of_theirs();
        assert!(!needs.contains_key("CONFIG_DEBUG_INFO_BTF"));
        assert_eq!(
            needs.get("CONFIG_BPF_SYSCALL").map(String::as_str),
            Some("y")
        );
        assert_eq!(
            needs.len(),
            wanted(&[HARNESS_FRAGMENT]).len() - TYPE_OPTIONS.len()
        );
    }

    #[test]
    fn the_digest_changes_with_each_fragment_and_its_order() {
        let (a, b) = ("CONFIG_A=y\n", "CONFIG_B=y\n");
        let ab = inputs_digest(&[a, b]);
        assert_eq!(ab, inputs_digest(&[a, b]));
        assert_ne!(ab, inputs_digest(&[b, a]));
        assert_ne!(ab, inputs_digest(&[a]));
        assert_ne!(inputs_digest(&[]), inputs_digest(&[a]));
        // Where one fragment ends is part of it.
        assert_ne!(
            inputs_digest(&["CONFIG_A=y\nCONFIG_B=y\n"]),
            inputs_digest(&[a, b])
        );
    }

    #[test]
    fn only_files_the_build_reads_count_as_sources() {
        for name in [
            "fork.c",
            "bpf.h",
            "entry_64.S",
            "Kconfig",
            "Kconfig.debug",
            "Makefile",
            "Kbuild",
            "vmlinux.lds",
            "link-vmlinux.sh",
        ] {
            assert!(is_source_file(name), "{name}");
        }
        for name in [
            "fork.o",
            ".fork.o.cmd",
            "vmlinux",
            "System.map",
            "built-in.a",
            ".config",
            "modules.order",
        ] {
            assert!(!is_source_file(name), "{name}");
        }
    }

    #[test]
    fn the_newest_source_skips_the_build_directory() {
        let tree = tempfile::tempdir().unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let new = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000);
        std::fs::create_dir_all(tree.path().join("kernel")).unwrap();
        std::fs::create_dir_all(tree.path().join("out/kernel")).unwrap();
        let src = tree.path().join("kernel/fork.c");
        std::fs::write(&src, "").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let generated = tree.path().join("out/kernel/gen.h");
        std::fs::write(&generated, "").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&generated)
            .unwrap()
            .set_modified(new)
            .unwrap();
        assert_eq!(
            newest_source(tree.path(), &tree.path().join("out")),
            Some(old)
        );
        assert_eq!(
            newest_source(tree.path(), Path::new("/nonexistent")),
            Some(new)
        );
    }

    /// A stand-in tree whose Makefile answers the three targets the harness asks for the way
    /// kbuild does (`O=` honoured), counting builds; `olddefconfig` drops the options listed in
    /// the tree's `drops` file, as kconfig drops an option whose dependencies are off.
    fn fake_tree() -> tempfile::TempDir {
        let tree = tempfile::tempdir().unwrap();
        let makefile = "O ?= .\n\
            tinyconfig:\n\tprintf 'CONFIG_64BIT=y\\n' > $(O)/.config\n\
            olddefconfig:\n\tif [ -s drops ]; then grep -v -f drops $(O)/.config > $(O)/.c; mv $(O)/.c $(O)/.config; fi\n\
            vmlinux:\n\techo b >> $(O)/builds; printf 'ELF' > $(O)/vmlinux\n";
        std::fs::write(tree.path().join("Makefile"), makefile).unwrap();
        std::fs::write(tree.path().join("Kconfig"), "").unwrap();
        std::fs::write(tree.path().join("drops"), "").unwrap();
        std::fs::create_dir(tree.path().join("kernel")).unwrap();
        std::fs::write(tree.path().join("kernel/fork.c"), "").unwrap();
        tree
    }

    fn builds(out: &Path) -> usize {
        std::fs::read_to_string(out.join("builds")).map_or(0, |s| s.lines().count())
    }

    fn touch(path: &Path, at: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(at)
            .unwrap();
    }

    #[test]
    fn a_tree_is_configured_once_built_when_a_source_changes_and_reconfigured_with_new_fragments() {
        assert!(
            Command::new("make").arg("--version").output().is_ok(),
            "this test needs make (apt-get install make)"
        );
        let tree = fake_tree();
        let cache = tempfile::tempdir().unwrap();
        let fragment = cache.path().join("mine.config");
        std::fs::write(&fragment, "CONFIG_MINE=y\n").unwrap();
        let source = SourceTree {
            tree: tree.path().to_path_buf(),
            build: None,
            config: vec![fragment.clone()],
        };
        let progress = super::super::progress::NoProgress;
        let built = build("k", &source, cache.path(), &progress).unwrap();
        let out = build_dir(&source, cache.path());
        assert_eq!(built.vmlinux, out.join("vmlinux"));
        let config = std::fs::read_to_string(&built.config).unwrap();
        assert!(config.contains("CONFIG_BPF_SYSCALL=y") && config.contains("CONFIG_MINE=y"));
        assert_eq!(builds(&out), 1);

        // Sources older than the vmlinux: nothing runs.
        let past = SystemTime::now() - Duration::from_secs(3600);
        touch(&tree.path().join("kernel/fork.c"), past);
        for name in ["Makefile", "Kconfig"] {
            touch(&tree.path().join(name), past);
        }
        build("k", &source, cache.path(), &progress).unwrap();
        assert_eq!(builds(&out), 1);

        // An edited source file: make runs again, the configuration stays.
        touch(
            &tree.path().join("kernel/fork.c"),
            SystemTime::now() + Duration::from_secs(60),
        );
        build("k", &source, cache.path(), &progress).unwrap();
        assert_eq!(builds(&out), 2);

        // A changed fragment whose option does not hold: configured again, and refused by name.
        std::fs::write(&fragment, "CONFIG_MINE=y\nCONFIG_OTHER=y\n").unwrap();
        std::fs::write(tree.path().join("drops"), "CONFIG_OTHER=y\n").unwrap();
        let err = build("k", &source, cache.path(), &progress).unwrap_err();
        match &err {
            SourceBuildError::Unmet { unmet, .. } => {
                assert_eq!(unmet, &["CONFIG_OTHER=y (is n)"]);
            }
            other => panic!("{other}"),
        }
        assert!(
            !out.join(INPUTS_STAMP).exists(),
            "a refused configuration is not current"
        );

        // A .config of the user's own (no stamp) is kept and checked for what the harness needs.
        let theirs = tempfile::tempdir().unwrap();
        std::fs::write(theirs.path().join(".config"), "CONFIG_64BIT=y\n").unwrap();
        let mine = SourceTree {
            build: Some(theirs.path().to_path_buf()),
            config: Vec::new(),
            ..source.clone()
        };
        let err = build("k", &mine, cache.path(), &progress)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONFIG_BPF_SYSCALL=y (is n)"), "{err}");
        assert_eq!(
            std::fs::read_to_string(theirs.path().join(".config")).unwrap(),
            "CONFIG_64BIT=y\n"
        );
    }

    /// `path` as seen from the current directory through `..` (the matrix's paths are
    /// relative to its directory, so the build directory usually is).
    fn relative_to_cwd(path: &Path) -> PathBuf {
        let cwd = std::env::current_dir().unwrap();
        let mut rel = PathBuf::new();
        for _ in cwd.components().skip(1) {
            rel.push("..");
        }
        rel.join(path.strip_prefix("/").unwrap())
    }

    #[test]
    fn a_relative_build_directory_is_where_make_builds() {
        assert!(
            Command::new("make").arg("--version").output().is_ok(),
            "this test needs make (apt-get install make)"
        );
        let tree = fake_tree();
        let cache = tempfile::tempdir().unwrap();
        let source = SourceTree {
            tree: relative_to_cwd(tree.path()),
            build: Some(relative_to_cwd(&cache.path().join("out"))),
            config: Vec::new(),
        };
        let built = build(
            "k",
            &source,
            Path::new("unused"),
            &super::super::progress::NoProgress,
        )
        .unwrap();
        assert!(built.vmlinux.is_absolute(), "{built:?}");
        assert_eq!(builds(&cache.path().join("out")), 1);
        assert!(!tree
            .path()
            .join(cache.path().strip_prefix("/").unwrap())
            .exists());
    }

    #[test]
    fn a_failed_make_shows_the_end_of_its_log() {
        let tree = fake_tree();
        std::fs::write(
            tree.path().join("Makefile"),
            "tinyconfig:\n\t@echo 'kernel/fork.c:1: error: boom' >&2; exit 2\n",
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let source = SourceTree {
            tree: tree.path().to_path_buf(),
            build: None,
            config: Vec::new(),
        };
        let err = build(
            "k",
            &source,
            cache.path(),
            &super::super::progress::NoProgress,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`make tinyconfig` failed") && err.contains("error: boom"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_without_makefile_and_kconfig_is_not_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let source = SourceTree {
            tree: dir.path().to_path_buf(),
            build: None,
            config: Vec::new(),
        };
        let err = build(
            "k",
            &source,
            dir.path(),
            &super::super::progress::NoProgress,
        )
        .unwrap_err();
        assert!(matches!(err, SourceBuildError::NotATree { .. }), "{err}");
    }

    #[test]
    fn the_default_build_directory_is_one_per_tree_and_fragments() {
        let source = |tree: &str, config: &[&str]| SourceTree {
            tree: PathBuf::from(tree),
            build: None,
            config: config.iter().map(PathBuf::from).collect(),
        };
        let a = build_dir(&source("/nonexistent/linux", &[]), Path::new("/c"));
        assert!(a.starts_with("/c/builds"), "{a:?}");
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("linux-"), "{name}");
        assert_ne!(
            a,
            build_dir(&source("/nonexistent/b", &[]), Path::new("/c"))
        );
        let with =
            |config: &[&str]| build_dir(&source("/nonexistent/linux", config), Path::new("/c"));
        assert_ne!(a, with(&["/f/a.config"]));
        assert_ne!(
            with(&["/f/a.config", "/f/b.config"]),
            with(&["/f/b.config", "/f/a.config"])
        );
        // Two entries of one tree and fragments (a backend each) share the build.
        assert_eq!(with(&["/f/a.config"]), with(&["/f/a.config"]));
        let mine = SourceTree {
            build: Some(PathBuf::from("/b")),
            ..source("/t", &[])
        };
        assert_eq!(build_dir(&mine, Path::new("/c")), PathBuf::from("/b"));
    }
}
