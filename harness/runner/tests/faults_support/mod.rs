//! Shared by the fault tests (`tests/faults_*.rs`): driving the real harness binary against a
//! matrix and a programs directory of the test's choosing, and reading back what it reported.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The shared image cache of the workspace (kernels are downloaded into it once).
pub fn images() -> PathBuf {
    workspace().join("images")
}

/// Test-only program corpora: `green` (passes everywhere) and `faulty`.
pub fn fault_programs(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fault-programs")
        .join(which)
}

/// The Debian kernels of the repository's matrix, as `[[kernel]]` bodies to build temporary
/// matrices from (they must match kernels.lock, which is copied next to the temporary matrix).
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

/// Writes `dir/kernels.toml` and copies the repository's lockfile next to it as
/// `dir/kernels.lock` (the lockfile is `<matrix stem>.lock`).
pub fn temp_matrix(dir: &Path, text: &str) -> PathBuf {
    let matrix = dir.join("kernels.toml");
    std::fs::write(&matrix, text).unwrap();
    std::fs::copy(workspace().join("kernels.lock"), dir.join("kernels.lock")).unwrap();
    matrix
}

pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The JSON report, if the harness wrote one.
    pub report: Option<serde_json::Value>,
    /// The JUnit XML, if the harness wrote one.
    pub junit: Option<String>,
}

impl Outcome {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn report(&self) -> &serde_json::Value {
        self.report
            .as_ref()
            .unwrap_or_else(|| panic!("no JSON report\n{}", self.transcript()))
    }

    pub fn junit(&self) -> &str {
        self.junit
            .as_deref()
            .unwrap_or_else(|| panic!("no JUnit report\n{}", self.transcript()))
    }

    pub fn kernel(&self, name: &str) -> &serde_json::Value {
        self.report()["kernels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("kernel {name} missing from report\n{}", self.transcript()))
    }

    pub fn trial(&self, name: &str) -> &serde_json::Value {
        self.report()["trials"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("trial {name} missing from report\n{}", self.transcript()))
    }

    /// `passed`, `failed` or `unsupported`.
    pub fn trial_status(&self, name: &str) -> String {
        self.trial(name)["outcome"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The trial's failure or unsupported message (empty for a pass).
    pub fn trial_message(&self, name: &str) -> String {
        self.trial(name)["outcome"]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The summary table's row for a kernel.
    pub fn summary_row(&self, kernel: &str) -> &str {
        self.stdout
            .lines()
            .rev()
            .find(|l| l.split_whitespace().next() == Some(kernel))
            .unwrap_or_else(|| panic!("no summary row for {kernel}\n{}", self.transcript()))
    }

    /// The JUnit `<testsuite>` element of a kernel, up to its end tag.
    pub fn junit_suite(&self, kernel: &str) -> &str {
        let xml = self.junit();
        let start = xml
            .find(&format!("<testsuite name=\"{kernel}\""))
            .unwrap_or_else(|| panic!("no testsuite {kernel} in\n{xml}"));
        let end = xml[start..].find("</testsuite>").unwrap() + start;
        &xml[start..end]
    }

    pub fn transcript(&self) -> String {
        format!(
            "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// The harness command with the report paths and a work directory inside `dir`.
pub fn harness_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_harness"));
    command
        .current_dir(workspace())
        .args(["--color", "never", "--report-json"])
        .arg(dir.join("report.json"))
        .arg("--junit")
        .arg(dir.join("junit.xml"))
        .arg("--work-dir")
        .arg(dir.join("work"));
    command
}

pub fn finish(dir: &Path, output: std::process::Output) -> Outcome {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    Outcome {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report: read("report.json").map(|t| serde_json::from_str(&t).unwrap()),
        junit: read("junit.xml"),
    }
}

/// Runs the harness to completion with extra arguments.
pub fn run_harness(dir: &Path, args: &[&str]) -> Outcome {
    let output = harness_command(dir)
        .args(args)
        .output()
        .expect("the harness binary runs");
    finish(dir, output)
}

/// Every `qemu-system-*` process whose command line mentions `needle` (a test's own work dir).
pub fn qemu_processes_mentioning(needle: &str) -> Vec<u32> {
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
        if text.contains("qemu-system") && text.contains(needle) {
            // A zombie has an empty cmdline, so anything listed here is alive.
            found.push(pid);
        }
    }
    found
}
