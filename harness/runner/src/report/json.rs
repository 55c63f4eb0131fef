//! The JSON report: per kernel what the guest said it is and how it went, per trial the result.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use super::{count, Counts, RunRecord};
use crate::guest::GuestRun;
use crate::verdict::Trial;

#[derive(Serialize)]
struct Report<'a> {
    harness_version: &'static str,
    matrix: String,
    accel: &'a str,
    accel_reason: &'a str,
    wall_ms: u64,
    interrupted: bool,
    counts: Counts,
    /// Per object: the file tested, its sha256, and how every kernel loaded its programs.
    objects: Vec<super::objects::ObjectSummary<'a>>,
    kernels: Vec<KernelReport<'a>>,
    trials: Vec<TrialReport<'a>>,
    /// Everything `harness merge` needs to judge this run together with other partitions.
    replay: Replay<'a>,
}

/// The run as data: what it tested, what each guest said, and the kernels' matrix order.
#[derive(Serialize)]
struct Replay<'a> {
    format: u32,
    objects: &'a [super::objects::ObjectRecord],
    kernel_order: &'a [String],
    cases: &'a [crate::verdict::PlannedCase],
    runs: &'a [GuestRun],
}

/// Version of the `replay` section; `harness merge` refuses others.
pub const REPLAY_FORMAT: u32 = 1;

#[derive(Serialize)]
struct KernelReport<'a> {
    name: &'a str,
    /// `uname -r` as the agent reported it from inside the guest.
    release: Option<&'a str>,
    arch: &'a str,
    accel: &'a str,
    /// What booted it: `qemu`, `virtme-ng`, or `host`.
    backend: &'a str,
    /// Start to agent hello.
    boot_ms: Option<u64>,
    /// Start to the agent's last result.
    results_ms: Option<u64>,
    /// Start to exit.
    total_ms: u64,
    kernel_uptime_ms: Option<u64>,
    /// The BTF the agent relocated against (the kernel's own, or the entry's external one).
    #[serde(skip_serializing_if = "Option::is_none")]
    btf: Option<&'a guest_protocol::BtfSource>,
    outcome: &'static str,
    detail: String,
    /// The console's last lines, for any outcome but COMPLETED (empty when it printed nothing).
    console_tail: &'a str,
    logs: &'a [String],
    objects: &'a [guest_protocol::ObjectLoaded],
    /// Each object as libbpf loaded it in the same guest (`--libbpf`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    libbpf: &'a [guest_protocol::LibbpfObject],
    /// Each object as the kernel's own CO-RE relocated it (`--kernel-core`).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    kernel_core: &'a [guest_protocol::KernelCoreObject],
    counts: Counts,
}

#[derive(Serialize)]
struct TrialReport<'a> {
    #[serde(flatten)]
    trial: &'a Trial,
    /// The raw result this kernel produced, for per-kernel case trials.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a guest_protocol::CaseOutcome>,
    /// Passed only after `--retries` ran a kernel again: how the earlier attempts ended.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    flaky: Vec<String>,
}

fn kernel_report<'a>(run: &'a GuestRun, trials: &'a [Trial]) -> KernelReport<'a> {
    KernelReport {
        name: &run.kernel,
        release: run.release(),
        arch: &run.arch,
        accel: &run.accel,
        backend: &run.backend,
        boot_ms: run.timings.hello_ms,
        results_ms: run.timings.results_ms,
        total_ms: run.timings.exit_ms,
        kernel_uptime_ms: run.timings.kernel_uptime_ms,
        btf: run.hello.as_ref().and_then(|h| h.btf.as_ref()),
        outcome: run.status.label(),
        detail: run.status.describe(),
        console_tail: &run.console_tail,
        logs: &run.logs,
        objects: &run.objects,
        libbpf: &run.libbpf,
        kernel_core: &run.kernel_core,
        counts: count(
            trials
                .iter()
                .filter(|t| t.kernel.as_deref() == Some(&run.kernel)),
        ),
    }
}

pub fn write(record: &RunRecord, path: &Path) -> Result<()> {
    let trials = record
        .trials
        .iter()
        .map(|trial| {
            let result = trial.kernel.as_ref().and_then(|k| {
                let run = record.runs.iter().find(|r| &r.kernel == k)?;
                let case = trial.case.as_ref()?;
                run.cases.get(&crate::verdict::case_id(&trial.object, case))
            });
            TrialReport {
                trial,
                result,
                flaky: super::flaky_attempts(record, trial),
            }
        })
        .collect();
    let report = Report {
        harness_version: env!("CARGO_PKG_VERSION"),
        matrix: record.matrix.display().to_string(),
        accel: &record.accel,
        accel_reason: &record.accel_reason,
        wall_ms: record.wall_ms,
        interrupted: record.interrupted,
        counts: count(record.trials),
        objects: super::objects::summaries(record),
        kernels: record
            .runs
            .iter()
            .map(|r| kernel_report(r, record.trials))
            .collect(),
        trials,
        replay: Replay {
            format: REPLAY_FORMAT,
            objects: record.objects,
            kernel_order: record.kernel_order,
            cases: record.cases,
            runs: record.runs,
        },
    };
    let text = serde_json::to_string_pretty(&report)?;
    crate::fsutil::write_atomic_in_existing_dir(path, text.as_bytes())
        .with_context(|| format!("writing JSON report {}", path.display()))
}
