//! Command-line interface. The trial-selection flags follow libtest's (and so libtest-mimic's),
//! so `harness 6.1::` or `harness --skip identical --exact ...` work as with `cargo test`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::vm::accel::AccelChoice;

#[derive(Debug, Parser)]
#[command(
    name = "harness",
    version,
    about = "Boots a matrix of kernels and proves one CO-RE object behaves the same on each"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Install the host tools a run needs (QEMU, clang-19, libbpf headers, the agent's target)
    Setup {
        /// Never install; only say what is missing
        #[arg(long)]
        no_install: bool,
    },
    /// Resolve the Debian packages of the matrix and write kernels.lock
    Lock(LockArgs),
    /// Download and unpack the matrix's kernels into the image cache, without booting
    Fetch(FetchArgs),
    /// Relocate the objects against every kernel's BTF on the host, without booting, and print
    /// each decision per kernel
    Reloc(crate::predict::reloc_table::RelocArgs),
    /// Judge the JSON reports of `--partition` runs as one run: per-kernel trials as judged,
    /// every `identical::` trial again over all their kernels
    Merge(crate::report::merge::MergeArgs),
    /// Write vmlinux.h (C types of a kernel's BTF) for a libbpf-style program, without bpftool
    VmlinuxH(crate::images::vmlinux_h::VmlinuxHArgs),
}

#[derive(Debug, Args, Clone)]
pub struct CommonArgs {
    /// The kernel matrix
    #[arg(long, default_value = "kernels.toml", value_name = "PATH")]
    pub matrix: PathBuf,
    /// Only these kernels (repeatable); default: every enabled kernel of the selected groups
    #[arg(long = "kernel", value_name = "NAME")]
    pub kernels: Vec<String>,
    /// The enabled kernels of this group (repeatable; a kernel's `group` in the matrix)
    /// [default: default]; e.g. `--group default --group nightly` for the nightly set
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
    /// Image cache [default: images/ next to the matrix; env HARNESS_IMAGES]
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Never install missing host tools; say what to install instead
    #[arg(long)]
    pub no_install: bool,
}

/// Which BPF objects to test, and how sources among them are built.
#[derive(Debug, Args, Clone, Default)]
pub struct ObjectArgs {
    /// A directory of BPF objects (`*.bpf.o`, BPF `*.o`) and sources (`*.bpf.c`), each with an
    /// optional `<name>.fixtures.toml` (repeatable) [default: programs/ next to the matrix, when
    /// no --object is given]
    #[arg(long = "programs", value_name = "DIR")]
    pub programs: Vec<PathBuf>,
    /// One BPF object file to test as it is, or a `.bpf.c` source (repeatable); its fixtures are
    /// `<name>.fixtures.toml` beside it, if present
    #[arg(long = "object", value_name = "PATH")]
    pub objects: Vec<PathBuf>,
    /// Compiler for `.bpf.c` sources [default: clang-19; env HARNESS_CLANG]
    #[arg(long, value_name = "PATH")]
    pub clang: Option<String>,
    /// Extra include directory for sources (repeatable; after `<dir>/include`)
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    pub include: Vec<PathBuf>,
    /// Extra compiler flags for sources, appended last, e.g. --cflags="-mcpu=v3 -DDEBUG"
    #[arg(long, value_name = "FLAGS", allow_hyphen_values = true)]
    pub cflags: Option<String>,
}

impl ObjectArgs {
    pub fn build_options(&self) -> crate::corpus::BuildOptions {
        crate::corpus::BuildOptions {
            clang: self.clang.clone(),
            include_dirs: self.include.clone(),
            cflags: self
                .cflags
                .as_deref()
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect(),
        }
    }

