use std::process::ExitCode;

use clap::Parser;
use harness::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => harness::run::main_run(cli.run),
        Some(Command::Setup { no_install }) => {
            let clang = std::env::var("HARNESS_CLANG").unwrap_or_else(|_| "clang-19".into());
            let mut needs = host_tools::requirements(true, Some(&clang));
            needs.extend(host_tools::aarch64_requirements());
            needs.extend(host_tools::dwarf_btf_requirements());
            host_tools::ensure(&needs, !no_install).map(|()| {
                eprintln!("host tools: all present");
                ExitCode::SUCCESS
            })
        }
        Some(Command::Lock(args)) => {
            harness::matrix::pinning::lock_command(&args.common, args.update.as_deref())
                .map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Reloc(args)) => {
            harness::predict::reloc_table::reloc_command(&args).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Merge(args)) => harness::report::merge::merge_command(&args),
        Some(Command::VmlinuxH(args)) => {
            harness::images::vmlinux_h::vmlinux_h_command(&args).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Fetch(args)) => harness::matrix::pinning::fetch_command(&args.common)
            .and_then(|()| {
                if args.snapshot {
                    harness::vm::snapshot::fetch_snapshots(&args.common)
                } else {
                    Ok(())
                }
            })
            .map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
