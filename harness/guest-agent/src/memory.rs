//! The guest's free memory, so that one object's maps (or libbpf's copy of them) are given back
//! before the next object creates its own: a guest is small, and a map creation that fails with
//! ENOMEM only because the previous object's memory was still being freed would be a false
//! refusal.

use std::time::{Duration, Instant};

/// How long to wait at most for freed maps to be given back (the kernel frees a map after its
/// last reference drops, from a work queue, so memory comes back a little later).
const MEMORY_SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
/// Memory within this much of what was available before counts as given back.
const MEMORY_SETTLE_SLACK_KIB: u64 = 4 << 10;

/// `MemAvailable` of /proc/meminfo, in KiB.
pub fn available_kib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// For an error that ran out of memory: how much the guest has and what gives it more (the
/// object may fit a real machine, not this guest), else nothing.
pub fn out_of_memory_hint(error: &str) -> String {
    if !error.contains("ENOMEM") {
        return String::new();
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    match (field("MemTotal:"), parse_mem_available(&meminfo)) {
        (Some(total), Some(available)) => format!(
            " (this guest has {} MiB of memory, {} MiB available: raise `memory_mib` in the \
             matrix if the object needs more)",
            total >> 10,
            available >> 10
        ),
        _ => " (the guest ran out of memory: raise `memory_mib` in the matrix)".to_string(),
    }
}

/// Waits until available memory is back within a little of `before_kib`, or stops coming back
/// (memory the kernel keeps for good must not cost every object a timeout), or the timeout.
pub fn wait_until_given_back(before_kib: u64) {
    const POLL: Duration = Duration::from_millis(20);
    const STILL_POLLS: u32 = 3;
    let deadline = Instant::now() + MEMORY_SETTLE_TIMEOUT;
    let mut last = 0;
    let mut still = 0;
    while Instant::now() < deadline {
        let Some(now) = available_kib() else { return };
        if settled(before_kib, last, now, &mut still, STILL_POLLS) {
            return;
        }
        last = now;
        std::thread::sleep(POLL);
    }
}

/// Whether waiting is over: back within the slack, or no more coming back for `still_polls`.
fn settled(
    before_kib: u64,
    last_kib: u64,
    now_kib: u64,
    still: &mut u32,
    still_polls: u32,
) -> bool {
    if now_kib + MEMORY_SETTLE_SLACK_KIB >= before_kib {
        return true;
    }
    if now_kib <= last_kib {
        *still += 1;
    } else {
        *still = 0;
    }
    *still >= still_polls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_ends_when_memory_is_back_or_stops_coming_back() {
        let mut still = 0;
        assert!(settled(100_000, 0, 99_000, &mut still, 3));
        let mut still = 0;
        // Coming back: keep waiting.
        assert!(!settled(100_000, 50_000, 60_000, &mut still, 3));
        assert!(!settled(100_000, 60_000, 70_000, &mut still, 3));
        // Stopped: three polls without progress end the wait.
        assert!(!settled(100_000, 70_000, 70_000, &mut still, 3));
        assert!(!settled(100_000, 70_000, 70_000, &mut still, 3));
        assert!(settled(100_000, 70_000, 70_000, &mut still, 3));
    }

    #[test]
    fn mem_available_is_read_from_meminfo() {
        let meminfo = "MemTotal:        8000 kB\nMemFree:  100 kB\nMemAvailable:    4242 kB\n";
        assert_eq!(parse_mem_available(meminfo), Some(4242));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_mem_available("MemAvailable: lots kB\n"), None);
    }
}