    /// The directories to scan: those given, or `default` when neither directories nor files
    /// were named.
    pub fn dirs_or(&self, default: PathBuf) -> Vec<PathBuf> {
        if self.programs.is_empty() && self.objects.is_empty() {
            vec![default]
        } else {
            self.programs.clone()
        }
    }
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Also build each kernel's ready snapshot, which runs start their guests from (unless
    /// `--fresh-boot`)
    #[arg(long)]
    pub snapshot: bool,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Re-resolve these kernels (all when none is named) even if they are pinned already
    #[arg(long, num_args = 0.., value_name = "NAME")]
    pub update: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Run at most this many guests at once [default: the number of cores]
    #[arg(long, short = 'j', value_name = "N", value_parser = parse_jobs)]
    pub jobs: Option<usize>,
    /// Acceleration: auto uses KVM only if a probe guest really boots under it
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    pub accel: AccelChoice,
    /// Write a JSON report here
    #[arg(long, value_name = "PATH")]
    pub report_json: Option<PathBuf>,
    /// Write a JUnit XML report here
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub objects: ObjectArgs,
    /// Run a guest again, up to N times, when it timed out or crashed; trials that pass only on
    /// a retry are reported as flaky (0 for a gate: a flake is a failure there)
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10))]
    pub retries: u32,
    /// Run only the K-th of N disjoint slices of the selected kernels (`K/N` or `count:K/N`),
    /// for splitting a matrix across CI jobs; `harness merge` joins their JSON reports
    #[arg(long, value_name = "K/N")]
    pub partition: Option<crate::matrix::Partition>,
    /// Also write the kernels × objects table and the failures in Markdown here (and to
    /// $GITHUB_STEP_SUMMARY when it is set)
    #[arg(long, value_name = "PATH")]
    pub summary_md: Option<PathBuf>,
    /// Console logs, built objects and scratch files [default: harness/work in the user's cache
    /// directory ($XDG_CACHE_HOME or ~/.cache); env HARNESS_WORK_DIR]
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Write the results observed on this kernel as expectations, next to each fixture file as
    /// `<object>.fixtures.toml.blessed`, for review (then move it over the fixture file)
    #[arg(long, value_name = "KERNEL")]
    pub bless: Option<String>,
    /// Also load every object with libbpf in each guest (a static loader built here against the
    /// system's libbpf: needs gcc, libbpf-dev, libelf-dev, zlib1g-dev) and check, per
    /// `<kernel>::<object>::libbpf` trial, that both loaders load or refuse each program alike and
    /// that the kernel translated what both loaded identically (up to map ids)
    #[arg(long)]
    pub libbpf: bool,
    /// Also let each kernel relocate every program itself (`core_relos` at BPF_PROG_LOAD, 5.17+)
    /// and check, per `<kernel>::<object>::kernel-core` trial, that it translated each program
    /// as ours (up to map ids); a kernel without it reports the trial unsupported
    #[arg(long)]
    pub kernel_core: bool,
    /// Accepted for compatibility: guests start from their kernel's ready snapshot by default
    #[arg(long, hide = true, conflicts_with = "fresh_boot")]
    pub snapshot: bool,
    /// Boot every guest from scratch with a per-run initramfs, instead of restoring it from its
    /// kernel's ready snapshot (the default: saved in the image cache on first use, by booting
    /// to the agent's ready point and migrating QEMU to a file)
    #[arg(long)]
    pub fresh_boot: bool,
    /// Test-only: make one kernel's agent fail after its first result: KERNEL=panic|hang|crash
    /// (repeatable); the harness's own fault tests use it
    #[arg(long, hide = true, value_name = "KERNEL=FAULT", value_parser = parse_fault)]
    pub inject_fault: Vec<(String, String)>,

    /// Run only trials whose name contains this (libtest style)
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    /// The filter must match a trial name exactly
    #[arg(long)]
    pub exact: bool,
    /// Skip trials whose name contains this (repeatable)
    #[arg(long, value_name = "FILTER")]
    pub skip: Vec<String>,
    /// List the trials without running anything
    #[arg(long)]
    pub list: bool,
    /// Trial output format
    #[arg(long, value_enum, default_value = "pretty")]
    pub format: OutputFormat,
    /// Shorthand for --format terse
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Colour: auto, always, never
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,
    /// Accepted for libtest compatibility (trials are already results here)
    #[arg(long, hide = true)]
    pub test_threads: Option<usize>,
    /// Accepted for libtest compatibility
    #[arg(long, hide = true)]
    pub nocapture: bool,
}

/// At least one guest at a time: `-j 0` would mean nothing runs, so it is refused, not bent.
fn parse_jobs(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("expected a number of guests: {e}")),
    }
}

