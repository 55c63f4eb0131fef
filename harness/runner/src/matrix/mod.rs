//! The kernels of a run: the matrix file (`config`), the packages each was pinned to
//! (`lockfile`, and `pinning` for resolving what is not pinned yet), and partitions.

pub mod config;
pub mod lockfile;
pub mod partition;
pub mod pinning;

pub use partition::Partition;
