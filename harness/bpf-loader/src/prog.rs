//! Programs: load (with the verifier log on failure), info, test run.

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};

use crate::attr::{ProgInfoRaw, ProgLoadAttr, TestRunAttr};
use crate::consts::*;
use crate::error::BpfError;
use crate::map::obj_info;
use crate::sys::{bpf, bpf_fd, name_from_bytes, obj_name_bytes, ptr_u64, slice_u64, AsBpfFd};

/// Size of one `struct bpf_insn`.
pub const INSN_SIZE: usize = 8;
/// First verifier-log buffer on a failed load; one larger retry on `ENOSPC` (see [`load_program`]).
const FIRST_LOG_SIZE: usize = 256 * 1024;
/// Largest verifier-log buffer tried.
pub const MAX_LOG_SIZE: usize = 16 * 1024 * 1024;

/// What `BPF_PROG_LOAD` needs. Build with `..Default::default()` for the rarely used fields.
#[derive(Debug, Clone)]
pub struct ProgramLoad<'a> {
    /// Used for the kernel name (sanitized, 15 bytes) and, in full, for error messages.
    pub name: &'a str,
    pub program_type: u32,
    /// Needed at load time by some types (see [`crate::probe::program_type_supported`]).
    pub expected_attach_type: Option<u32>,
    /// `struct bpf_insn` array, 8 bytes per instruction, map fds already in the `ld_imm64`s.
    pub insns: &'a [u8],
    pub license: &'a str,
    /// Ignored by kernels since 5.0 (kprobes used to need `LINUX_VERSION_CODE`).
    pub kernel_version: u32,
    /// The program's BTF (from [`crate::load_btf`]), required with func/line info.
    pub btf_fd: Option<RawFd>,
    /// `.BTF.ext` func_info records with instruction offsets in instructions, not bytes.
    pub func_info: &'a [u8],
    pub func_info_rec_size: u32,
    pub line_info: &'a [u8],
    pub line_info_rec_size: u32,
    /// Kernel BTF type id of the attach target (tracing, LSM, EXT, struct_ops).
    pub attach_btf_id: Option<u32>,
    /// 5.11+: BTF object fd of the module holding `attach_btf_id` (None: vmlinux).
    pub attach_btf_obj_fd: Option<RawFd>,
    /// For `EXT`/`fentry` on another BPF program: that program's fd.
    pub attach_prog_fd: Option<RawFd>,
    pub prog_flags: u32,
    /// 5.17+: `struct bpf_core_relo` records for the kernel's own CO-RE relocation
    /// (needs `btf_fd` and func_info).
    pub core_relos: &'a [u8],
    pub core_relo_rec_size: u32,
    /// 5.14+: fds referenced by `BPF_PSEUDO_MAP_IDX` instructions.
    pub fd_array: &'a [RawFd],
    /// For offloaded/dev-bound programs; 0 otherwise.
    pub prog_ifindex: u32,
}

impl Default for ProgramLoad<'_> {
    fn default() -> Self {
        ProgramLoad {
            name: "",
            program_type: BPF_PROG_TYPE_UNSPEC,
            expected_attach_type: None,
            insns: &[],
            license: "GPL",
            kernel_version: 0,
            btf_fd: None,
            func_info: &[],
            func_info_rec_size: 0,
            line_info: &[],
            line_info_rec_size: 0,
            attach_btf_id: None,
            attach_btf_obj_fd: None,
            attach_prog_fd: None,
            prog_flags: 0,
            core_relos: &[],
            core_relo_rec_size: 0,
            fd_array: &[],
            prog_ifindex: 0,
        }
    }
}

fn records(what: &str, name: &str, data: &[u8], rec_size: u32) -> Result<u32, BpfError> {
    if data.is_empty() {
        return Ok(0);
    }
    if rec_size == 0 || data.len() % rec_size as usize != 0 {
        return Err(BpfError::invalid(
            format!("BPF_PROG_LOAD of program {name:?}"),
            format!(
                "{what} of {} bytes is not a whole number of {rec_size}-byte records",
                data.len()
            ),
        ));
    }
    Ok((data.len() / rec_size as usize) as u32)
}

/// `BPF_PROG_LOAD`. The first attempt runs without a verifier log (fast); if it fails, the
/// load is repeated with log level 1 into a 256 KiB buffer, once more with a larger one (up to
/// 16 MiB) if the log did not fit, but never again for a program the verifier could not finish
/// (`E2BIG`); the error is [`BpfError::Rejected`] with the first attempt's errno and the log
/// (cut if it did not fit). `EAGAIN` (the verifier gave up for now) is retried a few times.
pub fn load_program(req: &ProgramLoad) -> Result<OwnedFd, BpfError> {
    load_program_inner(req, 0, None, &mut |_, _| {}).map(|(fd, _)| fd)
}

