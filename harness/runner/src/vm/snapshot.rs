//! Ready-guest snapshots: boot a kernel once to "agent ready, nothing loaded", save the VM with
//! QEMU migration to a file, and start later runs from it.
//!
//! ```text
//! <cache>/kernels/<image key>/ready/initramfs-<agent sha16>.cpio   the agent alone (ready mode)
//! <cache>/kernels/<image key>/ready/<snapshot key>/state           `migrate "exec:cat > state"`
//! <cache>/kernels/<image key>/ready/<snapshot key>/meta.json       SnapshotMeta
//! ```
//!
//! The snapshot key hashes everything that shapes the saved state: the kernel image, the agent,
//! QEMU's version and every QEMU argument (machine, memory, CPU, kernel command line, the
//! initramfs path). A restore uses exactly the arguments of the save plus `-incoming`; only the
//! per-run paths differ (sockets, the shared-memory file), which the guest never sees.
//!
//! The bundle reaches a restored guest through a shared-memory region (`ivshmem-plain` backed by
//! `<work>/bundle.shm`), written while the VM is paused after the state loaded; only its header
//! crosses the UART, which moves only about 75 KB/s into a guest under TCG. A snapshot directory is built in a
//! temporary directory under the cache's per-image lock and renamed into place whole.
//!
//! A snapshot that does not restore (QEMU changed under the same version string, a damaged file)
//! is discarded and rebuilt with a note; when even a fresh one fails, the caller boots fresh.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guest_protocol::{FrameScanner, GuestMessage, Ready};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

use super::qemu::QemuGuest;
use super::qmp::{shell_quote, Qmp};
use super::supervise::{spawn_watched, supervise, GuestEvent, ResultsSource, Supervised};
use crate::guest::{GuestRun, GuestStatus};

/// Bumped when the snapshot's layout or the way it is taken changes.
const SNAPSHOT_FORMAT: u32 = 2;
/// Saving a ready guest takes about 0.5 s (design.md); this is the limit for the whole save.
const SAVE_LIMIT: Duration = Duration::from_secs(120);
/// Loading a state file takes about 0.1 s; a restore that is not paused by then has failed.
const RESTORE_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(10);

/// What was saved, checked before and after a restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub format: u32,
    pub key: String,
    /// What the agent said when the guest was saved: a restored guest must say the same.
    pub ready: Ready,
    pub state_bytes: u64,
    /// CRC-32 of the state file: a damaged file is caught before QEMU loads it (guest RAM in
    /// the migration stream carries no checksum of its own).
    pub state_crc32: u32,
    pub qemu_version: String,
    pub save_ms: u64,
}

/// One kernel's snapshot request: where its image is, how its QEMU is started.
pub struct SnapshotTarget<'a> {
    pub guest: &'a QemuGuest,
    pub image: &'a crate::images::KernelImage,
    pub cache_root: &'a Path,
    pub agent: &'a [u8],
    /// SHA-256 of `agent`, lower-case hex.
    pub agent_sha256: &'a str,
    /// The ready initramfs (agent and kernel config, see `Bundle::ready_initramfs`).
    pub initramfs: &'a [u8],
}

pub struct Snapshot {
    pub dir: PathBuf,
    pub meta: SnapshotMeta,
    /// The state file's CRC-32 was checked; when not, the restore checks it while QEMU loads
    /// the file (both from the page cache), before the guest runs.
    pub state_verified: bool,
}

impl Snapshot {
    fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
}

/// The outcome of a snapshot run: the guest ran (whatever its results), or no snapshot could
/// be used and the caller should boot fresh (with the reason, to say so).
pub enum Restored {
    Ran(Box<GuestRun>),
    Unavailable(String),
}

/// The per-run paths of a snapshot guest's QEMU: what may differ between save and restore.
pub struct RunPaths<'a> {
    pub results: &'a Path,
    pub qmp: &'a Path,
    /// The file behind the shared-memory region the bundle travels in.
    pub region: &'a Path,
}

/// Placeholders for the per-run paths in the arguments a key is computed from.
fn placeholders() -> RunPaths<'static> {
    RunPaths {
        results: Path::new("@RESULTS_SOCKET@"),
        qmp: Path::new("@QMP_SOCKET@"),
        region: Path::new("@BUNDLE_REGION@"),
    }
}

/// The QEMU arguments of both the save and the restore (the restore adds `-incoming`).
pub fn snapshot_args(guest: &QemuGuest, paths: &RunPaths<'_>) -> Vec<String> {
    let mut args = guest.args(paths.results);
    args.extend(["-qmp".into(), format!("unix:{}", paths.qmp.display())]);
    // `master=on`: the one ivshmem mode QEMU migrates (its memory is part of the state, so the
    // host writes the bundle only once the state has loaded).
    args.extend([
        "-object".into(),
        format!(
            "memory-backend-file,id=bundle,mem-path={},size={},share=on",
            paths.region.display(),
            guest_protocol::SHARED_REGION_BYTES
        ),
        "-device".into(),
        "ivshmem-plain,memdev=bundle,master=on".into(),
    ]);
    args
}

/// The key: SHA-256 over what shapes the saved state, each part labelled.
pub fn snapshot_key(
    image_key: &str,
    vmlinux_bytes: u64,
    agent_sha256: &str,
    qemu_version: &str,
    args: &[String],
) -> String {
    let mut hash = Sha256::new();
    hash.update(format!(
        "format {SNAPSHOT_FORMAT}\nimage {image_key} {vmlinux_bytes}\nagent {agent_sha256}\nqemu {qemu_version}\n"
    ));
    for arg in args {
        hash.update(format!("arg {}\n", arg.len()));
        hash.update(arg);
    }
    hex::encode(hash.finalize())
}

