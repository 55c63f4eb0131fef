//! Workload cases: attach the case's tracing programs, let a child process perform real
//! activity (open a file, exec, connect/accept over loopback TCP, send UDP), detach. The maps
//! are reset before and dumped after by the caller, as for a test run.
//!
//! The child is the agent's own binary started again with [`CHILD_FLAG`]: it says it is ready,
//! waits for a go byte, performs the actions and exits. So, in order:
//! 1. the child starts and reports ready (its start-up happens before anything is attached);
//! 2. its pid goes into the object's `workload_pid` global, for the programs to filter on;
//! 3. the programs are attached, then the go byte is sent;
//! 4. the child's syscalls are the workload's and nothing else (raw `openat`/`execve`
//!    syscalls, not whatever libc prefers), it exits, and only then are the programs detached.
//!
//! An `exec` action execs `/proc/self/exe` (the agent's binary) with the remaining actions on its
//! command line: the same process (same pid) goes on with them.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use guest_protocol::{CaseOutcome, Workload, WorkloadAction};

use crate::load::LoadedObject;

/// `argv[1]` of a workload child: `<agent> --harness-workload <actions json> wait|go`.
pub const CHILD_FLAG: &str = "--harness-workload";
/// The binary a child runs and an `exec` action execs.
const SELF_EXE: &str = "/proc/self/exe";
/// How long the child may take to say it is ready, and then to finish its actions: together
/// well inside the runner's silence limit (30 s by default), so a stuck workload is reported as
/// such, not as a silent guest.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
const FINISH_TIMEOUT: Duration = Duration::from_secs(20);
/// Most bytes of the child's stderr kept for an error message.
const MAX_STDERR: usize = 4096;

/// A global variable of the object: its section, offset and size (from the object's BTF).
pub type Globals = HashMap<String, (String, u32, u32)>;

/// Every variable of the object's `.bss`/`.data` sections, by name.
pub fn globals_of(object: &core_reloc::Object) -> Globals {
    use core_reloc::btf::{Kind, TypeBody};
    let mut globals = HashMap::new();
    let Some(btf) = object.btf() else {
        return globals;
    };
    for id in 1..btf.type_count() {
        let Ok(ty) = btf.type_by_id(id) else { continue };
        let TypeBody::DataSec { vars, .. } = &ty.body else {
            continue;
        };
        if ty.kind != Kind::DataSec {
            continue;
        }
        for var in vars {
            if let Ok(name) = btf.name_of(var.ty) {
                globals.insert(
                    name.to_string(),
                    (ty.name.to_string(), var.offset, var.size),
                );
            }
        }
    }
    globals
}

pub fn run(
    object: &LoadedObject,
    workload: &Workload,
) -> Result<bpf_loader::TestRunOutput, CaseOutcome> {
    let error = |message: String| CaseOutcome::Error { message };
    // What to attach, checked before anything starts.
    let planned = crate::attach::plan(object, &workload.attach)?;
    let pid_target = match &workload.pid_variable {
        Some(var) => Some(pid_target(object, var).map_err(error)?),
        None => None,
    };
    prepare(&workload.actions).map_err(error)?;

    // Cases of agents on one machine take turns (the ports are fixed, like traffic's).
    let _turn = crate::traffic::TrafficLock::acquire();
    let started = Instant::now();
    let mut child = spawn(&workload.actions).map_err(error)?;
    let mut previous = None;
    let result = drive(
        object,
        &mut child,
        &planned,
        pid_target.as_ref().map(|t| (t, &mut previous)),
    );
    if result.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let elapsed = started.elapsed();
    // The pid differs by run and kernel: the dump shows the variable as it was before.
    if let (Some(target), Some(previous)) = (&pid_target, previous) {
        target.put(&previous).map_err(error)?;
    }
    result?;
    Ok(bpf_loader::TestRunOutput {
        retval: 0,
        data_out: Vec::new(),
        ctx_out: None,
        duration_ns: u32::try_from(elapsed.as_nanos()).unwrap_or(u32::MAX),
    })
}

