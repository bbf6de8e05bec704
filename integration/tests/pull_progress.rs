//! Progress on a terminal: `mocker-pull` with stdout and stderr on a pseudo-terminal draws one
//! bar per layer (layer id, bytes done / total, rate); `--quiet` draws nothing at all.

use std::fs::File;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use integration::image::{BuiltImage, Compression, Config, Entry, ImageBuilder};
use integration::pull::{PullEnv, cached_layer_keys, remove_bundle_args, run};
use nix::pty::{Winsize, openpty};

struct TtyRun {
    status: std::process::ExitStatus,
    /// Everything written to the terminal, escapes included.
    raw: String,
}

/// Runs `cmd` with stdout and stderr on a fresh 120x40 pseudo-terminal, stdin closed.
fn run_on_tty(cmd: &mut Command) -> TtyRun {
    let ws = Winsize {
        ws_row: 40,
        ws_col: 120,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let pty = openpty(Some(&ws), None).expect("openpty");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .stderr(Stdio::from(pty.slave))
        .spawn()
        .expect("spawn mocker-pull");
    // The Command keeps the slave fds it was given: drop them, or the master never sees EOF.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // No slave fd left on our side: reading the master ends (EIO) once the child exits.
    let reader = std::thread::spawn(move || {
        let mut master = File::from(pty.master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        out
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mocker-pull on a terminal did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let raw = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    TtyRun { status, raw }
}

/// What a terminal showed: the output is played on a small screen model of `width` columns
/// (autowrap, `\r`, `\n`, cursor up/down, erase line/screen; colours ignored).
struct Shown {
    /// Every line shown at some point: a row is recorded whenever it is about to change or
    /// the cursor leaves it.
    seen: Vec<String>,
    /// The screen at the end, non-empty rows.
    last: Vec<String>,
}

fn frames(raw: &str, width: usize) -> Shown {
    struct Screen {
        rows: Vec<Vec<char>>,
        r: usize,
        c: usize,
        width: usize,
        seen: Vec<String>,
    }
    impl Screen {
        fn row(&mut self) -> &mut Vec<char> {
            while self.rows.len() <= self.r {
                self.rows.push(Vec::new());
            }
            &mut self.rows[self.r]
        }
        fn record(&mut self) {
            let line: String = self.row().iter().collect::<String>().trim().to_string();
            if !line.is_empty() && self.seen.last() != Some(&line) {
                self.seen.push(line);
            }
        }
        fn put(&mut self, ch: char) {
            if self.c >= self.width {
                self.record();
                self.r += 1;
                self.c = 0;
            }
            let c = self.c;
            let row = self.row();
            if row.len() <= c {
                row.resize(c + 1, ' ');
            }
            row[c] = ch;
            self.c += 1;
        }
    }
    let mut s = Screen {
        rows: Vec::new(),
        r: 0,
        c: 0,
        width,
        seen: Vec::new(),
    };
    let mut chars = raw.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\r' => {
                s.record();
                s.c = 0;
            }
            '\n' => {
                s.record();
                s.r += 1;
                s.c = 0;
            }
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                let mut fin = ' ';
                for c in chars.by_ref() {
                    if ('\x40'..='\x7e').contains(&c) {
                        fin = c;
                        break;
                    }
                    params.push(c);
                }
                let n: usize = params.parse().unwrap_or(1).max(1);
                match fin {
                    'A' => {
                        s.record();
                        s.r = s.r.saturating_sub(n);
                    }
                    'B' => {
                        s.record();
                        s.r += n;
                    }
                    'K' => {
                        s.record();
                        s.row().clear();
                    }
                    'J' => {
                        s.record();
                        let r = s.r;
                        s.rows.truncate(r + 1);
                        s.row().clear();
                    }
                    _ => {}
                }
            }
            '\x1b' => {
                chars.next();
            }
            c if !c.is_control() => s.put(c),
            _ => {}
        }
    }
    for r in 0..s.rows.len() {
        s.r = r;
        s.record();
    }
    let last = s
        .rows
        .iter()
        .map(|r| r.iter().collect::<String>().trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    Shown { seen: s.seen, last }
}

const PROMPT: &str = "$ mocker-pull IMAGE DIR";

fn short(digest: &str) -> &str {
    &digest.trim_start_matches("sha256:")[..12]
}

/// 6 MiB of noise: enough bytes for a bar to move, cheap to make in a debug test.
fn noise(seed: u64) -> Vec<u8> {
    let mut seed = seed | 1;
    let mut data = Vec::with_capacity(6 << 20);
    while data.len() < 6 << 20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        data.extend_from_slice(&seed.to_le_bytes());
    }
    data
}

