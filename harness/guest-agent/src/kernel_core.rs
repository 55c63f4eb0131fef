//! The kernel as a third oracle (`--kernel-core`): a program our engine relocated and the
//! kernel loaded is loaded once more with its instructions as linked, before CO-RE, and its
//! relocations as `core_relos` (with the object's BTF, func_info and line_info, which the kernel
//! needs for it), so the kernel relocates it itself (5.17+). The kernel's translations of both
//! loads are compared up to map ids.

use std::os::fd::{AsRawFd, OwnedFd};

use core_reloc::externs::ExternResolution;
use core_reloc::relocate::KERNEL_CORE_RELO_SIZE;
use core_reloc::RelocatedProgram;
use guest_protocol::{KernelCoreOutcome, KernelCoreProgram, Xlated};

/// Why nothing can be compared on this kernel: it does not take `core_relos`.
pub struct Unsupported(pub String);

/// Compares one program our loader loaded as `ours` from `request`; `relocated` is what our
/// engine made of it. The program is linked again from `object`, not relocated, and its map fds
/// and externs patched as ours were.
pub fn compare_program(
    object: &core_reloc::Object,
    relocated: &RelocatedProgram,
    request: &bpf_loader::ProgramLoad,
    ours: &OwnedFd,
    map_fds: &[i32],
    resolution: &ExternResolution,
) -> Result<KernelCoreProgram, Unsupported> {
    let relocations = relocated.core.len() as u32;
    let done = |outcome| {
        Ok(KernelCoreProgram {
            program: relocated.name.clone(),
            relocations,
            outcome,
        })
    };
    if relocations == 0 {
        return done(KernelCoreOutcome::NotCompared {
            reason: "no CO-RE relocation: nothing for the kernel to relocate".into(),
        });
    }
    if request.btf_fd.is_none() || request.func_info.is_empty() {
        return done(KernelCoreOutcome::NotCompared {
            reason: "loaded without the object's BTF or func_info, which the kernel's CO-RE needs"
                .into(),
        });
    }
    let linked = match core_reloc::relocate::link_program(object, &relocated.name) {
        Ok(linked) => linked,
        Err(e) => {
            return done(KernelCoreOutcome::NotCompared {
                reason: format!("the program does not link again: {e}"),
            })
        }
    };
    let core_relos = linked.kernel_core_relos();
    let mut unrelocated = linked.program;
    if let Err(e) = unrelocated
        .patch_map_fds(map_fds)
        .and_then(|()| unrelocated.patch_externs(resolution))
    {
        return done(KernelCoreOutcome::NotCompared {
            reason: format!("the unrelocated copy could not be patched: {e}"),
        });
    }
    let kernel_request = bpf_loader::ProgramLoad {
        insns: &unrelocated.insns,
        core_relos: &core_relos,
        core_relo_rec_size: KERNEL_CORE_RELO_SIZE,
        ..request.clone()
    };
    let theirs = match bpf_loader::load_program(&kernel_request) {
        Ok(fd) => fd,
        // The attr is longer than this kernel's and its tail is not zero: no core_relos here.
        Err(e) if e.errno() == Some(libc::E2BIG) => {
            return Err(Unsupported(format!(
                "this kernel does not relocate programs itself (BPF_PROG_LOAD with core_relos, \
                 5.17+): {}",
                e.headline()
            )))
        }
        Err(e) => {
            let last = e
                .log()
                .and_then(|log| {
                    log.lines()
                        .rev()
                        .find(|l| !l.trim().is_empty() && !l.starts_with("processed "))
                })
                .map(|l| format!(" | {l}"))
                .unwrap_or_default();
            return done(KernelCoreOutcome::KernelRefused {
                reason: format!("{}{last}", e.headline()),
            });
        }
    };
    let xlated = |fd: &OwnedFd| bpf_loader::prog_xlated_insns(fd.as_raw_fd());
    match (xlated(ours), xlated(&theirs)) {
        (Ok(a), Ok(b)) => {
            let (x, y) = (Xlated::from_raw(&a), Xlated::from_raw(&b));
            if x.sha256 == y.sha256 {
                done(KernelCoreOutcome::Identical { insns: x.insns })
            } else {
                done(KernelCoreOutcome::Differs {
                    ours: Xlated::with_bytes(&a),
                    kernel: Xlated::with_bytes(&b),
                })
            }
        }
        (Err(e), _) | (_, Err(e)) => done(KernelCoreOutcome::NotCompared {
            reason: format!("translated instructions not readable: {e}"),
        }),
    }
}
