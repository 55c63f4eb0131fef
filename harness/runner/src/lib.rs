//! The runner, in the order a run flows: the matrix (`matrix/`) and the objects (`corpus/`,
//! `fixtures/`) are planned, kernels are provisioned (`images/`) and predicted (`predict/`),
//! guests get their bundle (`guest/`) and are booted (`vm/`), what they said is judged
//! (`verdict/`) and reported (`report/`). `run/` drives those steps for the main command.

pub mod cli;
pub mod corpus;
pub mod fixtures;
pub mod fsutil;
pub mod guest;
pub mod images;
pub mod interrupt;
pub mod kernel_btf;
pub mod layout;
pub mod leftovers;
pub mod matrix;
pub mod predict;
pub mod report;
pub mod run;
pub mod verdict;
pub mod vm;