/// `qemu-system-* --version`'s first line, asked once per binary per process.
async fn qemu_version(binary: &str) -> Result<String, String> {
    static SEEN: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    if let Ok(seen) = SEEN.lock() {
        if let Some((_, v)) = seen.iter().find(|(b, _)| b == binary) {
            return Ok(v.clone());
        }
    }
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .await
        .map_err(|e| format!("cannot run {binary} --version: {e}"))?;
    let version = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !output.status.success() || version.is_empty() {
        return Err(format!("{binary} --version said nothing useful"));
    }
    if let Ok(mut seen) = SEEN.lock() {
        seen.push((binary.to_string(), version.clone()));
    }
    Ok(version)
}

fn ready_dir(target: &SnapshotTarget<'_>) -> PathBuf {
    crate::images::cache::Cache::new(target.cache_root)
        .kernel_dir(&target.image.cache_key)
        .join("ready")
}

/// The ready initramfs, named by its content: its path is one of the arguments, so the key
/// covers what it holds.
fn ready_initramfs_path(target: &SnapshotTarget<'_>) -> PathBuf {
    let sha = hex::encode(Sha256::digest(target.initramfs));
    ready_dir(target).join(format!("initramfs-{}.cpio", &sha[..16]))
}

/// The guest as the snapshot runs it: the matrix guest with the ready initramfs.
fn snapshot_guest(target: &SnapshotTarget<'_>) -> QemuGuest {
    QemuGuest {
        kernel: target.guest.kernel.clone(),
        arch: target.guest.arch.clone(),
        vmlinux: target.guest.vmlinux.clone(),
        initramfs: ready_initramfs_path(target),
        memory_mib: target.guest.memory_mib,
        extra_cmdline: target.guest.extra_cmdline.clone(),
        accel: target.guest.accel,
        limits: target.guest.limits,
        work_dir: target.guest.work_dir.clone(),
    }
}

async fn key_for(target: &SnapshotTarget<'_>, guest: &QemuGuest) -> Result<String, String> {
    let version = qemu_version(guest.binary()).await?;
    let vmlinux_bytes = std::fs::metadata(&guest.vmlinux)
        .map_err(|e| format!("{}: {e}", guest.vmlinux.display()))?
        .len();
    let args = snapshot_args(guest, &placeholders());
    Ok(snapshot_key(
        &target.image.cache_key,
        vmlinux_bytes,
        target.agent_sha256,
        &version,
        &args,
    ))
}

/// The CRC-32 of a file, read in 1 MiB pieces.
fn crc32_file(path: &Path) -> std::io::Result<(u64, u32)> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((total, hasher.finalize()))
}

/// What a damaged state file's error says (the caller tells a damaged snapshot by it).
const DAMAGED: &str = "is damaged:";

fn damaged(state: &Path, (bytes, crc): (u64, u32), meta: &SnapshotMeta) -> Option<String> {
    (bytes != meta.state_bytes || crc != meta.state_crc32).then(|| {
        format!(
            "{} {DAMAGED} {bytes} bytes with CRC-32 {crc:08x}, saved as {} bytes with {:08x}",
            state.display(),
            meta.state_bytes,
            meta.state_crc32
        )
    })
}

/// The snapshot when it is complete and whole: meta readable, of this key, state matching it
/// (its size always; its CRC-32 when `verify`).
fn load_existing(dir: &Path, key: &str, verify: bool) -> Result<Option<Snapshot>, String> {
    let meta_path = dir.join("meta.json");
    let text = match std::fs::read_to_string(&meta_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", meta_path.display())),
    };
    let meta: SnapshotMeta = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not valid: {e}", meta_path.display()))?;
    if meta.key != key || meta.format != SNAPSHOT_FORMAT {
        return Err(format!("{} is of another key", meta_path.display()));
    }
    let state = dir.join("state");
    if verify {
        let sum = crc32_file(&state).map_err(|e| format!("{}: {e}", state.display()))?;
        if let Some(why) = damaged(&state, sum, &meta) {
            return Err(why);
        }
    } else {
        let bytes = std::fs::metadata(&state)
            .map_err(|e| format!("{}: {e}", state.display()))?
            .len();
        if let Some(why) = damaged(&state, (bytes, meta.state_crc32), &meta) {
            return Err(why);
        }
    }
    Ok(Some(Snapshot {
        dir: dir.to_path_buf(),
        meta,
        state_verified: verify,
    }))
}

/// Snapshots of other keys kept per kernel (other agents or QEMU builds sharing the cache),
/// besides the current one: each is 55-71 MB.
const KEEP_OTHER_SNAPSHOTS: usize = 2;

/// Removes all but the newest [`KEEP_OTHER_SNAPSHOTS`] other snapshots of a kernel, and ready
/// initramfs files no kept snapshot can use. A restore in progress keeps its open file.
fn prune(ready: &Path, current: &Path, initramfs: &Path) {
    let Ok(entries) = std::fs::read_dir(ready) else {
        return;
    };
    let entries: Vec<_> = entries.flatten().collect();
    // What a killed build left behind: no build takes an hour.
    for entry in &entries {
        let abandoned = entry
            .file_name()
            .to_string_lossy()
            .starts_with(".building-")
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
        if abandoned {
            discard(&entry.path());
        }
    }
    let mut others: Vec<(std::time::SystemTime, PathBuf)> = entries
        .into_iter()
        .filter(|e| e.path() != current && e.path() != initramfs)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    others.sort_by_key(|b| std::cmp::Reverse(b.0));
    let (dirs, files): (Vec<_>, Vec<_>) = others.into_iter().partition(|(_, p)| p.is_dir());
    for (_, dir) in dirs.iter().skip(KEEP_OTHER_SNAPSHOTS) {
        discard(dir);
    }
    for (_, file) in files.iter().skip(KEEP_OTHER_SNAPSHOTS) {
        let _ = std::fs::remove_file(file);
    }
}

