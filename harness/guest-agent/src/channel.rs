//! Where frames go: the results serial port in a guest, stdout on the host.

use std::fs::File;
use std::io::Write;

use guest_protocol::{frame, GuestMessage, RESULTS_PORT_PARAM};

pub struct Channel {
    sink: Box<dyn Write>,
    /// The serial port, kept to wait for its transmit queue to drain before power-off.
    port: Option<File>,
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
                }
            }
            Err(e) => {
                eprintln!("guest-agent: cannot open results port {path}: {e}; using the console");
                match File::options().write(true).open("/dev/console") {
                    Ok(console) => Channel {
                        sink: Box::new(console),
                        port: None,
                    },
                    Err(_) => Channel::stdout(),
                }
            }
        }
    }

    pub fn send(&mut self, message: &GuestMessage) {
        // A write error here has nowhere to be reported; the runner sees the missing frames.
        let _ = self.sink.write_all(frame(message).as_bytes());
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
