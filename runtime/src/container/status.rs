//! The OCI status of a container, derived from state.json and the live system, never stored:
//! a process can die at any moment without telling us.

use std::fmt;

use crate::container::state::Phase;
use crate::linux::procfs::ProcStat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Running, with every process frozen (`pause`).
    Paused,
    Stopped,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// - the init is gone, a zombie, or its pid now belongs to another process -> stopped;
/// - `create` has not finished -> creating;
/// - the exec fifo still exists (nobody ran `start`) -> created;
/// - `pause` froze it (and `resume` did not thaw it since) -> paused;
/// - otherwise -> running.
pub fn derive(
    phase: Phase,
    recorded_start_time: u64,
    live: Option<ProcStat>,
    fifo_exists: bool,
    paused: bool,
) -> Status {
    match live {
        Some(p) if !p.is_dead() && p.start_time == recorded_start_time => match phase {
            Phase::Creating => Status::Creating,
            Phase::Created if fifo_exists => Status::Created,
            Phase::Created if paused => Status::Paused,
            Phase::Created => Status::Running,
        },
        _ => Status::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(start: u64) -> Option<ProcStat> {
        Some(ProcStat {
            state: 'S',
            start_time: start,
        })
    }

    #[test]
    fn status_rules() {
        assert_eq!(
            derive(Phase::Created, 5, alive(5), true, false),
            Status::Created
        );
        assert_eq!(
            derive(Phase::Created, 5, alive(5), false, false),
            Status::Running
        );
        assert_eq!(
            derive(Phase::Created, 5, alive(5), false, true),
            Status::Paused
        );
        assert_eq!(
            derive(Phase::Creating, 5, alive(5), true, false),
            Status::Creating
        );
        // gone, zombie, pid reused by another process
        assert_eq!(
            derive(Phase::Created, 5, None, false, false),
            Status::Stopped
        );
        assert_eq!(
            derive(Phase::Created, 5, None, false, true),
            Status::Stopped
        );
        assert_eq!(
            derive(
                Phase::Created,
                5,
                Some(ProcStat {
                    state: 'Z',
                    start_time: 5
                }),
                false,
                false
            ),
            Status::Stopped
        );
        assert_eq!(
            derive(Phase::Created, 5, alive(6), true, false),
            Status::Stopped
        );
        assert_eq!(
            derive(Phase::Creating, 5, None, true, false),
            Status::Stopped
        );
    }

    #[test]
    fn names_match_the_oci_states() {
        let all = [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ];
        let names: Vec<String> = all.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            ["creating", "created", "running", "paused", "stopped"]
        );
    }
}
