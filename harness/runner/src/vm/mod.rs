//! Backends that run the agent somewhere and watch it: QEMU guests (the harness's own command
//! line, or virtme-ng's), and the host itself.
//!
//! Both feed the same supervisor: frames from the results channel, console bytes from another
//! stream, three timeouts, and cancellation. Whatever ends a guest, its process is killed before
//! the supervisor returns, so no QEMU outlives its run.

pub mod accel;
pub mod host;
pub mod qemu;
pub mod qmp;
pub mod results_region;
pub mod snapshot;
mod supervise;
pub mod virtme_ng;

use std::time::Duration;

pub use supervise::GuestEvent;

/// The three limits of a guest's life.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Start to agent hello.
    pub boot: Duration,
    /// Longest silence of the agent once it has said hello.
    pub test: Duration,
    /// Start to exit, whatever happens.
    pub guest: Duration,
}
