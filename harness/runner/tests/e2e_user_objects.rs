//! End to end, as a BPF developer uses the tool: precompiled objects from a directory of their
//! own (one with fixtures, others load-only), handed to a `harness` binary that lives outside
//! this checkout, run with a bare PATH and a home of its own, on the whole default matrix of
//! real kernels under QEMU.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use support::*;

/// A user's project: `kernels.toml` + lock, `myprogs/` (an object with fixtures and a host
/// `.o` that is not BPF) and `loadonly/` (objects without fixtures), all precompiled.
struct Project {
    _root: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
    home: PathBuf,
}

fn project() -> Project {
    host_tools::ensure_bpf_toolchain_for_tests();
    let root = tempfile::tempdir().unwrap();
    let built = harness::corpus::build::build_all(
        &Default::default(),
        &project_programs(),
        &root.path().join("build-cache"),
    )
    .unwrap();
    let dir = root.path().join("my-bpf-project");
    for sub in ["myprogs", "loadonly"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for object in &built {
        let sub = if object.name == "packet_counter" {
            "myprogs"
        } else {
            "loadonly"
        };
        std::fs::write(
            dir.join(sub).join(format!("{}.bpf.o", object.name)),
            &object.bytes,
        )
        .unwrap();
    }
    std::fs::copy(
        workspace().join("programs/packet_counter.fixtures.toml"),
        dir.join("myprogs/packet_counter.fixtures.toml"),
    )
    .unwrap();
    // Its captures, which the fixtures name relative to themselves.
    std::fs::create_dir_all(dir.join("myprogs/captures")).unwrap();
    for capture in std::fs::read_dir(workspace().join("programs/captures")).unwrap() {
        let capture = capture.unwrap().path();
        std::fs::copy(
            &capture,
            dir.join("myprogs/captures")
                .join(capture.file_name().unwrap()),
        )
        .unwrap();
    }
    // A user-space object beside them (x86-64, not BPF): passed over with a note.
    let host_object = Command::new("cc")
        .args(["-c", "-x", "c", "-", "-o"])
        .arg(dir.join("myprogs/loader.o"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(b"int main(void) { return 0; }\n")?;
            child.wait()
        })
        .unwrap();
    assert!(host_object.success());
    for file in ["kernels.toml", "kernels.lock"] {
        std::fs::copy(workspace().join(file), dir.join(file)).unwrap();
    }
    let bin = root.path().join("bin/harness");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    // A hard link, not a copy: a copy holds a write descriptor that a child forked meanwhile by
    // the other test's thread inherits until its exec, and exec then fails with ETXTBSY.
    if std::fs::hard_link(env!("CARGO_BIN_EXE_harness"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_harness"), &bin).unwrap();
    }
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    Project {
        dir,
        bin,
        home,
        _root: root,
    }
}

impl Project {
    /// The installed binary, from the project directory, with nothing of this checkout's
    /// environment: a bare PATH (no cargo, no rustup) and a home of its own. Only the kernel
    /// images come from the workspace's cache, to spare the download.
    fn harness(&self, args: &[&str]) -> Outcome {
        let mut command = Command::new(&self.bin);
        command
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("HARNESS_IMAGES", images())
            .args(["--color", "never"])
            .args(args);
        // The fallback copy can still meet ETXTBSY for a moment (see `project`): try again.
        Outcome::from_output(output_retrying_text_busy(&mut command, 21).unwrap())
    }
}

#[test]
fn precompiled_objects_with_and_without_fixtures_run_on_the_default_matrix() {
    let p = project();
    let out = p.harness(&[
        "--programs",
        "myprogs",
        "--programs",
        "loadonly",
        "--report-json",
        "report.json",
    ]);
    assert!(out.status.success(), "{}", out.transcript());
    let stderr = &out.stderr;
    assert!(
        stderr.contains("loader.o"),
        "the host object was not named: {stderr}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.dir.join("report.json")).unwrap()).unwrap();
    let kernels: Vec<&str> = report["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(kernels, ["5.10", "6.1", "6.12", "7.2"]);
    for k in report["kernels"].as_array().unwrap() {
        assert_eq!(k["outcome"], "COMPLETED", "{k:#}");
    }
    assert_eq!(report["counts"]["failed"], 0);
    let objects = report["objects"].as_array().unwrap();
    // Every source of programs/ was built and shipped as a prebuilt object.
    let sources = std::fs::read_dir(project_programs())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".bpf.c")
        })
        .count();
    assert_eq!(objects.len(), sources, "{objects:#?}");
    for object in objects {
        let name = object["name"].as_str().unwrap();
        let given = Path::new(object["path"].as_str().unwrap());
        assert_eq!(object["origin"], "prebuilt", "{name}");
        // The report names the file the user gave, by its hash.
        let bytes = std::fs::read(p.dir.join(given)).unwrap();
        assert_eq!(
            object["sha256"],
            hex::encode(Sha256::digest(&bytes)),
            "{name}"
        );
        assert_eq!(object["runs_everywhere_from"], "5.10", "{name}");
        for kernel in &kernels {
            let counts = &object["kernels"][kernel];
            assert_eq!(counts["loaded"], counts["programs"], "{name} on {kernel}");
        }
        let load_trials: Vec<&serde_json::Value> = report["trials"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["object"] == name && t["name"].as_str().unwrap().ends_with("::load"))
            .collect();
        assert_eq!(load_trials.len(), 4, "{name}");
        assert!(load_trials
            .iter()
            .all(|t| t["outcome"]["status"] == "passed"));
        if name == "packet_counter" {
            assert!(object["cases"].as_u64().unwrap() > 0);
        } else {
            assert_eq!(object["cases"], 0, "{name} has no fixtures: load-only");
        }
    }
    let stdout = &out.stdout;
    assert!(stdout.contains("programs loaded per kernel"), "{stdout}");
    assert!(stdout.contains("load-only"), "{stdout}");
}

#[test]
fn a_single_object_file_and_empty_selections() {
    let p = project();
    // One object by path, its fixtures found beside it.
    let out = p.harness(&[
        "--object",
        "myprogs/packet_counter.bpf.o",
        "--kernel",
        "6.12",
    ]);
    assert!(out.status.success(), "{}", out.transcript());
    assert!(out.stdout.contains("6.12::packet_counter::ipv4_tcp_syn"));

    // Nothing to run is an error that says what was looked for and where, never a pass.
    std::fs::create_dir_all(p.dir.join("empty")).unwrap();
    let out = p.harness(&["--programs", "empty", "--kernel", "6.12"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.transcript());
    let stderr = &out.stderr;
    assert!(
        stderr.contains("no BPF objects") && stderr.contains("empty"),
        "{stderr}"
    );

    let out = p.harness(&["--programs", "loadonly", "no-such-trial"]);
    assert_eq!(out.status.code(), Some(4), "{}", out.transcript());
    assert!(out.stderr.contains("no trial matches"));

    // A fixture naming a program the object lacks lists the programs it has.
    std::fs::write(
        p.dir.join("loadonly/task_walk.fixtures.toml"),
        "object = \"task_walk\"\n[[case]]\nname = \"c\"\nprogram = \"nope\"\n[case.expect]\nretval = 0\n",
    )
    .unwrap();
    let out = p.harness(&["--programs", "loadonly", "--kernel", "6.12"]);
    assert_eq!(out.status.code(), Some(2), "{}", out.transcript());
    let stderr = &out.stderr;
    assert!(
        stderr.contains("no program `nope`") && stderr.contains("raw_tp_walk"),
        "{stderr}"
    );
}