/// [`load_program`], calling `before_log_reload(time the first attempt took, its errno)` when
/// the log-less attempt failed and the load is about to be repeated for the verifier's log: a
/// caller watched by a silence timeout can say it is still alive, since the repeat can take as
/// long as the first verification (or, with logging, much longer: seen on 5.10).
///
/// With `log_budget`, each log reload is interrupted after that long (`SIGALRM`, process-wide:
/// for single-threaded callers such as the guest agent) and the error carries the head of the
/// log the verifier had written by then.
pub fn load_program_reporting(
    req: &ProgramLoad,
    log_budget: Option<std::time::Duration>,
    before_log_reload: &mut dyn FnMut(std::time::Duration, i32),
) -> Result<OwnedFd, BpfError> {
    load_program_inner(req, 0, log_budget, before_log_reload).map(|(fd, _)| fd)
}

/// [`load_program`] with a verifier log on success too: `log_level` 1 or 2 for the verifier's
/// trace, [`BPF_LOG_STATS`] (4) for its statistics (`processed N insns ...`).
pub fn load_program_with_log(
    req: &ProgramLoad,
    log_level: u32,
) -> Result<(OwnedFd, String), BpfError> {
    if log_level == 0 {
        return Err(BpfError::invalid(
            format!("BPF_PROG_LOAD of program {:?}", req.name),
            "load_program_with_log needs a non-zero log level",
        ));
    }
    load_program_inner(req, log_level, None, &mut |_, _| {})
}

/// The `BPF_PROG_LOAD` attribute for `req`, after checking what the kernel would refuse
/// without saying why (a partial instruction, a record size that does not divide its section).
fn prog_load_attr(req: &ProgramLoad, license: &CString) -> Result<ProgLoadAttr, BpfError> {
    let context = || format!("BPF_PROG_LOAD of program {:?}", req.name);
    if req.insns.is_empty() || req.insns.len() % INSN_SIZE != 0 {
        return Err(BpfError::invalid(
            context(),
            format!(
                "{} bytes of instructions is not a non-empty multiple of 8",
                req.insns.len()
            ),
        ));
    }
    if req.attach_btf_obj_fd.is_some() && req.attach_prog_fd.is_some() {
        return Err(BpfError::invalid(
            context(),
            "attach_btf_obj_fd and attach_prog_fd share one field; give one",
        ));
    }
    let func_info_cnt = records("func_info", req.name, req.func_info, req.func_info_rec_size)?;
    let line_info_cnt = records("line_info", req.name, req.line_info, req.line_info_rec_size)?;
    let core_relo_cnt = records(
        "core_relos",
        req.name,
        req.core_relos,
        req.core_relo_rec_size,
    )?;

    let mut attr = ProgLoadAttr {
        prog_type: req.program_type,
        insn_cnt: (req.insns.len() / INSN_SIZE) as u32,
        insns: ptr_u64(req.insns.as_ptr()),
        license: ptr_u64(license.as_ptr()),
        kern_version: req.kernel_version,
        prog_flags: req.prog_flags,
        prog_name: obj_name_bytes(req.name),
        prog_ifindex: req.prog_ifindex,
        expected_attach_type: req.expected_attach_type.unwrap_or(0),
        prog_btf_fd: req.btf_fd.unwrap_or(0) as u32,
        attach_btf_id: req.attach_btf_id.unwrap_or(0),
        attach_prog_or_btf_obj_fd: req.attach_btf_obj_fd.or(req.attach_prog_fd).unwrap_or(0) as u32,
        fd_array: slice_u64(req.fd_array),
        ..Default::default()
    };
    if func_info_cnt > 0 {
        attr.func_info_rec_size = req.func_info_rec_size;
        attr.func_info = ptr_u64(req.func_info.as_ptr());
        attr.func_info_cnt = func_info_cnt;
    }
    if line_info_cnt > 0 {
        attr.line_info_rec_size = req.line_info_rec_size;
        attr.line_info = ptr_u64(req.line_info.as_ptr());
        attr.line_info_cnt = line_info_cnt;
    }
    if core_relo_cnt > 0 {
        attr.core_relo_rec_size = req.core_relo_rec_size;
        attr.core_relos = ptr_u64(req.core_relos.as_ptr());
        attr.core_relo_cnt = core_relo_cnt;
    }
    Ok(attr)
}

