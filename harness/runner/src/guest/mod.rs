//! What one kernel's run produced, as the runner saw it: the agent's messages, timings and how
//! the guest ended. Filled by a backend (QEMU or the host process), read by the verdict.

pub mod agent;
pub mod bundle;
pub mod initramfs;
pub mod libbpf_loader;

use std::collections::BTreeMap;

use guest_protocol::{CaseOutcome, GuestMessage, Hello, ObjectLoaded, Ready};
use serde::Serialize;

/// The most text one message (an agent's log or error, a trial's failure) carries into the
/// terminal and the reports; the rest is cut, saying how much.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most log lines kept from one agent.
pub const MAX_LOG_LINES: usize = 1000;

/// `text` cut to at most `limit` bytes (at a character boundary), with a note of what was cut.
pub fn bounded_text(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let total = text.len();
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!("\n[... {} more bytes cut]", total - end));
    text
}

/// How a guest ended. Everything but `Completed` fails the kernel's trials with this label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GuestStatus {
    /// The agent said Done.
    Completed,
    /// The kernel panicked (not because init died).
    Panic,
    /// No agent hello within the boot timeout.
    BootTimeout,
    /// The agent went silent for longer than the test timeout.
    TestTimeout,
    /// The whole guest took longer than its limit.
    GuestTimeout,
    /// The agent died (init exited, or the process crashed) before saying Done.
    AgentCrash,
    /// The agent reported a fatal error.
    AgentError(String),
    /// QEMU (or the host agent process) could not be started or failed on its own.
    LaunchFailed(String),
    /// Stopped by SIGINT/SIGTERM.
    Interrupted,
    /// Not run: an earlier step for this kernel (image provisioning) failed.
    NotRun(String),
    /// QEMU itself was killed by a signal it did not get from the runner (OOM killer, a user).
    VmKilled(String),
    /// The runner failed while running this kernel (a task panicked): nothing it saw is
    /// trusted, and the kernel fails.
    InternalError(String),
}

impl GuestStatus {
    pub fn label(&self) -> &'static str {
        match self {
            GuestStatus::Completed => "COMPLETED",
            GuestStatus::Panic => "PANIC",
            GuestStatus::BootTimeout => "BOOT_TIMEOUT",
            GuestStatus::TestTimeout => "TEST_TIMEOUT",
            GuestStatus::GuestTimeout => "GUEST_TIMEOUT",
            GuestStatus::AgentCrash => "AGENT_CRASH",
            GuestStatus::AgentError(_) => "AGENT_ERROR",
            GuestStatus::LaunchFailed(_) => "LAUNCH_FAILED",
            GuestStatus::Interrupted => "INTERRUPTED",
            GuestStatus::NotRun(_) => "NOT_RUN",
            GuestStatus::VmKilled(_) => "VM_KILLED",
            GuestStatus::InternalError(_) => "INTERNAL_ERROR",
        }
    }

    /// A timeout or a crash, which a busy or faulty machine can cause: worth one more run.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            GuestStatus::Panic
                | GuestStatus::BootTimeout
                | GuestStatus::TestTimeout
                | GuestStatus::GuestTimeout
                | GuestStatus::AgentCrash
                | GuestStatus::VmKilled(_)
        )
    }

    pub fn describe(&self) -> String {
        match self {
            GuestStatus::AgentError(d)
            | GuestStatus::LaunchFailed(d)
            | GuestStatus::NotRun(d)
            | GuestStatus::VmKilled(d)
            | GuestStatus::InternalError(d) => format!("{}: {d}", self.label()),
            other => other.label().to_string(),
        }
    }
}

/// Milliseconds from the start of the guest (QEMU spawn, or process spawn for the host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct GuestTimings {
    pub hello_ms: Option<u64>,
    pub results_ms: Option<u64>,
    pub exit_ms: u64,
    /// The guest kernel's own uptime when the agent started.
    pub kernel_uptime_ms: Option<u64>,
    /// A guest restored from a snapshot: when it said Ready after receiving its bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_ms: Option<u64>,
    /// When the guest (QEMU, or the host agent) started, in ms since the harness did: what the
    /// harness spent before it (plan, objects, images, predictions, snapshot checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_after_ms: Option<u64>,
}

