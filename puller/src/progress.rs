//! Progress: one bar per layer (bytes, rate) on a terminal, one terse line per layer
//! otherwise, nothing with `--quiet`. Everything goes to stderr; stdout stays for results.
//! Bars stand in image order, whatever order the layers start in.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Bars,
    Lines,
    Quiet,
}

/// `{prefix}` is the layer's short digest; the columns line up between the two styles.
const MOVING: &str =
    "{prefix} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} {msg}";
/// Nothing was transferred (the layer was cached): a rate would be meaningless.
const STILL: &str = "{prefix} {bar:30.cyan/blue} {total_bytes:>21}              {msg}";

#[derive(Clone)]
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    /// The image's layer digests, bottom first: where each bar goes.
    order: Arc<Mutex<Vec<String>>>,
    /// Image positions of the bars shown so far, in screen order.
    shown: Arc<Mutex<Vec<usize>>>,
    /// The bars of the current set of layers, while they are drawn.
    bars: Arc<Mutex<Vec<ProgressBar>>>,
    /// The bars were left on screen as last drawn: messages go straight to stderr.
    detached: Arc<AtomicBool>,
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
        let multi = MultiProgress::with_draw_target(Self::draw_target(mode));
        Progress {
            mode,
            multi,
            order: Arc::default(),
            shown: Arc::default(),
            bars: Arc::default(),
            detached: Arc::default(),
        }
    }

    fn draw_target(mode: Mode) -> ProgressDrawTarget {
        match mode {
            Mode::Bars => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        }
    }

    /// Every layer is done: leave the bars on screen as they are and stop drawing. Messages
    /// printed above bars that are all finished would make indicatif (0.18) move the cursor
    /// up too far and erase the bars and the lines before them (the shell's prompt).
    pub fn layers_done(&self) {
        if self.mode != Mode::Bars || self.detached.swap(true, Ordering::SeqCst) {
            return;
        }
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        for b in self.bars.lock().expect("progress lock").drain(..) {
            self.multi.remove(&b);
        }
        self.shown.lock().expect("progress lock").clear();
    }

    /// The layers' digests in image order, so that their bars are shown in that order.
    pub fn set_layer_order<'a>(&self, digests: impl IntoIterator<Item = &'a str>) {
        *self.order.lock().expect("progress lock") =
            digests.into_iter().map(str::to_string).collect();
    }

    /// Add `bar` below the bars of earlier layers and above those of later ones.
    fn place(&self, digest: &str, bar: ProgressBar) -> ProgressBar {
        let pos = self
            .order
            .lock()
            .expect("progress lock")
            .iter()
            .position(|d| d == digest)
            .unwrap_or(usize::MAX);
        if self.detached.swap(false, Ordering::SeqCst) {
            // A new set of bars (after an overlay fallback) starts below the old ones.
            self.multi.set_draw_target(Self::draw_target(self.mode));
        }
        let mut shown = self.shown.lock().expect("progress lock");
        let at = shown.iter().filter(|&&p| p <= pos).count();
        shown.insert(at, pos);
        self.bars.lock().expect("progress lock").push(bar.clone());
        self.multi.insert(at, bar)
    }

    /// A status line (above the bars on a terminal).
    pub fn message(&self, msg: impl AsRef<str>) {
        match self.mode {
            Mode::Bars if self.detached.load(Ordering::SeqCst) => eprintln!("{}", msg.as_ref()),
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
            let b = self.place(digest, ProgressBar::new(size).with_style(style(MOVING)));
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
                if b.position() == 0 {
                    b.set_style(style(STILL));
                }
                // Once finished, the rate shown is the layer's average since its bar appeared.
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

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

fn short_digest(d: &str) -> String {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    hex.chars().take(12).collect()
}
