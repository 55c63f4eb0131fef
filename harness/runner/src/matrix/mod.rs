//! Choosing the kernels of a run.

pub mod partition;

pub use partition::Partition;
