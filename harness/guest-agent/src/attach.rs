//! Attaching a loaded tracing program where its section says, the way libbpf's auto-attach
//! does: raw tracepoints by name, BTF-targeted programs (tp_btf, fentry/fexit/fmod_ret, lsm)
//! through `BPF_RAW_TRACEPOINT_OPEN` on their load-time target, kprobes/kretprobes through the
//! kprobe PMU and tracepoints through their tracefs id (both perf events). Each attachment holds
//! one fd: dropping it detaches.
//!
//! A kernel that lacks the attach point (no such tracepoint or function, bpf LSM not active)
//! gives [`AttachError::Unsupported`]; every other failure is [`AttachError::Failed`].

use std::os::fd::OwnedFd;

use bpf_loader::consts::*;
use guest_protocol::{CaseOutcome, ProgramLoadOutcome};

use crate::load::LoadedObject;

/// A loaded program and where it attaches, checked before anything is attached.
pub struct Planned<'a> {
    name: &'a str,
    fd: &'a OwnedFd,
    point: AttachPoint,
}

/// Each named program of `object` with its attach point; a program that did not load or names
/// no attach point ends the case (unsupported where the kernel lacks its type or target).
pub fn plan<'a>(
    object: &'a LoadedObject,
    names: &'a [String],
) -> Result<Vec<Planned<'a>>, CaseOutcome> {
    let mut planned = Vec::with_capacity(names.len());
    for name in names {
        let Some((fd, program_type)) = object.programs.get(name) else {
            return Err(match object.not_loaded.get(name) {
                Some(ProgramLoadOutcome::Unsupported { reason }) => CaseOutcome::Unsupported {
                    reason: format!("program {name}: {reason}"),
                },
                Some(ProgramLoadOutcome::Rejected { error, .. }) => CaseOutcome::Error {
                    message: format!("program {name} was not loaded: {error}"),
                },
                _ => CaseOutcome::Error {
                    message: format!("the object has no program named {name}"),
                },
            });
        };
        let section = object.sections.get(name).map(String::as_str).unwrap_or("");
        let point = attach_point(section, *program_type).map_err(|m| CaseOutcome::Error {
            message: format!("program {name}: {m}"),
        })?;
        planned.push(Planned { name, fd, point });
    }
    Ok(planned)
}

/// What keeps the programs attached: each link, and the fresh load it attached if any.
pub struct Links {
    _links: Vec<(OwnedFd, Option<OwnedFd>)>,
}

/// Attaches every planned program, in order. A BTF-targeted program attaches a fresh load of
/// itself (see `LoadedObject::reloads`): 5.10 attaches a loaded tracing program only once.
pub fn attach_all(object: &LoadedObject, planned: &[Planned<'_>]) -> Result<Links, CaseOutcome> {
    let error = |message: String| CaseOutcome::Error { message };
    let mut links = Vec::with_capacity(planned.len());
    for Planned { name, fd, point } in planned {
        let fresh = match (point, object.reloads.get(*name)) {
            (AttachPoint::BtfTarget | AttachPoint::Lsm, Some(reload)) => {
                Some(reload.load(object.btf_fd.as_ref()).map_err(|e| {
                    error(format!("program {name}: loading it again to attach: {e}"))
                })?)
            }
            _ => None,
        };
        match attach(point, fresh.as_ref().unwrap_or(fd), name) {
            Ok(link) => links.push((link, fresh)),
            Err(AttachError::Unsupported(reason)) => {
                return Err(CaseOutcome::Unsupported {
                    reason: format!("program {name}: {reason}"),
                })
            }
            Err(AttachError::Failed(message)) => return Err(error(message)),
        }
    }
    Ok(Links { _links: links })
}

/// Why a program could not be attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachError {
    /// This kernel lacks what the program attaches to.
    Unsupported(String),
    /// The section names no attach point the agent knows how to use, or the kernel refused.
    Failed(String),
}

/// Where a program attaches, as its section names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachPoint {
    RawTracepoint(String),
    /// tp_btf, fentry, fexit, fmod_ret: the target came with `attach_btf_id` at load time.
    BtfTarget,
    /// lsm: like [`AttachPoint::BtfTarget`], and only where the bpf LSM is active.
    Lsm,
    Kprobe {
        function: String,
        retprobe: bool,
    },
    Tracepoint {
        category: String,
        name: String,
    },
}