/// Three uncompressed layers (no compressor to wait for in a debug test) of noise each.
fn image() -> BuiltImage {
    let mut b = ImageBuilder::new()
        .compression(Compression::None)
        .config(Config::default().cmd(&["/bin/sh"]));
    for layer in 0..3 {
        b = b.layer(&[Entry::file(&format!("blob{layer}"), noise(layer + 7))]);
    }
    b.build()
}

/// In a bar line, `2.26 MiB/6.00 MiB` (bytes done / total) followed by `11.02 MiB/s` (rate):
/// `(done, total, rate)` in bytes and bytes per second.
fn bytes_and_rate(line: &str) -> Option<(f64, f64, f64)> {
    let unit = |u: &str| -> Option<f64> {
        Some(match u {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            _ => return None,
        })
    };
    let t: Vec<&str> = line.split_whitespace().collect();
    // `2.26` `MiB/6.00` `MiB` ... `11.02` `MiB/s`
    let i = (1..t.len().saturating_sub(1)).find(|&i| {
        t[i].split_once('/').is_some_and(|(u, n)| {
            unit(u).is_some() && n.parse::<f64>().is_ok() && t[i - 1].parse::<f64>().is_ok()
        }) && unit(t[i + 1]).is_some()
    })?;
    let (u1, n2) = t[i].split_once('/')?;
    let done = t[i - 1].parse::<f64>().ok()? * unit(u1)?;
    let total = n2.parse::<f64>().ok()? * unit(t[i + 1])?;
    let j = (i + 3..t.len()).find(|&j| {
        t[j].strip_suffix("/s").is_some_and(|u| unit(u).is_some())
            && t[j - 1].parse::<f64>().is_ok()
    })?;
    let rate = t[j - 1].parse::<f64>().ok()? * unit(t[j].strip_suffix("/s")?)?;
    Some((done, total, rate))
}

/// The final screen lists one bar per layer, bottom layer first, whatever order they ran in
/// (they are drawn as each layer starts).
fn assert_bars_in_image_order(img: &BuiltImage, screen: &[String]) {
    let ids: Vec<&str> = img.layers.iter().map(|l| short(&l.blob.digest)).collect();
    let bars: Vec<&str> = screen
        .iter()
        .filter_map(|l| ids.iter().find(|id| l.starts_with(**id)).copied())
        .collect();
    assert_eq!(bars, ids, "bars not in image order: {screen:#?}");
}

