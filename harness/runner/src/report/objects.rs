//! Per object: what was tested (the file, its sha256) and on which kernels every program
//! loaded, down to the oldest kernel of the matrix from which the object runs everywhere newer.

use std::fmt::Write as _;

use guest_protocol::ProgramLoadOutcome;
use serde::Serialize;
use sha2::Digest as _;

use crate::corpus::Corpus;
use crate::guest::GuestRun;

/// What the user handed in, for the reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ObjectRecord {
    pub name: String,
    /// `prebuilt` (shipped as given) or `source` (built by the harness).
    pub origin: String,
    /// The file given: the object itself, or its source.
    pub path: String,
    /// SHA-256 of the bytes every guest received (for a prebuilt object, of the file given).
    pub sha256: String,
    /// Its fixture file, if any; without one the object is tested load-only.
    pub fixtures: Option<String>,
    /// SHA-256 of the fixture file's bytes.
    pub fixtures_sha256: Option<String>,
    pub cases: usize,
}

pub fn records(corpus: &Corpus) -> Vec<ObjectRecord> {
    corpus
        .objects
        .iter()
        .map(|o| ObjectRecord {
            name: o.name().to_string(),
            origin: o.input.origin.label().to_string(),
            path: o.input.path.display().to_string(),
            sha256: o.sha256.clone(),
            fixtures: o.fixtures.as_ref().map(|f| f.path.display().to_string()),
            fixtures_sha256: o
                .fixtures
                .as_ref()
                .and_then(|f| std::fs::read(&f.path).ok())
                .map(|bytes| hex::encode(sha2::Sha256::digest(bytes))),
            cases: o.fixtures.as_ref().map_or(0, |f| f.cases.len()),
        })
        .collect()
}

/// How one kernel took one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadCounts {
    pub programs: usize,
    pub loaded: usize,
    pub unsupported: usize,
    pub rejected: usize,
    /// The agent reported nothing for the object (the guest failed, or the object did not parse).
    pub not_reported: bool,
}

impl LoadCounts {
    pub fn of(run: &GuestRun, object: &str) -> LoadCounts {
        let Some(loaded) = run.objects.iter().find(|o| o.object == object) else {
            return LoadCounts {
                not_reported: true,
                ..Default::default()
            };
        };
        let mut counts = LoadCounts {
            programs: loaded.programs.len(),
            ..Default::default()
        };
        for program in &loaded.programs {
            match program.outcome {
                ProgramLoadOutcome::Loaded { .. } => counts.loaded += 1,
                ProgramLoadOutcome::Unsupported { .. } => counts.unsupported += 1,
                ProgramLoadOutcome::Rejected { .. } => counts.rejected += 1,
            }
        }
        counts
    }

    /// Every program loaded (an object with no program loads trivially).
    pub fn all_loaded(&self) -> bool {
        !self.not_reported && self.loaded == self.programs
    }

    fn cell(&self) -> String {
        if self.not_reported {
            return "not loaded".into();
        }
        let mut text = format!("{}/{}", self.loaded, self.programs);
        if self.rejected > 0 {
            let _ = write!(text, " ({} refused)", self.rejected);
        }
        if self.unsupported > 0 {
            let _ = write!(text, " ({} unsupported)", self.unsupported);
        }
        text
    }
}

/// `5.10.0-32-amd64` → (5, 10, 0); the kernel's name (`6.12`) when no release was reported.
pub fn version_key(run: &GuestRun) -> Option<(u32, u32, u32)> {
    let text = run.release().unwrap_or(&run.kernel);
    let mut numbers = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().ok());
    let major = numbers.next()??;
    let minor = numbers.next().flatten().unwrap_or(0);
    let patch = numbers.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// The oldest kernel from which the object loaded completely on every newer kernel too; `None`
/// when it does not load on the newest one (or no kernel ran). Kernels whose version cannot be
/// told are left out of the ordering.
pub fn runs_everywhere_from<'a>(runs: &'a [GuestRun], object: &str) -> Option<&'a GuestRun> {
    let mut ordered: Vec<(&GuestRun, (u32, u32, u32))> = runs
        .iter()
        .filter_map(|r| version_key(r).map(|v| (r, v)))
        .collect();
    ordered.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
    let mut oldest = None;
    for (run, _) in ordered {
        if !LoadCounts::of(run, object).all_loaded() {
            break;
        }
        oldest = Some(run);
    }
    oldest
}

#[derive(Debug, Clone, Serialize)]
pub struct ObjectSummary<'a> {
    #[serde(flatten)]
    pub object: &'a ObjectRecord,
    /// Kernel name → programs loaded, unsupported and refused there.
    pub kernels: std::collections::BTreeMap<&'a str, LoadCounts>,
    /// The oldest kernel of the run from which every newer kernel loaded every program.
    pub runs_everywhere_from: Option<&'a str>,
}

pub fn summaries<'a>(record: &'a super::RunRecord<'a>) -> Vec<ObjectSummary<'a>> {
    record
        .objects
        .iter()
        .map(|object| ObjectSummary {
            object,
            kernels: record
                .runs
                .iter()
                .map(|r| (r.kernel.as_str(), LoadCounts::of(r, &object.name)))
                .collect(),
            runs_everywhere_from: runs_everywhere_from(record.runs, &object.name)
                .map(|r| r.kernel.as_str()),
        })
        .collect()
}

