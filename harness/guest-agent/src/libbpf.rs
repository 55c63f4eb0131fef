//! libbpf as the second loader: the runner's static libbpf loader loads the same object in this
//! guest, in a process of its own (a crash or a hang costs that object's comparison only), and
//! both loaders' translated programs are fetched and normalised alike for the runner to compare.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use guest_protocol::libbpf::{parse_loader_output, LoaderLine};
use guest_protocol::{LibbpfObject, LibbpfProgram, ObjectEntry, Xlated};

use crate::load::LoadedObject;

/// How long libbpf may take over one object (it loads a refused program again alone, so a
/// too-complex one costs it several verifications).
const LOADER_TIMEOUT: Duration = Duration::from_secs(120);
/// A line to the runner this often while libbpf works, so its silence timer sees the guest alive.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Most output read from the loader: hex of every program's translated instructions.
const MAX_OUTPUT: u64 = 64 << 20;

/// What libbpf made of one object, in a process that has ended by the time this returns.
pub struct Reference {
    ran: Result<String, String>,
    libbpf_us: u64,
}

/// Runs `loader` over the object before the harness loads it, so the two never hold the
/// object's maps at once (a guest's memory is small: a preallocated hash map of 80 MB fits
/// once, not twice), and waits until the kernel has given back what libbpf's maps held.
/// `kernel_btf`: the external BTF the harness relocates against, which libbpf then uses too
/// (`btf_custom_path`), so both loaders relocate against the same types.
pub fn run_reference(
    bundle: &Path,
    loader: &str,
    pin_root: &Path,
    entry: &ObjectEntry,
    kernel_btf: Option<&Path>,
    progress: &mut dyn FnMut(String),
) -> Reference {
    place_kernel_config(bundle);
    let available_before = crate::memory::available_kib();
    let started = Instant::now();
    let mut args = settings_args(&entry.load);
    if let Some(btf) = kernel_btf {
        args.push("-b".to_string());
        args.push(btf.display().to_string());
    }
    let ran = run_loader(
        &bundle.join(loader),
        pin_root,
        &bundle.join(&entry.path),
        &entry.name,
        &args,
        progress,
    );
    let libbpf_us = started.elapsed().as_micros() as u64;
    if let Some(before) = available_before {
        crate::memory::wait_until_given_back(before);
    }
    Reference { ran, libbpf_us }
}

/// Gathers both sides: libbpf's [`Reference`] and the harness's own load. `ours` is None when
/// the harness could not load the object at all.
pub fn compare(
    reference: Reference,
    entry: &ObjectEntry,
    ours: Option<&LoadedObject>,
    ours_us: u64,
) -> LibbpfObject {
    let mut ours_raw: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut notes = Vec::new();
    for (name, (fd, _)) in ours.map(|o| &o.programs).into_iter().flatten() {
        match bpf_loader::prog_xlated_insns(fd.as_raw_fd()) {
            Ok(raw) => {
                ours_raw.insert(name.clone(), raw);
            }
            Err(e) => notes.push(format!("program {name}: our translated instructions: {e}")),
        }
    }
    let Reference { ran, libbpf_us } = reference;
    let mut result = LibbpfObject {
        object: entry.name.clone(),
        libbpf_version: String::new(),
        libbpf_us,
        ours_us,
        programs: Vec::new(),
        ours_xlated: BTreeMap::new(),
        error: None,
        refused_object: None,
    };
    let output = match ran {
        Ok(output) => output,
        Err(e) => {
            result.error = Some(e);
            return with_ours(result, &ours_raw, &BTreeSet::new());
        }
    };
    let (version, lines, unreadable) = parse_loader_output(&output);
    result.libbpf_version = version;
    if !unreadable.is_empty() {
        notes.push(format!(
            "unreadable loader lines: {}",
            unreadable.join(" / ")
        ));
    }
    let shown = shown_differences(&lines, &ours_raw);
    for line in &lines {
        if line.program == "-" {
            result.refused_object = Some(line.reason.clone());
        } else {
            result.programs.push(program(line, &shown));
        }
    }
    if !notes.is_empty() {
        result.error = Some(notes.join("; "));
    }
    with_ours(result, &ours_raw, &shown)
}

