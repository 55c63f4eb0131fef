//! Traffic cases: attach the case's tracing program (a raw tracepoint, or any kind
//! [`crate::attach`] knows), send real packets over the loopback interface, detach. The maps are reset before and dumped after by the caller, as for a test
//! run.
//!
//! What keeps the counts exact:
//! - the program is attached only while this case's packets are in flight;
//! - every flow sends from a source port bound before the program is attached and held until it
//!   is detached, so no other socket in the network namespace sends from it meanwhile (the
//!   programs filter on source port and loopback addresses);
//! - traffic cases of agents on one machine (the host entry, run twice at once) take turns, by
//!   an exclusive `flock` on a lock file in the temporary directory;
//! - the sending thread is pinned to one CPU, so all packets (and the final barrier datagram)
//!   enter that CPU's backlog queue in order; when the barrier datagram has arrived at its
//!   socket, every earlier packet has been through the receive path (and dropped).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use guest_protocol::{CaseOutcome, CaseSpec, TrafficFlow, UdpFlow};

use crate::load::LoadedObject;

/// How long the barrier datagram may take to come back through loopback.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `[::1]` may take to appear after the interface came up.
const ADDRESS_WAIT: Duration = Duration::from_secs(2);

pub fn run(
    object: &LoadedObject,
    case: &CaseSpec,
    flows: &[TrafficFlow],
) -> Result<bpf_loader::TestRunOutput, CaseOutcome> {
    let error = |message: String| CaseOutcome::Error { message };
    // Attached as a workload case attaches (raw_tp, tp_btf, fentry/fexit, kprobe, ...).
    let planned = crate::attach::plan(object, std::slice::from_ref(&case.program))?;
    ensure_loopback_up().map_err(error)?;

    let _turn = TrafficLock::acquire();
    let sockets = bind_sources(flows).map_err(error)?;
    let pinned = PinnedToCpu::pin();
    let started = Instant::now();
    let link = crate::attach::attach_all(object, &planned)?;
    let sent = flows
        .iter()
        .try_for_each(|flow| send_flow(flow, &sockets))
        .and_then(|()| barrier());
    drop(link);
    let elapsed = started.elapsed();
    drop(pinned);
    drop(sockets);
    sent.map_err(error)?;
    Ok(bpf_loader::TestRunOutput {
        retval: 0,
        data_out: Vec::new(),
        ctx_out: None,
        duration_ns: u32::try_from(elapsed.as_nanos()).unwrap_or(u32::MAX),
    })
}

/// The flow's datagram, its source and its destination.
fn endpoints(flow: &TrafficFlow) -> (&UdpFlow, SocketAddr, SocketAddr) {
    match flow {
        TrafficFlow::Udp4(u) => (
            u,
            (Ipv4Addr::LOCALHOST, u.sport).into(),
            (Ipv4Addr::LOCALHOST, u.dport).into(),
        ),
        TrafficFlow::Udp6(u) => (
            u,
            (Ipv6Addr::LOCALHOST, u.sport).into(),
            (Ipv6Addr::LOCALHOST, u.dport).into(),
        ),
    }
}

/// One socket per distinct source address of the case, bound before the program is attached.
fn bind_sources(flows: &[TrafficFlow]) -> Result<Vec<(SocketAddr, UdpSocket)>, String> {
    let mut sockets: Vec<(SocketAddr, UdpSocket)> = Vec::new();
    for flow in flows {
        let (_, local, _) = endpoints(flow);
        if !sockets.iter().any(|(a, _)| *a == local) {
            sockets.push((local, bind(local)?));
        }
    }
    Ok(sockets)
}

fn send_flow(flow: &TrafficFlow, sockets: &[(SocketAddr, UdpSocket)]) -> Result<(), String> {
    let (udp, local, remote) = endpoints(flow);
    let Some((_, socket)) = sockets.iter().find(|(a, _)| *a == local) else {
        return Err(format!("no socket bound to {local}"));
    };
    let payload = udp.payload();
    for i in 0..udp.count {
        let n = socket.send_to(&payload, remote).map_err(|e| {
            format!(
                "datagram {} of {} from {local} to {remote}: {e}",
                i + 1,
                udp.count
            )
        })?;
        if n != payload.len() {
            return Err(format!(
                "datagram {} of {} from {local} to {remote}: sent {n} of {} bytes",
                i + 1,
                udp.count,
                payload.len()
            ));
        }
    }
    Ok(())
}

