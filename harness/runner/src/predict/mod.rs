//! Offline relocation: what the engine decides for an object against a kernel's BTF, computed
//! on the host from the cached BTF, without booting. The run checks that every guest's engine
//! decided exactly this; `harness reloc` prints it as a table across the matrix.

pub mod reloc_table;

use std::collections::BTreeMap;

use core_reloc::{Btf, CoreDecision, Object};
use guest_protocol::RelocationReport;

/// Per program: its decisions, or why relocation failed as a whole.
pub type ObjectPrediction = BTreeMap<String, Result<Vec<RelocationReport>, String>>;

/// The report of one decision, as the guest agent writes it (`load.rs`).
pub fn report(program: &str, d: &CoreDecision) -> RelocationReport {
    RelocationReport::new(program, d.insn_index, d.kind, &d.access, &d.outcome)
}

/// Decides every program of `object` against `target` (the engine's decide step: nothing is
/// linked or patched).
pub fn predict(object: &Object, target: &Btf) -> ObjectPrediction {
    object
        .programs()
        .iter()
        .map(|program| {
            let decisions = core_reloc::predict_program(object, &program.name, target)
                .map(|decisions| decisions.iter().map(|d| report(&program.name, d)).collect())
                .map_err(|e| e.to_string());
            (program.name.clone(), decisions)
        })
        .collect()
}

/// Compares what a guest reported with the prediction; Err lists the differences.
pub fn compare(
    predicted: &ObjectPrediction,
    reported: &[RelocationReport],
) -> Result<usize, String> {
    let mut problems = Vec::new();
    let mut compared = 0;
    for (program, prediction) in predicted {
        let got: Vec<&RelocationReport> =
            reported.iter().filter(|r| &r.program == program).collect();
        match prediction {
            Err(error) if got.is_empty() => {
                // Both sides failed the whole program; the load trial reports it.
                let _ = error;
            }
            Err(error) => problems.push(format!(
                "{program}: predicted failure ({error}), guest relocated {} instructions",
                got.len()
            )),
            Ok(expected) => {
                compared += expected.len();
                if expected.len() != got.len() {
                    problems.push(format!(
                        "{program}: predicted {} relocations, guest reported {}",
                        expected.len(),
                        got.len()
                    ));
                }
                for (want, have) in expected.iter().zip(got) {
                    if want != have {
                        problems.push(format!(
                            "{program} insn {} {} {}: predicted {}, guest decided {}",
                            want.insn, want.kind, want.access, want.decision, have.decision
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(compared)
    } else {
        Err(problems.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(program: &str, insn: u32, decision: &str) -> RelocationReport {
        RelocationReport {
            program: program.into(),
            insn,
            kind: "field_byte_offset".into(),
            access: "struct task_struct::__state".into(),
            decision: decision.into(),
        }
    }

    #[test]
    fn equal_decisions_pass_and_count() {
        let mut predicted = ObjectPrediction::new();
        predicted.insert(
            "p".into(),
            Ok(vec![report("p", 3, "value 24"), report("p", 9, "value 16")]),
        );
        assert_eq!(
            compare(
                &predicted,
                &[report("p", 3, "value 24"), report("p", 9, "value 16")]
            ),
            Ok(2)
        );
    }

    #[test]
    fn a_different_value_is_named() {
        let mut predicted = ObjectPrediction::new();
        predicted.insert("p".into(), Ok(vec![report("p", 3, "value 24")]));
        let error = compare(&predicted, &[report("p", 3, "value 16")]).unwrap_err();
        assert!(error.contains("insn 3 field_byte_offset struct task_struct::__state: predicted value 24, guest decided value 16"), "{error}");
    }

    #[test]
    fn missing_decisions_are_reported() {
        let mut predicted = ObjectPrediction::new();
        predicted.insert("p".into(), Ok(vec![report("p", 3, "value 24")]));
        assert!(compare(&predicted, &[])
            .unwrap_err()
            .contains("predicted 1 relocations, guest reported 0"));
        predicted.insert("q".into(), Err("ambiguous".into()));
        assert!(compare(
            &predicted,
            &[report("p", 3, "value 24"), report("q", 1, "value 1")]
        )
        .unwrap_err()
        .contains("q: predicted failure"));
    }
}
