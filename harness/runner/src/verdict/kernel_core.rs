//! `<kernel>::<object>::kernel-core` trials (`--kernel-core`): the kernel as a third oracle.
//! Each program the harness loaded was loaded again, unrelocated, with its CO-RE relocations as
//! `core_relos`, so the kernel relocated it itself; the trial passes when every such program
//! translated as ours did (up to map ids). A kernel that cannot relocate by itself (before
//! 5.17) reports it unsupported. Pure, like the other verdicts.

use std::fmt::Write as _;

use guest_protocol::libbpf::describe_difference;
use guest_protocol::{KernelCoreObject, KernelCoreOutcome};

use crate::guest::{GuestRun, GuestStatus};
use crate::verdict::{Trial, TrialOutcome};

pub fn trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::kernel-core")
}

/// Programs the kernel relocated as ours did, and one text per disagreement.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub identical: usize,
    pub not_compared: usize,
    pub disagreements: Vec<String>,
}

pub fn tally(object: &KernelCoreObject) -> Tally {
    let mut t = Tally::default();
    for p in &object.programs {
        let label = format!(
            "program {} ({} CO-RE relocations)",
            p.program, p.relocations
        );
        match &p.outcome {
            KernelCoreOutcome::Identical { .. } => t.identical += 1,
            KernelCoreOutcome::NotCompared { .. } => t.not_compared += 1,
            KernelCoreOutcome::KernelRefused { reason } => t.disagreements.push(format!(
                "{label}: ours loaded; the kernel's own relocation of it was refused: {reason}"
            )),
            KernelCoreOutcome::Differs { ours, kernel } => {
                let mut text = format!(
                    "{label}: the kernel relocated it to other instructions (ours {}, the \
                     kernel's {}; up to map ids)",
                    ours.insns, kernel.insns
                );
                match ours.bytes.as_deref().zip(kernel.bytes.as_deref()) {
                    Some((a, b)) => match describe_difference(a, b) {
                        // The shared renderer calls the other side libbpf; here it is the kernel.
                        Some(diff) => {
                            let _ = write!(text, "\n{}", diff.replace("libbpf", "kernel"));
                        }
                        None => {
                            let _ = write!(
                                text,
                                "\n(the first {} instructions are equal; sha256 ours {}, kernel {})",
                                a.len().min(b.len()) / 8,
                                ours.sha256,
                                kernel.sha256
                            );
                        }
                    },
                    None => {
                        let _ = write!(
                            text,
                            "\n(sha256 ours {}, kernel {})",
                            ours.sha256, kernel.sha256
                        );
                    }
                }
                t.disagreements.push(text);
            }
        }
    }
    t
}

pub fn judge(run: &GuestRun, object: &str) -> Trial {
    let compared = run.kernel_core.iter().find(|o| o.object == object);
    let outcome = match compared {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(format!(
            "kernel {}: guest ended with {} before the kernel relocated {object}",
            run.kernel,
            run.status.describe()
        )),
        None => TrialOutcome::Failed(format!(
            "kernel {}: the agent reported no kernel CO-RE comparison of {object}",
            run.kernel
        )),
        Some(o) => match &o.unsupported {
            Some(reason) => TrialOutcome::Unsupported(format!("kernel {}: {reason}", run.kernel)),
            None => {
                let t = tally(o);
                if t.disagreements.is_empty() && t.identical == 0 {
                    // Nothing was checked: not a pass.
                    TrialOutcome::Unsupported(format!(
                        "kernel {}: object {object}: nothing for the kernel to relocate (no \
                         loaded program has CO-RE relocations)",
                        run.kernel
                    ))
                } else if t.disagreements.is_empty() {
                    TrialOutcome::Passed
                } else {
                    TrialOutcome::Failed(format!(
                        "kernel {}: object {object}: the kernel's own CO-RE disagrees with ours \
                         ({} programs identical, {} not compared):\n{}",
                        run.kernel,
                        t.identical,
                        t.not_compared,
                        t.disagreements.join("\n")
                    ))
                }
            }
        },
    };
    Trial {
        name: trial_name(&run.kernel, object),
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

pub fn judge_all(runs: &[GuestRun], objects: &[String]) -> Vec<Trial> {
    runs.iter()
        .flat_map(|run| objects.iter().map(|o| judge(run, o)))
        .collect()
}

/// Per kernel: programs relocated identically by the kernel, disagreements, or why none.
pub fn figures(runs: &[GuestRun]) -> String {
    let mut text = String::new();
    for run in runs.iter().filter(|r| !r.kernel_core.is_empty()) {
        if let Some(reason) = run.kernel_core.iter().find_map(|o| o.unsupported.as_ref()) {
            let _ = writeln!(
                text,
                "kernel CO-RE on {}: unsupported ({reason})",
                run.kernel
            );
            continue;
        }
        let mut all = Tally::default();
        for o in &run.kernel_core {
            let t = tally(o);
            all.identical += t.identical;
            all.not_compared += t.not_compared;
            all.disagreements.extend(t.disagreements);
        }
        let _ = writeln!(
            text,
            "kernel CO-RE on {}: {} objects: {} programs relocated by the kernel as by ours, {} \
             disagreements, {} not compared (no CO-RE relocation, or ours did not load)",
            run.kernel,
            run.kernel_core.len(),
            all.identical,
            all.disagreements.len(),
            all.not_compared
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::{KernelCoreProgram, Xlated};

    fn program(name: &str, outcome: KernelCoreOutcome) -> KernelCoreProgram {
        KernelCoreProgram {
            program: name.into(),
            relocations: 2,
            outcome,
        }
    }

    const EXIT0: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    const EXIT1: [u8; 16] = [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn identical_and_uncompared_programs_pass_a_difference_names_the_program() {
        let o = KernelCoreObject {
            object: "o".into(),
            unsupported: None,
            programs: vec![
                program("a", KernelCoreOutcome::Identical { insns: 2 }),
                program(
                    "b",
                    KernelCoreOutcome::NotCompared {
                        reason: "no CO-RE relocation".into(),
                    },
                ),
            ],
        };
        assert_eq!(
            tally(&o),
            Tally {
                identical: 1,
                not_compared: 1,
                disagreements: vec![]
            }
        );
        let mut bad = o.clone();
        bad.programs.push(program(
            "c",
            KernelCoreOutcome::Differs {
                ours: Xlated::with_bytes(&EXIT0),
                kernel: Xlated::with_bytes(&EXIT1),
            },
        ));
        bad.programs.push(program(
            "d",
            KernelCoreOutcome::KernelRefused {
                reason: "EINVAL".into(),
            },
        ));
        let t = tally(&bad);
        assert_eq!(t.disagreements.len(), 2, "{t:?}");
        assert!(t.disagreements[0].starts_with("program c (2 CO-RE relocations)"));
        assert!(
            t.disagreements[0].contains("first difference at instruction 0")
                && t.disagreements[0].contains("> kernel"),
            "{}",
            t.disagreements[0]
        );
        assert!(t.disagreements[1].contains("refused: EINVAL"));
    }
}
