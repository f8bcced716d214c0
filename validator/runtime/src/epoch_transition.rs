//! The epoch transition of one validator, as a sans-I/O state machine: pause
//! cross-chain operations → both chains reached the boundary → apply the next set →
//! resume.
//!
//! The runtime feeds it what the chains report (Alpha's boundary block finalized,
//! Delta's application of the set attestation, each chain running the new set) and
//! the time; it answers whether cross-chain submissions are paused, whether a step
//! overran its timeout ([`EpochTransition::stuck`], meant for a health detail and a
//! stuck-seconds metric once it is fed; neither exists yet) and whether the transition can never
//! complete ([`EpochTransition::deadlock`]):
//! - the chains report **different sets** for one epoch (Delta applied an attestation
//!   of another set than Alpha fixed: no amount of waiting reconciles them);
//! - a chain reports an epoch **past** the next one (a boundary was skipped);
//! - the next committee's **reachable stake stays below its quorum** past the apply
//!   timeout (its consensus cannot start without operator action).
//!
//! It holds no clock: time arrives with every input, as for the consensus engine.
//! Not fed by the chains yet. Consensus switches sets at each chain's boundary, but
//! the machine models one transition at a time: a Delta that is two Alpha epochs
//! behind (a slow relay, a legitimate state with short epochs) would read as
//! `EpochSkipped`. Feeding it needs that case modelled first. Nor is pausing
//! cross-chain operations needed for "never lost": an attestation of an epoch the
//! chain does not know yet is refused unconsumed and relayed again, and what an
//! engine committed after its epoch's last block goes back to the mempool.

use dualchain_core::Digest;
use dualchain_core::types::ChainId;

/// How long each step may take before the transition counts as stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionTimeouts {
    /// From Alpha's boundary to Delta applying the next set's attestation.
    pub reach_boundary_ms: u64,
    /// From both boundaries to both chains running the next set.
    pub apply_ms: u64,
}

/// Where the transition to the next epoch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Running `epoch`; no boundary seen yet.
    Steady { epoch: u64 },
    /// One chain reached the boundary into `next`: cross-chain operations are paused
    /// until the other does too.
    Paused { next: u64, set: Digest },
    /// Both chains reached the boundary; waiting for each to run the next set.
    Applying {
        next: u64,
        set: Digest,
        alpha_running: bool,
        delta_running: bool,
    },
}

/// What the chains report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// `chain` reached the boundary into `epoch`, whose set has digest `set` (Alpha:
    /// its boundary block finalized; Delta: the set's attestation applied).
    BoundaryReached {
        chain: ChainId,
        epoch: u64,
        set: Digest,
    },
    /// `chain`'s consensus runs the set of `epoch`.
    Running { chain: ChainId, epoch: u64 },
    /// Stake of the next committee this node can reach, and that committee's quorum.
    Reachable { stake: u64, quorum: u64 },
}

/// Why a transition can never complete.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Deadlock {
    #[error("the chains disagree on the set of epoch {epoch}: {first} against {second}")]
    SetMismatch {
        epoch: u64,
        first: Digest,
        second: Digest,
    },
    #[error("{chain} reported epoch {got} while the transition expected epoch {expected}")]
    EpochSkipped {
        chain: ChainId,
        expected: u64,
        got: u64,
    },
    #[error(
        "the committee of epoch {epoch} reaches {stake} of the {quorum} stake its quorum needs"
    )]
    NoQuorum { epoch: u64, stake: u64, quorum: u64 },
}

/// A step that overran its timeout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    /// What the step waits for, for the health detail.
    pub waiting_for: String,
    /// How long the step has run.
    pub for_ms: u64,
}

/// The transition state machine (see the module docs).
#[derive(Clone, Debug)]
pub struct EpochTransition {
    timeouts: TransitionTimeouts,
    phase: Phase,
    /// When the current phase began.
    since_ms: u64,
    reachable: Option<(u64, u64)>,
    deadlock: Option<Deadlock>,
}

