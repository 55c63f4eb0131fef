//! End to end across architectures and BTF sources: the real harness binary boots a Debian
//! arm64 kernel (`qemu-system-aarch64 -M virt`, TCG) and the same Debian release on x86_64,
//! runs the same object bytes of the corpus in both, and every `identical::` trial must pass;
//! then a Debian kernel runs with `btf = "path"` naming a copy of its own BTF, and the agent must
//! say it relocated against that file (path and sha256), not /sys/kernel/btf/vmlinux; given
//! another kernel's BTF, its relocations follow that BTF; an entry whose file is no BTF is not
//! run.

mod support;

use sha2::Digest;

use support::*;

/// Each object the kernel loaded, by name, with the sha256 of the bytes it was given.
fn object_hashes(k: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = k["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["object"].as_str().unwrap().to_string(),
                o["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn an_arm64_and_an_x86_64_kernel_agree_on_the_whole_corpus() {
    let out = run_harness_in_default_work_dir([
        "--matrix",
        "kernels.toml",
        "--kernel",
        "6.12-arm64",
        "--kernel",
        "6.12",
    ]);
    assert!(out.status.success(), "harness failed\n{}", out.transcript());
    let arm = out.kernel("6.12-arm64");
    let x86 = out.kernel("6.12");
    for (k, arch, release_suffix) in [(arm, "aarch64", "-arm64"), (x86, "x86_64", "-amd64")] {
        assert_eq!(k["outcome"], "COMPLETED", "{k:#}");
        assert_eq!(k["arch"], arch, "{k:#}");
        // What the guest's own uname said: the arm64 kernel really ran.
        let release = k["release"].as_str().unwrap();
        assert!(
            release.ends_with(release_suffix),
            "{arch}: release {release}"
        );
        assert_eq!(k["btf"]["path"], "/sys/kernel/btf/vmlinux", "{k:#}");
        assert_eq!(k["btf"]["external"], false, "{k:#}");
    }
    // The same object bytes on both architectures.
    let hashes = object_hashes(arm);
    assert!(hashes.len() >= 6, "{hashes:?}");
    assert_eq!(hashes, object_hashes(x86));
    assert_eq!(out.report()["counts"]["failed"], 0, "{}", out.stdout);

    // The corpus's tracing objects are x86_64 builds (their fixtures say `arch = ["x86_64"]`:
    // registers and syscall numbers are not CO-RE relocated): on arm64 their cases are
    // unsupported, naming why, never run and never passed.
    let trials_named = |prefix: &str| -> Vec<&serde_json::Value> {
        out.report()["trials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["name"].as_str().unwrap().starts_with(prefix) && !t["case"].is_null())
            .collect()
    };
    let x86_only = trials_named("6.12-arm64::open_watch::");
    assert!(!x86_only.is_empty());
    for t in x86_only {
        assert_eq!(t["outcome"]["status"], "unsupported", "{t:#}");
        let why = t["outcome"]["detail"].as_str().unwrap();
        assert!(why.contains("built for x86_64"), "{why}");
    }
    for t in trials_named("6.12::open_watch::") {
        assert_eq!(t["outcome"]["status"], "passed", "{t:#}");
    }

    // Every other identical:: trial ran across both architectures and passed; the only
    // exceptions allowed are an input both kernels refuse (then there is nothing to compare)
    // and a case built for one architecture (only one kernel ran it).
    let trials = out.report()["trials"].as_array().unwrap();
    let identical: Vec<&serde_json::Value> = trials
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("identical::"))
        .collect();
    assert!(
        identical.len() >= 70,
        "{} identical trials",
        identical.len()
    );
    let mut passed = 0;
    let mut arch_bound = 0;
    for t in &identical {
        match t["outcome"]["status"].as_str().unwrap() {
            "passed" => passed += 1,
            "unsupported"
                if t["outcome"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains("built for x86_64") =>
            {
                arch_bound += 1
            }
            "unsupported" => {
                let why = t["outcome"]["detail"].as_str().unwrap();
                let refused_by = why
                    .split("refuses this input on ")
                    .nth(1)
                    .unwrap_or_else(|| panic!("{}: {why}", t["name"]));
                let mut refused_by: Vec<&str> = refused_by.split(", ").collect();
                refused_by.sort();
                assert_eq!(refused_by, ["6.12", "6.12-arm64"], "{}: {why}", t["name"]);
                let case = t["name"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("identical::");
                for k in ["6.12", "6.12-arm64"] {
                    let per_kernel = trials
                        .iter()
                        .find(|p| p["name"] == format!("{k}::{case}"))
                        .unwrap();
                    assert_eq!(
                        per_kernel["outcome"]["status"], "input_refused",
                        "{per_kernel:#}"
                    );
                }
            }
            other => panic!("{}: {other}\n{:#}", t["name"], t),
        }
    }
    assert!(arch_bound > 0, "no case is built for one architecture");
    assert!(
        passed + arch_bound + 2 >= identical.len(),
        "{passed} of {}",
        identical.len()
    );
}

#[test]
fn an_external_btf_is_what_the_guest_relocates_against() {
    // The kernel's own BTF, extracted on the host by `harness fetch`, copied next to a matrix
    // of its own whose entry names it: the guest must use the copy, as the hello says.
    let stdout = fetch(&["6.1", "6.12"]);
    let cached_btf = |kernel: &str| {
        let vmlinux = stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix(&format!("{kernel} "))
                    .and_then(|l| l.split_whitespace().nth(1))
            })
            .unwrap_or_else(|| panic!("no {kernel} image path in fetch's output:\n{stdout}"));
        std::fs::read(workspace().join(vmlinux).with_file_name("vmlinux.btf")).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let btf = cached_btf("6.1");
    std::fs::create_dir(dir.path().join("btf")).unwrap();
    std::fs::write(dir.path().join("btf/6.1.btf"), &btf).unwrap();
    std::fs::write(dir.path().join("btf/6.12.btf"), cached_btf("6.12")).unwrap();
    std::fs::write(dir.path().join("not-btf"), b"\x7fELF not raw BTF").unwrap();
    std::fs::write(
        dir.path().join("kernels.toml"),
        r#"
[[kernel]]
name = "6.1"
debian = { suite = "bookworm", packages = ["linux-image-6.1.*-amd64-unsigned"] }
btf = "btf/6.1.btf"

[[kernel]]
name = "6.1-bad-btf"
debian = { suite = "bookworm", packages = ["linux-image-6.1.*-amd64-unsigned"] }
btf = "not-btf"

[[kernel]]
name = "6.1-with-6.12-btf"
debian = { suite = "bookworm", packages = ["linux-image-6.1.*-amd64-unsigned"] }
btf = "btf/6.12.btf"
"#,
    )
    .unwrap();
    // The same pins as the project's lock, for both entries.
    let lock = std::fs::read_to_string(workspace().join("kernels.lock")).unwrap();
    let pinned = lock
        .split("[[kernel]]")
        .find(|k| k.contains("name = \"6.1\"\n"))
        .unwrap();
    let header = lock.split("[[kernel]]").next().unwrap();
    std::fs::write(
        dir.path().join("kernels.lock"),
        format!(
            "{header}[[kernel]]{pinned}[[kernel]]{}[[kernel]]{}",
            pinned.replace("name = \"6.1\"\n", "name = \"6.1-bad-btf\"\n"),
            pinned.replace("name = \"6.1\"\n", "name = \"6.1-with-6.12-btf\"\n")
        ),
    )
    .unwrap();
    let matrix = dir.path().join("kernels.toml");
    let images = images();
    let programs = project_programs();
    let run = |kernel: &str| {
        run_harness_in_default_work_dir([
            "--matrix",
            matrix.to_str().unwrap(),
            "--images",
            images.to_str().unwrap(),
            "--programs",
            programs.to_str().unwrap(),
            "--kernel",
            kernel,
        ])
    };
    let out = run("6.1");
    assert!(out.status.success(), "{}", out.transcript());
    let k = out.kernel("6.1");
    assert_eq!(k["outcome"], "COMPLETED", "{k:#}");
    assert_eq!(k["btf"]["path"], "harness/kernel.btf", "{k:#}");
    assert_eq!(k["btf"]["external"], true, "{k:#}");
    assert_eq!(k["btf"]["bytes"], btf.len() as u64, "{k:#}");
    assert_eq!(
        k["btf"]["sha256"],
        hex::encode(sha2::Sha256::digest(&btf)),
        "{k:#}"
    );
    // Every trial on 6.1 passed, the relocation trials included: the guest's decisions against
    // the external BTF equal the host's predictions from the same file.
    let trials = out.report()["trials"].as_array().unwrap();
    let passed = |suffix: &str| {
        trials
            .iter()
            .filter(|t| {
                let name = t["name"].as_str().unwrap();
                name.starts_with("6.1::") && name.ends_with(suffix)
            })
            .filter(|t| t["outcome"]["status"] == "passed")
            .count()
    };
    assert_eq!(out.report()["counts"]["failed"], 0, "{}", out.stdout);
    assert!(passed("") >= 80, "{}", out.stdout);
    assert!(passed("::relocations") >= 6, "{}", out.stdout);

    // Another kernel's BTF really steers the relocation: the 6.1 kernel given 6.12's types
    // reads task_struct::pid at 6.12's offset (2432; its own is 2416), as the host predicted
    // from the same file (the relocation trials pass), and the programs then misread the task.
    let pid_offsets = |k: &serde_json::Value| -> Vec<String> {
        k["objects"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["relocations"].as_array().unwrap())
            .filter(|r| {
                r["access"] == "struct task_struct::pid" && r["kind"] == "field_byte_offset"
            })
            .map(|r| r["decision"].as_str().unwrap().to_string())
            .collect()
    };
    let own = pid_offsets(out.kernel("6.1"));
    assert!(
        !own.is_empty() && own.iter().all(|d| d == "value 2416"),
        "{own:?}"
    );
    let other = run("6.1-with-6.12-btf");
    let k = other.kernel("6.1-with-6.12-btf");
    assert_eq!(k["outcome"], "COMPLETED", "{k:#}\n{}", other.transcript());
    let offsets = pid_offsets(k);
    assert!(
        !offsets.is_empty() && offsets.iter().all(|d| d == "value 2432"),
        "{offsets:?}"
    );
    assert_eq!(
        other.trial_status("6.1-with-6.12-btf::task_walk::relocations"),
        "passed"
    );
    assert_eq!(
        other.trial_status("6.1-with-6.12-btf::task_walk::current_task_chains"),
        "failed"
    );

    // An entry whose `btf` is not raw BTF is not run, and says why.
    let bad = run("6.1-bad-btf");
    assert!(!bad.status.success(), "{}", bad.transcript());
    let k = bad.kernel("6.1-bad-btf");
    assert_eq!(k["outcome"], "NOT_RUN", "{k:#}");
    let detail = k["detail"].as_str().unwrap();
    assert!(
        detail.contains("kernel `6.1-bad-btf`: external BTF")
            && detail.contains("an ELF file, not raw BTF"),
        "{detail}"
    );
}
