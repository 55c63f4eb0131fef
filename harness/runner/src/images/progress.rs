//! Progress reporting while provisioning kernels.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives provisioning progress. Called from the provisioning thread(s).
pub trait Progress: Sync {
    /// `bytes_done` of `bytes_total` of `package` are downloaded for `kernel`.
    fn download(&self, kernel: &str, package: &str, bytes_done: u64, bytes_total: u64);
    /// A step of provisioning `kernel` begins (or a notable event happens).
    fn stage(&self, kernel: &str, message: &str);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn download(&self, _: &str, _: &str, _: u64, _: u64) {}
    fn stage(&self, _: &str, _: &str) {}
}

/// One bar per download on a terminal (stderr); plain lines otherwise (CI logs): one at the
/// start and one at the end of each download, and one per stage.
pub struct IndicatifProgress {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<(String, String), ProgressBar>>,
}

impl Default for IndicatifProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl IndicatifProgress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new() -> IndicatifProgress {
        let multi = std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        IndicatifProgress {
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// The underlying `MultiProgress` (to add other bars to the same display), on a terminal.
    pub fn multi(&self) -> Option<&MultiProgress> {
        self.multi.as_ref()
    }
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

impl Progress for IndicatifProgress {
    fn download(&self, kernel: &str, package: &str, done: u64, total: u64) {
        let key = (kernel.to_string(), package.to_string());
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let finished = done >= total;
        match &self.multi {
            Some(multi) => {
                let bar = bars.entry(key).or_insert_with(|| {
                    let b = multi.add(ProgressBar::new(total));
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>8} {msg:40!} [{bar:25}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    b.set_prefix(kernel.to_string());
                    b.set_message(package.to_string());
                    b
                });
                bar.set_length(total);
                bar.set_position(done.min(total));
                if finished && !bar.is_finished() {
                    bar.finish();
                }
            }
            None => {
                if !bars.contains_key(&key) {
                    eprintln!("{kernel}: downloading {package} ({})", mib(total));
                    bars.insert(key.clone(), ProgressBar::hidden());
                }
                let bar = &bars[&key];
                if finished && !bar.is_finished() {
                    bar.finish();
                    eprintln!("{kernel}: downloaded {package}");
                }
            }
        }
    }

    fn stage(&self, kernel: &str, message: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(format!("{kernel:>8} {message}"));
            }
            None => eprintln!("{kernel}: {message}"),
        }
    }
}
