//! Loads a directory of precompiled objects on the host through the real guest agent (the
//! harness's own engine and loader), load-only, and prints one tab-separated line per program in
//! the format of scripts/libbpf-reference.sh, so the two can be joined:
//!
//! `object  program  section  loaded|refused|unsupported  reason`
//!
//! `host_load DIR [--agent PATH] [--timeout SECONDS]`; the agent defaults to the `guest-agent`
//! binary beside this example's directory (`cargo build -p guest-agent --release --examples`).
//! Every object runs in an agent process of its own, so one that crashes or hangs the agent
//! costs only its own line.
use guest_protocol::{GuestMessage, Manifest, ObjectEntry, ProgramLoadOutcome, PROTOCOL_VERSION};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Objects larger than this are not BPF programs anyone ships; refuse before reading.
const MAX_OBJECT_BYTES: u64 = 64 << 20;

struct Options {
    dir: PathBuf,
    agent: PathBuf,
    timeout: Duration,
}

fn main() {
    let options = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("host_load: {e}\nusage: host_load DIR [--agent PATH] [--timeout SECONDS]");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("host_load: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Options, String> {
    let mut dir = None;
    let mut agent = None;
    let mut timeout = Duration::from_secs(120);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--agent" => agent = Some(PathBuf::from(args.next().ok_or("--agent needs a path")?)),
            "--timeout" => {
                let s = args.next().ok_or("--timeout needs seconds")?;
                timeout = Duration::from_secs(s.parse().map_err(|_| format!("bad --timeout {s}"))?);
            }
            _ if dir.is_none() => dir = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    let agent = match agent {
        Some(a) => a,
        None => {
            let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("cannot tell the target directory from this example's path")?;
            profile_dir.join("guest-agent")
        }
    };
    if !agent.is_file() {
        return Err(format!(
            "no agent at {}: build it (cargo build -p guest-agent --release) or pass --agent",
            agent.display()
        ));
    }
    Ok(Options {
        dir: dir.ok_or("no object directory given")?,
        agent,
        timeout,
    })
}

fn run(options: &Options) -> Result<(), String> {
    let mut objects = Vec::new();
    let entries =
        std::fs::read_dir(&options.dir).map_err(|e| format!("{}: {e}", options.dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", options.dir.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "o") && path.is_file() {
            objects.push(path);
        }
    }
    objects.sort();
    if objects.is_empty() {
        return Err(format!("no *.o files in {}", options.dir.display()));
    }
    let bundle = std::env::temp_dir().join(format!("host_load.{}", std::process::id()));
    let (mut programs, mut loaded) = (0usize, 0usize);
    for path in &objects {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lines = match load_one(options, &bundle, path) {
            Ok(lines) => lines,
            Err(e) => vec![format!("{file}\t-\t-\trefused\t{}", one_line(&e))],
        };
        for line in lines {
            let status = line.split('\t').nth(3).unwrap_or("");
            if line.split('\t').nth(1) != Some("-") {
                programs += 1;
                loaded += usize::from(status == "loaded");
            }
            println!("{line}");
        }
    }
    let _ = std::fs::remove_dir_all(&bundle);
    println!(
        "# harness agent on {}: {} objects, {programs} programs, {loaded} loaded",
        bpf_loader::kernel_release(),
        objects.len()
    );
    Ok(())
}

/// Runs the agent on a bundle holding this one object; returns its table lines.
fn load_one(options: &Options, bundle: &Path, path: &Path) -> Result<Vec<String>, String> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_OBJECT_BYTES {
        return Err(format!("{len} bytes, more than {MAX_OBJECT_BYTES}"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let name = file
        .strip_suffix(".bpf.o")
        .or_else(|| file.strip_suffix(".o"))
        .unwrap_or(&file)
        .to_string();
    let _ = std::fs::remove_dir_all(bundle);
    let objects_dir = bundle.join("harness/objects");
    std::fs::create_dir_all(&objects_dir).map_err(|e| format!("bundle: {e}"))?;
    std::fs::write(objects_dir.join(&file), &bytes).map_err(|e| format!("bundle: {e}"))?;
    let manifest = Manifest {
        protocol_version: PROTOCOL_VERSION,
        kernel_name: "host".into(),
        objects: vec![ObjectEntry {
            data_overrides: Default::default(),
            load: Default::default(),
            name: name.clone(),
            path: format!("harness/objects/{file}"),
            sha256: hex::encode(Sha256::digest(&bytes)),
        }],
        cases: Vec::new(),
        probe_only: false,
        fault: None,
        libbpf_loader: None,
        kernel_core: false,
        kernel_btf: None,
    };
    let json = serde_json::to_string(&manifest).map_err(|e| e.to_string())?;
    std::fs::write(bundle.join(guest_protocol::MANIFEST_PATH), json)
        .map_err(|e| format!("bundle: {e}"))?;

    let (stdout, status) = run_agent(options, bundle)?;
    let mut scanner = guest_protocol::FrameScanner::new();
    let mut lines = Vec::new();
    let mut object_error = None;
    let mut reported = false;
    for message in scanner.push(&stdout) {
        match message {
            GuestMessage::ObjectLoaded(report) => {
                reported = true;
                for p in report.programs {
                    let (status, reason) = match p.outcome {
                        ProgramLoadOutcome::Loaded { .. } => ("loaded", String::new()),
                        ProgramLoadOutcome::Unsupported { reason } => {
                            ("unsupported", one_line(&reason))
                        }
                        ProgramLoadOutcome::Rejected {
                            error,
                            verifier_log,
                        } => ("refused", reason_of(&error, &verifier_log)),
                    };
                    lines.push(format!(
                        "{file}\t{}\t{}\t{status}\t{reason}",
                        p.program, p.section
                    ));
                }
            }
            // The agent reports an object it could not load at all as a log line naming it.
            GuestMessage::Log { message } if message.starts_with(&format!("{name}: ")) => {
                object_error = Some(message);
            }
            GuestMessage::Fatal { message } => object_error = Some(format!("fatal: {message}")),
            _ => {}
        }
    }
    if lines.is_empty() && reported && object_error.is_none() {
        lines.push(format!("{file}\t-\t-\tno-programs\t"));
    } else if lines.is_empty() {
        let why =
            object_error.unwrap_or_else(|| format!("agent ended ({status}) without a report"));
        lines.push(format!("{file}\t-\t-\trefused\t{}", one_line(&why)));
    } else if let Some(why) = object_error {
        lines.push(format!("{file}\t-\t-\trefused\t{}", one_line(&why)));
    }
    Ok(lines)
}

/// Runs the agent with a deadline; returns what it printed and how it ended.
fn run_agent(options: &Options, bundle: &Path) -> Result<(Vec<u8>, String), String> {
    let mut child = Command::new(&options.agent)
        .arg("--bundle")
        .arg(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", options.agent.display()))?;
    let mut stdout = child.stdout.take().ok_or("agent has no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status.to_string(),
            None if started.elapsed() > options.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break format!("timeout after {}s", options.timeout.as_secs());
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let out = reader.join().map_err(|_| "reader thread panicked")?;
    Ok((out, status))
}

/// The error's first line, and the verifier log's last line that says something.
fn reason_of(error: &str, verifier_log: &str) -> String {
    let first = one_line(error.lines().next().unwrap_or(""));
    let last = verifier_log.lines().map(str::trim).rfind(|l| {
        !l.is_empty()
            && ![
                "processed ",
                "verification time",
                "stack depth",
                "mark_precise",
                "func#",
            ]
            .iter()
            .any(|p| l.starts_with(p))
    });
    match last {
        Some(l) => format!("{first} | {}", one_line(l)),
        None => first,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_is_the_error_head_and_the_last_telling_log_line() {
        let log =
            "0: R1=ctx() R10=fp0\n; return 0;\nR0 !read_ok\nprocessed 2 insns (limit 1000000)\n\
                   stack depth 0\n";
        assert_eq!(
            reason_of("program \"p\" rejected\nsecond line", log),
            "program \"p\" rejected | R0 !read_ok"
        );
    }

    #[test]
    fn reason_without_a_log_is_the_error_head() {
        assert_eq!(
            reason_of("map m:\tEINVAL  here\nmore", ""),
            "map m: EINVAL here"
        );
        assert_eq!(
            reason_of("e", "processed 1 insns\nverification time 3 usec\n"),
            "e"
        );
    }
}
