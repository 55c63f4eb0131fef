//! The helpers the integration tests (`tests/*.rs`) share: where the workspace's files are, the
//! repository's matrix and lock, running the real harness binary and reading back what it
//! printed and reported, and a few process and directory probes.
//!
//! Each test file includes this with `mod support;` and is a crate of its own that uses only
//! some of these helpers.
// Helpers one crate leaves unused would otherwise each be a dead-code warning there.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::Duration;

use harness::images::{elf, KernelImage};
use harness::matrix::config::Matrix;
use harness::matrix::lockfile::Lockfile;

// ---------------------------------------------------------------------------------------------
// Where things are

/// The workspace root (the directory of `kernels.toml`), as a canonical path.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The workspace's shared image cache, `images/` (kernels are downloaded into it once).
pub fn images() -> PathBuf {
    workspace().join("images")
}

/// The repository's own program corpus, `programs/`.
pub fn project_programs() -> PathBuf {
    workspace().join("programs")
}

/// A test-only directory of programs under `harness/runner/tests/`, e.g. `loader-programs` or
/// `verdict-programs/differing`.
pub fn test_programs(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}

/// The fault tests' corpora, `tests/fault-programs/<which>`: `green` (passes everywhere) or
/// `faulty`.
pub fn fault_programs(which: &str) -> PathBuf {
    test_programs("fault-programs").join(which)
}

/// Builds (or finds cached) the third-party corpus, the curated kernel selftests of
/// `scripts/selftests-corpus.list`, into `out` with `scripts/selftests-corpus.sh`; returns `out`.
pub fn selftests_corpus(out: &Path) -> PathBuf {
    let status = Command::new(workspace().join("scripts/selftests-corpus.sh"))
        .arg(out)
        .arg("--list")
        .arg(workspace().join("scripts/selftests-corpus.list"))
        .current_dir(workspace())
        .status()
        .expect("running scripts/selftests-corpus.sh");
    assert!(status.success(), "scripts/selftests-corpus.sh failed");
    out.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// The repository's matrix, its lock, and temporary variants of them

/// The repository's `kernels.toml`, loaded as the harness loads it.
pub fn repository_matrix() -> Matrix {
    Matrix::load(&workspace().join("kernels.toml")).unwrap()
}

/// The repository's `kernels.lock`.
pub fn repository_lock() -> Lockfile {
    Lockfile::load(&workspace().join("kernels.lock")).unwrap()
}

/// The Debian kernels of the repository's matrix, as `[[kernel]]` bodies to build temporary
/// matrices from (they must match kernels.lock, which `temp_matrix` copies next to them).
pub fn debian_source(name: &str) -> &'static str {
    match name {
        "5.10" => {
            r#"debian = { suite = "bullseye", packages = ["linux-image-5.10.*-amd64-unsigned"] }"#
        }
        "6.1" => {
            r#"debian = { suite = "bookworm", packages = ["linux-image-6.1.*-amd64-unsigned"] }"#
        }
        "6.12" => {
            r#"debian = { suite = "trixie", packages = ["linux-image-6.12.*+deb13-amd64-unsigned"] }"#
        }
        "7.2" => {
            r#"debian = { suite = "sid", packages = ["linux-binary-unsigned-7.2.*+deb14-amd64", "linux-base-7.2.*+deb14-amd64"] }"#
        }
        other => panic!("no Debian source for {other}"),
    }
}

/// Writes `text` as `dir/kernels.toml` and puts the repository's lockfile beside it as
/// `dir/kernels.lock` (a matrix's lock is `<matrix stem>.lock`); returns the matrix path.
pub fn temp_matrix(dir: &Path, text: &str) -> PathBuf {
    let matrix = dir.join("kernels.toml");
    std::fs::write(&matrix, text).unwrap();
    std::fs::copy(workspace().join("kernels.lock"), dir.join("kernels.lock")).unwrap();
    matrix
}

