//! The error type: errno plus what was being done to which object, and the kernel's log for
//! loads.

use std::fmt;

use crate::consts::ENOTSUPP;

/// How many trailing lines of a verifier/BTF log `Display` shows (the error keeps all of it).
const LOG_TAIL_LINES: usize = 60;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// A `bpf(2)` command failed.
    #[error("{command}{}: {}", object_suffix(object), Errno(*errno))]
    Syscall {
        /// Kernel name of the command, e.g. `BPF_MAP_CREATE`.
        command: &'static str,
        /// The map or program concerned, e.g. `map "counters"`, when known.
        object: Option<String>,
        errno: i32,
    },
    /// `BPF_PROG_LOAD` failed; `verifier_log` is the complete log of a reload with log level 1.
    #[error("{}", fmt_rejected("program", program, "BPF_PROG_LOAD", *errno, verifier_log, *log_truncated))]
    Rejected {
        program: String,
        /// The errno of the first (log-less) attempt: `EACCES`/`EINVAL` from the verifier, etc.
        errno: i32,
        verifier_log: String,
        /// The log did not fit the buffer of the last attempt and was cut.
        log_truncated: bool,
    },
    /// `BPF_BTF_LOAD` failed; `btf_log` is the kernel's BTF verifier log.
    #[error("{}", fmt_rejected("BTF", &format!("{size} bytes"), "BPF_BTF_LOAD", *errno, btf_log, *log_truncated))]
    BtfRejected {
        size: usize,
        errno: i32,
        btf_log: String,
        log_truncated: bool,
    },
    /// The request was malformed before it reached the kernel.
    #[error("{context}: {reason}")]
    Invalid { context: String, reason: String },
    /// Reading a kernel interface file (e.g. `/sys/devices/system/cpu/possible`) failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl BpfError {
    /// The errno the kernel returned, if this error came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            BpfError::Syscall { errno, .. }
            | BpfError::Rejected { errno, .. }
            | BpfError::BtfRejected { errno, .. } => Some(*errno),
            BpfError::Io { source, .. } => source.raw_os_error(),
            BpfError::Invalid { .. } => None,
        }
    }

    /// `EPERM`: not privileged enough (or, before 5.11, `RLIMIT_MEMLOCK` too small).
    pub fn is_permission_denied(&self) -> bool {
        self.errno() == Some(libc::EPERM)
    }

    /// `ENOTSUPP` (524, kernel-internal) or `EOPNOTSUPP` (95): the kernel knows the request
    /// but does not implement it for this object, e.g. `BPF_PROG_TEST_RUN` for a program type
    /// without test-run support.
    pub fn is_not_supported(&self) -> bool {
        matches!(self.errno(), Some(ENOTSUPP) | Some(libc::EOPNOTSUPP))
    }

    /// `EINVAL`: on an older kernel, typically an attribute, flag or type it does not know.
    pub fn is_invalid_argument(&self) -> bool {
        self.errno() == Some(libc::EINVAL)
    }

    /// The message without the kernel's log: for a rejected load only its first line (the log
    /// travels separately, in [`BpfError::log`], so it is not shown twice).
    pub fn headline(&self) -> String {
        match self {
            BpfError::Rejected { program, errno, .. } => {
                format!(
                    "program {program:?} rejected by BPF_PROG_LOAD: {}",
                    Errno(*errno)
                )
            }
            BpfError::BtfRejected { size, errno, .. } => {
                format!(
                    "BTF \"{size} bytes\" rejected by BPF_BTF_LOAD: {}",
                    Errno(*errno)
                )
            }
            other => other.to_string(),
        }
    }

    /// The verifier or BTF log, for load failures.
    pub fn log(&self) -> Option<&str> {
        match self {
            BpfError::Rejected { verifier_log, .. } => Some(verifier_log),
            BpfError::BtfRejected { btf_log, .. } => Some(btf_log),
            _ => None,
        }
    }

    pub(crate) fn syscall(command: u32, object: Option<String>, errno: i32) -> Self {
        BpfError::Syscall {
            command: crate::consts::cmd_name(command),
            object,
            errno,
        }
    }

    pub(crate) fn invalid(context: impl Into<String>, reason: impl Into<String>) -> Self {
        BpfError::Invalid {
            context: context.into(),
            reason: reason.into(),
        }
    }
}

fn object_suffix(object: &Option<String>) -> String {
    match object {
        Some(o) => format!(" on {o}"),
        None => String::new(),
    }
}

fn fmt_rejected(
    what: &str,
    name: &str,
    command: &str,
    errno: i32,
    log: &str,
    truncated: bool,
) -> String {
    let mut s = format!("{what} {name:?} rejected by {command}: {}", Errno(errno));
    let log = log.trim_end_matches(['\0', '\n']);
    if log.is_empty() {
        s.push_str(" (the kernel wrote no log)");
        return s;
    }
    let lines: Vec<&str> = log.lines().collect();
    if lines.len() > LOG_TAIL_LINES {
        s.push_str(&format!(
            "\n--- log (last {LOG_TAIL_LINES} of {} lines{}) ---\n",
            lines.len(),
            if truncated {
                ", cut: it did not fit the buffer"
            } else {
                ""
            }
        ));
        s.push_str(&lines[lines.len() - LOG_TAIL_LINES..].join("\n"));
    } else {
        s.push_str(&format!(
            "\n--- log{} ---\n",
            if truncated {
                " (cut: it did not fit the buffer)"
            } else {
                ""
            }
        ));
        s.push_str(log);
    }
    s
}

/// Displays an errno as `EINVAL (Invalid argument)`, with a hint for `EPERM`.
pub struct Errno(pub i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match errno_name(e) {
            Some(name) => write!(f, "{name}")?,
            None => write!(f, "errno {e}")?,
        }
        if e == ENOTSUPP {
            write!(f, " (operation not supported for this object)")?;
        } else {
            write!(f, " ({})", std::io::Error::from_raw_os_error(e))?;
        }
        if e == libc::EPERM {
            write!(
                f,
                "; bpf(2) needs root or CAP_BPF (plus CAP_NET_ADMIN for network program types, \
                 CAP_PERFMON for tracing), and before 5.11 a large enough RLIMIT_MEMLOCK"
            )?;
        }
        Ok(())
    }
}

/// The symbolic name of the errno values `bpf(2)` returns.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    Some(match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        ENOTSUPP => "ENOTSUPP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_display() {
        assert_eq!(
            Errno(libc::EINVAL).to_string(),
            "EINVAL (Invalid argument (os error 22))"
        );
        assert!(Errno(ENOTSUPP).to_string().starts_with("ENOTSUPP"));
        assert!(Errno(libc::EPERM).to_string().contains("CAP_BPF"));
    }

    #[test]
    fn rejected_display_keeps_the_tail() {
        let log: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let e = BpfError::Rejected {
            program: "p".into(),
            errno: libc::EACCES,
            verifier_log: log,
            log_truncated: false,
        };
        let s = e.to_string();
        assert!(s.contains("line 99"));
        assert!(!s.contains("line 10\n"));
        assert!(s.contains("last 60 of 100 lines"));
        assert_eq!(e.errno(), Some(libc::EACCES));
        assert!(e.log().unwrap().contains("line 0"));
    }

    #[test]
    fn syscall_display() {
        let e = BpfError::syscall(
            crate::consts::BPF_MAP_UPDATE_ELEM,
            Some("map \"m\"".into()),
            libc::E2BIG,
        );
        assert_eq!(
            e.to_string(),
            "BPF_MAP_UPDATE_ELEM on map \"m\": E2BIG (Argument list too long (os error 7))"
        );
    }
}