fn discard(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// The kernel's ready snapshot: the cached one when it is whole, else a new one (a damaged
/// one is discarded with a note first). Built under the image's cache lock.
pub async fn ensure(target: &SnapshotTarget<'_>, rebuild: bool) -> Result<Snapshot, String> {
    ensure_with(target, rebuild, true).await
}

/// [`ensure`]; an existing snapshot's CRC-32 is left to the restore unless `verify`.
async fn ensure_with(
    target: &SnapshotTarget<'_>,
    rebuild: bool,
    verify: bool,
) -> Result<Snapshot, String> {
    let guest = snapshot_guest(target);
    let key = key_for(target, &guest).await?;
    let dir = ready_dir(target).join(&key);
    let kernel = &guest.kernel;
    if !rebuild {
        match load_existing(&dir, &key, verify) {
            Ok(Some(snapshot)) => return Ok(snapshot),
            Ok(None) => {}
            Err(why) => {
                eprintln!("note: [{kernel}] ready snapshot discarded and rebuilt: {why}");
                discard(&dir);
            }
        }
    }
    let cache = crate::images::cache::Cache::new(target.cache_root);
    let cache_key = target.image.cache_key.clone();
    let name = kernel.clone();
    let _lock = tokio::task::block_in_place(|| {
        cache.lock(&cache_key, || {
            eprintln!("[{name}] waiting for another run to finish this kernel's cache entry")
        })
    })
    .map_err(|e| format!("cannot lock the cache entry {cache_key}: {e}"))?;
    // Another run may have built it while this one waited.
    if !rebuild {
        if let Ok(Some(snapshot)) = load_existing(&dir, &key, verify) {
            return Ok(snapshot);
        }
    }
    eprintln!("[{kernel}] building its ready snapshot (first use of this kernel, agent or QEMU)");
    let up_to_date = std::fs::read(&guest.initramfs).is_ok_and(|b| b == target.initramfs);
    if !up_to_date {
        crate::fsutil::write_atomic(&guest.initramfs, target.initramfs)
            .map_err(|e| format!("writing {}: {e}", guest.initramfs.display()))?;
    }
    let parent = ready_dir(target);
    let tmp = tempfile::Builder::new()
        .prefix(".building-")
        .tempdir_in(&parent)
        .map_err(|e| format!("cannot create a directory in {}: {e}", parent.display()))?;
    let started = Instant::now();
    let ready = save(&guest, &tmp.path().join("state")).await?;
    let (state_bytes, state_crc32) = crc32_file(&tmp.path().join("state"))
        .map_err(|e| format!("reading the saved state: {e}"))?;
    let meta = SnapshotMeta {
        format: SNAPSHOT_FORMAT,
        key: key.clone(),
        ready,
        state_bytes,
        state_crc32,
        qemu_version: qemu_version(guest.binary()).await?,
        save_ms: started.elapsed().as_millis() as u64,
    };
    let meta_text = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
    std::fs::write(tmp.path().join("meta.json"), meta_text)
        .map_err(|e| format!("writing the snapshot's meta.json: {e}"))?;
    discard(&dir);
    let built = tmp.keep();
    std::fs::rename(&built, &dir).map_err(|e| {
        discard(&built);
        format!("cannot move the snapshot into {}: {e}", dir.display())
    })?;
    prune(&ready_dir(target), &dir, &guest.initramfs);
    eprintln!(
        "[{kernel}] ready snapshot saved: {} MB in {} ms",
        meta.state_bytes >> 20,
        meta.save_ms
    );
    Ok(Snapshot {
        dir,
        meta,
        state_verified: true,
    })
}

/// Per-run sockets, in a short directory of their own (see `qemu::run`).
struct Sockets {
    _dir: tempfile::TempDir,
    results_path: PathBuf,
    qmp_path: PathBuf,
    results: UnixListener,
    qmp: UnixListener,
}

fn sockets() -> Result<Sockets, String> {
    let tmp = std::env::temp_dir();
    crate::leftovers::remove_stale(&tmp, super::qemu::SOCKET_DIR_PREFIX);
    let dir = tempfile::Builder::new()
        .prefix(&crate::leftovers::owned_prefix(
            super::qemu::SOCKET_DIR_PREFIX,
        ))
        .tempdir_in(&tmp)
        .map_err(|e| format!("cannot create a socket directory: {e}"))?;
    let results_path = dir.path().join("results.sock");
    let qmp_path = dir.path().join("qmp.sock");
    let listen = |p: &Path| {
        UnixListener::bind(p).map_err(|e| format!("cannot listen on {}: {e}", p.display()))
    };
    Ok(Sockets {
        results: listen(&results_path)?,
        qmp: listen(&qmp_path)?,
        results_path,
        qmp_path,
        _dir: dir,
    })
}

/// Collects a child's output in the background; returns its last lines when asked.
fn collect_output(
    stdout: tokio::process::ChildStdout,
    stderr: tokio::process::ChildStderr,
) -> tokio::task::JoinHandle<String> {
    tokio::spawn(async move {
        let mut all = Vec::new();
        let mut both = stdout.chain(stderr);
        let _ = both.read_to_end(&mut all).await;
        let mut tail = crate::guest::TailBuffer::new(16 * 1024);
        tail.push(&all);
        tail.last_lines(20)
    })
}

/// Boots `guest` (the ready initramfs) to the agent's Ready, then stops it and migrates it to
/// `state`. Returns what the agent said.
async fn save(guest: &QemuGuest, state: &Path) -> Result<Ready, String> {
    let sockets = sockets()?;
    // Beside the state while it is built; never part of the snapshot (it holds no bundle yet).
    let region = state.with_file_name("bundle.shm");
    let saved = save_with(guest, state, &sockets, &region).await;
    let _ = std::fs::remove_file(&region);
    saved
}

async fn save_with(
    guest: &QemuGuest,
    state: &Path,
    sockets: &Sockets,
    region: &Path,
) -> Result<Ready, String> {
    let mut command = Command::new(guest.binary());
    command.args(snapshot_args(
        guest,
        &RunPaths {
            results: &sockets.results_path,
            qmp: &sockets.qmp_path,
            region,
        },
    ));
    let (mut child, stdout, stderr, _started) =
        spawn_watched(&mut command).map_err(|e| format!("cannot start {}: {e}", guest.binary()))?;
    let output = collect_output(stdout, stderr);
    let result = async {
        let mut qmp = Qmp::accept(&sockets.qmp, Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        let ready = tokio::time::timeout(guest.limits.boot, wait_ready(&sockets.results))
            .await
            .map_err(|_| format!("no Ready from the agent within {:?}", guest.limits.boot))??;
        qmp.execute("stop", None).await.map_err(|e| e.to_string())?;
        let uri = format!("exec:cat > {}", shell_quote(state));
        qmp.execute("migrate", Some(json!({ "uri": uri })))
            .await
            .map_err(|e| e.to_string())?;
        let deadline = Instant::now() + SAVE_LIMIT;
        loop {
            let (status, error) = qmp.migration().await.map_err(|e| e.to_string())?;
            match status.as_str() {
                "completed" => break,
                "failed" | "cancelled" => {
                    return Err(format!("migration {status}: {}", error.unwrap_or_default()))
                }
                _ if Instant::now() > deadline => {
                    return Err(format!("migration still {status} after {SAVE_LIMIT:?}"))
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
        let _ = qmp.execute("quit", None).await;
        Ok(ready)
    }
    .await;
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    match result {
        Ok(ready) => Ok(ready),
        Err(why) => {
            let _ = child.start_kill();
            let tail = tokio::time::timeout(Duration::from_secs(2), output)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            Err(format!("{why}; QEMU said: {tail}"))
        }
    }
}

/// Reads frames from the agent until it says Ready.
async fn wait_ready(listener: &UnixListener) -> Result<Ready, String> {
    let (mut stream, _) = listener
        .accept()
        .await
        .map_err(|e| format!("results socket: {e}"))?;
    let mut scanner = FrameScanner::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("results socket: {e}"))?;
        if n == 0 {
            return Err("the guest closed its results port before Ready".into());
        }
        for message in scanner.push(&buf[..n]) {
            match message {
                GuestMessage::Ready(ready) => return Ok(ready),
                GuestMessage::Fatal { message } => {
                    return Err(format!("the agent failed before Ready: {message}"))
                }
                _ => {}
            }
        }
    }
}

/// Why a restored guest is not the one that was saved, if it is not.
pub fn identity_mismatch(saved: &Ready, now: Option<&Ready>, release: &str) -> Option<String> {
    let Some(now) = now else {
        return Some("the restored agent never said Ready".into());
    };
    if now.boot_id.is_empty() || now.boot_id != saved.boot_id {
        return Some(format!(
            "boot id {:?} is not the snapshot's {:?}",
            now.boot_id, saved.boot_id
        ));
    }
    if now.kernel_release != saved.kernel_release || now.kernel_release != release {
        return Some(format!(
            "kernel release {:?} is not the snapshot's {:?} / the image's {:?}",
            now.kernel_release, saved.kernel_release, release
        ));
    }
    None
}

/// Runs one kernel from its ready snapshot: restore, send the bundle, supervise as a fresh boot
/// would be. A snapshot that does not restore is rebuilt once; then the caller boots fresh.
pub async fn run(
    target: &SnapshotTarget<'_>,
    bundle: &guest_protocol::BundleTransfer,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> Restored {
    let kernel = &target.guest.kernel;
    let encode = |shared_region: bool| {
        let shared = if shared_region {
            bundle.encode_for_shared_region()?
        } else {
            None
        };
        match shared {
            Some((header, payload)) => Ok(EncodedBundle::Shared { header, payload }),
            None => bundle.encode().map(EncodedBundle::Port),
        }
    };
    if let Err(e) = std::fs::create_dir_all(&target.guest.work_dir) {
        return Restored::Unavailable(format!(
            "cannot create {}: {e}",
            target.guest.work_dir.display()
        ));
    }
    let mut rebuild = false;
    for _ in 0..2 {
        // The state's checksum is checked while QEMU loads it (see `restore_with`).
        let snapshot = match ensure_with(target, rebuild, false).await {
            Ok(snapshot) => snapshot,
            Err(why) => return Restored::Unavailable(format!("no ready snapshot: {why}")),
        };
        // Through shared memory when the saved agent saw the region (a kernel without PCI
        // would not), else over the port.
        let bytes = match encode(snapshot.meta.ready.shared_region) {
            Ok(bytes) => bytes,
            Err(e) => return Restored::Unavailable(format!("the bundle cannot be sent: {e}")),
        };
        match restore(target, &snapshot, &bytes, cancel.clone(), events.clone()).await {
            Ok(run) => return Restored::Ran(Box::new(run)),
            Err(why) if why.contains(DAMAGED) => {
                eprintln!("note: [{kernel}] ready snapshot discarded and rebuilt: {why}");
                discard(&snapshot.dir);
                rebuild = true;
            }
            Err(why) => {
                eprintln!(
                    "note: [{kernel}] ready snapshot {} did not restore ({why}): discarded, rebuilding",
                    snapshot.dir.display()
                );
                discard(&snapshot.dir);
                rebuild = true;
            }
        }
    }
    Restored::Unavailable("a freshly built snapshot did not restore either".into())
}

/// [`run`] for one matrix kernel with its provisioned image, as `run::run_kernel` calls it.
#[allow(clippy::too_many_arguments)]
pub async fn run_kernel(
    kernel: &crate::matrix::config::KernelEntry,
    image: &crate::images::KernelImage,
    bundle: &crate::guest::bundle::Bundle,
    kernel_config: Option<&[u8]>,
    cache_root: &Path,
    accel: super::accel::Accel,
    limits: super::GuestLimits,
    work: &Path,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> Restored {
    // The config is in the snapshot's initramfs, where a fresh boot's initramfs has it.
    let transfer = match bundle.transfer(&kernel.name, None) {
        Ok(t) => t,
        Err(e) => return Restored::Unavailable(format!("building the bundle: {e:#}")),
    };
    // The initramfs is the snapshot's own (see `snapshot_guest`); this one is never written.
    let guest = QemuGuest::for_kernel(
        kernel,
        image,
        PathBuf::new(),
        accel,
        limits,
        work.to_path_buf(),
    );
    let agent_sha256 = hex::encode(Sha256::digest(&bundle.agent));
    let initramfs =
        match crate::guest::bundle::Bundle::ready_initramfs(&bundle.agent, kernel_config) {
            Ok(bytes) => bytes,
            Err(e) => return Restored::Unavailable(format!("building the ready initramfs: {e:#}")),
        };
    let target = SnapshotTarget {
        initramfs: &initramfs,
        guest: &guest,
        image,
        cache_root,
        agent: &bundle.agent,
        agent_sha256: &agent_sha256,
    };
    run(&target, &transfer, cancel, events).await
}

/// `harness fetch --snapshot`: provision each selected kernel and build its ready snapshot
/// now, so the first `--snapshot` run restores at once. Only when KVM is ruled out: otherwise
/// the acceleration (part of the key) is decided by a probe boot in the first run.
pub fn fetch_snapshots(common: &crate::cli::CommonArgs) -> anyhow::Result<()> {
    use crate::matrix::config::{KernelSource, Matrix};
    let matrix = Matrix::load(&common.matrix)?;
    let kernels = matrix.select_in(&common.kernels, &common.groups)?;
    let layout = crate::layout::Layout::new(common, None);
    let images = crate::images::Images::new(&layout.images, &matrix);
    let lock = crate::matrix::pinning::ensure_locked(&images, &matrix, &kernels, &layout.lockfile)?;
    let Some(why_tcg) =
        super::accel::kvm_ruled_out(Path::new("/dev/kvm"), Path::new("/sys/module"))
    else {
        eprintln!(
            "note: KVM may work on this machine: ready snapshots are built by the first \
             --snapshot run, once a probe boot has decided the acceleration"
        );
        return Ok(());
    };
    eprintln!("snapshots under TCG ({why_tcg})");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let progress = crate::images::IndicatifProgress::new();
    let mut failed = 0;
    // virtme-ng's guests boot fresh every time: they have no snapshot to build.
    for kernel in kernels.iter().filter(|k| {
        !matches!(k.source, KernelSource::Host)
            && k.backend != crate::matrix::config::Backend::VirtmeNg
    }) {
        // The agent of the kernel's architecture, hashed as a run hashes it (`Bundle::agent`).
        let agent = crate::guest::agent::for_arch(kernel.arch);
        let agent_sha256 = agent
            .as_ref()
            .map(|a| hex::encode(Sha256::digest(a)))
            .unwrap_or_default();
        let built = agent
            .and_then(|agent| {
                images
                    .provision(kernel, &lock, &progress)
                    .map_err(|e| format!("image: {e}"))
                    .map(|image| (agent, image))
            })
            .and_then(|(agent, image)| {
                let config = image.config.as_ref().and_then(|p| std::fs::read(p).ok());
                let initramfs =
                    crate::guest::bundle::Bundle::ready_initramfs(agent, config.as_deref())
                        .map_err(|e| format!("{e:#}"))?;
                let limits = super::GuestLimits {
                    boot: kernel.boot_timeout,
                    test: kernel.test_timeout,
                    guest: kernel.guest_timeout,
                };
                let work = layout.work.join("snapshots").join(&kernel.name);
                std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
                let guest = QemuGuest::for_kernel(
                    kernel,
                    &image,
                    PathBuf::new(),
                    super::accel::Accel::Tcg,
                    limits,
                    work,
                );
                let target = SnapshotTarget {
                    guest: &guest,
                    image: &image,
                    cache_root: &layout.images,
                    agent,
                    agent_sha256: &agent_sha256,
                    initramfs: &initramfs,
                };
                runtime.block_on(ensure(&target, false))
            });
        match built {
            Ok(snapshot) => println!(
                "{:6} ready snapshot {} ({} MB)",
                kernel.name,
                snapshot.dir.display(),
                snapshot.meta.state_bytes >> 20
            ),
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", kernel.name);
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} ready snapshot(s) could not be built");
    Ok(())
}

/// A bundle ready to go: through the shared-memory region with its header over the port, or
/// (too big for the region) all over the port.
enum EncodedBundle {
    Shared {
        header: [u8; guest_protocol::BUNDLE_HEADER_BYTES],
        payload: Vec<u8>,
    },
    Port(Vec<u8>),
}

impl EncodedBundle {
    fn len(&self) -> usize {
        match self {
            EncodedBundle::Shared { header, payload } => header.len() + payload.len(),
            EncodedBundle::Port(bytes) => bytes.len(),
        }
    }
}

/// Err: the snapshot did not restore (nothing ran). Ok: the guest ran from it.
async fn restore(
    target: &SnapshotTarget<'_>,
    snapshot: &Snapshot,
    bundle: &EncodedBundle,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> Result<GuestRun, String> {
    let guest = snapshot_guest(target);
    let sockets = sockets()?;
    let region = guest.work_dir.join(BUNDLE_REGION_FILE);
    let restored = restore_with(
        target, &guest, snapshot, bundle, &sockets, &region, cancel, events,
    )
    .await;
    // A few MB of sparse file per run: the bundle is in the guest's record already.
    let _ = std::fs::remove_file(&region);
    restored
}

/// The file behind a restored guest's shared-memory region, in its work dir: a per-run file,
/// so the next run reclaims it if this one is killed (see `leftovers::reclaim_dead_runs`).
pub const BUNDLE_REGION_FILE: &str = "bundle.shm";

/// Writes the payload at the start of the region file (the VM is paused, its state loaded).
fn write_region(region: &Path, payload: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::FileExt;
    std::fs::OpenOptions::new()
        .write(true)
        .open(region)
        .and_then(|file| file.write_all_at(payload, 0))
        .map_err(|e| format!("writing the bundle into {}: {e}", region.display()))
}

#[allow(clippy::too_many_arguments)]
async fn restore_with(
    target: &SnapshotTarget<'_>,
    guest: &QemuGuest,
    snapshot: &Snapshot,
    bundle: &EncodedBundle,
    sockets: &Sockets,
    region: &Path,
    cancel: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<GuestEvent>,
) -> Result<GuestRun, String> {
    // QEMU sizes a missing or empty file itself; one of another size it refuses.
    let _ = std::fs::remove_file(region);
    // Taken by whoever awaits it first: the resumed VM before it runs, or a failed load that
    // may have failed for the damage the checksum tells.
    let checksum = std::sync::Mutex::new((!snapshot.state_verified).then(|| {
        let state = snapshot.state();
        tokio::task::spawn_blocking(move || crc32_file(&state))
    }));
    let damage = |sum: (u64, u32)| damaged(&snapshot.state(), sum, &snapshot.meta);
    let mut command = Command::new(guest.binary());
    command.args(snapshot_args(
        guest,
        &RunPaths {
            results: &sockets.results_path,
            qmp: &sockets.qmp_path,
            region,
        },
    ));
    command.args([
        "-incoming".to_string(),
        format!("exec:cat {}", shell_quote(&snapshot.state())),
    ]);
    let (mut child, mut stdout, mut stderr, started) =
        spawn_watched(&mut command).map_err(|e| format!("cannot start {}: {e}", guest.binary()))?;
    let resumed = resume(sockets, started, &checksum, snapshot, bundle, region);
    let ended = tokio::select! {
        resumed = resumed => match resumed {
            Ok(r) => Ok(r),
            // QEMU's death (its QMP socket closing) may be seen before its exit status.
            Err(why) => match tokio::time::timeout(Duration::from_millis(200), child.wait()).await {
                Ok(Ok(status)) => Err((why, Some(status))),
                _ => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    Err((why, None))
                }
            },
        },
        status = child.wait() => {
            let why = format!("QEMU exited while loading the snapshot ({})", status.as_ref().map_or("unknown status".into(), |s| s.to_string()));
            Err((why, status.ok()))
        }
    };
    let (qmp, results, paused_ms, to_send) = match ended {
        Ok(r) => r,
        Err((why, status)) => {
            // QEMU may have refused the state for the damage the checksum finds: say that.
            let pending = checksum.lock().ok().and_then(|mut c| c.take());
            if let Some(pending) = pending {
                if let Ok(Ok(sum)) = pending.await {
                    if let Some(damaged) = damage(sum) {
                        return Err(damaged);
                    }
                }
            }
            let why = with_output(why, &mut stdout, &mut stderr).await;
            return killed_while_loading(guest, status, why, started);
        }
    };
    let (read, mut write) = results.into_split();
    let bundle_len = bundle.len();
    let over_port = to_send.len();
    // The write half stays open until the guest ends: closing it would make QEMU drop the port.
    let sender = tokio::spawn(async move {
        let sent = write.write_all(&to_send).await;
        (write, sent)
    });
    let console = Box::new(stdout.chain(stderr));
    let console_log = guest.work_dir.join("console.log");
    let cancel_after = cancel.clone();
    // A guest whose bundle came through the region sends its frames back the same way.
    let results: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match bundle {
        EncodedBundle::Shared { .. } => match std::fs::File::open(region) {
            Ok(file) => Box::new(super::results_region::RelayedResults::new(read, file)),
            Err(e) => return Err(format!("cannot open {}: {e}", region.display())),
        },
        EncodedBundle::Port(_) => Box::new(read),
    };
    let mut run = supervise(Supervised {
        run: GuestRun::new(&guest.kernel, &guest.arch, guest.accel.qemu_name()),
        child,
        results: ResultsSource::Stream(results),
        console,
        console_log: &console_log,
        limits: guest.limits,
        cancel,
        events,
        started,
        is_vm: true,
    })
    .await;
    drop(qmp);
    // A restored guest that dies before its agent says hello never ran a test: that is the
    // snapshot failing, not the kernel under test (seen with 6.12 while the agent raised the
    // UART's receive trigger: double faults and GPFs 0.1 s after `cont`, as the bundle came
    // in). Retried from a rebuilt snapshot, then booted fresh, like a snapshot that won't load.
    if died_before_hello(&run) && !*cancel_after.borrow() {
        return Err(restore_failed(&run, guest, &console_log));
    }
    if let Ok((_, Err(e))) = sender.await {
        run.logs.push(format!("sending the bundle failed: {e}"));
    }
    run.logs.push(format!(
        "restored from ready snapshot {} (saved at guest uptime {} ms): state loaded {paused_ms} ms \
         after QEMU start; bundle {bundle_len} bytes, {over_port} of them over the results port",
        snapshot.dir.display(),
        snapshot.meta.ready.uptime_ms,
    ));
    check_identity(&mut run, snapshot, target);
    Ok(run)
}

/// The state file's CRC-32, being computed while QEMU loads the same file.
type PendingChecksum =
    std::sync::Mutex<Option<tokio::task::JoinHandle<std::io::Result<(u64, u32)>>>>;

/// A restored QEMU up to its guest running: the state loaded (paused), the checksum good, the
/// bundle in the shared region (or ready for the port), `cont`, and the results port connected.
/// Returns QMP, the results connection, when the state had loaded, and the bytes for the port.
async fn resume(
    sockets: &Sockets,
    started: Instant,
    checksum: &PendingChecksum,
    snapshot: &Snapshot,
    bundle: &EncodedBundle,
    region: &Path,
) -> Result<(Qmp, tokio::net::UnixStream, u64, Vec<u8>), String> {
    let mut qmp = Qmp::accept(&sockets.qmp, RESTORE_LIMIT)
        .await
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + RESTORE_LIMIT;
    loop {
        let status = qmp.status().await.map_err(|e| e.to_string())?;
        match status.as_str() {
            "paused" => break,
            "inmigrate" | "prelaunch" if Instant::now() < deadline => {
                tokio::time::sleep(POLL).await
            }
            other => return Err(format!("the restored VM is {other}, not paused")),
        }
    }
    let paused_ms = started.elapsed().as_millis() as u64;
    let pending = checksum.lock().ok().and_then(|mut c| c.take());
    if let Some(pending) = pending {
        let state = snapshot.state();
        let sum = pending
            .await
            .map_err(|e| format!("checking {}: {e}", state.display()))?
            .map_err(|e| format!("{}: {e}", state.display()))?;
        if let Some(why) = damaged(&snapshot.state(), sum, &snapshot.meta) {
            return Err(why);
        }
    }
    // The region's content is part of the state just loaded: the bundle goes in after it.
    let to_send = match bundle {
        EncodedBundle::Shared { header, payload } => {
            write_region(region, payload)?;
            header.to_vec()
        }
        EncodedBundle::Port(bytes) => bytes.clone(),
    };
    qmp.execute("cont", None).await.map_err(|e| e.to_string())?;
    let (results, _) = tokio::time::timeout(RESTORE_LIMIT, sockets.results.accept())
        .await
        .map_err(|_| "QEMU never connected its results port".to_string())?
        .map_err(|e| format!("results socket: {e}"))?;
    Ok::<_, String>((qmp, results, paused_ms, to_send))
}

/// A QEMU killed by someone else while loading: that is what happened to this kernel's VM,
/// reported as after a fresh boot (the snapshot is not to blame); any other end of the load is
/// the snapshot failing (`Err`).
fn killed_while_loading(
    guest: &QemuGuest,
    status: Option<std::process::ExitStatus>,
    why: String,
    started: Instant,
) -> Result<GuestRun, String> {
    let Some(killed) = status.and_then(killed_from_outside) else {
        return Err(why);
    };
    let mut run = GuestRun::new(&guest.kernel, &guest.arch, guest.accel.qemu_name());
    run.status = GuestStatus::VmKilled(killed);
    run.console_tail = why;
    run.timings.exit_ms = started.elapsed().as_millis() as u64;
    Ok(run)
}

/// Why a restored guest that died before its agent's hello failed to restore: the console's
/// telling line, and where the whole console was kept.
fn restore_failed(run: &GuestRun, guest: &QemuGuest, console_log: &Path) -> String {
    let kept = guest.work_dir.join("console.restore-failed.log");
    let _ = std::fs::rename(console_log, &kept);
    let last = run
        .console_tail
        .lines()
        .find(|l| l.contains("Oops") || l.contains("panic") || l.contains("BUG"))
        .or_else(|| run.console_tail.lines().last())
        .unwrap_or("")
        .trim()
        .to_string();
    format!(
        "the restored guest ended {} before its agent said hello ({last}; console in {})",
        run.status.describe(),
        kept.display()
    )
}

/// A restored guest must be the one its snapshot saved (release, boot id): else its results
/// are another kernel's, and the run says so.
fn check_identity(run: &mut GuestRun, snapshot: &Snapshot, target: &SnapshotTarget<'_>) {
    if run.status == GuestStatus::Completed || run.identity.is_some() {
        if let Some(why) = identity_mismatch(
            &snapshot.meta.ready,
            run.identity.as_ref(),
            &target.image.release,
        ) {
            run.status = GuestStatus::AgentError(format!(
                "the restored guest is not the one its snapshot saved: {why}"
            ));
        }
    }
}

/// Why QEMU ended, when a signal that only comes from outside (a user, the OOM killer, a
/// supervisor) ended it; a crash of QEMU itself on a bad state (SIGSEGV, SIGABRT) is not that.
fn killed_from_outside(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal()?;
    [libc::SIGKILL, libc::SIGTERM, libc::SIGINT, libc::SIGHUP]
        .contains(&signal)
        .then(|| crate::guest::vm_killed_by(Some(status), &crate::guest::TailBuffer::new(0)))
        .flatten()
}

/// The guest ended (not by the runner's stop, nor by a signal from outside) before its agent
/// said hello: nothing ran. A QEMU killed from outside is reported as such (VM_KILLED), as it
/// would be after a fresh boot, not retried.
fn died_before_hello(run: &GuestRun) -> bool {
    run.hello.is_none()
        && !matches!(
            run.status,
            GuestStatus::Completed | GuestStatus::Interrupted | GuestStatus::VmKilled(_)
        )
}

async fn with_output(
    why: String,
    stdout: &mut tokio::process::ChildStdout,
    stderr: &mut tokio::process::ChildStderr,
) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        let _ = stderr.read_to_end(&mut out).await;
        let _ = stdout.read_to_end(&mut out).await;
    })
    .await;
    let text = String::from_utf8_lossy(&out);
    let last: Vec<&str> = text.lines().rev().take(5).collect();
    if last.is_empty() {
        why
    } else {
        let mut last = last;
        last.reverse();
        format!("{why}; QEMU said: {}", last.join(" | "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(boot_id: &str, release: &str) -> Ready {
        Ready {
            kernel_release: release.into(),
            boot_id: boot_id.into(),
            uptime_ms: 2000,
            clock_unix_ms: 1,
            shared_region: true,
        }
    }

    #[test]
    fn identity_must_match_boot_and_release() {
        let saved = ready("b1", "6.1.0-1");
        assert_eq!(
            identity_mismatch(&saved, Some(&ready("b1", "6.1.0-1")), "6.1.0-1"),
            None
        );
        let table = [
            (None, "6.1.0-1", "never said Ready"),
            (Some(ready("b2", "6.1.0-1")), "6.1.0-1", "boot id"),
            (Some(ready("", "6.1.0-1")), "6.1.0-1", "boot id"),
            (Some(ready("b1", "6.12.0")), "6.1.0-1", "kernel release"),
            (Some(ready("b1", "6.1.0-1")), "6.12.0", "kernel release"),
        ];
        for (now, release, expected) in table {
            let why = identity_mismatch(&saved, now.as_ref(), release).unwrap();
            assert!(why.contains(expected), "{why}");
        }
    }

    #[test]
    fn only_a_guest_that_died_before_hello_counts_as_a_failed_restore() {
        let mut run = GuestRun::new("k", "x86_64", "tcg");
        run.status = GuestStatus::Panic;
        assert!(died_before_hello(&run));
        run.status = GuestStatus::Interrupted;
        assert!(!died_before_hello(&run));
        run.status = GuestStatus::VmKilled("signal 9 (SIGKILL)".into());
        assert!(!died_before_hello(&run));
        run.status = GuestStatus::Panic;
        run.hello = Some(guest_protocol::Hello {
            protocol_version: guest_protocol::PROTOCOL_VERSION,
            agent_version: "a".into(),
            kernel_name: "k".into(),
            kernel_release: "r".into(),
            machine: "x86_64".into(),
            kernel_btf_bytes: None,
            uptime_ms: 1,
            btf: None,
        });
        // A panic after hello is the kernel's, under test (or an injected fault): reported.
        assert!(!died_before_hello(&run));
    }

    #[test]
    fn only_signals_from_outside_count_as_a_killed_vm() {
        use std::os::unix::process::ExitStatusExt;
        let killed = killed_from_outside(std::process::ExitStatus::from_raw(libc::SIGKILL));
        assert!(killed.is_some_and(|k| k.contains("SIGKILL")));
        assert!(killed_from_outside(std::process::ExitStatus::from_raw(libc::SIGTERM)).is_some());
        assert!(killed_from_outside(std::process::ExitStatus::from_raw(libc::SIGSEGV)).is_none());
        // Exit status 1 (a refused state file), not a signal.
        assert!(killed_from_outside(std::process::ExitStatus::from_raw(1 << 8)).is_none());
    }

    #[test]
    fn key_changes_with_every_input() {
        let args = vec!["-m".to_string(), "256M".to_string()];
        let base = snapshot_key("img", 10, "agent", "QEMU 7.2", &args);
        assert_eq!(base, snapshot_key("img", 10, "agent", "QEMU 7.2", &args));
        let others = [
            snapshot_key("img2", 10, "agent", "QEMU 7.2", &args),
            snapshot_key("img", 11, "agent", "QEMU 7.2", &args),
            snapshot_key("img", 10, "agent2", "QEMU 7.2", &args),
            snapshot_key("img", 10, "agent", "QEMU 8.0", &args),
            snapshot_key(
                "img",
                10,
                "agent",
                "QEMU 7.2",
                &["-m".into(), "512M".into()],
            ),
            // Arguments are length-delimited: moving a boundary changes the key.
            snapshot_key(
                "img",
                10,
                "agent",
                "QEMU 7.2",
                &["-m2".into(), "56M".into()],
            ),
        ];
        for other in others {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn save_and_restore_arguments_differ_only_in_socket_paths() {
        let guest = QemuGuest {
            kernel: "6.1".into(),
            arch: "x86_64".into(),
            vmlinux: "/img/vmlinux".into(),
            initramfs: "/img/ready/initramfs-x.cpio".into(),
            memory_mib: 256,
            extra_cmdline: String::new(),
            accel: super::super::accel::Accel::Tcg,
            limits: super::super::GuestLimits {
                boot: Duration::from_secs(1),
                test: Duration::from_secs(1),
                guest: Duration::from_secs(1),
            },
            work_dir: "/w".into(),
        };
        let paths = |run: &'static str| RunPaths {
            results: Path::new(run).join("r").leak(),
            qmp: Path::new(run).join("q").leak(),
            region: Path::new(run).join("m").leak(),
        };
        let a = snapshot_args(&guest, &paths("/s1"));
        let b = snapshot_args(&guest, &paths("/s2"));
        assert_eq!(a.len(), b.len());
        let differing: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).collect();
        assert_eq!(differing.len(), 3, "{differing:?}");
        assert!(a
            .join(" ")
            .contains("ivshmem-plain,memdev=bundle,master=on"));
        assert!(differing.iter().all(|(x, _)| x.contains("/s1/")));
        assert!(a.join(" ").contains("-initrd /img/ready/initramfs-x.cpio"));
    }

    #[test]
    fn a_damaged_state_file_is_refused_before_qemu_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state"), b"state bytes").unwrap();
        let (bytes, crc) = crc32_file(&dir.path().join("state")).unwrap();
        let meta = SnapshotMeta {
            format: SNAPSHOT_FORMAT,
            key: "k".into(),
            ready: ready("b", "r"),
            state_bytes: bytes,
            state_crc32: crc,
            qemu_version: "q".into(),
            save_ms: 1,
        };
        std::fs::write(
            dir.path().join("meta.json"),
            serde_json::to_vec(&meta).unwrap(),
        )
        .unwrap();
        assert!(load_existing(dir.path(), "k", true).unwrap().is_some());
        assert!(load_existing(dir.path(), "other", true).is_err());
        std::fs::write(dir.path().join("state"), b"state bytez").unwrap();
        // Same size: only the checksum tells, when asked for.
        assert!(load_existing(dir.path(), "k", false).unwrap().is_some());
        let why = load_existing(dir.path(), "k", true).err().unwrap();
        assert!(why.contains("damaged"), "{why}");
        std::fs::write(dir.path().join("state"), b"short").unwrap();
        let why = load_existing(dir.path(), "k", false).err().unwrap();
        assert!(why.contains(DAMAGED), "{why}");
        assert!(load_existing(&dir.path().join("none"), "k", true)
            .unwrap()
            .is_none());
    }
}