fn load_program_inner(
    req: &ProgramLoad,
    log_level: u32,
    log_budget: Option<std::time::Duration>,
    before_log_reload: &mut dyn FnMut(std::time::Duration, i32),
) -> Result<(OwnedFd, String), BpfError> {
    // The license's C string must outlive every attempt: the attribute points into it.
    let license = CString::new(req.license).map_err(|_| {
        BpfError::invalid(
            format!("BPF_PROG_LOAD of program {:?}", req.name),
            "license contains a NUL byte",
        )
    })?;
    let mut attr = prog_load_attr(req, &license)?;
    let first_errno = if log_level == 0 {
        let started = std::time::Instant::now();
        match prog_load_retrying(&mut attr) {
            Ok(fd) => return Ok((fd, String::new())),
            Err(e) => {
                before_log_reload(started.elapsed(), e);
                e
            }
        }
    } else {
        0
    };

    // With a log. Each attempt re-runs the verifier, which for a program it cannot finish
    // (E2BIG: a million instructions processed) takes as long as the first one, so the number of
    // attempts is bounded: one for E2BIG, else at most two (the second with the size a 6.4+
    // kernel says it needed, or a larger buffer). A log that still does not fit is reported cut.
    let level = if log_level == 0 { 1 } else { log_level };
    let max_attempts = if first_errno == libc::E2BIG { 1 } else { 2 };
    let mut size = FIRST_LOG_SIZE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut buf = vec![0u8; size];
        let mut a = attr;
        a.log_level = level;
        a.log_size = size as u32;
        a.log_buf = ptr_u64(buf.as_mut_ptr());
        let started = std::time::Instant::now();
        let alarm = log_budget.and_then(crate::alarm::Alarm::arm);
        let result =
            prog_load_retrying_unless(&mut a, &|| alarm.is_some() && crate::alarm::Alarm::fired());
        let interrupted = alarm.is_some() && crate::alarm::Alarm::fired();
        drop(alarm);
        let mut log = log_text(&buf);
        match result {
            Ok(fd) => return Ok((fd, log)),
            Err(libc::EAGAIN | libc::EINTR) if interrupted => {
                log.push_str(&format!(
                    "\n[harness: the verifier was stopped after {} ms of re-verifying for this \
                     log; above is the head of its log]",
                    started.elapsed().as_millis()
                ));
                return Err(BpfError::Rejected {
                    program: req.name.to_string(),
                    errno: if first_errno != 0 {
                        first_errno
                    } else {
                        libc::EAGAIN
                    },
                    verifier_log: log,
                    log_truncated: true,
                });
            }
            Err(libc::ENOSPC) if attempts < max_attempts && size < MAX_LOG_SIZE => {
                // 6.4+ says how much it needed; older kernels just fill the buffer.
                let wanted = a.log_true_size as usize;
                size = if wanted > size {
                    wanted.saturating_add(1)
                } else {
                    size.saturating_mul(16)
                }
                .min(MAX_LOG_SIZE);
            }
            Err(errno) => {
                let truncated = errno == libc::ENOSPC;
                return Err(BpfError::Rejected {
                    program: req.name.to_string(),
                    errno: if first_errno != 0 { first_errno } else { errno },
                    verifier_log: log,
                    log_truncated: truncated,
                });
            }
        }
    }
}

fn prog_load_retrying(attr: &mut ProgLoadAttr) -> Result<OwnedFd, i32> {
    prog_load_retrying_unless(attr, &|| false)
}

/// `EAGAIN` (the verifier gave up for now) is retried a few times, unless `stopped` says the
/// caller's own alarm caused it.
fn prog_load_retrying_unless(
    attr: &mut ProgLoadAttr,
    stopped: &dyn Fn() -> bool,
) -> Result<OwnedFd, i32> {
    let mut tries = 0;
    loop {
        match bpf_fd(BPF_PROG_LOAD, attr) {
            Err(libc::EAGAIN) if tries < 5 && !stopped() => tries += 1,
            r => return r,
        }
    }
}

fn log_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// What the kernel reports about a program (`BPF_OBJ_GET_INFO_BY_FD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub program_type: u32,
    pub id: u32,
    /// The kernel's hash of the program's instructions.
    pub tag: [u8; 8],
    pub jited_len: u32,
    pub xlated_len: u32,
    pub name: String,
    pub nr_map_ids: u32,
}

