//! The runner: matrix configuration, image provisioning, guests, verdicts and reports.

pub mod agent_build;
pub mod bless;
pub mod bpf_build;
pub mod btf_values;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod fixtures;
pub mod fsutil;
pub mod guest;
pub mod images;
pub mod initramfs;
pub mod lock;
pub mod lockfile;
pub mod predict;
pub mod progress;
pub mod readable;
pub mod reloc_table;
pub mod report;
pub mod run;
pub mod verdict;
pub mod vm;
