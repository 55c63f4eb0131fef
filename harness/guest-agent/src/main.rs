//! The guest agent: `/init` of every guest, and a plain process for the "host" matrix entry.
//!
//! In a guest it mounts what BPF needs, reads the manifest the runner packed into the initramfs,
//! verifies every object's sha256, relocates and loads each object through the project's CO-RE
//! engine against the running kernel's BTF, runs every case with BPF_PROG_TEST_RUN and reports
//! framed results on a serial port of its own. Then it powers the machine off. It never decides
//! whether a result is right: comparison happens on the host, in one place.

mod attach;
mod channel;
mod kernel_core;
mod kernel_facts;
mod libbpf;
mod load;
mod memory;
mod printk;
mod ready;
mod run_cases;
mod shared_region;
mod system;
mod traffic;
mod workload;

use std::time::Instant;

use guest_protocol::{GuestMessage, Hello, Manifest, MANIFEST_PATH, PROTOCOL_VERSION};

use channel::Channel;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(workload::CHILD_FLAG) {
        // A workload case's child process (or its exec'ed continuation), never /init.
        workload::child_main(&args[2..]);
    }
    let started = Instant::now();
    let as_init = std::process::id() == 1;
    let (bundle, in_guest) = if as_init {
        system::prepare_guest();
        (std::path::PathBuf::from("/"), true)
    } else {
        match parse_host_args(std::env::args().skip(1)) {
            Ok(HostArgs { bundle, in_guest }) => {
                if in_guest {
                    system::mount_missing();
                }
                (bundle, in_guest)
            }
            Err(message) => {
                eprintln!("guest-agent: {message}");
                std::process::exit(2);
            }
        }
    };
    let mut channel = if in_guest {
        Channel::open_guest_port()
    } else {
        Channel::stdout()
    };
    // No manifest in the initramfs: a guest booted to be snapshotted, its bundle comes later.
    let outcome = if as_init && ready::is_ready_mode(&bundle) {
        ready::receive_bundle(&bundle, &mut channel)
    } else {
        Ok(())
    }
    .and_then(|()| run(&bundle, &mut channel, started));
    if let Err(message) = outcome {
        channel.send(&GuestMessage::Fatal { message });
    }
    channel.send(&GuestMessage::Done {
        agent_ms: started.elapsed().as_millis() as u64,
    });
    channel.flush();
    // Another init (virtme-ng's) powers the guest off once its command returns.
    if as_init {
        system::power_off();
    }
}

/// The bytes of the external BTF the manifest names, checked against its sha256.
fn external_btf(
    bundle: &std::path::Path,
    file: &guest_protocol::KernelBtfFile,
) -> Result<Vec<u8>, String> {
    let path = bundle.join(&file.path);
    let bytes =
        std::fs::read(&path).map_err(|e| format!("external kernel BTF {}: {e}", path.display()))?;
    let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    if actual != file.sha256 {
        return Err(format!(
            "external kernel BTF {} has sha256 {actual}, the manifest says {}",
            path.display(),
            file.sha256
        ));
    }
    Ok(bytes)
}

/// How the agent runs when it is not `/init`.
struct HostArgs {
    bundle: std::path::PathBuf,
    /// `--in-guest`: the command of another init (virtme-ng's) in a guest the runner booted;
    /// frames go to the results port, not stdout, and what that init left unmounted is mounted.
    in_guest: bool,
}

/// The arguments after the program name (pure).
fn parse_host_args(mut args: impl Iterator<Item = String>) -> Result<HostArgs, String> {
    let usage = "usage: guest-agent --bundle DIR [--in-guest] (as a plain process; as /init it \
                 takes no arguments)";
    let (Some("--bundle"), Some(dir)) = (args.next().as_deref(), args.next()) else {
        return Err(usage.into());
    };
    match args.next().as_deref() {
        None => Ok(HostArgs {
            bundle: dir.into(),
            in_guest: false,
        }),
        Some("--in-guest") if args.next().is_none() => Ok(HostArgs {
            bundle: dir.into(),
            in_guest: true,
        }),
        Some(_) => Err(usage.into()),
    }
}

fn run(bundle: &std::path::Path, channel: &mut Channel, started: Instant) -> Result<(), String> {
    let manifest_path = bundle.join(MANIFEST_PATH);
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read manifest {}: {e}", manifest_path.display()))?;
    let manifest: Manifest = serde_json::from_str(&manifest_text)
        .map_err(|e| format!("manifest {} is not valid: {e}", manifest_path.display()))?;
    let btf = say_hello(bundle, &manifest, channel);
    if manifest.protocol_version != PROTOCOL_VERSION {
        return Err(format!(
            "manifest speaks protocol {}, this agent {}: rebuild the agent",
            manifest.protocol_version, PROTOCOL_VERSION
        ));
    }
    if manifest.probe_only {
        return Ok(());
    }
    let target = parse_target(btf?, channel, started)?;
    let features = engine_features(bpf_loader::probe::btf_features());

    // Where a guest's time goes, for the runner's log (and scripts/bench-critical-path.sh).
    let mut loads_us = 0u128;
    let mut cases_us = 0u128;
    let available_at_start = memory::available_kib();
    for object in &manifest.objects {
        // What the previous object's maps held comes back first (see memory.rs).
        if let Some(start) = available_at_start {
            memory::wait_until_given_back(start);
        }
        let (load_us, case_us) = run_object(bundle, &manifest, object, &target, &features, channel);
        loads_us += load_us;
        cases_us += case_us;
    }
    channel.send(&GuestMessage::Log {
        message: format!(
            "agent time: objects loaded in {} ms, cases run in {} ms (results sent in between)",
            loads_us / 1000,
            cases_us / 1000
        ),
    });
    Ok(())
}