/// `BPF_OBJ_GET_INFO_BY_FD` on a program.
pub fn prog_info(fd: impl AsBpfFd) -> Result<ProgInfo, BpfError> {
    let fd = fd.as_bpf_fd();
    let mut raw = ProgInfoRaw::default();
    obj_info(fd, &mut raw).map_err(|e| {
        BpfError::syscall(BPF_OBJ_GET_INFO_BY_FD, Some(format!("program fd {fd}")), e)
    })?;
    Ok(ProgInfo {
        program_type: raw.prog_type,
        id: raw.id,
        tag: raw.tag,
        jited_len: raw.jited_prog_len,
        xlated_len: raw.xlated_prog_len,
        name: name_from_bytes(&raw.name),
        nr_map_ids: raw.nr_map_ids,
    })
}

/// Most translated instructions read back from one program: the verifier's own limit on a
/// program's size (1M instructions), plus room for the instructions its fixups add.
pub const MAX_XLATED_INSNS: usize = 2 << 20;

/// The program as the kernel runs it after verification (`xlated_prog_insns` of
/// `BPF_OBJ_GET_INFO_BY_FD`), 8 bytes per instruction; map references read as map ids.
pub fn prog_xlated_insns(fd: impl AsBpfFd) -> Result<Vec<u8>, BpfError> {
    let fd = fd.as_bpf_fd();
    let err = |e| BpfError::syscall(BPF_OBJ_GET_INFO_BY_FD, Some(format!("program fd {fd}")), e);
    let mut raw = ProgInfoRaw::default();
    obj_info(fd, &mut raw).map_err(err)?;
    let len = raw.xlated_prog_len as usize;
    if len > MAX_XLATED_INSNS * INSN_SIZE {
        return Err(err(libc::E2BIG));
    }
    let mut insns = vec![0u8; len];
    let mut raw = ProgInfoRaw {
        xlated_prog_len: len as u32,
        xlated_prog_insns: insns.as_mut_ptr() as u64,
        ..Default::default()
    };
    obj_info(fd, &mut raw).map_err(err)?;
    // The kernel reports the full length; it wrote at most what we offered.
    insns.truncate((raw.xlated_prog_len as usize).min(len));
    Ok(insns)
}

fn prog_label(fd: RawFd) -> String {
    let mut raw = ProgInfoRaw::default();
    match obj_info(fd, &mut raw) {
        Ok(_) => format!(
            "program {:?} ({}, fd {fd})",
            name_from_bytes(&raw.name),
            prog_type_name(raw.prog_type)
        ),
        Err(_) => format!("program fd {fd}"),
    }
}

/// Input of `BPF_PROG_TEST_RUN`. Build with `..Default::default()`.
#[derive(Debug, Clone, Default)]
pub struct TestRun<'a> {
    /// The packet (or nothing for raw tracepoint/syscall programs).
    pub data_in: &'a [u8],
    /// Output buffer for the packet after the run. 0 means: no buffer if `data_in` is empty,
    /// else `data_in.len() + 256` (room for `bpf_xdp_adjust_tail`/`skb_change_tail`). Too small
    /// is not fatal: on `ENOSPC` the run is repeated once with the size the kernel reported.
    pub data_size_out: u32,
    /// The context (`__sk_buff`, `xdp_md` (5.15+), raw_tp args, syscall args).
    pub ctx_in: Option<&'a [u8]>,
    /// Output buffer for the context; 0 = do not ask for it (`ctx_out` is then `None`).
    pub ctx_size_out: u32,
    /// Runs; the kernel treats 0 as 1. `duration_ns` is the mean over the runs.
    pub repeat: u32,
    /// [`BPF_F_TEST_RUN_ON_CPU`] (with [`TestRunExtra::cpu`]), [`BPF_F_TEST_XDP_LIVE_FRAMES`]...
    pub flags: u32,
}

/// The rarely needed `BPF_PROG_TEST_RUN` fields, for [`test_run_with`].
#[derive(Debug, Clone, Default)]
pub struct TestRunExtra {
    /// CPU for [`BPF_F_TEST_RUN_ON_CPU`].
    pub cpu: u32,
    /// 5.18+, live frames only.
    pub batch_size: u32,
}

/// Output of `BPF_PROG_TEST_RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (`XDP_PASS`, `TC_ACT_OK`, bytes kept for socket filters...).
    pub retval: u32,
    /// The packet after the run, cut to the size the kernel reported. For skb program types
    /// that do not see L2 (socket filter, cgroup_skb) the kernel pulls the 14-byte Ethernet
    /// header before the run and hands it back zeroed.
    pub data_out: Vec<u8>,
    /// The context after the run, if `ctx_size_out` asked for it.
    pub ctx_out: Option<Vec<u8>>,
    /// Mean run time in ns as the kernel measured it.
    pub duration_ns: u32,
}