/// The attach point of a program of `program_type` in section `section`.
pub fn attach_point(section: &str, program_type: u32) -> Result<AttachPoint, String> {
    let section = section.strip_prefix('?').unwrap_or(section);
    let rest = |prefixes: &[&str]| {
        prefixes
            .iter()
            .find_map(|p| section.strip_prefix(p))
            .filter(|r| !r.is_empty())
            .map(str::to_string)
    };
    match program_type {
        BPF_PROG_TYPE_RAW_TRACEPOINT | BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE => rest(&[
            "raw_tp/",
            "raw_tracepoint/",
            "raw_tp.w/",
            "raw_tracepoint.w/",
        ])
        .map(AttachPoint::RawTracepoint)
        .ok_or_else(|| format!("section {section:?} names no raw tracepoint (raw_tp/<name>)")),
        BPF_PROG_TYPE_TRACING => {
            if rest(&["tp_btf/", "fentry/", "fexit/", "fmod_ret/"]).is_some() {
                Ok(AttachPoint::BtfTarget)
            } else {
                Err(format!(
                    "section {section:?}: only tp_btf/, fentry/, fexit/ and fmod_ret/ tracing \
                     programs are attached for a workload"
                ))
            }
        }
        BPF_PROG_TYPE_LSM => rest(&["lsm/"])
            .map(|_| AttachPoint::Lsm)
            .ok_or_else(|| format!("section {section:?}: only lsm/<hook> programs are attached")),
        BPF_PROG_TYPE_KPROBE => {
            let (function, retprobe) = if let Some(f) = rest(&["kretprobe/"]) {
                (f, true)
            } else if let Some(f) = rest(&["kprobe/"]) {
                (f, false)
            } else {
                return Err(format!(
                    "section {section:?}: only kprobe/<function> and kretprobe/<function> are \
                     attached (no multi, uprobe or syscall-wrapper forms)"
                ));
            };
            if function.contains(['+', ':', '*', '?']) {
                return Err(format!(
                    "section {section:?}: a kprobe on an offset, a module or a pattern is not \
                     attached; name one function"
                ));
            }
            Ok(AttachPoint::Kprobe { function, retprobe })
        }
        BPF_PROG_TYPE_TRACEPOINT => {
            let Some(target) = rest(&["tracepoint/", "tp/"]) else {
                return Err(format!(
                    "section {section:?} names no tracepoint (tracepoint/<category>/<name>)"
                ));
            };
            match target.split_once('/') {
                Some((category, name)) if !category.is_empty() && !name.is_empty() => {
                    Ok(AttachPoint::Tracepoint {
                        category: category.to_string(),
                        name: name.to_string(),
                    })
                }
                _ => Err(format!(
                    "section {section:?}: a tracepoint is named <category>/<name>"
                )),
            }
        }
        other => Err(format!(
            "program type {} is not attached for a workload (tracing types: raw_tp, tp_btf, \
             fentry/fexit/fmod_ret, lsm, kprobe, tracepoint)",
            prog_type_name(other)
        )),
    }
}