impl EpochTransition {
    /// A node running `epoch` at time `now_ms`.
    pub fn new(epoch: u64, timeouts: TransitionTimeouts, now_ms: u64) -> Self {
        Self {
            timeouts,
            phase: Phase::Steady { epoch },
            since_ms: now_ms,
            reachable: None,
            deadlock: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether cross-chain submissions (relays) wait: from the first boundary until
    /// both chains run the next set, so no operation is judged against a set one chain
    /// has left and the other has not reached.
    pub fn cross_chain_paused(&self) -> bool {
        !matches!(self.phase, Phase::Steady { .. })
    }

    /// Takes one report at `now_ms`. Reports of the past (an epoch already entered)
    /// are ignored; a deadlock, once found, stays until the node restarts.
    pub fn report(&mut self, report: Report, now_ms: u64) {
        if self.deadlock.is_some() {
            return;
        }
        match report {
            Report::BoundaryReached { chain, epoch, set } => {
                self.boundary(chain, epoch, set, now_ms)
            }
            Report::Running { chain, epoch } => self.running(chain, epoch, now_ms),
            Report::Reachable { stake, quorum } => self.reachable = Some((stake, quorum)),
        }
    }

    fn boundary(&mut self, chain: ChainId, epoch: u64, set: Digest, now_ms: u64) {
        let expected = match self.phase {
            Phase::Steady { epoch } => epoch + 1,
            Phase::Paused { next, .. } | Phase::Applying { next, .. } => next,
        };
        if epoch < expected {
            return;
        }
        if epoch > expected {
            self.deadlock = Some(Deadlock::EpochSkipped {
                chain,
                expected,
                got: epoch,
            });
            return;
        }
        match self.phase {
            Phase::Steady { .. } => self.enter(Phase::Paused { next: epoch, set }, now_ms),
            Phase::Paused { set: first, .. } | Phase::Applying { set: first, .. }
                if first != set =>
            {
                self.deadlock = Some(Deadlock::SetMismatch {
                    epoch,
                    first,
                    second: set,
                });
            }
            Phase::Paused { .. } => self.enter(
                Phase::Applying {
                    next: epoch,
                    set,
                    alpha_running: false,
                    delta_running: false,
                },
                now_ms,
            ),
            Phase::Applying { .. } => {}
        }
    }

    fn running(&mut self, chain: ChainId, epoch: u64, now_ms: u64) {
        let Phase::Applying {
            next,
            set,
            mut alpha_running,
            mut delta_running,
        } = self.phase
        else {
            return;
        };
        if epoch != next {
            return;
        }
        match chain {
            ChainId::Alpha => alpha_running = true,
            ChainId::Delta => delta_running = true,
        }
        if alpha_running && delta_running {
            self.reachable = None;
            self.enter(Phase::Steady { epoch: next }, now_ms);
        } else {
            self.phase = Phase::Applying {
                next,
                set,
                alpha_running,
                delta_running,
            };
        }
    }

    fn enter(&mut self, phase: Phase, now_ms: u64) {
        self.phase = phase;
        self.since_ms = now_ms;
    }

    /// The step in progress if it overran its timeout at `now_ms`.
    pub fn stuck(&self, now_ms: u64) -> Option<Stuck> {
        let for_ms = now_ms.saturating_sub(self.since_ms);
        let (timeout, waiting_for) = match self.phase {
            Phase::Steady { .. } => return None,
            Phase::Paused { next, .. } => (
                self.timeouts.reach_boundary_ms,
                format!("both chains to reach the boundary into epoch {next}"),
            ),
            Phase::Applying {
                next,
                alpha_running,
                delta_running,
                ..
            } => {
                let waiting = match (alpha_running, delta_running) {
                    (false, false) => "Alpha and Delta",
                    (false, true) => "Alpha",
                    _ => "Delta",
                };
                (
                    self.timeouts.apply_ms,
                    format!("{waiting} to run the validator set of epoch {next}"),
                )
            }
        };
        (for_ms > timeout).then_some(Stuck {
            waiting_for,
            for_ms,
        })
    }

    /// Why the transition can never complete, if it cannot (checked at `now_ms`).
    pub fn deadlock(&self, now_ms: u64) -> Option<Deadlock> {
        if let Some(deadlock) = &self.deadlock {
            return Some(deadlock.clone());
        }
        let Phase::Applying { next, .. } = self.phase else {
            return None;
        };
        let (stake, quorum) = self.reachable?;
        let overdue = now_ms.saturating_sub(self.since_ms) > self.timeouts.apply_ms;
        (overdue && stake < quorum).then_some(Deadlock::NoQuorum {
            epoch: next,
            stake,
            quorum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SET: Digest = Digest([5; 32]);
    const TIMEOUTS: TransitionTimeouts = TransitionTimeouts {
        reach_boundary_ms: 60_000,
        apply_ms: 15_000,
    };

    fn boundary(chain: ChainId, epoch: u64) -> Report {
        Report::BoundaryReached {
            chain,
            epoch,
            set: SET,
        }
    }

    #[test]
    fn a_transition_pauses_waits_for_both_chains_applies_and_resumes() {
        let mut t = EpochTransition::new(3, TIMEOUTS, 1_000);
        assert!(!t.cross_chain_paused());
        t.report(boundary(ChainId::Alpha, 4), 2_000);
        assert_eq!(t.phase(), Phase::Paused { next: 4, set: SET });
        assert!(t.cross_chain_paused());
        // A late report of the past changes nothing.
        t.report(boundary(ChainId::Delta, 3), 2_500);
        assert!(matches!(t.phase(), Phase::Paused { .. }));
        t.report(boundary(ChainId::Delta, 4), 3_000);
        assert!(matches!(t.phase(), Phase::Applying { .. }));
        t.report(
            Report::Running {
                chain: ChainId::Delta,
                epoch: 4,
            },
            3_500,
        );
        assert!(
            t.cross_chain_paused(),
            "Alpha is not running the new set yet"
        );
        t.report(
            Report::Running {
                chain: ChainId::Alpha,
                epoch: 4,
            },
            4_000,
        );
        assert_eq!(t.phase(), Phase::Steady { epoch: 4 });
        assert!(!t.cross_chain_paused());
        assert_eq!(t.stuck(1_000_000), None);
        assert_eq!(t.deadlock(1_000_000), None);
    }

    #[test]
    fn each_step_reports_when_it_overruns_its_timeout() {
        let mut t = EpochTransition::new(0, TIMEOUTS, 0);
        t.report(boundary(ChainId::Alpha, 1), 10_000);
        assert_eq!(t.stuck(70_000), None, "exactly at the timeout is not late");
        let stuck = t.stuck(70_001).unwrap();
        assert_eq!(stuck.for_ms, 60_001);
        assert!(
            stuck
                .waiting_for
                .contains("reach the boundary into epoch 1")
        );
        t.report(boundary(ChainId::Delta, 1), 80_000);
        assert_eq!(t.stuck(90_000), None, "a new step has its own clock");
        t.report(
            Report::Running {
                chain: ChainId::Alpha,
                epoch: 1,
            },
            81_000,
        );
        let stuck = t.stuck(95_001).unwrap();
        assert_eq!(
            stuck.waiting_for,
            "Delta to run the validator set of epoch 1"
        );
    }

    #[test]
    fn transitions_that_cannot_complete_are_detected() {
        // The chains name different sets for the same epoch.
        let mut t = EpochTransition::new(0, TIMEOUTS, 0);
        t.report(boundary(ChainId::Alpha, 1), 1);
        t.report(
            Report::BoundaryReached {
                chain: ChainId::Delta,
                epoch: 1,
                set: Digest([6; 32]),
            },
            2,
        );
        assert!(matches!(
            t.deadlock(3),
            Some(Deadlock::SetMismatch { epoch: 1, .. })
        ));
        // Later reports cannot clear it.
        t.report(boundary(ChainId::Delta, 1), 4);
        assert!(t.deadlock(5).is_some());

        // A chain jumps over an epoch.
        let mut t = EpochTransition::new(0, TIMEOUTS, 0);
        t.report(boundary(ChainId::Delta, 2), 1);
        assert_eq!(
            t.deadlock(2),
            Some(Deadlock::EpochSkipped {
                chain: ChainId::Delta,
                expected: 1,
                got: 2
            })
        );

        // The next committee cannot reach a quorum: a deadlock once the apply step
        // overran, not before (connections may still be forming).
        let mut t = EpochTransition::new(0, TIMEOUTS, 0);
        t.report(boundary(ChainId::Alpha, 1), 0);
        t.report(boundary(ChainId::Delta, 1), 1_000);
        t.report(
            Report::Reachable {
                stake: 2,
                quorum: 5,
            },
            1_500,
        );
        assert_eq!(t.deadlock(16_000), None);
        assert_eq!(
            t.deadlock(16_001),
            Some(Deadlock::NoQuorum {
                epoch: 1,
                stake: 2,
                quorum: 5
            })
        );
        t.report(
            Report::Reachable {
                stake: 5,
                quorum: 5,
            },
            16_500,
        );
        assert_eq!(t.deadlock(17_000), None, "reachability recovered");
    }
}
