//! Named steps: the init and an exec'd process run flat lists of them, and the first failure
//! names its step (`mount rootfs: ...`) in the one line the parent reports.

use anyhow::Result;

/// The step that failed and why.
pub struct Failed {
    pub step: &'static str,
    pub error: anyhow::Error,
}

/// The end of a child that runs steps (the init, an exec'd process): run `steps`, and if one
/// fails (or panics) send `Message::Error` to the parent, or, when nobody listens any more,
/// leave one line on the process's stderr; then exit. `who` names it there.
pub fn run_child(
    channel: &crate::linux::channel::Channel,
    who: &'static str,
    steps: impl FnOnce() -> Result<std::convert::Infallible, Failed>,
) -> ! {
    use std::io::Write;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(steps));
    let (step, message) = match outcome {
        Ok(Ok(never)) => match never {},
        Ok(Err(Failed { step, error })) => (step, format!("{error:#}")),
        Err(_) => (who, "panicked".to_string()),
    };
    let sent = channel.send(&crate::linux::channel::Message::Error {
        step: step.to_string(),
        message: message.clone(),
    });
    if sent.is_err() {
        let _ = writeln!(std::io::stderr(), "mocker-runtime {who}: {step}: {message}");
    }
    crate::linux::sys::exit_now(1)
}

/// Run one named step.
pub fn step<T>(name: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T, Failed> {
    f().map_err(|error| Failed { step: name, error })
}
