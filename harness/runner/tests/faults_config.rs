//! Configuration and host faults through the real binary: an invalid kernels.toml (syntax,
//! unknown key, missing field, bad value), an unknown `--kernel`, missing host tools. Each must
//! stop the run with exit status 2 and a message on stderr that says where (file, line, column)
//! and what was expected, or what to install. None of them boots anything.

mod faults_support;

use std::path::{Path, PathBuf};

use faults_support::*;

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