/// When this harness process started its run, for [`GuestTimings::started_after_ms`].
pub static RUN_STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct GuestRun {
    pub kernel: String,
    pub arch: String,
    /// `kvm`, `tcg`, or `none` for the host entry.
    pub accel: String,
    /// What ran it: `qemu` (the harness's own command), `virtme-ng`, or `host` (a process).
    #[serde(default)]
    pub backend: String,
    pub status: GuestStatus,
    pub timings: GuestTimings,
    pub hello: Option<Hello>,
    /// What a restored guest said about itself after receiving its bundle (see
    /// `vm::snapshot`, which checks it against the snapshot's record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Ready>,
    pub objects: Vec<ObjectLoaded>,
    pub cases: BTreeMap<String, CaseOutcome>,
    pub logs: Vec<String>,
    /// The last lines of the console, kept for any status but Completed.
    pub console_tail: String,
    /// Frames that arrived damaged (bad checksum or JSON) and were dropped.
    pub damaged_frames: usize,
    /// How earlier attempts of this kernel ended, when `--retries` ran it again: a trial that
    /// passes now is flaky, not a plain pass.
    #[serde(default)]
    pub earlier_attempts: Vec<String>,
    /// Each object as libbpf loaded it in the same guest (`--libbpf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libbpf: Vec<guest_protocol::LibbpfObject>,
    /// Each object as the kernel's own CO-RE relocated it (`--kernel-core`).
    pub kernel_core: Vec<guest_protocol::KernelCoreObject>,
}

impl GuestRun {
    pub fn new(kernel: &str, arch: &str, accel: &str) -> Self {
        GuestRun {
            kernel: kernel.to_string(),
            arch: arch.to_string(),
            accel: accel.to_string(),
            backend: if accel == "none" { "host" } else { "qemu" }.to_string(),
            status: GuestStatus::NotRun("not started".into()),
            timings: GuestTimings::default(),
            hello: None,
            identity: None,
            objects: Vec::new(),
            cases: BTreeMap::new(),
            logs: Vec::new(),
            console_tail: String::new(),
            damaged_frames: 0,
            earlier_attempts: Vec::new(),
            libbpf: Vec::new(),
            kernel_core: Vec::new(),
        }
    }

    pub fn not_run(kernel: &str, arch: &str, why: String) -> Self {
        let mut run = GuestRun::new(kernel, arch, "none");
        run.status = GuestStatus::NotRun(why);
        run
    }

    /// The run of a kernel whose task in the runner failed: no result it may have seen counts.
    pub fn internal_error(kernel: &str, arch: &str, accel: &str, why: String) -> Self {
        let mut run = GuestRun::new(kernel, arch, accel);
        run.status = GuestStatus::InternalError(why);
        run
    }

    /// Folds one message in. Returns true when it was the last one (Done).
    pub fn absorb(&mut self, message: GuestMessage, at_ms: u64) -> bool {
        match message {
            GuestMessage::Hello(hello) => {
                self.timings.hello_ms = Some(at_ms);
                self.timings.kernel_uptime_ms = Some(hello.uptime_ms);
                if hello.protocol_version != guest_protocol::PROTOCOL_VERSION {
                    // Nothing it says can be read as this harness means it.
                    self.status = GuestStatus::AgentError(format!(
                        "the agent speaks protocol {}, this harness {}: they were not built together",
                        hello.protocol_version,
                        guest_protocol::PROTOCOL_VERSION
                    ));
                }
                self.hello = Some(hello);
            }
            GuestMessage::Ready(ready) => {
                self.timings.ready_ms = Some(at_ms);
                self.identity = Some(ready);
            }
            GuestMessage::ObjectLoaded(loaded) => self.objects.push(loaded),
            GuestMessage::LibbpfLoaded(loaded) => self.libbpf.push(loaded),
            GuestMessage::KernelCoreCompared(compared) => self.kernel_core.push(compared),
            GuestMessage::CaseResult(result) => {
                self.cases.insert(result.case_id, result.outcome);
            }
            GuestMessage::Log { message } => {
                if self.logs.len() < MAX_LOG_LINES {
                    self.logs.push(bounded_text(message, MAX_MESSAGE_BYTES));
                } else if self.logs.len() == MAX_LOG_LINES {
                    self.logs.push(format!(
                        "[... more than {MAX_LOG_LINES} log lines; the rest is cut]"
                    ));
                }
            }
            GuestMessage::Fatal { message } => {
                self.status = GuestStatus::AgentError(bounded_text(message, MAX_MESSAGE_BYTES));
            }
            GuestMessage::Done { .. } => {
                self.timings.results_ms = Some(at_ms);
                if !matches!(self.status, GuestStatus::AgentError(_)) {
                    self.status = GuestStatus::Completed;
                }
                return true;
            }
        }
        false
    }

