//! `<kernel>::<object>::libbpf` trials (`--libbpf`): program by program, the harness and libbpf
//! in the same guest both loaded or both refused, and where both loaded, the kernel translated
//! both to the same instructions up to map ids. Pure, like the other verdicts.

use std::fmt::Write as _;

use guest_protocol::libbpf::describe_difference;
use guest_protocol::{LibbpfObject, ObjectLoaded, ProgramLoadOutcome};

use crate::guest::{GuestRun, GuestStatus};
use crate::verdict::{Trial, TrialOutcome};

pub fn libbpf_trial_name(kernel: &str, object: &str) -> String {
    format!("{kernel}::{object}::libbpf")
}

/// How the two loaders' verdicts on one object compare.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// Loaded by both with identical translated instructions.
    pub loaded_by_both: usize,
    pub refused_by_both: usize,
    /// One line (or a few) per program on which they disagree, naming it and both sides.
    pub disagreements: Vec<String>,
}

/// Our side of one program.
enum Ours {
    Loaded,
    Refused(String),
    Absent,
}

fn our_side(ours: Option<&ObjectLoaded>, program: &str, why_absent: &str) -> Ours {
    let Some(loaded) = ours else {
        return Ours::Refused(format!("the object did not load: {why_absent}"));
    };
    match loaded.programs.iter().find(|p| p.program == program) {
        None => Ours::Absent,
        Some(p) => match &p.outcome {
            ProgramLoadOutcome::Loaded { .. } => Ours::Loaded,
            ProgramLoadOutcome::Unsupported { reason } => {
                Ours::Refused(format!("unsupported: {reason}"))
            }
            ProgramLoadOutcome::Rejected {
                error,
                verifier_log,
            } => {
                let last = verifier_log
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty() && !l.starts_with("processed "))
                    .unwrap_or("");
                let headline = error.lines().next().unwrap_or("");
                Ours::Refused(if last.is_empty() {
                    headline.to_string()
                } else {
                    format!("{headline} | {last}")
                })
            }
        },
    }
}

/// Compares program by program. `ours` is None when the harness did not load the object at all
/// (`why_absent` says why): then every program counts as refused by us.
pub fn compare(ours: Option<&ObjectLoaded>, theirs: &LibbpfObject, why_absent: &str) -> Comparison {
    let mut names: Vec<(&str, &str)> = ours
        .map(|o| {
            o.programs
                .iter()
                .map(|p| (p.program.as_str(), p.section.as_str()))
                .collect()
        })
        .unwrap_or_default();
    for p in &theirs.programs {
        if !names.iter().any(|(n, _)| *n == p.program) {
            names.push((&p.program, &p.section));
        }
    }
    let mut result = Comparison::default();
    for (name, section) in names {
        let mine = our_side(ours, name, why_absent);
        let libbpf = theirs.programs.iter().find(|p| p.program == name);
        let label = format!("program {name} ({section})");
        match (mine, libbpf) {
            (Ours::Loaded, Some(l)) if l.loaded => {
                let ours_x = theirs.ours_xlated.get(name);
                match (ours_x, &l.xlated) {
                    (Some(a), Some(b)) if a.sha256 == b.sha256 => result.loaded_by_both += 1,
                    (Some(a), Some(b)) => {
                        let mut text = format!(
                            "{label}: both loaded, but the kernel translated them differently \
                             (ours {} instructions, libbpf {}; up to map ids)",
                            a.insns, b.insns
                        );
                        match a.bytes.as_deref().zip(b.bytes.as_deref()) {
                            Some((x, y)) => match describe_difference(x, y) {
                                Some(diff) => {
                                    let _ = write!(text, "\n{diff}");
                                }
                                None => {
                                    let _ = write!(
                                        text,
                                        "\n(the first {} instructions are equal; sha256 ours {}, \
                                         libbpf {})",
                                        x.len().min(y.len()) / 8,
                                        a.sha256,
                                        b.sha256
                                    );
                                }
                            },
                            None => {
                                let _ = write!(
                                    text,
                                    "\n(instructions not carried: more programs differ than the \
                                     agent shows; sha256 ours {}, libbpf {})",
                                    a.sha256, b.sha256
                                );
                            }
                        }
                        result.disagreements.push(text);
                    }
                    (a, b) => result.disagreements.push(format!(
                        "{label}: both loaded, but the translated instructions of {} are missing",
                        match (a, b) {
                            (None, None) => "both",
                            (None, Some(_)) => "ours",
                            _ => "libbpf's",
                        }
                    )),
                }
            }
            (Ours::Loaded, Some(l)) => result.disagreements.push(format!(
                "{label}: ours loaded; libbpf refused: {}",
                l.reason
            )),
            (Ours::Refused(why), Some(l)) if l.loaded => result
                .disagreements
                .push(format!("{label}: ours refused: {why}; libbpf loaded")),
            (Ours::Refused(_), Some(_)) => result.refused_by_both += 1,
            (Ours::Refused(_), None) if theirs.refused_object.is_some() => {
                result.refused_by_both += 1
            }
            (Ours::Loaded, None) => match &theirs.refused_object {
                Some(why) => result.disagreements.push(format!(
                    "{label}: ours loaded; libbpf refused the whole object: {why}"
                )),
                None => result.disagreements.push(format!(
                    "{label}: ours loaded; libbpf reported no such program"
                )),
            },
            (Ours::Refused(why), None) => result.disagreements.push(format!(
                "{label}: ours refused: {why}; libbpf reported no such program"
            )),
            (Ours::Absent, Some(l)) => result.disagreements.push(format!(
                "{label}: ours has no such program; libbpf {}",
                if l.loaded {
                    "loaded it".to_string()
                } else {
                    format!("refused it: {}", l.reason)
                }
            )),
            (Ours::Absent, None) => {}
        }
    }
    result
}

