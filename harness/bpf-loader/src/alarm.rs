//! A time limit on one blocking `bpf(2)` call: `SIGALRM` after a delay interrupts the verifier
//! (it checks for pending signals and returns `EAGAIN`), which keeps the head of its log.
//! Process-wide (`ITIMER_REAL`), so only for callers that opt in and run one load at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static FIRED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    FIRED.store(true, Ordering::SeqCst);
}

/// Armed until dropped; then the timer is stopped and the previous handler restored.
pub(crate) struct Alarm {
    previous: libc::sigaction,
}

impl Alarm {
    pub(crate) fn arm(after: Duration) -> Option<Alarm> {
        FIRED.store(false, Ordering::SeqCst);
        // SAFETY: zeroed sigaction is a valid "no flags, empty mask" value; the handler only
        // stores to an atomic, which is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_alarm as *const () as libc::sighandler_t;
            // No SA_RESTART: the interrupted bpf(2) must return.
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGALRM, &action, &mut previous) != 0 {
                return None;
            }
            // libc marks time_t and suseconds_t deprecated on musl (their width changes in musl
            // 1.2); the casts are right for either width.
            #[allow(deprecated)]
            let timer = libc::itimerval {
                it_interval: libc::timeval {
                    tv_sec: 0,
                    tv_usec: 0,
                },
                it_value: libc::timeval {
                    tv_sec: after.as_secs() as libc::time_t,
                    tv_usec: after.subsec_micros() as libc::suseconds_t,
                },
            };
            if libc::setitimer(libc::ITIMER_REAL, &timer, std::ptr::null_mut()) != 0 {
                libc::sigaction(libc::SIGALRM, &previous, std::ptr::null_mut());
                return None;
            }
            Some(Alarm { previous })
        }
    }

    pub(crate) fn fired() -> bool {
        FIRED.load(Ordering::SeqCst)
    }
}

impl Drop for Alarm {
    fn drop(&mut self) {
        // SAFETY: disarming the timer and restoring the handler saved in `arm`.
        unsafe {
            let off: libc::itimerval = std::mem::zeroed();
            libc::setitimer(libc::ITIMER_REAL, &off, std::ptr::null_mut());
            libc::sigaction(libc::SIGALRM, &self.previous, std::ptr::null_mut());
        }
        FIRED.store(false, Ordering::SeqCst);
    }
}
