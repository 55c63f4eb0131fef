//! The runner: matrix configuration, image provisioning, guests, verdicts and reports.

pub mod bpf_build;
pub mod config;
pub mod fixtures;
pub mod images;
pub mod lockfile;