/// The `<kernel>::<object>::libbpf` trial of one run.
pub fn judge_libbpf(run: &GuestRun, object: &str) -> Trial {
    let theirs = run.libbpf.iter().find(|o| o.object == object);
    let ours = run.objects.iter().find(|o| o.object == object);
    let outcome = match theirs {
        None if run.status != GuestStatus::Completed => TrialOutcome::Failed(format!(
            "kernel {}: guest ended with {} before libbpf loaded {object}",
            run.kernel,
            run.status.describe()
        )),
        None => TrialOutcome::Failed(format!(
            "kernel {}: the agent reported no libbpf load of {object}",
            run.kernel
        )),
        Some(theirs) => {
            let why_absent = run
                .logs
                .iter()
                .find(|l| l.contains(object))
                .map_or("no report", String::as_str);
            let comparison = compare(ours, theirs, why_absent);
            let mut problems = comparison.disagreements.clone();
            if let Some(error) = &theirs.error {
                problems.insert(0, format!("no full verdict from libbpf: {error}"));
            }
            if problems.is_empty() {
                TrialOutcome::Passed
            } else {
                TrialOutcome::Failed(format!(
                    "kernel {}: object {object}: the harness and libbpf {} disagree ({} loaded \
                     by both, {} refused by both):\n{}",
                    run.kernel,
                    theirs.libbpf_version,
                    comparison.loaded_by_both,
                    comparison.refused_by_both,
                    problems.join("\n")
                ))
            }
        }
    };
    Trial {
        name: libbpf_trial_name(&run.kernel, object),
        kernel: Some(run.kernel.clone()),
        object: object.to_string(),
        case: None,
        outcome,
    }
}

/// Every run's libbpf trials, for the objects shipped.
pub fn judge_all(runs: &[GuestRun], objects: &[String]) -> Vec<Trial> {
    runs.iter()
        .flat_map(|run| objects.iter().map(|o| judge_libbpf(run, o)))
        .collect()
}

