//! Configuration and host faults through the real binary: an invalid kernels.toml (syntax,
//! unknown key, missing field, bad value), an unknown `--kernel`, missing host tools. Each must
//! stop the run with exit status 2 and a message on stderr that says where (file, line, column)
//! and what was expected, or what to install. None of them boots anything, except the last
//! test: a report that fails to be written at the end of a real run.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn run_with_matrix(text: &str, extra: &[&str]) -> (Outcome, PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let matrix = temp_matrix(&dir, text);
    let (images, programs) = (images(), fault_programs("green"));
    let mut args = vec![
        "--matrix",
        matrix.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--programs",
        programs.to_str().unwrap(),
        "--no-install",
    ];
    args.extend_from_slice(extra);
    (run_harness(&dir, &args), matrix)
}

#[test]
fn invalid_matrix_is_reported_with_file_line_and_column() {
    let k = format!("[[kernel]]\nname = \"5.10\"\n{}\n", debian_source("5.10"));
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("syntax", "[[kernel]\nname = \"5.10\"\n".into(), ":1:", ""),
        (
            "unknown key",
            format!("{k}boot_timeout = 5\n"),
            ":4:1:",
            "unknown field `boot_timeout`",
        ),
        (
            "unknown key in defaults",
            format!("[defaults]\nmemory = 256\n{k}"),
            ":2:1:",
            "unknown field `memory`",
        ),
        (
            "missing field",
            "[[kernel]]\nname = \"5.10\"\ndebian = { suite = \"bullseye\" }\n".into(),
            ":3:",
            "missing field `packages`",
        ),
        (
            "wrong type",
            format!("{k}memory_mib = \"lots\"\n"),
            ":4:14:",
            "invalid type",
        ),
        (
            "no source",
            "[[kernel]]\nname = \"5.10\"\n".into(),
            ":2:8:",
            "needs exactly one source",
        ),
        (
            "duration out of range",
            format!("{k}guest_timeout_s = 9223372036854775807\n"),
            ":4:19:",
            "`guest_timeout_s` must be at most 86400",
        ),
    ];
    for (what, text, position, expected) in cases {
        let (out, matrix) = run_with_matrix(&text, &[]);
        assert_eq!(out.code(), Some(2), "{what}\n{}", out.transcript());
        let location = format!("{}{position}", matrix.display());
        assert!(
            out.stderr.contains(&location),
            "{what}: stderr lacks `{location}`\n{}",
            out.transcript()
        );
        assert!(
            out.stderr.contains(expected),
            "{what}: stderr lacks `{expected}`\n{}",
            out.transcript()
        );
        assert!(!out.stderr.contains("panicked"), "{}", out.transcript());
        assert!(
            out.report.is_none(),
            "{what}: nothing ran, no report expected"
        );
    }
}

#[test]
fn unknown_kernel_name_lists_the_known_ones() {
    let text = format!(
        "[[kernel]]\nname = \"5.10\"\n{}\n[[kernel]]\nname = \"6.1\"\n{}\n",
        debian_source("5.10"),
        debian_source("6.1")
    );
    let (out, matrix) = run_with_matrix(&text, &["--kernel", "5.1"]);
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    assert!(
        out.stderr.contains("unknown kernel `5.1`"),
        "{}",
        out.transcript()
    );
    assert!(
        out.stderr.contains(&matrix.display().to_string()),
        "{}",
        out.transcript()
    );
    assert!(out.stderr.contains("5.10, 6.1"), "{}", out.transcript());
}

/// A PATH made of links to every program of the current PATH except those `hide` matches.
fn path_without(dir: &Path, hide: impl Fn(&str) -> bool) -> String {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    for entry_dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&entry_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if hide(name) || bin.join(name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(name));
        }
    }
    bin.display().to_string()
}

fn run_without(hide: impl Fn(&str) -> bool) -> Outcome {
    let dir = tempfile::tempdir().unwrap().keep();
    let path = path_without(&dir, hide);
    let output = harness_command(&dir)
        .env("PATH", path)
        .env_remove("HARNESS_CLANG")
        .args([
            "--matrix",
            "kernels.toml",
            "--kernel",
            "5.10",
            "--no-install",
            "--programs",
        ])
        .arg(fault_programs("green"))
        .output()
        .unwrap();
    finish(&dir, output)
}