/// Most programs of one object whose differing instructions travel to the runner (the results
/// port is a UART): the first few show what differs; the others are named with their hashes.
const MAX_SHOWN_PROGRAMS: usize = 4;

/// The programs both loaded whose normalised instructions differ, the first few of them.
fn shown_differences(
    lines: &[LoaderLine],
    ours_raw: &BTreeMap<String, Vec<u8>>,
) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|line| {
            let theirs = line.xlated.as_deref().map(Xlated::from_raw);
            let ours = ours_raw.get(&line.program).map(|o| Xlated::from_raw(o));
            matches!((ours, theirs), (Some(a), Some(b)) if a.sha256 != b.sha256)
        })
        .take(MAX_SHOWN_PROGRAMS)
        .map(|line| line.program.clone())
        .collect()
}

/// libbpf's verdict on one program; its instructions carry their bytes when they are `shown`.
fn program(line: &LoaderLine, shown: &BTreeSet<String>) -> LibbpfProgram {
    let xlated = line.xlated.as_deref().map(|raw| {
        if shown.contains(&line.program) {
            Xlated::with_bytes(raw)
        } else {
            Xlated::from_raw(raw)
        }
    });
    LibbpfProgram {
        program: line.program.clone(),
        section: line.section.clone(),
        loaded: line.loaded,
        reason: line.reason.clone(),
        xlated,
    }
}

/// Our side's instructions, with bytes for the `shown` programs.
fn with_ours(
    mut result: LibbpfObject,
    ours_raw: &BTreeMap<String, Vec<u8>>,
    shown: &BTreeSet<String>,
) -> LibbpfObject {
    for (name, raw) in ours_raw {
        let xlated = if shown.contains(name) {
            Xlated::with_bytes(raw)
        } else {
            Xlated::from_raw(raw)
        };
        result.ours_xlated.insert(name.clone(), xlated);
    }
    result
}

/// libbpf reads `/boot/config-<release>` (or /proc/config.gz) itself, and reads it too when an
/// extern is missing from a config it was handed: so in a guest (pid 1, its own root) the config
/// the runner shipped is put where a Debian machine has it. Elsewhere libbpf searches as usual.
fn place_kernel_config(bundle: &Path) {
    let release = bpf_loader::kernel_release();
    let boot = Path::new("/boot").join(format!("config-{release}"));
    let shipped = bundle.join(crate::kernel_facts::SHIPPED_CONFIG);
    if std::process::id() == 1 && !boot.exists() && shipped.is_file() {
        let _ = std::fs::create_dir_all("/boot");
        let _ = std::fs::copy(&shipped, &boot);
    }
}

/// The loader's `-m MAP=N`, `-v MAP=N` and `-n PROGRAM` options: the same settings our own
/// load applies.
fn settings_args(settings: &guest_protocol::LoadSettings) -> Vec<String> {
    let mut args = Vec::new();
    for (map, setting) in &settings.maps {
        if let Some(entries) = setting.max_entries {
            args.push("-m".to_string());
            args.push(format!("{map}={entries}"));
        }
        if let Some(size) = setting.value_size {
            args.push("-v".to_string());
            args.push(format!("{map}={size}"));
        }
    }
    for program in &settings.not_autoloaded {
        args.push("-n".to_string());
        args.push(program.clone());
    }
    args
}