/// Ready, pid, attach, go, wait, detach.
fn drive(
    object: &LoadedObject,
    child: &mut Child,
    planned: &[crate::attach::Planned<'_>],
    pid_target: Option<(&PidTarget<'_>, &mut Option<Vec<u8>>)>,
) -> Result<(), CaseOutcome> {
    let error = |message: String| CaseOutcome::Error { message };
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| error("workload: no stdout".into()))?;
    wait_readable(&stdout, READY_TIMEOUT)
        .map_err(|e| error(format!("workload process never said it was ready: {e}")))?;
    let mut ready = [0u8; 1];
    match stdout.read(&mut ready) {
        Ok(1) if ready[0] == b'R' => {}
        other => {
            // It may still run (it wrote something else): stop it before reading its stderr.
            let _ = child.kill();
            let _ = child.wait();
            return Err(error(format!(
                "workload process did not start ({other:?}): {}",
                stderr_of(child)
            )));
        }
    }
    if let Some((target, previous)) = pid_target {
        *previous = Some(target.put(&target.pid_bytes(child.id())).map_err(error)?);
    }
    let links = crate::attach::attach_all(object, planned)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| error("workload: no stdin".into()))?;
    stdin
        .write_all(b"G")
        .map_err(|e| error(format!("workload: cannot send go: {e}")))?;
    drop(stdin);
    let deadline = Instant::now() + FINISH_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                return Err(error(format!(
                    "workload process did not finish within {FINISH_TIMEOUT:?}"
                )))
            }
            Err(e) => return Err(error(format!("workload: wait: {e}"))),
        }
    };
    drop(links);
    if !status.success() {
        return Err(error(format!(
            "workload process failed ({status}): {}",
            stderr_of(child)
        )));
    }
    Ok(())
}

fn spawn(actions: &[WorkloadAction]) -> Result<Child, String> {
    let json = serde_json::to_string(actions).map_err(|e| format!("workload: {e}"))?;
    Command::new(SELF_EXE)
        .arg(CHILD_FLAG)
        .arg(json)
        .arg("wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the workload process ({SELF_EXE}): {e}"))
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = Vec::new();
    if let Some(stderr) = child.stderr.as_mut() {
        let _ = stderr.take(MAX_STDERR as u64).read_to_end(&mut text);
    }
    let text = String::from_utf8_lossy(&text).trim().to_string();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

fn wait_readable(stdout: &impl AsRawFd, timeout: Duration) -> Result<(), String> {
    let mut pfd = libc::pollfd {
        fd: stdout.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one pollfd we own, for at most `left`.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if n > 0 {
            return Ok(());
        }
        if n == 0 {
            return Err(format!("nothing within {timeout:?}"));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("poll: {e}"));
        }
    }
}

/// Directories of `open` paths made, and `lo` up for network actions, before the child starts.
fn prepare(actions: &[WorkloadAction]) -> Result<(), String> {
    for action in actions {
        match action {
            WorkloadAction::Open { path, .. } => {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("workload: cannot create {}: {e}", dir.display()))?;
                }
            }
            WorkloadAction::Exec { .. } => {}
            _ => crate::traffic::ensure_loopback_up()?,
        }
    }
    Ok(())
}

/// Where the pid goes: the global's section map, offset and size.
struct PidTarget<'a> {
    map: &'a crate::load::LoadedMap,
    offset: usize,
    size: usize,
    name: &'a str,
}

fn pid_target<'a>(object: &'a LoadedObject, var: &'a str) -> Result<PidTarget<'a>, String> {
    let Some((section, offset, size)) = object.globals.get(var) else {
        return Err(format!(
            "workload_pid: the object has no global variable {var}"
        ));
    };
    let Some(map) = object.maps.iter().find(|m| &m.spec.name == section) else {
        return Err(format!(
            "workload_pid: {var} is in {section}, which has no map"
        ));
    };
    if map.frozen || (*size != 4 && *size != 8) {
        return Err(format!(
            "workload_pid: {var} ({size} bytes in {section}) cannot take the pid: it must be a \
             4- or 8-byte global of .bss or .data"
        ));
    }
    let (offset, size) = (*offset as usize, *size as usize);
    if offset + size > map.spec.value_size as usize {
        return Err(format!(
            "workload_pid: {var} at {offset}+{size} lies outside {section} ({} bytes)",
            map.spec.value_size
        ));
    }
    Ok(PidTarget {
        map,
        offset,
        size,
        name: var,
    })
}