/// Per kernel: programs loaded by both, refused by both, disagreements, and the time each
/// loader took over all objects in the same guest.
pub fn figures(runs: &[GuestRun]) -> String {
    let mut text = String::new();
    for run in runs.iter().filter(|r| !r.libbpf.is_empty()) {
        let mut total = Comparison::default();
        let (mut ours_us, mut libbpf_us) = (0u64, 0u64);
        for theirs in &run.libbpf {
            let ours = run.objects.iter().find(|o| o.object == theirs.object);
            let c = compare(ours, theirs, "");
            total.loaded_by_both += c.loaded_by_both;
            total.refused_by_both += c.refused_by_both;
            total.disagreements.extend(c.disagreements);
            ours_us += theirs.ours_us;
            libbpf_us += theirs.libbpf_us;
        }
        let version = run.libbpf.first().map_or("", |o| o.libbpf_version.as_str());
        let _ = writeln!(
            text,
            "libbpf {version} on {}: {} objects: {} programs loaded by both (identical translated \
             instructions), {} refused by both, {} disagreements; load time ours {} ms, libbpf {} ms",
            run.kernel,
            run.libbpf.len(),
            total.loaded_by_both,
            total.refused_by_both,
            total.disagreements.len(),
            ours_us / 1000,
            libbpf_us / 1000
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::{LibbpfProgram, ProgramLoad, Xlated};

    fn ours(programs: &[(&str, bool)]) -> ObjectLoaded {
        ObjectLoaded {
            object: "o".into(),
            sha256: String::new(),
            relocate_us: 0,
            relocations: vec![],
            btf_note: None,
            programs: programs
                .iter()
                .map(|&(name, loaded)| ProgramLoad {
                    program: name.into(),
                    section: "xdp".into(),
                    outcome: if loaded {
                        ProgramLoadOutcome::Loaded {
                            insns: 2,
                            load_us: 1,
                        }
                    } else {
                        ProgramLoadOutcome::Rejected {
                            error: "Permission denied".into(),
                            verifier_log:
                                "0: (b7) r0 = 0\nR1 invalid mem access\nprocessed 3 insns\n".into(),
                        }
                    },
                })
                .collect(),
        }
    }

    fn xlated(insns: &[u8]) -> Xlated {
        Xlated::with_bytes(insns)
    }

    const EXIT0: [u8; 16] = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
    const EXIT1: [u8; 16] = [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

    fn theirs(programs: &[(&str, bool, &[u8])], ours_x: &[(&str, &[u8])]) -> LibbpfObject {
        LibbpfObject {
            object: "o".into(),
            libbpf_version: "v1.1".into(),
            libbpf_us: 10,
            ours_us: 5,
            programs: programs
                .iter()
                .map(|&(name, loaded, x)| LibbpfProgram {
                    program: name.into(),
                    section: "xdp".into(),
                    loaded,
                    reason: if loaded {
                        String::new()
                    } else {
                        "libbpf: failed to load".into()
                    },
                    xlated: loaded.then(|| xlated(x)),
                })
                .collect(),
            ours_xlated: ours_x
                .iter()
                .map(|&(n, x)| (n.to_string(), xlated(x)))
                .collect(),
            error: None,
            refused_object: None,
        }
    }

    #[test]
    fn agreement_counts_both_loaded_and_both_refused() {
        let c = compare(
            Some(&ours(&[("a", true), ("b", false)])),
            &theirs(&[("a", true, &EXIT0), ("b", false, &[])], &[("a", &EXIT0)]),
            "",
        );
        assert_eq!((c.loaded_by_both, c.refused_by_both), (1, 1));
        assert!(c.disagreements.is_empty(), "{:?}", c.disagreements);
    }

    #[test]
    fn each_disagreement_names_the_program_and_both_sides() {
        let c = compare(
            Some(&ours(&[
                ("a", true),
                ("b", false),
                ("c", true),
                ("d", true),
            ])),
            &theirs(
                &[
                    ("a", false, &[]),
                    ("b", true, &EXIT0),
                    ("c", true, &EXIT1),
                    ("e", true, &EXIT0),
                ],
                &[("a", &EXIT0), ("c", &EXIT0), ("d", &EXIT0)],
            ),
            "",
        );
        let all = c.disagreements.join("\n");
        assert_eq!(c.disagreements.len(), 5, "{all}");
        assert!(
            all.contains("program a (xdp): ours loaded; libbpf refused: libbpf: failed to load")
        );
        assert!(all.contains(
            "program b (xdp): ours refused: Permission denied | R1 invalid mem access; libbpf loaded"
        ));
        assert!(all
            .contains("program c (xdp): both loaded, but the kernel translated them differently"));
        assert!(
            all.contains("> libbpf     0: code 0xb7 dst r0 src 0 off 0 imm 1"),
            "{all}"
        );
        assert!(all.contains("program d (xdp): ours loaded; libbpf reported no such program"));
        assert!(all.contains("program e (xdp): ours has no such program; libbpf loaded it"));
    }

    #[test]
    fn an_object_libbpf_cannot_open_must_load_nothing_here() {
        let mut t = theirs(&[], &[]);
        t.refused_object = Some("open: error -22".into());
        let c = compare(Some(&ours(&[("a", false)])), &t, "");
        assert_eq!((c.refused_by_both, c.disagreements.len()), (1, 0));
        let c = compare(Some(&ours(&[("a", true)])), &t, "");
        assert!(c.disagreements[0].contains("libbpf refused the whole object: open: error -22"));
        // Our loader gave up on the object: every program counts as refused by us.
        let c = compare(
            None,
            &theirs(&[("a", true, &EXIT0)], &[]),
            "not a loadable BPF object",
        );
        assert!(
            c.disagreements[0].contains("ours refused: the object did not load: not a loadable")
        );
    }

    #[test]
    fn trials_fail_without_a_libbpf_report_or_with_a_loader_error() {
        let mut run = GuestRun::new("6.12", "x86_64", "tcg");
        run.status = GuestStatus::Completed;
        run.objects.push(ours(&[("a", true)]));
        let trial = judge_libbpf(&run, "o");
        assert_eq!(trial.name, "6.12::o::libbpf");
        assert!(matches!(&trial.outcome, TrialOutcome::Failed(m) if m.contains("no libbpf load")));
        let mut t = theirs(&[("a", true, &EXIT0)], &[("a", &EXIT0)]);
        run.libbpf.push(t.clone());
        assert_eq!(judge_libbpf(&run, "o").outcome, TrialOutcome::Passed);
        assert!(figures(&[run.clone()]).contains("1 programs loaded by both"));
        t.error = Some("the libbpf loader was killed by signal 11".into());
        run.libbpf[0] = t;
        assert!(matches!(&judge_libbpf(&run, "o").outcome,
            TrialOutcome::Failed(m) if m.contains("signal 11")));
    }
}
