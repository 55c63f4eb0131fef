//! `bpf_printk` output of a case, read from the kernel's trace pipe around the case.
//!
//! Only in a guest (the agent is PID 1 and mounts tracefs itself): on the host the trace pipe is
//! shared with everything else on the machine, and reading it would consume other users' data.
//! The pipe is opened non-blocking: emptied before the case, read to its end after.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

const TRACE_PIPE: &str = "/sys/kernel/tracing/trace_pipe";
/// What `bpf_trace_printk` writes before the program's message on each line.
const MARKER: &str = "bpf_trace_printk: ";
/// Bounds on what one case reports; the rest is counted in a last line.
const MAX_LINES: usize = 200;
const MAX_BYTES: usize = 64 * 1024;

static PIPE: Mutex<Option<File>> = Mutex::new(None);

fn with_pipe<T>(f: impl FnOnce(&mut File) -> T) -> Option<T> {
    let mut guard = PIPE.lock().ok()?;
    if guard.is_none() {
        if std::process::id() != 1 {
            return None;
        }
        *guard = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(TRACE_PIPE)
            .ok();
    }
    guard.as_mut().map(f)
}

/// Everything the pipe holds now, up to `limit` bytes (the rest is read and dropped).
fn read_available(pipe: &mut File, limit: usize) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut cut = false;
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(out.len());
                if n > room {
                    cut = true;
                }
                out.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    (out, cut)
}

/// Forgets what earlier cases (or the kernel) wrote.
pub fn begin_case() {
    with_pipe(|pipe| read_available(pipe, 0));
}

/// The messages programs printed since [`begin_case`].
pub fn end_case() -> Vec<String> {
    with_pipe(|pipe| {
        let (bytes, cut) = read_available(pipe, MAX_BYTES);
        messages(&String::from_utf8_lossy(&bytes), cut)
    })
    .unwrap_or_default()
}

/// The program's part of each trace line, bounded.
pub fn messages(text: &str, cut: bool) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.find(MARKER) {
            Some(at) => l[at + MARKER.len()..].to_string(),
            None => l.trim().to_string(),
        })
        .collect();
    let total = lines.len();
    if total > MAX_LINES {
        lines.truncate(MAX_LINES);
        lines.push(format!("... {} more lines", total - MAX_LINES));
    } else if cut {
        lines.push(format!("... output cut at {MAX_BYTES} bytes"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_part_of_each_line_is_kept() {
        let text = "          <idle>-0       [000] d.s. 12.3: bpf_trace_printk: state field 2\n\
                    \n   init-1 [000] .... 12.4: bpf_trace_printk: done\n";
        assert_eq!(messages(text, false), ["state field 2", "done"]);
        assert_eq!(
            messages("odd line\n", true),
            ["odd line", "... output cut at 65536 bytes"]
        );
        let many: String = (0..250)
            .map(|i| format!("x: bpf_trace_printk: {i}\n"))
            .collect();
        let got = messages(&many, false);
        assert_eq!(got.len(), MAX_LINES + 1);
        assert_eq!(got.last().unwrap(), "... 50 more lines");
    }
}