/// The loader's standard output, or why there is none: it did not start, was killed, timed out.
fn run_loader(
    loader: &Path,
    pin_root: &Path,
    object: &Path,
    name: &str,
    settings: &[String],
    progress: &mut dyn FnMut(String),
) -> Result<String, String> {
    // A fresh pin directory per object: libbpf reuses maps pinned by name, and another object's
    // map of the same name must not leak into this one.
    let _ = std::fs::remove_dir_all(pin_root);
    std::fs::create_dir_all(pin_root).map_err(|e| {
        format!(
            "cannot create the pin directory {}: {e}",
            pin_root.display()
        )
    })?;
    let mut child = Command::new(loader)
        .arg(pin_root)
        // The config is where libbpf looks for it (see place_kernel_config).
        .arg("-")
        .args(settings)
        .arg(object)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the libbpf loader {}: {e}", loader.display()))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read_out = std::thread::spawn(move || bounded_read(stdout, MAX_OUTPUT));
    let read_err = std::thread::spawn(move || bounded_read(stderr, 16 << 10));
    let started = Instant::now();
    let mut last_progress = started;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(format!("waiting for the libbpf loader: {e}")),
        }
        if started.elapsed() > LOADER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break Err(format!(
                "the libbpf loader did not finish within {} s",
                LOADER_TIMEOUT.as_secs()
            ));
        }
        if last_progress.elapsed() > PROGRESS_EVERY {
            last_progress = Instant::now();
            progress(format!(
                "{name}: libbpf still loading after {} s",
                started.elapsed().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = read_out.join().unwrap_or_default();
    let err = read_err.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(pin_root);
    let status = status?;
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let how = match status.signal() {
            Some(signal) => format!("was killed by signal {signal}"),
            None => format!("exited with {}", status.code().unwrap_or(-1)),
        };
        return Err(format!(
            "the libbpf loader {how}; stderr: {}; last output: {}",
            err.trim(),
            out.lines()
                .last()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    Ok(out)
}

/// At most `limit` bytes; the rest is read and dropped, so the loader never blocks on a full pipe.
fn bounded_read(source: Option<impl Read>, limit: u64) -> String {
    let mut bytes = Vec::new();
    if let Some(mut source) = source {
        let _ = source.by_ref().take(limit).read_to_end(&mut bytes);
        let _ = std::io::copy(&mut source, &mut std::io::sink());
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    const B: [u8; 16] = [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn settings_become_loader_options() {
        let mut settings = guest_protocol::LoadSettings::default();
        settings.maps.insert(
            "stackmap".into(),
            guest_protocol::MapSetting {
                max_entries: Some(1024),
                value_size: Some(1016),
            },
        );
        settings.not_autoloaded.push("on_fentry".into());
        assert_eq!(
            settings_args(&settings),
            [
                "-m",
                "stackmap=1024",
                "-v",
                "stackmap=1016",
                "-n",
                "on_fentry"
            ]
        );
        assert!(settings_args(&Default::default()).is_empty());
    }

    fn line(program: &str, xlated: &[u8]) -> LoaderLine {
        LoaderLine {
            program: program.into(),
            section: "xdp".into(),
            loaded: true,
            reason: String::new(),
            xlated: Some(xlated.to_vec()),
        }
    }

    #[test]
    fn bytes_travel_only_for_programs_whose_translations_differ() {
        let ours: BTreeMap<String, Vec<u8>> = [
            ("same".to_string(), A.to_vec()),
            ("other".to_string(), A.to_vec()),
        ]
        .into();
        let lines = [line("same", &A), line("other", &B)];
        let shown = shown_differences(&lines, &ours);
        assert_eq!(shown, BTreeSet::from(["other".to_string()]));
        let same = program(&lines[0], &shown);
        let other = program(&lines[1], &shown);
        assert!(same.xlated.unwrap().bytes.is_none());
        assert_eq!(other.xlated.unwrap().bytes.as_deref(), Some(&B[..]));
        let empty = LibbpfObject {
            object: "o".into(),
            libbpf_version: String::new(),
            libbpf_us: 0,
            ours_us: 0,
            programs: vec![],
            ours_xlated: BTreeMap::new(),
            error: None,
            refused_object: None,
        };
        let result = with_ours(empty, &ours, &shown);
        assert!(result.ours_xlated["same"].bytes.is_none());
        assert_eq!(result.ours_xlated["other"].bytes.as_deref(), Some(&A[..]));
        assert_eq!(result.ours_xlated["other"].insns, 2);
        // Only the first few differing programs carry their bytes.
        let many: Vec<LoaderLine> = (0..10).map(|i| line(&format!("p{i}"), &B)).collect();
        let ours: BTreeMap<String, Vec<u8>> =
            (0..10).map(|i| (format!("p{i}"), A.to_vec())).collect();
        assert_eq!(shown_differences(&many, &ours).len(), MAX_SHOWN_PROGRAMS);
    }
}
