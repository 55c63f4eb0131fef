//! libbpf as the second loader (`--libbpf`) on real guests (6.12 and 5.10): the project's corpus
//! (programs/) and a third-party corpus, the kernel's own BPF selftests from Debian's
//! linux-source-6.12 (scripts/selftests-corpus.sh with scripts/selftests-corpus.list), go
//! through our loader and through libbpf in the same guest. Every `<kernel>::<object>::libbpf`
//! trial must pass (program by program both loaded or both refused, and identical translated
//! instructions up to map ids) except the disagreements listed in [`KNOWN`], which must fail
//! naming exactly their program.
//!
//! The third-party corpus is built (and cached) by the script, which downloads the source
//! package the first time; `HARNESS_SELFTESTS_CORPUS=DIR` uses a directory the script already
//! filled instead.

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;

use support::*;

const KERNELS: [&str; 2] = ["6.12", "5.10"];

/// (kernel, object, program, libbpf version) where the harness and that libbpf knowingly differ.
/// libbpf 1.1 (Debian bookworm) predates kfunc flavours (`bpf_task_acquire___one`): it leaves the
/// flavoured kfunc unresolved (0) where libbpf 1.2+ and our loader resolve it to the kernel's
/// `bpf_task_acquire`, so the verifier keeps a different branch.
/// With libbpf 1.5 from the same kernel tree (the one these selftests are written for) there is
/// no disagreement on any kernel of the default matrix (see the last test).
const KNOWN: &[(&str, &str, &str, &str)] = &[
    (
        "6.12",
        "task_kfunc_success",
        "test_task_kfunc_flavor_relo",
        "v1.1",
    ),
    (
        "7.2",
        "task_kfunc_success",
        "test_task_kfunc_flavor_relo",
        "v1.1",
    ),
];

fn third_party() -> PathBuf {
    if let Some(dir) = std::env::var_os("HARNESS_SELFTESTS_CORPUS").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    selftests_corpus(&workspace().join("target/selftests-corpus-list"))
}

fn object_names(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(suffix).map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn run_with(libbpf_dir: Option<&std::path::Path>) -> (Outcome, Vec<String>) {
    let corpus = third_party();
    let dir = tempfile::tempdir().unwrap().keep();
    let programs = project_programs();
    let mut args = vec!["--matrix", "kernels.toml", "--libbpf"];
    for kernel in KERNELS {
        args.extend(["--kernel", kernel]);
    }
    args.extend(["--programs", programs.to_str().unwrap()]);
    args.extend(["--programs", corpus.to_str().unwrap()]);
    args.push("::libbpf");
    let mut command = harness_command(&dir);
    command.args(&args);
    match libbpf_dir {
        Some(libbpf) => command.env("HARNESS_LIBBPF_DIR", libbpf),
        None => command.env_remove("HARNESS_LIBBPF_DIR"),
    };
    let outcome = finish(&dir, command.output().unwrap());
    (outcome, object_names(&corpus, ".bpf.o"))
}

/// With the system's libbpf (Debian bookworm: 1.1).
fn run() -> &'static (Outcome, Vec<String>) {
    static RUN: OnceLock<(Outcome, Vec<String>)> = OnceLock::new();
    RUN.get_or_init(|| run_with(None))
}