/// The table printed after the trial table: objects down, kernels across.
pub fn render(record: &super::RunRecord) -> String {
    if record.objects.is_empty() || record.runs.is_empty() {
        return String::new();
    }
    let mut header = vec!["object".to_string(), "tested".to_string()];
    header.extend(record.runs.iter().map(|r| r.kernel.clone()));
    header.push("runs everywhere from".into());
    let mut rows = vec![header];
    for summary in summaries(record) {
        let mut row = vec![
            summary.object.name.clone(),
            format!(
                "{} {}, {}",
                summary.object.origin,
                &summary.object.sha256[..12.min(summary.object.sha256.len())],
                if summary.object.cases == 0 {
                    "load-only".to_string()
                } else {
                    format!("{} cases", summary.object.cases)
                }
            ),
        ];
        row.extend(
            record
                .runs
                .iter()
                .map(|r| summary.kernels[r.kernel.as_str()].cell()),
        );
        row.push(match summary.runs_everywhere_from {
            Some(kernel) => kernel.to_string(),
            None => "nowhere: not on the newest kernel".into(),
        });
        rows.push(row);
    }
    format!(
        "\nprograms loaded per kernel:\n{}",
        super::aligned_table(&rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::{Hello, ObjectLoaded, ProgramLoad};

    fn run(kernel: &str, release: &str, outcomes: &[ProgramLoadOutcome]) -> GuestRun {
        let mut run = GuestRun::new(kernel, "x86_64", "tcg");
        run.hello = Some(Hello {
            protocol_version: guest_protocol::PROTOCOL_VERSION,
            agent_version: "0".into(),
            kernel_name: kernel.into(),
            kernel_release: release.into(),
            machine: "x86_64".into(),
            kernel_btf_bytes: None,
            uptime_ms: 0,
            btf: None,
        });
        run.objects.push(ObjectLoaded {
            object: "obj".into(),
            sha256: String::new(),
            relocate_us: 0,
            relocations: vec![],
            programs: outcomes
                .iter()
                .enumerate()
                .map(|(i, outcome)| ProgramLoad {
                    program: format!("p{i}"),
                    section: "xdp".into(),
                    outcome: outcome.clone(),
                })
                .collect(),
            btf_note: None,
        });
        run
    }

    fn loaded() -> ProgramLoadOutcome {
        ProgramLoadOutcome::Loaded {
            insns: 1,
            load_us: 1,
        }
    }

    fn refused() -> ProgramLoadOutcome {
        ProgramLoadOutcome::Rejected {
            error: "no".into(),
            verifier_log: String::new(),
        }
    }

    #[test]
    fn oldest_kernel_from_which_everything_loads() {
        let runs = vec![
            run("5.10", "5.10.0-32-amd64", &[loaded(), refused()]),
            run("7.2", "7.2.13-amd64", &[loaded(), loaded()]),
            run("6.1", "6.1.0-40-amd64", &[loaded(), loaded()]),
            run("6.12", "6.12.48+deb13-amd64", &[loaded(), loaded()]),
        ];
        assert_eq!(
            runs_everywhere_from(&runs, "obj").map(|r| r.kernel.as_str()),
            Some("6.1")
        );
        let counts = LoadCounts::of(&runs[0], "obj");
        assert_eq!((counts.loaded, counts.rejected), (1, 1));
        assert_eq!(counts.cell(), "1/2 (1 refused)");
    }

    #[test]
    fn a_gap_in_the_middle_stops_the_range() {
        let runs = vec![
            run("5.10", "5.10.0-32-amd64", &[loaded()]),
            run("6.1", "6.1.0-40-amd64", &[refused()]),
            run("7.2", "7.2.13-amd64", &[loaded()]),
        ];
        assert_eq!(
            runs_everywhere_from(&runs, "obj").map(|r| r.kernel.as_str()),
            Some("7.2")
        );
    }

    #[test]
    fn not_on_the_newest_means_nowhere() {
        let runs = vec![
            run("5.10", "5.10.0-32-amd64", &[loaded()]),
            run("7.2", "7.2.13-amd64", &[refused()]),
        ];
        assert!(runs_everywhere_from(&runs, "obj").is_none());
        // An object the agent never reported is not loaded anywhere.
        let silent = GuestRun::new("6.1", "x86_64", "tcg");
        assert!(LoadCounts::of(&silent, "obj").not_reported);
        assert!(!LoadCounts::of(&silent, "obj").all_loaded());
    }

    #[test]
    fn versions_come_from_the_release_or_the_name() {
        let r = run("mine", "6.12.48+deb13-amd64", &[]);
        assert_eq!(version_key(&r), Some((6, 12, 48)));
        let named = GuestRun::new("5.10", "x86_64", "tcg");
        assert_eq!(version_key(&named), Some((5, 10, 0)));
        let unknown = GuestRun::new("host", "x86_64", "none");
        assert_eq!(version_key(&unknown), None);
    }
}
