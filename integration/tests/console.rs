//! `create --console-socket`: with `process.terminal`, the runtime hands the pty master to the
//! socket over SCM_RIGHTS (what conmon and containerd's shim expect), and the container's
//! stdio is that terminal.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::time::Duration;

use integration::busybox::Bundle;
use integration::runtime::Container;
use integration::terminal::at_a_terminal;

fn receive_fd(listener: &UnixListener) -> OwnedFd {
    integration::fdpass::receive(listener).1
}

/// Everything read from a pty master until the other side closes (EIO), bounded in time.
fn read_until_closed(master: OwnedFd) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut f = std::fs::File::from(master);
        let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
        while let Ok(n @ 1..) = f.read(&mut buf) {
            out.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(String::from_utf8_lossy(&out).into_owned());
    });
    rx
}

#[test]
fn console_socket_receives_the_pty_master() {
    let mut b = Bundle::new().expect("bundle");
    b.sh("tty; echo hello-from-the-tty").terminal(true);
    let mut c = Container::new("console", &b);
    let sock = c.scratch().join("console.sock");
    let listener = UnixListener::bind(&sock).expect("bind the console socket");
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    c.create_with(&["--console-socket", sock.to_str().unwrap()])
        .ok();
    let master = receiver.join().expect("console receiver");
    assert_eq!(c.status(), "created");

    let rx = read_until_closed(master);
    c.start().ok();
    let text = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the terminal never closed");
    assert!(text.contains("/dev/pts/"), "stdin is not a pty: {text:?}");
    assert!(text.contains("hello-from-the-tty"), "{text:?}");
    c.wait_stopped();
    c.delete().ok();
    c.assert_no_leftovers();
}

#[test]
fn exec_with_a_tty_hands_its_pty_to_the_console_socket() {
    let mut b = Bundle::new().expect("bundle");
    b.args(&["sleep", "600"]);
    let mut c = Container::new("exectty", &b);
    c.create().ok();
    c.start().ok();
    let sock = c.scratch().join("exec-console.sock");
    let listener = UnixListener::bind(&sock).expect("bind the console socket");
    let receiver = std::thread::spawn(move || receive_fd(&listener));
    let out = c.exec(&[
        "exec",
        "-t",
        "--console-socket",
        sock.to_str().unwrap(),
        &c.id,
        "sh",
        "-c",
        "tty; echo hello-exec-tty",
    ]);
    let master = receiver.join().expect("console receiver");
    let text = read_until_closed(master)
        .recv_timeout(Duration::from_secs(20))
        .expect("the terminal never closed");
    assert!(out.success(), "{out}");
    assert!(text.contains("/dev/pts/"), "not a pty: {text:?}");
    assert!(text.contains("hello-exec-tty"), "{text:?}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}

#[test]
fn run_and_exec_in_the_foreground_make_this_terminal_the_containers() {
    let mut b = Bundle::new().expect("bundle");
    b.args(&["sh"]).terminal(true);
    let mut c = Container::new("termrun", &b);
    let bundle = c.bundle.to_str().unwrap().to_string();
    let id = c.id.clone();
    let mut cmd = c.command();
    cmd.args(["run", "--bundle", &bundle, &id]);
    let (text, code, restored) = at_a_terminal(cmd, "tty; echo typed-$((6*7)); exit 3\n");
    assert_eq!(code, 3, "{text:?}");
    assert!(
        text.contains("/dev/pts/") && text.contains("typed-42"),
        "{text:?}"
    );
    assert!(restored, "the terminal was left in raw mode");
    c.assert_no_leftovers();
    // exec -t without a console socket, into a running container.
    b.args(&["sleep", "600"]).terminal(false);
    c.create().ok();
    c.start().ok();
    let mut cmd = c.command();
    cmd.args(["exec", "-t", &id, "sh"]);
    let (text, code, restored) = at_a_terminal(cmd, "tty; exit 4\n");
    assert_eq!(code, 4, "{text:?}");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    assert!(restored, "the terminal was left in raw mode");
    // Detached, there is nobody to bridge to: one line, exit 255.
    let out = c.exec(&["exec", "-t", "-d", &id, "sh"]);
    assert_eq!(out.code(), 255, "{out}");
    assert_eq!(out.error_lines().len(), 1, "{out}");
    c.delete_force().ok();
    c.assert_no_leftovers();
}
