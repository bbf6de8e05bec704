//! Progress: one bar per layer (bytes, rate) on a terminal, one terse line per layer
//! otherwise, nothing with `--quiet`. Everything goes to stderr; stdout stays for results.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        };
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        });
        Progress { mode, multi }
    }

    /// A status line (above the bars on a terminal).
    pub fn message(&self, msg: impl AsRef<str>) {
        match self.mode {
            Mode::Bars => {
                let _ = self.multi.println(msg.as_ref());
            }
            Mode::Lines => eprintln!("{}", msg.as_ref()),
            Mode::Quiet => {}
        }
    }

    pub fn layer(&self, digest: &str, size: u64) -> LayerProgress {
        let short = short_digest(digest);
        let bar = (self.mode == Mode::Bars).then(|| {
            let style = ProgressStyle::with_template(
                "{prefix} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> ");
            let b = self.multi.add(ProgressBar::new(size).with_style(style));
            b.set_prefix(short.clone());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        LayerProgress {
            mode: self.mode,
            bar,
            short,
            size,
            started: Instant::now(),
        }
    }
}

pub struct LayerProgress {
    mode: Mode,
    bar: Option<ProgressBar>,
    short: String,
    size: u64,
    started: Instant,
}

/// A cheap handle that moves the bar from the download task.
#[derive(Clone)]
pub struct Ticker(Option<ProgressBar>);

impl Ticker {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    pub fn reset(&self) {
        if let Some(b) = &self.0 {
            b.set_position(0);
        }
    }
}

impl LayerProgress {
    pub fn ticker(&self) -> Ticker {
        Ticker(self.bar.clone())
    }

    /// Start over (a retried download).
    pub fn restart(&mut self, why: &str) {
        self.started = Instant::now();
        match (&self.bar, self.mode) {
            (Some(b), _) => {
                b.set_message(format!("retrying: {why}"));
            }
            (None, Mode::Lines) => eprintln!("{}: retrying: {why}", self.short),
            _ => {}
        }
    }

    pub fn finish(&self, what: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        match (&self.bar, self.mode) {
            (Some(b), _) => {
                b.set_position(self.size);
                b.finish_with_message(what.to_string());
            }
            (None, Mode::Lines) => {
                eprintln!(
                    "{}: {what} ({}, {secs:.2}s)",
                    self.short,
                    HumanBytes(self.size)
                )
            }
            _ => {}
        }
    }

    pub fn fail(&self) {
        if let Some(b) = &self.bar {
            b.abandon_with_message("failed");
        }
    }
}

fn short_digest(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}
