//! Where frames go: the results serial port in a guest, stdout on the host.

use std::fs::File;
use std::io::Write;

use guest_protocol::{frame, region_notice, GuestMessage, RESULTS_PORT_PARAM};

use crate::shared_region::ResultsLog;

pub struct Channel {
    sink: Box<dyn Write>,
    /// The serial port, kept to wait for its transmit queue to drain before power-off.
    port: Option<File>,
    /// A restored guest's frames go to the shared-memory region, a notice of each on the port;
    /// None once the region is full (later frames go over the port, after every notice).
    region: Option<ResultsLog>,
}

/// `/dev/<port>` named by `harness.port=` on the kernel command line (default ttyS1).
pub fn guest_port_path() -> String {
    let port = std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|cmdline| {
            cmdline.split_whitespace().find_map(|arg| {
                arg.strip_prefix(RESULTS_PORT_PARAM)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(str::to_string)
            })
        })
        .unwrap_or_else(|| "ttyS1".to_string());
    format!("/dev/{port}")
}

impl Channel {
    pub fn stdout() -> Self {
        Channel {
            sink: Box::new(std::io::stdout()),
            port: None,
            region: None,
        }
    }

    /// Opens the port named by `harness.port=` on the kernel command line (default ttyS1) in raw
    /// mode. Falls back to the console so that a misconfigured guest still says something.
    pub fn open_guest_port() -> Self {
        let path = guest_port_path();
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(file) => {
                set_raw(&file);
                let port = file.try_clone().ok();
                Channel {
                    sink: Box::new(file),
                    port,
                    region: None,
                }
            }
            Err(e) => {
                eprintln!("guest-agent: cannot open results port {path}: {e}; using the console");
                match File::options().write(true).open("/dev/console") {
                    Ok(console) => Channel {
                        sink: Box::new(console),
                        port: None,
                        region: None,
                    },
                    Err(_) => Channel::stdout(),
                }
            }
        }
    }

    /// From now on, frames go through the shared-memory region (the host reads it: its bundle
    /// came that way), when this guest has one.
    pub fn use_region(&mut self) {
        self.region = ResultsLog::open();
    }

    pub fn send(&mut self, message: &GuestMessage) {
        let framed = frame(message);
        // A write error here has nowhere to be reported; the runner sees the missing frames.
        let written = match self.region.as_mut().map(|r| r.append(framed.as_bytes())) {
            Some(Some(end)) => self.sink.write_all(region_notice(end).as_bytes()),
            Some(None) => {
                self.region = None;
                self.sink.write_all(framed.as_bytes())
            }
            None => self.sink.write_all(framed.as_bytes()),
        };
        let _ = written;
        let _ = self.sink.flush();
    }

    pub fn flush(&mut self) {
        let _ = self.sink.flush();
        if let Some(port) = &self.port {
            use std::os::fd::AsRawFd;
            // SAFETY: tcdrain on a valid tty fd; waits until the UART has sent everything, so
            // power-off cannot cut the last frame.
            unsafe {
                libc::tcdrain(port.as_raw_fd());
            }
        }
    }
}

/// Raw mode: no newline translation, no echo; a tty left cooked turns "\n" into "\r\n" (and
/// never hands a reader a line without one). CLOCAL: no modem lines to wait for.
pub fn set_raw(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: tcgetattr/tcsetattr on a valid fd with a zeroed termios we own.
    unsafe {
        let mut termios: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(file.as_raw_fd(), &mut termios) == 0 {
            libc::cfmakeraw(&mut termios);
            termios.c_cflag |= libc::CLOCAL;
            libc::cfsetospeed(&mut termios, libc::B115200);
            libc::tcsetattr(file.as_raw_fd(), libc::TCSANOW, &termios);
        }
    }
}
