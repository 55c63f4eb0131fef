//! Watches one running guest (or host agent) until it ends, one way or another.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use guest_protocol::FrameScanner;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UnixListener;
use tokio::process::Child;
use tokio::sync::{mpsc, watch};

use super::GuestLimits;
use crate::guest::{classify_exit, GuestRun, GuestStatus, TailBuffer};

/// After the agent says Done, the guest gets this long to power itself off.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
const CONSOLE_TAIL_BYTES: usize = 64 * 1024;
pub const CONSOLE_TAIL_LINES: usize = 40;

/// Progress, for bars and plain lines.
#[derive(Debug, Clone)]
pub enum GuestEvent {
    Started {
        kernel: String,
    },
    Hello {
        kernel: String,
        release: String,
    },
    CaseDone {
        kernel: String,
    },
    Finished {
        kernel: String,
        status: String,
        elapsed: Duration,
    },
}

pub enum ResultsSource {
    /// QEMU connects to this socket as the client of its second serial port.
    Listener(UnixListener),
    Stream(Box<dyn AsyncRead + Unpin + Send>),
}

pub struct Supervised<'a> {
    pub run: GuestRun,
    pub child: Child,
    pub results: ResultsSource,
    pub console: Box<dyn AsyncRead + Unpin + Send>,
    pub console_log: &'a Path,
    pub limits: GuestLimits,
    pub cancel: watch::Receiver<bool>,
    pub events: mpsc::UnboundedSender<GuestEvent>,
    pub started: Instant,
    /// The process is QEMU (its death by a signal is a killed VM), not the host agent itself.
    pub is_vm: bool,
}

enum Ended {
    Exited(Option<std::process::ExitStatus>),
    Killed(GuestStatus),
}

/// Starts a process to be watched: output piped, stdin closed, own process group, killed with
/// the runner. Returns it with its stdout, stderr and start time.
pub fn spawn_watched(
    command: &mut tokio::process::Command,
) -> std::io::Result<(
    Child,
    tokio::process::ChildStdout,
    tokio::process::ChildStderr,
    Instant,
)> {
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    super::qemu::die_with_parent(command);
    let started = Instant::now();
    let mut child = command.spawn()?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(std::io::Error::other("the child's output was not piped"));
    };
    Ok((child, stdout, stderr, started))
}

/// Kills the child's whole process group ([`spawn_watched`] made it the group's leader): what
/// it started goes too. virtme-ng's QEMU is its grandchild (vng → sh → virtme-run → QEMU), and
/// the host agent's workloads are its children; neither dies with the child alone.
fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
}