/// libbpf from the selftests' own kernel tree (1.5), built as scripts/libbpf-reference.sh builds
/// it, into the same cache.
fn tree_libbpf() -> PathBuf {
    let src = std::process::Command::new(workspace().join("scripts/selftests-corpus.sh"))
        .arg("--print-src")
        .output()
        .expect("running scripts/selftests-corpus.sh --print-src");
    assert!(
        src.status.success(),
        "{}",
        String::from_utf8_lossy(&src.stderr)
    );
    let src = PathBuf::from(String::from_utf8_lossy(&src.stdout).trim());
    let cache = std::env::var_os("HARNESS_THIRDPARTY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("images/thirdparty"));
    let build = cache.join("libbpf").join(src.file_name().unwrap());
    if !build.join(".complete").is_file() {
        std::fs::create_dir_all(&build).unwrap();
        let status = std::process::Command::new("make")
            .args(["-s", "-C"])
            .arg(src.join("tools/lib/bpf"))
            .arg(format!("OUTPUT={}/", build.display()))
            .arg("BUILD_STATIC_ONLY=1")
            .arg(format!("DESTDIR={}/inst", build.display()))
            .args(["prefix=/usr", "install_headers"])
            .arg(build.join("libbpf.a"))
            .status()
            .expect("running make for libbpf");
        assert!(
            status.success(),
            "building libbpf from {} failed",
            src.display()
        );
        std::fs::write(build.join(".complete"), "").unwrap();
    }
    build
}

fn libbpf_version(out: &Outcome, kernel: &str) -> String {
    out.kernel(kernel)["libbpf"][0]["libbpf_version"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The per-kernel figures the harness prints after the trials.
fn figures(out: &Outcome, kernel: &str) -> String {
    out.stdout
        .lines()
        .find(|l| l.starts_with("libbpf ") && l.contains(&format!(" on {kernel}: ")))
        .unwrap_or_else(|| panic!("no libbpf figures for {kernel}\n{}", out.transcript()))
        .to_string()
}

#[test]
fn the_projects_corpus_loads_alike_with_libbpf() {
    let (out, _) = run();
    let objects = object_names(&project_programs(), ".bpf.c");
    assert!(objects.len() >= 6, "{objects:?}");
    for kernel in KERNELS {
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        for object in &objects {
            let name = format!("{kernel}::{object}::libbpf");
            assert_eq!(
                out.trial_status(&name),
                "passed",
                "{}",
                out.trial_message(&name)
            );
        }
        eprintln!("{}", figures(out, kernel));
    }
}

#[test]
fn the_third_party_corpus_loads_alike_with_libbpf_but_for_known_differences() {
    let (out, objects) = run();
    assert!(objects.len() >= 30, "{objects:?}");
    for kernel in KERNELS {
        let version = libbpf_version(out, kernel);
        let reported = out.kernel(kernel)["libbpf"].as_array().unwrap();
        for object in objects {
            let name = format!("{kernel}::{object}::libbpf");
            let message = out.trial_message(&name);
            assert!(!message.contains("no full verdict"), "{name}: {message}");
            let theirs = reported
                .iter()
                .find(|o| o["object"] == object.as_str())
                .unwrap_or_else(|| panic!("{name}: no libbpf report"));
            assert!(theirs["error"].is_null(), "{name}: {}", theirs["error"]);
            let known: Vec<&str> = KNOWN
                .iter()
                .filter(|k| k.0 == kernel && k.1 == object && k.3 == version)
                .map(|k| k.2)
                .collect();
            if known.is_empty() {
                assert_eq!(out.trial_status(&name), "passed", "{message}");
                continue;
            }
            assert_eq!(
                out.trial_status(&name),
                "failed",
                "{name} agrees now: update KNOWN"
            );
            let disagreeing: Vec<&str> = message
                .lines()
                .filter_map(|l| l.strip_prefix("program "))
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            assert_eq!(disagreeing, known, "{message}");
            assert!(message.contains("translated them differently"), "{message}");
            assert!(
                message.contains("> ours") && message.contains("> libbpf"),
                "{message}"
            );
        }
        let line = figures(out, kernel);
        eprintln!("{line}");
        let disagreements = KNOWN
            .iter()
            .filter(|k| k.0 == kernel && k.3 == version)
            .count();
        assert!(
            line.contains(&format!(", {disagreements} disagreements;")),
            "{line}"
        );
    }
}

#[test]
fn with_the_selftests_own_libbpf_nothing_disagrees() {
    let (out, objects) = run_with(Some(&tree_libbpf()));
    for kernel in KERNELS {
        assert_eq!(
            out.kernel(kernel)["outcome"],
            "COMPLETED",
            "{}",
            out.transcript()
        );
        eprintln!("{kernel}: libbpf {}", libbpf_version(&out, kernel));
        for object in &objects {
            let name = format!("{kernel}::{object}::libbpf");
            assert_eq!(
                out.trial_status(&name),
                "passed",
                "{}",
                out.trial_message(&name)
            );
        }
        let line = figures(&out, kernel);
        eprintln!("{line}");
        assert!(line.contains(", 0 disagreements;"), "{line}");
    }
}