fn parse_fault(text: &str) -> Result<(String, String), String> {
    let (kernel, fault) = text
        .split_once('=')
        .ok_or("expected KERNEL=FAULT, for example 6.1=panic")?;
    // `-once`: the first attempt only, so a `--retries` run passes on its retry (a flake).
    let base = fault.strip_suffix("-once").unwrap_or(fault);
    if !["panic", "hang", "crash", "exit"].contains(&base) {
        return Err(format!(
            "unknown fault {fault}: panic, hang, crash or exit, optionally with -once"
        ));
    }
    Ok((kernel.to_string(), fault.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Pretty,
    Terse,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl RunArgs {
    /// Whether guests start from ready snapshots: the default; `--snapshot` is the old opt-in.
    pub fn restores_snapshots(&self) -> bool {
        !self.fresh_boot
    }

    /// libtest-mimic's arguments for reporting trials we have already judged.
    pub fn mimic_arguments(&self) -> libtest_mimic::Arguments {
        libtest_mimic::Arguments {
            filter: self.filter.clone(),
            exact: self.exact,
            skip: self.skip.clone(),
            list: self.list,
            quiet: self.quiet,
            format: Some(match (self.quiet, self.format) {
                (true, _) | (_, OutputFormat::Terse) => libtest_mimic::FormatSetting::Terse,
                (_, OutputFormat::Json) => libtest_mimic::FormatSetting::Json,
                _ => libtest_mimic::FormatSetting::Pretty,
            }),
            color: Some(match self.color {
                ColorChoice::Auto => libtest_mimic::ColorSetting::Auto,
                ColorChoice::Always => libtest_mimic::ColorSetting::Always,
                ColorChoice::Never => libtest_mimic::ColorSetting::Never,
            }),
            test_threads: Some(1),
            ..Default::default()
        }
    }

    /// The same selection rule libtest applies, so we boot only what the selected trials need.
    pub fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &str| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern)
            }
        };
        let included = self.filter.as_deref().is_none_or(matches);
        included && !self.skip.iter().any(|s| matches(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("harness").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn main_job_arguments() {
        let cli = parse(&[
            "--matrix", "k.toml", "--kernel", "5.10", "--kernel", "7.2", "-j", "2", "--accel",
            "tcg", "--junit", "j.xml", "6.1::",
        ]);
        assert!(cli.command.is_none());
        assert_eq!(cli.run.common.kernels, ["5.10", "7.2"]);
        assert_eq!(cli.run.jobs, Some(2));
        assert_eq!(cli.run.accel, AccelChoice::Tcg);
        assert_eq!(cli.run.filter.as_deref(), Some("6.1::"));
    }

    #[test]
    fn snapshot_and_fresh_boot_exclude_each_other() {
        assert!(parse(&[]).run.restores_snapshots());
        assert!(parse(&["--snapshot"]).run.restores_snapshots());
        assert!(!parse(&["--fresh-boot"]).run.restores_snapshots());
        let e = Cli::try_parse_from(["harness", "--snapshot", "--fresh-boot"]).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        match parse(&["fetch", "--snapshot", "--kernel", "6.1"]).command {
            Some(Command::Fetch(args)) => {
                assert!(args.snapshot);
                assert_eq!(args.common.kernels, ["6.1"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_jobs_is_refused() {
        let e = Cli::try_parse_from(["harness", "-j", "0"]).unwrap_err();
        assert!(e.to_string().contains("must be at least 1"), "{e}");
        assert_eq!(e.exit_code(), 2);
        assert_eq!(parse(&["-j", "1"]).run.jobs, Some(1));
    }

    #[test]
    fn lock_subcommand() {
        let cli = parse(&["lock", "--update", "7.2"]);
        match cli.command {
            Some(Command::Lock(args)) => assert_eq!(args.update, Some(vec!["7.2".to_string()])),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selection_follows_libtest() {
        let cli = parse(&["--skip", "identical", "packet"]);
        assert!(cli.run.selects("6.1::packet_counter::ipv4"));
        assert!(!cli.run.selects("identical::packet_counter::ipv4"));
        assert!(!cli.run.selects("6.1::ttl::ipv4"));
        let cli = parse(&["--exact", "6.1::a::b"]);
        assert!(cli.run.selects("6.1::a::b"));
        assert!(!cli.run.selects("6.1::a::bc"));
    }
}
