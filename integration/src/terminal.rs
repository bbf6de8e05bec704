//! A person at a terminal: a command run with a pseudo-terminal as its stdio, input typed,
//! what the terminal showed read back.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `cmd` with a new pseudo-terminal as stdin, stdout and stderr, types `input`, and
/// returns what the terminal showed, the exit code, and whether the terminal's settings
/// are as they were before (a program that put it in raw mode must restore it).
pub fn at_a_terminal(mut cmd: Command, input: &str) -> (String, i32, bool) {
    use nix::sys::termios::tcgetattr;
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let before = tcgetattr(&pty.slave).expect("tcgetattr");
    let slave = std::fs::File::from(pty.slave);
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    let mut child = cmd.spawn().expect("spawn");
    drop(cmd); // its copies of the slave would keep the terminal open
    let mut master = std::fs::File::from(pty.master);
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(input.as_bytes()).unwrap();
    let (tx, rx) = mpsc::channel();
    let mut reader = master.try_clone().unwrap();
    std::thread::spawn(move || {
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = reader.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
    });
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the program never exited"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let restored = tcgetattr(slave.as_fd())
        .map(|t| t == before)
        .unwrap_or(false);
    drop(slave);
    drop(master);
    let text = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    (text, status.code().unwrap_or(-1), restored)
}