/// The BTF this guest relocates against (path, whether external, bytes), announced in the
/// hello the runner waits for; the error is for after the hello, so the runner hears it.
fn say_hello(
    bundle: &std::path::Path,
    manifest: &Manifest,
    channel: &mut Channel,
) -> Result<(String, bool, Vec<u8>), String> {
    let own_btf = std::fs::read(system::KERNEL_BTF_PATH).ok();
    let own_btf_bytes = own_btf.as_ref().map(|b| b.len() as u64);
    // The matrix entry's external BTF replaces the kernel's own; a bad one is fatal, never a
    // silent fallback to /sys (the report would then describe another BTF than asked for).
    let btf = match &manifest.kernel_btf {
        Some(file) => external_btf(bundle, file).map(|bytes| (file.path.clone(), true, bytes)),
        None => own_btf
            .ok_or_else(|| {
                format!(
                    "{} is missing: this kernel was built without CONFIG_DEBUG_INFO_BTF, and the \
                     matrix gives no external BTF (`btf = \"path\"`): CO-RE cannot work",
                    system::KERNEL_BTF_PATH
                )
            })
            .map(|bytes| (system::KERNEL_BTF_PATH.to_string(), false, bytes)),
    };
    channel.send(&GuestMessage::Hello(Hello {
        protocol_version: PROTOCOL_VERSION,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel_name: manifest.kernel_name.clone(),
        kernel_release: system::uname_release(),
        machine: system::uname_machine(),
        kernel_btf_bytes: own_btf_bytes,
        uptime_ms: system::uptime_ms().unwrap_or(0),
        btf: btf
            .as_ref()
            .ok()
            .map(|(path, external, bytes)| guest_protocol::BtfSource {
                path: path.clone(),
                external: *external,
                bytes: bytes.len() as u64,
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            }),
    }));
    btf
}

/// The kernel BTF parsed, with a line on how long it took.
fn parse_target(
    (btf_path, _, kernel_btf): (String, bool, Vec<u8>),
    channel: &mut Channel,
    started: Instant,
) -> Result<core_reloc::Btf, String> {
    let parse_started = Instant::now();
    let kernel_btf_len = kernel_btf.len();
    // Owned: no 5 MB copy, which costs most in a guest under TCG.
    let target = core_reloc::Btf::parse_owned(kernel_btf)
        .map_err(|e| format!("kernel BTF at {btf_path} does not parse: {e}"))?;
    let target_parse_us = parse_started.elapsed().as_micros() as u64;
    channel.send(&GuestMessage::Log {
        message: format!(
            "kernel BTF ({btf_path}): {} bytes, {} types, parsed in {target_parse_us} us; agent up {} ms",
            kernel_btf_len,
            target.type_count(),
            started.elapsed().as_millis()
        ),
    });
    Ok(target)
}