/// A fresh image cache that holds nothing but the locked packages of `kernel`, hard-linked (or,
/// across filesystems, copied) from the workspace's cache, so nothing is downloaded but the
/// kernel image must still be built.
pub fn cache_with_packages_of(lock: &Lockfile, kernel: &str) -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join("debs")).unwrap();
    for p in &lock.kernel(kernel).unwrap().packages {
        let name = format!("{}.deb", p.sha256);
        let from = images().join("debs").join(&name);
        let to = cache.path().join("debs").join(&name);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (provision it: cargo run -p harness -- fetch)",
                    from.display()
                )
            });
        }
    }
    cache
}

/// Checks what every provisioned x86_64 image must hold: a vmlinux that is an ELF with a PVH
/// entry note, and raw BTF (by its magic) describing a whole kernel. Returns the BTF's summary.
pub fn assert_bootable_image(img: &KernelImage) -> elf::BtfSummary {
    let data = std::fs::read(&img.vmlinux).unwrap();
    assert!(data.starts_with(b"\x7fELF"), "vmlinux is not an ELF");
    assert!(elf::pvh_entry(&data).unwrap().is_some(), "no PVH note");
    let btf = std::fs::read(img.btf.as_ref().expect("btf")).unwrap();
    assert_eq!(u16::from_le_bytes([btf[0], btf[1]]), 0xeb9f, "BTF magic");
    let summary = elf::btf_summary(&btf).unwrap();
    assert!(summary.types > 50_000, "{summary:?}");
    summary
}

// ---------------------------------------------------------------------------------------------
// Running the harness and reading what it reported

/// How a harness run ended: its exit status, what it printed, and the reports it wrote.
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The JSON report, if the run was asked for one and wrote it.
    pub report: Option<serde_json::Value>,
    /// The JUnit XML, if the run was asked for it and wrote it.
    pub junit: Option<String>,
}

impl Outcome {
    /// The exit status and output of a finished process, with no reports read.
    pub fn from_output(output: Output) -> Outcome {
        Outcome {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            report: None,
            junit: None,
        }
    }