/// Runs one VM guest to its end: a socket for its results port, its process started by
/// `command` (given that socket's path) with [`spawn_watched`], then supervised, its own
/// complaints on stderr (a bad option, a missing file) merged into the console, kept as
/// `work_dir/console.log`. `cannot_start` says what to install when the process cannot start.
/// Shared by the harness's QEMU command line and virtme-ng's.
pub async fn run_vm(
    mut run: GuestRun,
    command: impl FnOnce(&Path) -> tokio::process::Command,
    cannot_start: impl FnOnce(std::io::Error) -> String,
    work_dir: &Path,
    limits: GuestLimits,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> GuestRun {
    if let Err(e) = std::fs::create_dir_all(work_dir) {
        run.status =
            GuestStatus::LaunchFailed(format!("cannot create {}: {e}", work_dir.display()));
        return run;
    }
    let (socket_dir, socket, listener) = match super::qemu::results_socket() {
        Ok(bound) => bound,
        Err(why) => {
            run.status = GuestStatus::LaunchFailed(why);
            return run;
        }
    };
    let (child, stdout, stderr, started) = match spawn_watched(&mut command(&socket)) {
        Ok(spawned) => spawned,
        Err(e) => {
            run.status = GuestStatus::LaunchFailed(cannot_start(e));
            return run;
        }
    };
    let console = Box::new(tokio::io::AsyncReadExt::chain(stdout, stderr));
    let result = supervise(Supervised {
        run,
        child,
        results: ResultsSource::Listener(listener),
        console,
        console_log: &work_dir.join("console.log"),
        limits,
        cancel,
        events,
        started,
        is_vm: true,
    })
    .await;
    drop(socket_dir);
    result
}

pub async fn supervise(mut s: Supervised<'_>) -> GuestRun {
    let kernel = s.run.kernel.clone();
    s.run.timings.started_after_ms = crate::guest::RUN_STARTED
        .get()
        .map(|run| s.started.saturating_duration_since(*run).as_millis() as u64);
    let _ = s.events.send(GuestEvent::Started {
        kernel: kernel.clone(),
    });
    let mut console_file = std::fs::File::create(s.console_log).ok();
    let mut console = TailBuffer::new(CONSOLE_TAIL_BYTES);
    let mut scanner = FrameScanner::new();
    let mut stream: Option<Box<dyn AsyncRead + Unpin + Send>> = None;
    let mut listener = None;
    match s.results {
        ResultsSource::Listener(l) => listener = Some(l),
        ResultsSource::Stream(st) => stream = Some(st),
    }
    let mut done = false;
    let mut console_open = true;
    let mut last_message = Instant::now();
    let mut results_buf = vec![0u8; 64 * 1024];
    let mut console_buf = vec![0u8; 16 * 1024];

    let ended = loop {
        let now = Instant::now();
        let (deadline, timeout_status) =
            next_deadline(&s.run, done, s.started, last_message, &s.limits);
        if *s.cancel.borrow() {
            break Ended::Killed(GuestStatus::Interrupted);
        }
        tokio::select! {
            _ = s.cancel.changed() => {
                if *s.cancel.borrow() {
                    break Ended::Killed(GuestStatus::Interrupted);
                }
            }
            accepted = async { listener.as_ref().map(|l| l.accept()).unwrap().await }, if listener.is_some() && stream.is_none() => {
                if let Ok((conn, _)) = accepted {
                    stream = Some(Box::new(conn));
                }
            }
            read = async { stream.as_mut().unwrap().read(&mut results_buf).await }, if stream.is_some() => {
                match read {
                    Ok(0) | Err(_) => { stream = None; listener = None; }
                    Ok(n) => {
                        // Bytes are liveness: a long frame (a big map dump) in transit is not silence.
                        last_message = Instant::now();
                        for message in scanner.push(&results_buf[..n]) {
                            let at = s.started.elapsed().as_millis() as u64;
                            let was_case = matches!(message, guest_protocol::GuestMessage::CaseResult(_));
                            if let guest_protocol::GuestMessage::Hello(hello) = &message {
                                let _ = s.events.send(GuestEvent::Hello { kernel: kernel.clone(), release: hello.kernel_release.clone() });
                            }
                            if s.run.absorb(message, at) {
                                done = true;
                            }
                            if was_case {
                                let _ = s.events.send(GuestEvent::CaseDone { kernel: kernel.clone() });
                            }
                        }
                    }
                }
            }
            read = s.console.read(&mut console_buf), if console_open => {
                match read {
                    Ok(0) | Err(_) => console_open = false,
                    Ok(n) => {
                        console.push(&console_buf[..n]);
                        if let Some(file) = console_file.as_mut() {
                            let _ = file.write_all(&console_buf[..n]);
                        }
                    }
                }
            }
            status = s.child.wait() => break Ended::Exited(status.ok()),
            _ = tokio::time::sleep(deadline.saturating_duration_since(now)) => {
                break Ended::Killed(timeout_status);
            }
        }
    };

    let killed = matches!(ended, Ended::Killed(_));
    if killed {
        kill_group(&mut s.child);
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), s.child.wait()).await;
    // Whatever is still buffered in the pipes belongs to the record.
    drain(&mut stream, &mut scanner, &mut s.run, &mut done, s.started).await;
    if console_open {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_millis(300), s.console.read_to_end(&mut rest))
            .await;
        console.push(&rest);
        if let Some(file) = console_file.as_mut() {
            let _ = file.write_all(&rest);
        }
    }
    s.run.timings.exit_ms = s.started.elapsed().as_millis() as u64;
    s.run.damaged_frames = scanner.damaged_count;
    s.run.status = match ended {
        Ended::Killed(status) if !done || status == GuestStatus::Interrupted => status,
        // Done but would not power off: the results are complete, say so in the logs only.
        Ended::Killed(_) => {
            s.run
                .logs
                .push("the guest did not power off after the agent finished; killed".into());
            s.run.status.clone()
        }
        Ended::Exited(status) => {
            let killed_by = if s.is_vm {
                crate::guest::vm_killed_by(status, &console)
            } else {
                None
            };
            classify_exit(&s.run, done, killed_by, &console)
        }
    };
    if s.run.status != GuestStatus::Completed {
        s.run.console_tail = console.excerpt(CONSOLE_TAIL_LINES);
    }
    let _ = s.events.send(GuestEvent::Finished {
        kernel,
        status: s.run.status.label().to_string(),
        elapsed: s.started.elapsed(),
    });
    s.run
}

fn next_deadline(
    run: &GuestRun,
    done: bool,
    started: Instant,
    last_message: Instant,
    limits: &GuestLimits,
) -> (Instant, GuestStatus) {
    // The config bounds the limits; an instant past the clock's range still must not panic.
    let after = |from: Instant, limit: Duration| {
        from.checked_add(limit)
            .unwrap_or_else(|| from + Duration::from_secs(crate::matrix::config::MAX_TIMEOUT_S))
    };
    let whole = (after(started, limits.guest), GuestStatus::GuestTimeout);
    let phase = if done {
        (after(last_message, SHUTDOWN_GRACE), GuestStatus::Completed)
    } else if run.hello.is_none() {
        (after(started, limits.boot), GuestStatus::BootTimeout)
    } else {
        (after(last_message, limits.test), GuestStatus::TestTimeout)
    };
    if phase.0 <= whole.0 {
        phase
    } else {
        whole
    }
}