    pub fn release(&self) -> Option<&str> {
        self.hello.as_ref().map(|h| h.kernel_release.as_str())
    }
}

/// Waits for every guest task. A task that panicked or was cancelled still yields its kernel's
/// run, as an internal error, so that the kernel fails in every output instead of vanishing.
pub async fn join_guest_tasks(
    tasks: Vec<((String, String), tokio::task::JoinHandle<GuestRun>)>,
    accel: &str,
) -> Vec<GuestRun> {
    let mut runs = Vec::new();
    for ((kernel, arch), task) in tasks {
        match task.await {
            Ok(run) => runs.push(run),
            Err(e) => {
                let why = format!("the runner's task for this kernel failed: {e}");
                eprintln!("internal error: kernel {kernel}: {why}");
                runs.push(GuestRun::internal_error(&kernel, &arch, accel, why));
            }
        }
    }
    runs
}

/// Keeps the last `limit` bytes of a stream, for the console tail in reports.
#[derive(Debug)]
pub struct TailBuffer {
    bytes: std::collections::VecDeque<u8>,
    limit: usize,
}

impl TailBuffer {
    pub fn new(limit: usize) -> Self {
        TailBuffer {
            bytes: std::collections::VecDeque::with_capacity(limit),
            limit,
        }
    }

    pub fn push(&mut self, data: &[u8]) {
        for &b in data {
            if self.bytes.len() == self.limit {
                self.bytes.pop_front();
            }
            self.bytes.push_back(b);
        }
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    pub fn text(&self) -> String {
        let (a, b) = self.bytes.as_slices();
        let mut all = a.to_vec();
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).replace('\r', "")
    }

    /// What a report should show: from the kernel's panic (or oops) line when there is one, so
    /// that its reason is not pushed out by the stack dump after it, else the last lines.
    pub fn excerpt(&self, lines: usize) -> String {
        let text = self.text();
        let all: Vec<&str> = text.lines().collect();
        let markers = [
            "Kernel panic - not syncing",
            "BUG: ",
            "Oops: ",
            "general protection fault",
        ];
        match all
            .iter()
            .position(|l| markers.iter().any(|m| l.contains(m)))
        {
            Some(first) => {
                let end = (first + lines).min(all.len());
                let mut excerpt = all[first..end].join("\n");
                if end < all.len() {
                    excerpt.push_str(&format!(
                        "\n[... {} more lines in the console log]",
                        all.len() - end
                    ));
                }
                excerpt
            }
            None => all[all.len().saturating_sub(lines)..].join("\n"),
        }
    }

    /// The last `lines` lines.
    pub fn last_lines(&self, lines: usize) -> String {
        crate::verdict::readable::last_lines(&self.text(), lines)
    }
}

/// Whether QEMU ended because something outside the runner killed it, and how: it died of a
/// signal (SIGKILL, the OOM killer), or it caught one and said so on stderr (QEMU exits 0 on
/// SIGTERM/SIGINT/SIGHUP after `terminating on signal N`, which the console holds).
pub fn vm_killed_by(
    status: Option<std::process::ExitStatus>,
    console: &TailBuffer,
) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    if let Some(signal) = status.and_then(|s| s.signal()) {
        return Some(format!(
            "QEMU was killed by signal {signal} ({})",
            signal_name(signal)
        ));
    }
    let text = console.text();
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("terminating on signal "))?;
    let signal: i32 = line
        .split("terminating on signal ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let exit = status
        .and_then(|s| s.code())
        .map_or(String::new(), |c| format!(", exit status {c}"));
    Some(format!(
        "QEMU stopped on signal {signal} ({}){exit}: {}",
        signal_name(signal),
        line.trim()
    ))
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        _ => "another signal",
    }
}