/// `BPF_PROG_TEST_RUN`. Errors keep the kernel's errno ([`BpfError::errno`]): `ENOTSUPP` (524)
/// or `EOPNOTSUPP` when the program type has no test run on this kernel
/// ([`BpfError::is_not_supported`]), `EINVAL` when it rejects the input (e.g. `xdp_md` context
/// before 5.15, data for a raw tracepoint).
pub fn test_run(prog_fd: impl AsBpfFd, run: &TestRun) -> Result<TestRunOutput, BpfError> {
    test_run_with(prog_fd, run, &TestRunExtra::default())
}

/// [`test_run`] with the rarely needed fields.
pub fn test_run_with(
    prog_fd: impl AsBpfFd,
    run: &TestRun,
    extra: &TestRunExtra,
) -> Result<TestRunOutput, BpfError> {
    let fd = prog_fd.as_bpf_fd();
    let mut data_cap = match (run.data_size_out, run.data_in.is_empty()) {
        (0, true) => 0,
        (0, false) => run.data_in.len() + 256,
        (n, _) => n as usize,
    };
    let mut ctx_cap = run.ctx_size_out as usize;
    let mut retried = false;
    loop {
        let mut data_out = vec![0u8; data_cap];
        let mut ctx_out = vec![0u8; ctx_cap];
        let ctx_in = run.ctx_in.unwrap_or(&[]);
        let mut attr = TestRunAttr {
            prog_fd: fd as u32,
            data_size_in: run.data_in.len() as u32,
            data_size_out: data_cap as u32,
            data_in: slice_u64(run.data_in),
            data_out: if data_cap > 0 {
                ptr_u64(data_out.as_mut_ptr())
            } else {
                0
            },
            repeat: run.repeat,
            ctx_size_in: ctx_in.len() as u32,
            ctx_size_out: ctx_cap as u32,
            ctx_in: slice_u64(ctx_in),
            ctx_out: if ctx_cap > 0 {
                ptr_u64(ctx_out.as_mut_ptr())
            } else {
                0
            },
            flags: run.flags,
            cpu: extra.cpu,
            batch_size: extra.batch_size,
            ..Default::default()
        };
        match bpf(BPF_PROG_TEST_RUN, &mut attr) {
            Ok(_) => {
                data_out.truncate(attr.data_size_out as usize);
                ctx_out.truncate(attr.ctx_size_out as usize);
                return Ok(TestRunOutput {
                    retval: attr.retval,
                    data_out,
                    ctx_out: (ctx_cap > 0).then_some(ctx_out),
                    duration_ns: attr.duration,
                });
            }
            Err(libc::ENOSPC) if !retried => {
                // The kernel wrote back the sizes it wanted to copy.
                retried = true;
                let (d, c) = (attr.data_size_out as usize, attr.ctx_size_out as usize);
                if d <= data_cap && c <= ctx_cap {
                    return Err(BpfError::syscall(
                        BPF_PROG_TEST_RUN,
                        Some(prog_label(fd)),
                        libc::ENOSPC,
                    ));
                }
                if data_cap > 0 {
                    data_cap = data_cap.max(d);
                }
                if ctx_cap > 0 {
                    ctx_cap = ctx_cap.max(c);
                }
            }
            Err(e) => {
                return Err(BpfError::syscall(
                    BPF_PROG_TEST_RUN,
                    Some(prog_label(fd)),
                    e,
                ))
            }
        }
    }
}

/// `BPF_OBJ_PIN`: pins a map, program or link under bpffs.
pub fn obj_pin(fd: impl AsBpfFd, path: &str) -> Result<(), BpfError> {
    let fd = fd.as_bpf_fd();
    let c = CString::new(path)
        .map_err(|_| BpfError::invalid(format!("BPF_OBJ_PIN {path:?}"), "path contains NUL"))?;
    let mut attr = crate::attr::ObjAttr {
        pathname: ptr_u64(c.as_ptr()),
        bpf_fd: fd as u32,
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr)
        .map(|_| ())
        .map_err(|e| BpfError::syscall(BPF_OBJ_PIN, Some(format!("{path:?} (fd {fd})")), e))
}

/// `BPF_OBJ_GET`: opens a pinned object.
pub fn obj_get(path: &str) -> Result<OwnedFd, BpfError> {
    let c = CString::new(path)
        .map_err(|_| BpfError::invalid(format!("BPF_OBJ_GET {path:?}"), "path contains NUL"))?;
    let mut attr = crate::attr::ObjAttr {
        pathname: ptr_u64(c.as_ptr()),
        ..Default::default()
    };
    bpf_fd(BPF_OBJ_GET, &mut attr)
        .map_err(|e| BpfError::syscall(BPF_OBJ_GET, Some(format!("{path:?}")), e))
}