/// One object: libbpf's reference load (with `--libbpf`), ours, the reports, then its cases.
/// Returns the time our load and its cases took, in microseconds.
fn run_object(
    bundle: &std::path::Path,
    manifest: &Manifest,
    object: &guest_protocol::ObjectEntry,
    target: &core_reloc::Btf,
    features: &core_reloc::BtfFeatures,
    channel: &mut Channel,
) -> (u128, u128) {
    let mut cases_us = 0u128;
    let cases: Vec<_> = manifest
        .cases
        .iter()
        .filter(|c| c.object == object.name)
        .collect();
    let mut progress = |message: String| {
        channel.send(&GuestMessage::Log { message });
        channel.flush();
    };
    // With a second loader, libbpf goes first (see libbpf::run_reference).
    let reference = manifest.libbpf_loader.as_deref().map(|loader| {
        let pins = libbpf_pin_root(bundle);
        let external_btf = manifest.kernel_btf.as_ref().map(|f| bundle.join(&f.path));
        libbpf::run_reference(
            bundle,
            loader,
            &pins,
            object,
            external_btf.as_deref(),
            &mut progress,
        )
    });
    let load_started = Instant::now();
    let loaded = load::load_object(
        bundle,
        object,
        target,
        features,
        manifest.kernel_core,
        &mut progress,
    );
    // The kernel's own relocations (`--kernel-core`) are not our load's time.
    let ours_us = (load_started.elapsed().as_micros() as u64)
        .saturating_sub(loaded.as_ref().map_or(0, |(l, _)| l.kernel_core_us));
    if let Some(reference) = reference {
        // Our load's report first, unchanged, then the comparison beside it.
        if let Ok((_, report)) = &loaded {
            channel.send(&GuestMessage::ObjectLoaded(report.clone()));
        }
        let ours = loaded.as_ref().ok().map(|(l, _)| l);
        let compared = libbpf::compare(reference, object, ours, ours_us);
        channel.send(&GuestMessage::LibbpfLoaded(compared));
    }
    match loaded {
        Ok((loaded, report)) => {
            let kernel_core = manifest
                .kernel_core
                .then(|| kernel_core_report(&object.name, &loaded, &report));
            if manifest.libbpf_loader.is_none() {
                channel.send(&GuestMessage::ObjectLoaded(report));
            }
            if let Some(compared) = kernel_core {
                channel.send(&GuestMessage::KernelCoreCompared(compared));
            }
            for note in &loaded.notes {
                channel.send(&GuestMessage::Log {
                    message: format!("{}: {note}", object.name),
                });
            }
            for case in cases {
                let case_started = Instant::now();
                let result = run_cases::run_case(&loaded, case);
                cases_us += case_started.elapsed().as_micros();
                channel.send(&GuestMessage::CaseResult(result));
                // Test-only faults strike mid-test, after a first result: what was reported
                // before must survive in the runner's record.
                if let Some(fault) = manifest.fault.as_deref() {
                    channel.flush();
                    system::inject_fault(fault);
                }
            }
        }
        Err(message) => {
            channel.send(&GuestMessage::Log {
                message: message.clone(),
            });
            for case in cases {
                channel.send(&GuestMessage::CaseResult(guest_protocol::CaseResult {
                    case_id: case.id.clone(),
                    outcome: guest_protocol::CaseOutcome::Error {
                        message: message.clone(),
                    },
                }));
            }
        }
    }
    (u128::from(ours_us), cases_us)
}

/// An object refused as a whole was never compared with the kernel's relocations: say so per
/// program.
fn kernel_core_report(
    object: &str,
    loaded: &load::LoadedObject,
    report: &guest_protocol::ObjectLoaded,
) -> guest_protocol::KernelCoreObject {
    loaded
        .kernel_core
        .clone()
        .unwrap_or_else(|| guest_protocol::KernelCoreObject {
            object: object.to_string(),
            unsupported: None,
            programs: report
                .programs
                .iter()
                .map(|p| guest_protocol::KernelCoreProgram {
                    program: p.program.clone(),
                    relocations: 0,
                    outcome: guest_protocol::KernelCoreOutcome::NotCompared {
                        reason: "the object did not load".into(),
                    },
                })
                .collect(),
        })
}

/// Where libbpf pins the maps that ask for it: the guest's own bpffs, or a plain directory of
/// the bundle for the host entry (the host's /sys/fs/bpf is not ours to write; libbpf then
/// refuses objects with pinned maps there, which the comparison shows).
fn libbpf_pin_root(bundle: &std::path::Path) -> std::path::PathBuf {
    if std::process::id() == 1 {
        std::path::PathBuf::from("/sys/fs/bpf/harness-libbpf")
    } else {
        bundle.join("harness/libbpf-pins")
    }
}

/// What the kernel's BTF loader accepted, in the terms the engine's sanitizer uses.
fn engine_features(probed: bpf_loader::probe::BtfFeatures) -> core_reloc::BtfFeatures {
    core_reloc::BtfFeatures {
        func: probed.func,
        func_global: probed.func_global,
        datasec: probed.datasec,
        // Not probed separately: sanitizing '?' section names is harmless where they are fine.
        qmark_datasec: false,
        float: probed.float,
        decl_tag: probed.decl_tag,
        type_tag: probed.type_tag,
        enum64: probed.enum64,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_host_args;

    fn parse(args: &[&str]) -> Result<(String, bool), String> {
        parse_host_args(args.iter().map(|a| a.to_string()))
            .map(|a| (a.bundle.display().to_string(), a.in_guest))
    }

    #[test]
    fn a_process_takes_its_bundle_and_optionally_in_guest() {
        assert_eq!(parse(&["--bundle", "/b"]), Ok(("/b".into(), false)));
        assert_eq!(
            parse(&["--bundle", "/b", "--in-guest"]),
            Ok(("/b".into(), true))
        );
        for wrong in [
            &[][..],
            &["--bundle"],
            &["/b"],
            &["--bundle", "/b", "--in-guest", "x"],
            &["--bundle", "/b", "--guest"],
            &["--in-guest", "--bundle", "/b"],
        ] {
            let e = parse(wrong).unwrap_err();
            assert!(
                e.starts_with("usage: guest-agent --bundle DIR"),
                "{wrong:?}: {e}"
            );
        }
    }
}