async fn drain(
    stream: &mut Option<Box<dyn AsyncRead + Unpin + Send>>,
    scanner: &mut FrameScanner,
    run: &mut GuestRun,
    done: &mut bool,
    started: Instant,
) {
    let Some(stream) = stream.as_mut() else {
        return;
    };
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(300), stream.read_to_end(&mut rest)).await;
    for message in scanner.push(&rest) {
        if run.absorb(message, started.elapsed().as_millis() as u64) {
            *done = true;
        }
    }
}

/// Whether `pid` runs (and is not a zombie waiting for whoever reaps orphans here); for tests
/// of what a killed guest leaves behind.
#[cfg(test)]
pub(crate) fn is_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::{frame, GuestMessage, Hello};
    use tokio::io::AsyncWriteExt;

    /// A guest killed for its timeout takes what it started with it: virtme-ng's QEMU is a
    /// grandchild of the process the runner started.
    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild.pid");
        let run = runtime.block_on(async {
            let mut command = tokio::process::Command::new("sh");
            command.arg("-c").arg(format!(
                "sleep 1000 & echo $! > {}; wait",
                pid_file.display()
            ));
            let (child, stdout, stderr, started) = spawn_watched(&mut command).unwrap();
            let (events, _events_rx) = mpsc::unbounded_channel();
            let (_cancel_tx, cancel) = watch::channel(false);
            supervise(Supervised {
                run: GuestRun::new("k", "x86_64", "tcg"),
                child,
                results: ResultsSource::Stream(Box::new(stdout)),
                console: Box::new(stderr),
                console_log: &dir.path().join("console.log"),
                limits: GuestLimits {
                    boot: Duration::from_millis(500),
                    test: Duration::from_secs(5),
                    guest: Duration::from_secs(5),
                },
                cancel,
                events,
                started,
                is_vm: true,
            })
            .await
        });
        assert_eq!(run.status, GuestStatus::BootTimeout, "{run:?}");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        // A signal is delivered when its target next runs: give it a moment to die.
        let pid_number: i32 = pid.trim().parse().unwrap();
        let mut alive = is_running(pid_number);
        for _ in 0..40 {
            if !alive {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            alive = is_running(pid_number);
        }
        assert!(!alive, "the grandchild {} outlived its guest", pid.trim());
    }

    /// A frame that takes longer to arrive than the silence limit, in small pieces, keeps the
    /// agent alive: only bytes that stop coming are silence.
    #[test]
    fn a_slow_long_frame_is_not_silence() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let run = runtime.block_on(async {
            let (mut agent, results) = tokio::io::duplex(1 << 16);
            // The watched process: it outlives the transfer, then exits on its own.
            let mut command = tokio::process::Command::new("sleep");
            command.arg("3");
            let (child, stdout, _stderr, started) = spawn_watched(&mut command).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let console_log = dir.path().join("console.log");
            let (events, _events_rx) = mpsc::unbounded_channel();
            let (_cancel_tx, cancel) = watch::channel(false);
            let writer = tokio::spawn(async move {
                let hello = GuestMessage::Hello(Hello {
                    protocol_version: guest_protocol::PROTOCOL_VERSION,
                    agent_version: "t".into(),
                    kernel_name: "k".into(),
                    kernel_release: "r".into(),
                    machine: "x86_64".into(),
                    kernel_btf_bytes: None,
                    uptime_ms: 1,
                    btf: None,
                });
                let _ = agent.write_all(frame(&hello).as_bytes()).await;
                let long = frame(&GuestMessage::Log {
                    message: "m".repeat(4000),
                });
                // 20 pieces, 60 ms apart: 1.2 s in transit, four times the silence limit.
                for piece in long.as_bytes().chunks(long.len() / 20 + 1) {
                    let _ = agent.write_all(piece).await;
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
                let done = frame(&GuestMessage::Done { agent_ms: 1 });
                let _ = agent.write_all(done.as_bytes()).await;
                agent
            });
            let run = supervise(Supervised {
                run: GuestRun::new("k", "x86_64", "none"),
                child,
                results: ResultsSource::Stream(Box::new(results)),
                console: Box::new(stdout),
                console_log: &console_log,
                limits: GuestLimits {
                    boot: Duration::from_secs(5),
                    test: Duration::from_millis(300),
                    guest: Duration::from_secs(20),
                },
                cancel,
                events,
                started,
                is_vm: false,
            })
            .await;
            drop(writer.await);
            run
        });
        assert_eq!(run.status, GuestStatus::Completed, "{run:?}");
        assert_eq!(run.logs.len(), 1);
    }
}