/// Binds `local`, waiting briefly for `[::1]` (configured when `lo` comes up).
fn bind(local: SocketAddr) -> Result<UdpSocket, String> {
    let deadline = Instant::now() + ADDRESS_WAIT;
    loop {
        match UdpSocket::bind(local) {
            Ok(socket) => return Ok(socket),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(format!(
                    "cannot bind the flow's source {local}: {e} (another harness run on this host? each traffic flow needs its source port to itself)"
                ))
            }
            Err(e) => return Err(format!("cannot bind the flow's source {local}: {e}")),
        }
    }
}

/// One datagram through loopback to a socket of ours: once it has arrived, every packet sent
/// before it on this CPU has been through the receive path.
fn barrier() -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| format!("loopback barrier: {what}: {e}");
    let rx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| fail("bind", e))?;
    rx.set_read_timeout(Some(BARRIER_TIMEOUT))
        .map_err(|e| fail("timeout", e))?;
    let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| fail("bind", e))?;
    let to = rx.local_addr().map_err(|e| fail("address", e))?;
    let from = tx.local_addr().map_err(|e| fail("address", e))?;
    let token = format!("harness-barrier-{}", std::process::id());
    tx.send_to(token.as_bytes(), to)
        .map_err(|e| fail("send", e))?;
    let mut buf = [0u8; 64];
    loop {
        let (n, peer) = rx.recv_from(&mut buf).map_err(|e| {
            fail(
                &format!("nothing came back within {BARRIER_TIMEOUT:?} (is lo up?)"),
                e,
            )
        })?;
        if peer == from && &buf[..n] == token.as_bytes() {
            return Ok(());
        }
    }
}

/// Brings `lo` up if it is down (a fresh guest: the kernel configures 127.0.0.1 and ::1 on it
/// as it comes up). On the host it is up already and left alone.
pub(crate) fn ensure_loopback_up() -> Result<(), String> {
    // SAFETY: plain socket/ioctl/close on a socket we own, with a zeroed ifreq naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(format!(
                "socket(AF_INET) for the loopback interface: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut ifr) < 0 {
            result = Err(format!(
                "SIOCGIFFLAGS lo: {}",
                std::io::Error::last_os_error()
            ));
        } else if ifr.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &ifr) < 0 {
                result = Err(format!(
                    "SIOCSIFFLAGS lo up: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        libc::close(sock);
        result
    }
}

/// An exclusive `flock` on `<tmp>/harness-traffic.lock` until dropped. Best effort: if the
/// file cannot be opened (a read-only temporary directory), traffic goes ahead unserialized.
pub(crate) struct TrafficLock {
    _file: Option<std::fs::File>,
}

impl TrafficLock {
    pub(crate) fn acquire() -> TrafficLock {
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir();
        let _ = std::fs::create_dir_all(&dir);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("harness-traffic.lock"))
            .ok()
            .filter(|f| loop {
                // SAFETY: flock on a descriptor we own; blocks until the other agent's case ends.
                if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                    break true;
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break false;
                }
            });
        TrafficLock { _file: file }
    }
}

/// The calling thread pinned to the CPU it runs on, until dropped (best effort: without
/// pinning, on a single-CPU guest nothing changes, and on the host the barrier still orders
/// packets sent while the thread stayed put).
struct PinnedToCpu {
    previous: Option<libc::cpu_set_t>,
}

impl PinnedToCpu {
    fn pin() -> PinnedToCpu {
        // SAFETY: sched_{get,set}affinity on the calling thread (pid 0) with cpu_set_t buffers we
        // own; sched_getcpu takes nothing.
        unsafe {
            let mut previous: libc::cpu_set_t = std::mem::zeroed();
            let size = std::mem::size_of::<libc::cpu_set_t>();
            if libc::sched_getaffinity(0, size, &mut previous) != 0 {
                return PinnedToCpu { previous: None };
            }
            let cpu = libc::sched_getcpu();
            if cpu < 0 {
                return PinnedToCpu { previous: None };
            }
            let mut one: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut one);
            if libc::sched_setaffinity(0, size, &one) != 0 {
                return PinnedToCpu { previous: None };
            }
            PinnedToCpu {
                previous: Some(previous),
            }
        }
    }
}

impl Drop for PinnedToCpu {
    fn drop(&mut self) {
        if let Some(previous) = &self.previous {
            // SAFETY: restores the mask read in `pin`.
            unsafe {
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), previous);
            }
        }
    }
}