impl PidTarget<'_> {
    /// Writes `bytes` (of the variable's size) over the variable; returns what it held.
    fn put(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        let fd = self.map.fd.as_raw_fd();
        let key = 0u32.to_ne_bytes();
        let what = |e: bpf_loader::BpfError| format!("workload_pid {}: {e}", self.name);
        let mut value = bpf_loader::map_lookup(fd, &key, self.map.spec.value_size as usize)
            .map_err(what)?
            .ok_or_else(|| format!("workload_pid {}: the section map has no value", self.name))?;
        let slot = value
            .get_mut(self.offset..self.offset + self.size)
            .ok_or_else(|| format!("workload_pid {}: outside its section", self.name))?;
        let previous = slot.to_vec();
        slot.copy_from_slice(bytes);
        bpf_loader::map_update(fd, &key, &value, 0).map_err(what)?;
        Ok(previous)
    }

    fn pid_bytes(&self, pid: u32) -> Vec<u8> {
        u64::from(pid).to_le_bytes()[..self.size].to_vec()
    }
}

/// The child: `args` are the arguments after [`CHILD_FLAG`]. Never returns.
pub fn child_main(args: &[String]) -> ! {
    let code = match child(args) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("workload: {message}");
            1
        }
    };
    std::process::exit(code)
}

fn child(args: &[String]) -> Result<(), String> {
    let (Some(json), Some(mode)) = (args.first(), args.get(1)) else {
        return Err(format!("usage: {CHILD_FLAG} ACTIONS_JSON wait|go"));
    };
    let actions: Vec<WorkloadAction> =
        serde_json::from_str(json).map_err(|e| format!("actions: {e}"))?;
    match mode.as_str() {
        "wait" => {
            let mut out = std::io::stdout();
            out.write_all(b"R")
                .and_then(|()| out.flush())
                .map_err(|e| format!("ready: {e}"))?;
            let mut go = [0u8; 1];
            match std::io::stdin().read(&mut go) {
                Ok(1) if go[0] == b'G' => {}
                other => return Err(format!("no go byte ({other:?})")),
            }
        }
        "go" => {}
        other => return Err(format!("unknown mode {other:?}")),
    }
    for (i, action) in actions.iter().enumerate() {
        match action {
            WorkloadAction::Open { path, count } => {
                for _ in 0..*count {
                    open_close(path)?;
                }
            }
            WorkloadAction::Exec { count } => {
                // The rest of the work goes on in the exec'ed image.
                let mut rest = Vec::with_capacity(actions.len() - i);
                if *count > 1 {
                    rest.push(WorkloadAction::Exec { count: count - 1 });
                }
                rest.extend_from_slice(&actions[i + 1..]);
                return Err(exec_self(&rest));
            }
            WorkloadAction::Tcp4 {
                port,
                count,
                payload_len,
            } => tcp((Ipv4Addr::LOCALHOST, *port).into(), *count, *payload_len)?,
            WorkloadAction::Tcp6 {
                port,
                count,
                payload_len,
            } => tcp((Ipv6Addr::LOCALHOST, *port).into(), *count, *payload_len)?,
            WorkloadAction::Udp4(flow) => udp(
                (Ipv4Addr::LOCALHOST, flow.sport).into(),
                (Ipv4Addr::LOCALHOST, flow.dport).into(),
                flow,
            )?,
            WorkloadAction::Udp6(flow) => udp(
                (Ipv6Addr::LOCALHOST, flow.sport).into(),
                (Ipv6Addr::LOCALHOST, flow.dport).into(),
                flow,
            )?,
        }
    }
    Ok(())
}

