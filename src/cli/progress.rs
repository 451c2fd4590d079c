//! Progress bars on a terminal for the library's long tasks (registry pulls, compiles),
//! installed as its [`Reporter`]. Nothing is drawn when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::support::progress::{self, Reporter, Shown};

/// Installs the bars if stderr is a terminal.
pub fn install() {
    if std::io::stderr().is_terminal() {
        progress::install(Box::new(Bars));
    }
}

struct Bars;

impl Reporter for Bars {
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Shown> {
        let bar = match total {
            Some(total) => ProgressBar::new(total).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(label.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Bar(bar))
    }
}

struct Bar(ProgressBar);

impl Shown for Bar {
    fn advance(&mut self, bytes: u64) {
        self.0.inc(bytes);
    }

    fn finish(&mut self) {
        self.0.finish_and_clear();
    }
}