#[test]
fn progress_bars_on_a_terminal_and_nothing_with_quiet() {
    let env = PullEnv::new();
    let img = image();
    let r = env.push("progress/big", "v1", &img);

    let out = run_on_tty(env.cmd().arg(&r).arg(env.dir("a")));
    assert!(out.status.success(), "pull failed on a tty:\n{}", out.raw);
    // Played after a prompt line, which must survive (indicatif once erased it).
    let shown = frames(&format!("{PROMPT}\r\n{}", out.raw), 120);
    let lines = &shown.seen;
    for l in &img.layers {
        let id = short(&l.blob.digest);
        let mine: Vec<&String> = lines.iter().filter(|f| f.starts_with(id)).collect();
        let size = l.blob.size() as f64;
        // Moving: some frame shows part of the layer at a non-zero rate, and it ends complete.
        assert!(
            mine.iter().any(
                |f| bytes_and_rate(f).is_some_and(|(done, total, rate)| done > 0.0
                    && rate > 0.0
                    && (total - size).abs() < size / 100.0)
            ),
            "no moving bar (bytes and rate) for layer {id}; its frames: {mine:#?}"
        );
        let last = mine.last().expect("frames of the layer");
        assert!(
            bytes_and_rate(last).is_some_and(|(done, total, _)| done == total)
                && last.ends_with("extracted"),
            "layer {id} does not end complete: {last:?}"
        );
    }
    assert_eq!(shown.last[0], PROMPT, "the line before the pull was erased");
    assert_bars_in_image_order(&img, &shown.last);
    let summary = shown.last.iter().position(|l| l.starts_with("pulled "));
    assert!(
        summary.is_some_and(|p| p > img.layers.len()),
        "the summary is not below the bars: {:#?}",
        shown.last
    );
    assert!(
        lines.iter().any(|l| l.starts_with("pulled ")),
        "no summary line: {lines:#?}"
    );

    // Warm: the layers are cached; say so.
    let out = run_on_tty(env.cmd().arg(&r).arg(env.dir("warm")));
    assert!(
        out.status.success(),
        "warm pull failed on a tty:\n{}",
        out.raw
    );
    let warm = frames(&out.raw, 120);
    for l in &img.layers {
        let id = short(&l.blob.digest);
        let last = warm
            .last
            .iter()
            .find(|f| f.starts_with(id))
            .expect("a line per layer");
        // Nothing was transferred: the size, no rate.
        assert!(
            last.ends_with("cached") && last.contains("6.00 MiB") && !last.contains("/s"),
            "{last:?}"
        );
    }
    assert_bars_in_image_order(&img, &warm.last);

    // --quiet: not a byte on the terminal, warm or cold.
    let quiet = |dir: &str| {
        let out = run_on_tty(env.cmd().args(["--quiet", &r]).arg(env.dir(dir)));
        assert!(out.status.success(), "quiet pull failed:\n{}", out.raw);
        assert_eq!(out.raw, "", "--quiet printed on a terminal ({dir})");
    };
    quiet("q-warm");
    for d in ["a", "warm", "q-warm"] {
        run(env.cmd().args(remove_bundle_args(&env.dir(d)))).ok();
    }
    run(env.cmd().arg("prune")).ok();
    assert_eq!(cached_layer_keys(env.cache()), Vec::<String>::new());
    quiet("q-cold");
}

/// A layer writing through a lower layer's symlink makes the pull fall back to a plain rootfs
/// after the overlay layers were extracted: a second set of bars (the blobs) follows the first
/// and the message between them, all left readable.
#[test]
fn fallback_to_a_plain_rootfs_draws_a_second_set_of_bars() {
    let env = PullEnv::new();
    let img = ImageBuilder::new()
        .compression(Compression::None)
        .config(Config::default().cmd(&["/bin/sh"]))
        .layer(&[
            Entry::dir("usr"),
            Entry::dir("usr/lib"),
            Entry::symlink("lib", "usr/lib"),
            Entry::file("usr/lib/a", noise(1)),
        ])
        .layer(&[Entry::file("lib/b", noise(2))])
        .build();
    let r = env.push("progress/fallback", "v1", &img);
    let dir = env.dir("f");
    let out = run_on_tty(env.cmd().arg(&r).arg(&dir));
    assert!(out.status.success(), "pull failed on a tty:\n{}", out.raw);
    assert!(dir.join("rootfs/usr/lib/b").is_file());
    let shown = frames(&format!("{PROMPT}\r\n{}", out.raw), 120);
    let screen = &shown.last;
    assert_eq!(screen[0], PROMPT, "the line before the pull was erased");
    let at = |what: &str| {
        screen
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} on screen: {screen:#?}"))
    };
    let ids: Vec<&str> = img.layers.iter().map(|l| short(&l.blob.digest)).collect();
    let extracted: Vec<&String> = screen.iter().filter(|l| l.ends_with("extracted")).collect();
    let downloaded: Vec<&String> = screen
        .iter()
        .filter(|l| l.ends_with("downloaded"))
        .collect();
    assert_eq!(extracted.len(), 2, "{screen:#?}");
    assert_eq!(downloaded.len(), 2, "{screen:#?}");
    for (set, id) in [extracted, downloaded]
        .iter()
        .flat_map(|s| s.iter().zip(&ids))
    {
        assert!(
            set.starts_with(id),
            "{set:?} is not layer {id}: {screen:#?}"
        );
        assert!(bytes_and_rate(set).is_some(), "{set:?}");
    }
    let msg = at("a symlink in a lower layer");
    assert!(
        at("extracted") < msg && msg < at("downloaded"),
        "{screen:#?}"
    );
    assert!(at("downloaded") < at("applying layer 1/2"), "{screen:#?}");
    assert!(at("applying layer 2/2") < at("pulled "), "{screen:#?}");
}