    /// The exit code (`None` when a signal ended the process).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The JSON report; panics with the transcript when there is none.
    pub fn report(&self) -> &serde_json::Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON report\n{}", self.transcript()))
    }

    /// The JUnit XML; panics with the transcript when there is none.
    pub fn junit(&self) -> &str {
        self.junit
            .as_deref()
            .unwrap_or_else(|| panic!("no JUnit report\n{}", self.transcript()))
    }

    /// The JSON report's entry for a kernel of the matrix, by name.
    pub fn kernel(&self, name: &str) -> &serde_json::Value {
        self.report()["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("kernel {name} missing from report\n{}", self.transcript()))
    }

    /// The JSON report's entry for a trial, by its full name (`6.1::object::case`).
    pub fn trial(&self, name: &str) -> &serde_json::Value {
        self.report()["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("trial {name} missing from report\n{}", self.transcript()))
    }

    /// A trial's status: `passed`, `failed`, `unsupported`, ...
    pub fn trial_status(&self, name: &str) -> String {
        self.trial(name)["outcome"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A trial's failure or unsupported message (empty for a pass).
    pub fn trial_message(&self, name: &str) -> String {
        self.trial(name)["outcome"]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The terminal summary table's row for a kernel (the last stdout line that starts with
    /// its name).
    pub fn summary_row(&self, kernel: &str) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(kernel))
            .unwrap_or_else(|| panic!("no summary row for {kernel}\n{}", self.transcript()))
    }

    /// A kernel's `<testsuite>` element in the JUnit XML, up to (not including) its end tag.
    pub fn junit_suite(&self, kernel: &str) -> &str {
        let xml = self.junit();
        let start = xml
            .find(&format!("<testsuite name=\"{kernel}\""))
            .unwrap_or_else(|| panic!("no testsuite {kernel} in\n{xml}"));
        let end = xml[start..].find("</testsuite>").unwrap() + start;
        &xml[start..end]
    }

    /// Exit status, stdout and stderr, for assertion messages.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The harness binary, to be run from the workspace root, with no arguments yet.
pub fn harness_binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command.current_dir(workspace());
    command
}

/// The harness with everything of the run kept in `dir`: `report.json`, `junit.xml` and its work
/// directory `work/` (so what a run leaves behind is the test's own to look at).
pub fn harness_command(dir: &Path) -> Command {
    let mut command = harness_binary();
    command
        .args(["--color", "never", "--report-json"])
        .arg(dir.join("report.json"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--work-dir")
        .arg(dir.join("work"));
    command
}

/// The outcome of a run started by `harness_command(dir)`, with whatever reports it wrote there.
pub fn finish(dir: &Path, output: Output) -> Outcome {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    Outcome {
        report: read("report.json").map(|t| serde_json::from_str(&t).unwrap()),
        junit: read("junit.xml"),
        ..Outcome::from_output(output)
    }
}

/// Runs `harness_command(dir)` with extra arguments to completion.
pub fn run_harness(dir: &Path, args: &[&str]) -> Outcome {
    let output = harness_command(dir)
        .args(args)
        .output()
        .expect("the harness binary runs");
    finish(dir, output)
}

/// Runs the harness as a user would: its default work directory (built objects shared with
/// other runs), no JUnit, only a JSON report, written to a temporary directory. Panics right
/// away when the run wrote no report, so the outcome always has one.
pub fn run_harness_in_default_work_dir<I, S>(args: I) -> Outcome
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let dir = tempfile::tempdir().unwrap();
    let output = harness_binary()
        .args(["--color", "never", "--report-json"])
        .arg(dir.path().join("report.json"))
        .args(args)
        .output()
        .expect("the harness binary runs");
    let out = finish(dir.path(), output);
    if out.report.is_none() {
        panic!("no JSON report\n{}", out.transcript());
    }
    out
}

/// `harness fetch` of these kernels of the repository's matrix (into the shared image cache);
/// asserts it succeeded and returns its stdout (a line per kernel, with its image's path).
pub fn fetch(kernels: &[&str]) -> String {
    let mut command = harness_binary();
    command.args(["fetch", "--matrix", "kernels.toml"]);
    for kernel in kernels {
        command.args(["--kernel", kernel]);
    }
    let out = Outcome::from_output(command.output().expect("the harness binary runs"));
    assert!(
        out.status.success(),
        "harness fetch failed\n{}",
        out.transcript()
    );
    out.stdout
}

/// `command.output()`, tried up to `attempts` times 50 ms apart while the executable is busy
/// (ETXTBSY): a file just written may still be open for writing in a child that another test's
/// thread forked meanwhile, until that child's exec.
pub fn output_retrying_text_busy(
    command: &mut Command,
    attempts: usize,
) -> std::io::Result<Output> {
    let mut tried = 1;
    loop {
        match command.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tried < attempts => {
                tried += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes and directories

/// Every live process whose command line mentions both `program` and `needle` (typically a path
/// of the test's own, so other tests' processes are not counted).
pub fn processes_mentioning(program: &str, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(program) && text.contains(needle) {
            // A zombie's cmdline is empty, so whatever matches here is still alive.
            found.push(pid);
        }
    }
    found
}

/// Every `qemu-system-*` process whose command line mentions `needle` (a test's own work dir).
pub fn qemu_processes_mentioning(needle: &str) -> Vec<u32> {
    processes_mentioning("qemu-system", needle)
}

/// The entries of `dir` whose file names `keep` accepts (none when `dir` cannot be read).
pub fn dir_entries(dir: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|e| {
            e.flatten()
                .map(|e| e.path())
                .filter(|p| keep(p.file_name().unwrap().to_str().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}
