//! SIGINT/SIGTERM before any guest runs (while objects build, packages download, images are
//! extracted): the run stops at once with exit status 130, as README promises. Its children
//! die with it (they are spawned with a parent-death signal) and its temporaries carry its pid,
//! so the next run reclaims them (see [`crate::leftovers`]).
//!
//! Once the guests' supervisor has its own signal handling (which kills every QEMU and writes
//! a partial report), [`hand_over`] makes this handler step aside.

use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status of an interrupted run (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: i32 = 130;

static HANDED_OVER: AtomicBool = AtomicBool::new(false);

extern "C" fn stop_now(_signal: libc::c_int) {
    if HANDED_OVER.load(Ordering::SeqCst) {
        return;
    }
    let message = b"\ninterrupted before any guest ran: stopping\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
        libc::_exit(EXIT_INTERRUPTED);
    }
}

/// Makes SIGINT and SIGTERM stop the process with [`EXIT_INTERRUPTED`] until [`hand_over`].
pub fn stop_on_signal() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installs a handler that only calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = stop_now as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// The caller now handles SIGINT/SIGTERM itself: this module's handler does nothing more.
pub fn hand_over() {
    HANDED_OVER.store(true, Ordering::SeqCst);
}
