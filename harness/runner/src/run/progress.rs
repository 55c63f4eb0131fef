//! Live progress of the guests: a bar per kernel on a terminal, plain lines elsewhere (CI logs).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc;

use crate::vm::GuestEvent;

/// Consumes guest events until the channel closes.
pub async fn report(
    mut events: mpsc::UnboundedReceiver<GuestEvent>,
    cases_per_kernel: HashMap<String, u64>,
) {
    let interactive = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if interactive {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{spinner} {prefix:>8} [{bar:20}] {pos}/{len} {msg} ({elapsed})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Some(event) = events.recv().await {
        match event {
            GuestEvent::Started { kernel } => {
                let bar = multi.add(ProgressBar::new(
                    cases_per_kernel.get(&kernel).copied().unwrap_or(0),
                ));
                bar.set_style(style.clone());
                bar.set_prefix(kernel.clone());
                bar.set_message("booting");
                bar.enable_steady_tick(Duration::from_millis(120));
                if !interactive {
                    eprintln!("[{kernel}] booting");
                }
                bars.insert(kernel, bar);
            }
            GuestEvent::Hello { kernel, release } => {
                if let Some(bar) = bars.get(&kernel) {
                    bar.set_message(format!("running on {release}"));
                    if !interactive {
                        eprintln!(
                            "[{kernel}] agent up on {release} after {:.1} s",
                            bar.elapsed().as_secs_f64()
                        );
                    }
                }
            }
            GuestEvent::CaseDone { kernel } => {
                if let Some(bar) = bars.get(&kernel) {
                    bar.inc(1);
                }
            }
            GuestEvent::Finished {
                kernel,
                status,
                elapsed,
            } => {
                if let Some(bar) = bars.get(&kernel) {
                    bar.finish_with_message(status.clone());
                }
                if !interactive {
                    eprintln!("[{kernel}] {status} after {:.1} s", elapsed.as_secs_f64());
                }
            }
        }
    }
}