/// Attaches program `fd` at `point`; the returned fd keeps it attached.
pub fn attach(point: &AttachPoint, fd: &OwnedFd, program: &str) -> Result<OwnedFd, AttachError> {
    let failed =
        |e: bpf_loader::BpfError| AttachError::Failed(format!("cannot attach {program}: {e}"));
    match point {
        AttachPoint::RawTracepoint(name) => match bpf_loader::raw_tracepoint_open(fd, Some(name)) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Err(AttachError::Unsupported(format!(
                "this kernel has no tracepoint {name} ({e})"
            ))),
            Err(e) if e.errno() == Some(libc::EINVAL) => Err(AttachError::Failed(format!(
                "cannot attach {program}: {e} (EINVAL: does the program read more arguments \
                 than the tracepoint has on this kernel?)"
            ))),
            other => other.map_err(failed),
        },
        AttachPoint::BtfTarget => bpf_loader::raw_tracepoint_open(fd, None).map_err(failed),
        AttachPoint::Lsm => {
            match active_lsms() {
                Ok(list) if !list.split(',').any(|l| l == "bpf") => {
                    return Err(AttachError::Unsupported(format!(
                        "the bpf LSM is not active on this kernel (active: {list}; it needs \
                         `bpf` in CONFIG_LSM or lsm=): lsm programs attach but never run"
                    )))
                }
                Ok(_) => {}
                // No securityfs (the host entry, unless mounted): whether lsm programs would run
                // cannot be known, so the case cannot be judged here.
                Err(e) => {
                    return Err(AttachError::Unsupported(format!(
                        "cannot tell whether the bpf LSM is active ({e})"
                    )))
                }
            }
            bpf_loader::raw_tracepoint_open(fd, None).map_err(failed)
        }
        AttachPoint::Kprobe { function, retprobe } => {
            match bpf_loader::attach_kprobe(fd, function, *retprobe) {
                Err(e) if e.errno() == Some(libc::ENOENT) => {
                    Err(AttachError::Unsupported(format!(
                    "this kernel cannot probe {function} (no such function or no kprobe PMU: {e})"
                )))
                }
                other => other.map_err(failed),
            }
        }
        AttachPoint::Tracepoint { category, name } => {
            match bpf_loader::attach_tracepoint(fd, category, name) {
                Err(e) if e.errno() == Some(libc::ENOENT) => Err(AttachError::Unsupported(
                    format!("this kernel has no tracepoint {category}/{name} ({e})"),
                )),
                other => other.map_err(failed),
            }
        }
    }
}

/// Where securityfs says which LSMs are active; the agent mounts it in a guest.
const LSM_LIST: &str = "/sys/kernel/security/lsm";

fn active_lsms() -> Result<String, String> {
    std::fs::read_to_string(LSM_LIST)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("{LSM_LIST}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_name_their_attach_points() {
        let ok = |s: &str, t: u32| attach_point(s, t).unwrap();
        assert_eq!(
            ok("raw_tp/sys_enter", BPF_PROG_TYPE_RAW_TRACEPOINT),
            AttachPoint::RawTracepoint("sys_enter".into())
        );
        assert_eq!(
            ok("fentry/do_sys_openat2", BPF_PROG_TYPE_TRACING),
            AttachPoint::BtfTarget
        );
        assert_eq!(
            ok("tp_btf/sys_enter", BPF_PROG_TYPE_TRACING),
            AttachPoint::BtfTarget
        );
        assert_eq!(ok("lsm/file_open", BPF_PROG_TYPE_LSM), AttachPoint::Lsm);
        assert_eq!(
            ok("kretprobe/do_sys_openat2", BPF_PROG_TYPE_KPROBE),
            AttachPoint::Kprobe {
                function: "do_sys_openat2".into(),
                retprobe: true
            }
        );
        assert_eq!(
            ok("?kprobe/tcp_v4_connect", BPF_PROG_TYPE_KPROBE),
            AttachPoint::Kprobe {
                function: "tcp_v4_connect".into(),
                retprobe: false
            }
        );
        assert_eq!(
            ok(
                "tracepoint/syscalls/sys_enter_openat",
                BPF_PROG_TYPE_TRACEPOINT
            ),
            AttachPoint::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_openat".into()
            }
        );
        assert_eq!(
            ok("tp/sched/sched_process_exec", BPF_PROG_TYPE_TRACEPOINT),
            AttachPoint::Tracepoint {
                category: "sched".into(),
                name: "sched_process_exec".into()
            }
        );
    }

    #[test]
    fn what_cannot_be_attached_says_why() {
        for (section, ty) in [
            ("raw_tp", BPF_PROG_TYPE_RAW_TRACEPOINT),
            ("iter/task", BPF_PROG_TYPE_TRACING),
            ("kprobe/f+0x10", BPF_PROG_TYPE_KPROBE),
            ("kprobe.multi/f*", BPF_PROG_TYPE_KPROBE),
            ("kprobe", BPF_PROG_TYPE_KPROBE),
            ("tracepoint/sys_enter_openat", BPF_PROG_TYPE_TRACEPOINT),
            ("xdp", BPF_PROG_TYPE_XDP),
        ] {
            assert!(attach_point(section, ty).is_err(), "{section}");
        }
    }
}
