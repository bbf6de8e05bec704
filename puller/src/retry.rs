//! One retry policy for every registry request and layer download: a few attempts with a
//! growing pause, and only for faults the registry or the network may recover from (the
//! caller says which); bad content, refusals and full disks fail at once.

use std::future::Future;
use std::time::Duration;

/// Attempts in all, the first one included.
pub const ATTEMPTS: u32 = 3;
/// The pause before the second attempt; each later one is three times longer.
const FIRST_PAUSE: Duration = Duration::from_millis(200);

/// Runs `once` until it succeeds, fails with an error `transient` rejects, or [`ATTEMPTS`]
/// are spent. `on_retry` sees each failure about to be retried (logs, progress).
pub async fn retry<T, E, F, Fut>(
    mut once: F,
    transient: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(u32, &E),
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pause = FIRST_PAUSE;
    let mut attempt = 1;
    loop {
        match once().await {
            Err(e) if attempt < ATTEMPTS && transient(&e) => {
                on_retry(attempt, &e);
                tokio::time::sleep(pause).await;
                pause *= 3;
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_up_to_the_limit_and_others_not_at_all() {
        let calls = Cell::new(0);
        let seen = Cell::new(0);
        let r: Result<(), &str> = retry(
            || async {
                calls.set(calls.get() + 1);
                Err("busy")
            },
            |e| *e == "busy",
            |_, _| seen.set(seen.get() + 1),
        )
        .await;
        assert_eq!(
            (r, calls.get(), seen.get()),
            (Err("busy"), ATTEMPTS, ATTEMPTS - 1)
        );

        calls.set(0);
        let r: Result<(), &str> = retry(
            || async {
                calls.set(calls.get() + 1);
                Err("bad content")
            },
            |e| *e == "busy",
            |_, _| {},
        )
        .await;
        assert_eq!((r, calls.get()), (Err("bad content"), 1));

        calls.set(0);
        let r = retry(
            || async {
                calls.set(calls.get() + 1);
                if calls.get() < 2 { Err("busy") } else { Ok(7) }
            },
            |e| *e == "busy",
            |_, _| {},
        )
        .await;
        assert_eq!((r, calls.get()), (Ok(7), 2));
    }
}
