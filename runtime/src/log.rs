//! runc-compatible logging.
//!
//! Lines look exactly like runc's (logrus) so engines can parse them:
//! - text: `time="2024-01-02T03:04:05Z" level=error msg="container does not exist"`
//! - json: `{"level":"error","msg":"container does not exist","time":"2024-01-02T03:04:05Z"}`
//!
//! Without `--log` lines go to stderr; with `--log FILE` they go to the file and a failing
//! command additionally prints its error as one plain line on stderr (as runc does).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Set in the container init: it closes the log file's descriptor (see `linux::fds`), and a
/// later write through that number could land in whatever reused it.
static DETACHED: AtomicBool = AtomicBool::new(false);

/// In the init, before its inherited descriptors are closed: never write to the log again
/// (its errors travel to the parent over the channel).
pub fn detach() {
    DETACHED.store(true, Ordering::Relaxed);
}

/// Set up logging once, from the global flags.
pub fn init(path: Option<&Path>, format: Format, debug: bool) -> Result<()> {
    let file = match path {
        Some(p) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(libc::O_CLOEXEC)
                .mode(0o644)
                .open(p)
                .with_context(|| format!("--log {}", p.display()))?,
        ),
        None => None,
    };
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
    Ok(())
}

pub fn debug(msg: impl std::fmt::Display) {
    emit(Level::Debug, &msg.to_string());
}

pub fn warn(msg: impl std::fmt::Display) {
    emit(Level::Warn, &msg.to_string());
}

/// Report a failed command: one log line, plus one plain stderr line when logging to a file.
pub fn fatal(msg: &str) {
    emit(Level::Error, msg);
    if LOGGER.get().is_some_and(|l| l.file.is_some()) {
        eprintln!("{msg}");
    }
}

fn emit(level: Level, msg: &str) {
    if DETACHED.load(Ordering::Relaxed) {
        return;
    }
    let Some(l) = LOGGER.get() else {
        if level == Level::Error {
            eprintln!("{msg}");
        }
        return;
    };
    if level == Level::Debug && !l.debug {
        return;
    }
    let line = format_line(l.format, level, &now(), msg);
    match &l.file {
        Some(f) => {
            let mut f: &File = f;
            let _ = f.write_all(line.as_bytes());
        }
        None => {
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// One log line, newline-terminated.
pub fn format_line(format: Format, level: Level, time: &str, msg: &str) -> String {
    match format {
        Format::Json => {
            // Keys in logrus' (alphabetical) order.
            let v = serde_json::json!({ "level": level.name(), "msg": msg, "time": time });
            format!("{v}\n")
        }
        Format::Text => format!(
            "time={} level={} msg={}\n",
            quote(time),
            level.name(),
            quote(msg)
        ),
    }
}

/// logrus quotes values containing anything beyond `[A-Za-z0-9-._/@^+]`; quoting always for
/// time keeps it identical to runc (its timestamps contain `:`).
fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if plain {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_match_runc() {
        let l = format_line(
            Format::Text,
            Level::Error,
            "2026-11-23T18:51:20Z",
            "container does not exist",
        );
        assert_eq!(
            l,
            "time=\"2026-11-23T18:51:20Z\" level=error msg=\"container does not exist\"\n"
        );
        let l = format_line(Format::Text, Level::Debug, "t", "x");
        assert_eq!(l, "time=t level=debug msg=x\n");
        assert!(
            format_line(Format::Text, Level::Error, "t", "say \"hi\"\n")
                .contains(r#"msg="say \"hi\"\n""#)
        );
    }

    #[test]
    fn json_lines_match_runc() {
        let l = format_line(
            Format::Json,
            Level::Error,
            "2026-11-23T18:51:24Z",
            "container does not exist",
        );
        assert_eq!(
            l,
            "{\"level\":\"error\",\"msg\":\"container does not exist\",\"time\":\"2026-11-23T18:51:24Z\"}\n"
        );
    }
}