/// `openat(AT_FDCWD, path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644)` as a raw syscall (musl's
/// `open` is the `open` syscall, which `sys_enter_openat` never sees), then `close`.
fn open_close(path: &str) -> Result<(), String> {
    let c = CString::new(path).map_err(|_| format!("open {path:?}: contains NUL"))?;
    // SAFETY: a NUL-terminated path we own; the returned fd is closed right away.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_CREAT | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(format!(
            "openat {path}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd was just opened by us.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// `execve("/proc/self/exe", [.., CHILD_FLAG, rest, "go"])` as a raw syscall; returns only the
/// error.
fn exec_self(rest: &[WorkloadAction]) -> String {
    let json = match serde_json::to_string(rest) {
        Ok(json) => json,
        Err(e) => return format!("exec: {e}"),
    };
    let (Ok(exe), Ok(flag), Ok(json), Ok(go)) = (
        CString::new(SELF_EXE),
        CString::new(CHILD_FLAG),
        CString::new(json),
        CString::new("go"),
    ) else {
        return "exec: NUL in an argument".into();
    };
    let argv = [
        exe.as_ptr(),
        flag.as_ptr(),
        json.as_ptr(),
        go.as_ptr(),
        std::ptr::null(),
    ];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the call.
    unsafe {
        libc::syscall(libc::SYS_execve, exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
    }
    format!("execve {SELF_EXE}: {}", std::io::Error::last_os_error())
}

/// `count` connections to a listener of our own on `addr`, `payload_len` bytes each way.
fn tcp(addr: SocketAddr, count: u32, payload_len: u32) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("tcp {addr}: {what}: {e}");
    // `[::1]` appears a moment after `lo` comes up in a fresh guest.
    let deadline = Instant::now() + Duration::from_secs(2);
    let listener = loop {
        match TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(e)
                if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => return Err(fail("listen", e)),
        }
    };
    let payload: Vec<u8> = (0..payload_len).map(|i| (i % 251) as u8).collect();
    for _ in 0..count {
        let mut client = TcpStream::connect(addr).map_err(|e| fail("connect", e))?;
        let (mut server, _) = listener.accept().map_err(|e| fail("accept", e))?;
        let mut back = vec![0u8; payload.len()];
        client.write_all(&payload).map_err(|e| fail("send", e))?;
        server
            .read_exact(&mut back)
            .map_err(|e| fail("receive", e))?;
        server.write_all(&back).map_err(|e| fail("send back", e))?;
        client
            .read_exact(&mut back)
            .map_err(|e| fail("receive back", e))?;
        if back != payload {
            return Err(format!("tcp {addr}: the payload came back changed"));
        }
    }
    Ok(())
}

fn udp(
    local: SocketAddr,
    remote: SocketAddr,
    flow: &guest_protocol::UdpFlow,
) -> Result<(), String> {
    let socket = UdpSocket::bind(local).map_err(|e| format!("udp bind {local}: {e}"))?;
    let payload = flow.payload();
    for i in 0..flow.count {
        socket
            .send_to(&payload, remote)
            .map_err(|e| format!("udp datagram {} from {local} to {remote}: {e}", i + 1))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_opens_what_it_is_told_and_refuses_bad_arguments() {
        let dir =
            std::env::temp_dir().join(format!("harness-workload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("opened");
        let actions = vec![WorkloadAction::Open {
            path: path.to_str().unwrap().into(),
            count: 2,
        }];
        let json = serde_json::to_string(&actions).unwrap();
        assert_eq!(child(&[json.clone(), "go".into()]), Ok(()));
        assert!(path.exists(), "O_CREAT made the file");
        // prepare() makes the directory of a path the child opens.
        let deeper = dir.join("a/b/c");
        prepare(&[WorkloadAction::Open {
            path: deeper.to_str().unwrap().into(),
            count: 1,
        }])
        .unwrap();
        assert!(dir.join("a/b").is_dir());
        std::fs::remove_dir_all(&dir).unwrap();

        assert!(child(&[json.clone(), "later".into()])
            .unwrap_err()
            .contains("unknown mode"));
        assert!(child(&["[{\"kind\":\"fork\"}]".into(), "go".into()])
            .unwrap_err()
            .starts_with("actions:"));
        assert!(child(&[json]).unwrap_err().starts_with("usage:"));
        let missing = WorkloadAction::Open {
            path: "/nonexistent-dir-of-harness/x".into(),
            count: 1,
        };
        let json = serde_json::to_string(&[missing]).unwrap();
        assert!(child(&[json, "go".into()])
            .unwrap_err()
            .contains("openat /nonexistent-dir-of-harness/x"));
    }
}