#[test]
fn missing_qemu_says_what_to_install() {
    let out = run_without(|name| name.starts_with("qemu-system"));
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    assert!(
        out.stderr.contains("apt-get install") && out.stderr.contains("qemu-system-x86"),
        "{}",
        out.transcript()
    );
    assert!(
        !out.stderr.contains("clang-19 ("),
        "only what is missing\n{}",
        out.transcript()
    );
}

#[test]
fn missing_clang_says_what_to_install() {
    let out = run_without(|name| name.starts_with("clang"));
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    assert!(
        out.stderr.contains("apt-get install") && out.stderr.contains("clang-19"),
        "{}",
        out.transcript()
    );
}

#[test]
fn non_utf8_matrix_is_located_and_said_once() {
    let dir = tempfile::tempdir().unwrap().keep();
    let matrix = dir.join("kernels.toml");
    std::fs::write(&matrix, b"[[kernel]]\nname = \"5.\xff10\"\nhost = true\n").unwrap();
    let out = run_harness(
        &dir,
        &["--matrix", matrix.to_str().unwrap(), "--no-install"],
    );
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    let location = format!("{}:2:11: not UTF-8", matrix.display());
    assert!(out.stderr.contains(&location), "{}", out.transcript());
    assert_eq!(
        out.stderr.matches("UTF-8").count(),
        2,
        "said once (`not UTF-8` ... `UTF-8 text`)\n{}",
        out.transcript()
    );
}

#[test]
fn zero_jobs_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap().keep();
    let out = run_harness(&dir, &["-j", "0", "--no-install"]);
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    assert!(
        out.stderr.contains("must be at least 1"),
        "{}",
        out.transcript()
    );
}

/// Report paths that cannot be written stop the run before anything is built or booted, and
/// a missing directory is never created.
#[test]
fn unwritable_report_paths_are_refused_before_booting() {
    let dir = tempfile::tempdir().unwrap().keep();
    let missing_dir = dir.join("nonexistent/dir");
    let cases: Vec<(&str, std::path::PathBuf, &str)> = vec![
        (
            "--report-json",
            "/proc/r.json".into(),
            "cannot write in /proc",
        ),
        (
            "--report-json",
            missing_dir.join("r.json"),
            "does not exist (create it first",
        ),
        ("--junit", "/proc/j.xml".into(), "cannot write in /proc"),
    ];
    for (option, path, expected) in cases {
        let started = std::time::Instant::now();
        let output = harness_binary()
            .args(["--no-install", "--kernel", "5.10", "--work-dir"])
            .arg(dir.join("work"))
            .arg("--programs")
            .arg(fault_programs("green"))
            .arg(option)
            .arg(&path)
            .output()
            .unwrap();
        let out = finish(&dir, output);
        assert_eq!(
            out.code(),
            Some(2),
            "{option} {}\n{}",
            path.display(),
            out.transcript()
        );
        assert!(out.stderr.contains(expected), "{}", out.transcript());
        assert!(
            !out.stderr.contains("building BPF objects"),
            "checked before building or booting\n{}",
            out.transcript()
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
    assert!(!dir.join("nonexistent").exists(), "no directory created");
}

/// A report that cannot be written at the end (its directory vanished during the run) costs
/// neither the terminal its results nor the other report; the directory is not re-created, and
/// the exit status says the run's record is incomplete.
#[test]
fn a_failed_report_write_keeps_the_terminal_results() {
    let dir = tempfile::tempdir().unwrap();
    let reports = dir.path().join("reports");
    std::fs::create_dir(&reports).unwrap();
    let work = dir.path().join("work");
    let child = harness_binary()
        .args(["--color", "never", "--kernel", "5.10", "--work-dir"])
        .arg(&work)
        .arg("--programs")
        .arg(fault_programs("green"))
        .arg("--report-json")
        .arg(reports.join("r.json"))
        .arg("--junit")
        .arg(dir.path().join("junit.xml"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let needle = work.display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while qemu_processes_mentioning(&needle).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "no guest within 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::fs::remove_dir(&reports).unwrap();
    let out = finish(dir.path(), child.wait_with_output().unwrap());
    assert_eq!(out.code(), Some(2), "{}", out.transcript());
    assert!(
        out.stderr.contains("writing JSON report"),
        "{}",
        out.transcript()
    );
    assert!(
        out.summary_row("5.10").contains("COMPLETED"),
        "the table is printed\n{}",
        out.transcript()
    );
    assert!(out.stdout.contains("test result:"), "{}", out.transcript());
    assert!(
        out.junit().contains("testsuite"),
        "the other report is written"
    );
    assert!(!reports.exists(), "the vanished directory was re-created");
}