/// Decides how a guest ended from what was seen, once its process has exited. `killed_by`:
/// what killed the VM from outside (see [`vm_killed_by`]).
pub fn classify_exit(
    run: &GuestRun,
    done: bool,
    killed_by: Option<String>,
    console: &TailBuffer,
) -> GuestStatus {
    if done {
        return run.status.clone();
    }
    if let GuestStatus::AgentError(_) = run.status {
        return run.status.clone();
    }
    if let Some(how) = killed_by {
        return GuestStatus::VmKilled(how);
    }
    if console.contains("Attempted to kill init") {
        return GuestStatus::AgentCrash;
    }
    if console.contains("Kernel panic") {
        return GuestStatus::Panic;
    }
    if run.hello.is_none() {
        // Exited on its own before the agent spoke: the kernel never ran it.
        return GuestStatus::LaunchFailed("the guest stopped before the agent started".into());
    }
    GuestStatus::AgentCrash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_end() {
        let mut tail = TailBuffer::new(8);
        tail.push(b"0123456789");
        assert_eq!(tail.text(), "23456789");
        tail.push(b"\r\nab");
        assert_eq!(tail.last_lines(1), "ab");
    }

    #[test]
    fn excerpt_starts_at_the_panic_line() {
        let mut tail = TailBuffer::new(64 * 1024);
        tail.push(b"boot noise\nKernel panic - not syncing: sysrq triggered crash\n");
        for i in 0..100 {
            tail.push(format!("[ 2.{i}] stack frame {i}\n").as_bytes());
        }
        let excerpt = tail.excerpt(40);
        assert!(
            excerpt.starts_with("Kernel panic - not syncing: sysrq triggered crash"),
            "{excerpt}"
        );
        assert!(
            excerpt.ends_with("[... 61 more lines in the console log]"),
            "{excerpt}"
        );
        let mut quiet = TailBuffer::new(1024);
        quiet.push(b"a\nb\nc\n");
        assert_eq!(quiet.excerpt(2), "b\nc");
    }

    #[test]
    fn classifies_init_death_as_agent_crash() {
        let run = GuestRun::new("k", "x86_64", "tcg");
        let mut console = TailBuffer::new(1024);
        console.push(b"Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000086");
        assert_eq!(
            classify_exit(&run, false, None, &console),
            GuestStatus::AgentCrash
        );
        let mut console = TailBuffer::new(1024);
        console.push(b"Kernel panic - not syncing: sysrq triggered crash");
        assert_eq!(
            classify_exit(&run, false, None, &console),
            GuestStatus::Panic
        );
    }

    #[test]
    fn a_killed_vm_is_reported_as_such() {
        use std::os::unix::process::ExitStatusExt;
        let quiet = TailBuffer::new(1024);
        let sigkill = std::process::ExitStatus::from_raw(libc::SIGKILL);
        let how = vm_killed_by(Some(sigkill), &quiet).unwrap();
        assert_eq!(how, "QEMU was killed by signal 9 (SIGKILL)");
        let mut console = TailBuffer::new(1024);
        console.push(b"qemu-system-x86_64: terminating on signal 15 from pid 4242 (bash)\n");
        let how = vm_killed_by(Some(std::process::ExitStatus::from_raw(0)), &console).unwrap();
        assert!(
            how.starts_with("QEMU stopped on signal 15 (SIGTERM), exit status 0"),
            "{how}"
        );
        assert!(how.contains("from pid 4242"), "{how}");
        assert_eq!(
            vm_killed_by(Some(std::process::ExitStatus::from_raw(0)), &quiet),
            None
        );

        // Before hello and after hello alike: not LAUNCH_FAILED, not AGENT_CRASH.
        let mut run = GuestRun::new("k", "x86_64", "tcg");
        let status = classify_exit(&run, false, Some(how.clone()), &quiet);
        assert_eq!(status.label(), "VM_KILLED");
        run.absorb(
            GuestMessage::Hello(Hello {
                protocol_version: guest_protocol::PROTOCOL_VERSION,
                agent_version: "t".into(),
                kernel_name: "k".into(),
                kernel_release: "r".into(),
                machine: "x86_64".into(),
                kernel_btf_bytes: None,
                uptime_ms: 1,
                btf: None,
            }),
            1,
        );
        let status = classify_exit(&run, false, Some(how), &quiet);
        assert_eq!(status.label(), "VM_KILLED");
        // A guest that finished is complete whatever happened after.
        assert!(run.absorb(GuestMessage::Done { agent_ms: 2 }, 2));
        assert_eq!(
            classify_exit(&run, true, Some("x".into()), &quiet),
            GuestStatus::Completed
        );
    }

    #[test]
    fn agent_text_is_bounded() {
        assert_eq!(bounded_text("short".into(), 10), "short");
        let cut = bounded_text("é".repeat(10), 5);
        assert_eq!(cut, "éé\n[... 16 more bytes cut]");
        let mut run = GuestRun::new("k", "x86_64", "tcg");
        for _ in 0..MAX_LOG_LINES + 50 {
            run.absorb(
                GuestMessage::Log {
                    message: "l".repeat(MAX_MESSAGE_BYTES * 2),
                },
                1,
            );
        }
        assert_eq!(run.logs.len(), MAX_LOG_LINES + 1);
        assert!(run.logs.iter().all(|l| l.len() < MAX_MESSAGE_BYTES + 100));
        run.absorb(
            GuestMessage::Fatal {
                message: "f".repeat(1_350_000),
            },
            2,
        );
        assert!(run.status.describe().len() < MAX_MESSAGE_BYTES + 100);
    }

    #[test]
    fn a_panicked_guest_task_fails_its_kernel() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let runs = runtime.block_on(async {
            let ok = tokio::spawn(async {
                let mut run = GuestRun::new("6.1", "x86_64", "tcg");
                run.status = GuestStatus::Completed;
                run
            });
            let panicked = tokio::spawn(async {
                if true {
                    panic!("overflow when adding duration to instant");
                }
                GuestRun::new("5.10", "x86_64", "tcg")
            });
            join_guest_tasks(
                vec![
                    (("5.10".into(), "x86_64".into()), panicked),
                    (("6.1".into(), "x86_64".into()), ok),
                ],
                "tcg",
            )
            .await
        });
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].kernel, "5.10");
        assert_eq!(runs[0].status.label(), "INTERNAL_ERROR");
        assert!(
            runs[0].status.describe().contains("overflow when adding"),
            "{}",
            runs[0].status.describe()
        );
        assert_eq!(runs[1].status, GuestStatus::Completed);
    }

    #[test]
    fn an_agent_of_another_protocol_is_an_agent_error() {
        let mut run = GuestRun::new("k", "x86_64", "tcg");
        run.absorb(
            GuestMessage::Hello(Hello {
                protocol_version: guest_protocol::PROTOCOL_VERSION + 1,
                agent_version: "t".into(),
                kernel_name: "k".into(),
                kernel_release: "r".into(),
                machine: "x86_64".into(),
                kernel_btf_bytes: None,
                uptime_ms: 1,
                btf: None,
            }),
            1,
        );
        assert!(run.absorb(GuestMessage::Done { agent_ms: 2 }, 2));
        assert_eq!(run.status.label(), "AGENT_ERROR");
        assert!(
            run.status.describe().contains("protocol"),
            "{}",
            run.status.describe()
        );
    }

    #[test]
    fn fatal_then_done_stays_an_agent_error() {
        let mut run = GuestRun::new("k", "x86_64", "tcg");
        run.absorb(
            GuestMessage::Fatal {
                message: "bad".into(),
            },
            1,
        );
        assert!(run.absorb(GuestMessage::Done { agent_ms: 2 }, 2));
        assert_eq!(run.status, GuestStatus::AgentError("bad".into()));
    }
}
