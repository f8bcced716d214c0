//! The epoch transition of one validator, as a sans-I/O state machine: pause
//! cross-chain operations → both chains reached the boundary → apply the next set →
//! resume.
//!
//! A chain applies the next set when it reaches its boundary (its driver starts the
//! next epoch's engine with it at once), so cross-chain operations resume as soon as
//! both chains reached the boundary: from then on both judge them against the same
//! set. The transition ends when each chain committed a block with the new set; a
//! chain whose next committee cannot do that is what the apply step watches for.
//! With one-block epochs, Alpha's first block of an epoch is also its boundary into
//! the next, so that chain is always applying; what matters is that it is not late.
//!
//! It is fed what each chain shows at a moment ([`ChainEpochs`]: the newest epoch
//! whose boundary it reached, that epoch's set, the epoch of its newest block, the
//! stake it can reach) and the time; the health monitor observes every chain of the
//! node (and the pod's other container) once a second. From those levels it derives
//! the [`Phase`], whether cross-chain submissions are paused, whether a step overran
//! its timeout ([`EpochTransition::stuck`]: the health detail and the
//! `dualchain_epoch_transition_stuck_seconds` gauge) and whether the transition can
//! never complete ([`EpochTransition::deadlock`]):
//! - the chains show **different sets** for one epoch (Delta applied an attestation
//!   of another set than Alpha fixed: no amount of waiting reconciles them; this one
//!   stays until the node restarts);
//! - a chain's **reachable stake stays below its committee's quorum** past the apply
//!   timeout (its consensus cannot start the epoch; cleared when reachability
//!   recovers, as after a healed partition).
//!
//! The machine holds levels, not events, so a chain that is several epochs behind
//! the other (a slow relay with short epochs, a chain catching up) is one `Paused`
//! phase timed from when the first unreached boundary was passed by the other chain,
//! and epochs passed between two observations are not missed. Sets are compared for
//! the epochs both chains were observed at.
//!
//! It holds no clock: time arrives with every input, as for the consensus engine.

use std::collections::BTreeMap;

use dualchain_core::Digest;
use dualchain_core::types::ChainId;

/// Observations kept per table (first-reached times, sets by epoch); a lag longer
/// than this many observations loses its oldest times, which only makes the
/// transition count as stuck earlier.
const MAX_TRACKED: usize = 1_024;

/// How long each step may take before the transition counts as stuck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionTimeouts {
    /// From one chain passing a boundary to the other reaching it.
    pub reach_boundary_ms: u64,
    /// From both boundaries to both chains running the next set.
    pub apply_ms: u64,
}

impl TransitionTimeouts {
    /// Four Alpha block times per step: Delta applies the next set a few Delta
    /// blocks after Alpha's boundary, and each chain's first block of the epoch
    /// comes one block time after its boundary.
    pub fn for_alpha_block_ms(alpha_block_ms: u64) -> Self {
        let step = alpha_block_ms.saturating_mul(4).max(1_000);
        Self {
            reach_boundary_ms: step,
            apply_ms: step,
        }
    }
}

/// What one chain shows of its epochs at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainEpochs {
    /// The newest epoch whose boundary the chain reached (the epoch of the set its
    /// consensus runs: Alpha's boundary block executed, or Delta's attestation of
    /// the set applied).
    pub reached: u64,
    /// Digest of that epoch's set (`set_digest`).
    pub set: Digest,
    /// The epoch of the chain's newest block: it runs the set of `reached` once a
    /// block of that epoch committed.
    pub head_epoch: u64,
    /// Stake of the chain's current committee this node reaches (itself and its
    /// connected members) and that committee's quorum, when known.
    pub reachable: Option<(u64, u64)>,
}

impl ChainEpochs {
    fn running(&self) -> bool {
        self.head_epoch >= self.reached
    }
}

/// Where the transition to the next epoch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Not both chains observed (starting, or the other chain does not answer).
    Unknown,
    /// Both chains run `epoch`.
    Steady { epoch: u64 },
    /// The other chain passed the boundary into `next`; `behind` has not reached it.
    /// Cross-chain operations wait.
    Paused { next: u64, behind: ChainId },
    /// Both chains reached the boundary into `next` and run its set (cross-chain
    /// operations go on); waiting for each to commit its first block of it.
    Applying {
        next: u64,
        alpha_running: bool,
        delta_running: bool,
    },
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
    #[error(
        "{chain} reaches {stake} of the {quorum} stake the quorum of epoch {epoch} needs: its consensus cannot start the epoch until more of the committee is reachable"
    )]
    NoQuorum {
        chain: ChainId,
        epoch: u64,
        stake: u64,
        quorum: u64,
    },
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
    /// When the machine was made: the time of boundaries passed before it.
    started_ms: u64,
    alpha: Option<ChainEpochs>,
    delta: Option<ChainEpochs>,
    /// The newest epoch either chain was observed to reach.
    max_reached: Option<u64>,
    /// Key `e` → when epochs from `e` up to the next key were first observed reached
    /// by either chain (one entry per observation that raised `max_reached`).
    first_reached: BTreeMap<u64, u64>,
    /// When both chains were first observed at the boundary into this epoch.
    applying_since: Option<(u64, u64)>,
    /// The set each epoch was first observed with, and by which chain.
    sets: BTreeMap<u64, (ChainId, Digest)>,
    mismatch: Option<Deadlock>,
}

impl EpochTransition {
    /// A machine made at `now_ms`, before any observation.
    pub fn new(timeouts: TransitionTimeouts, now_ms: u64) -> Self {
        Self {
            timeouts,
            started_ms: now_ms,
            alpha: None,
            delta: None,
            max_reached: None,
            first_reached: BTreeMap::new(),
            applying_since: None,
            sets: BTreeMap::new(),
            mismatch: None,
        }
    }

    /// What `chain` shows at `now_ms`; `None` forgets it (the chain stopped, or the
    /// other container does not answer).
    pub fn observe(&mut self, chain: ChainId, view: Option<ChainEpochs>, now_ms: u64) {
        *self.slot(chain) = view;
        let Some(view) = view else { return };
        self.note_reached(view.reached, now_ms);
        self.note_set(chain, &view);
        if let (Some(alpha), Some(delta)) = (self.alpha, self.delta)
            && alpha.reached == delta.reached
            && self.applying_since.is_none_or(|(e, _)| e != alpha.reached)
        {
            self.applying_since = Some((alpha.reached, now_ms));
        }
        self.prune();
    }

    fn slot(&mut self, chain: ChainId) -> &mut Option<ChainEpochs> {
        match chain {
            ChainId::Alpha => &mut self.alpha,
            ChainId::Delta => &mut self.delta,
        }
    }

    fn note_reached(&mut self, reached: u64, now_ms: u64) {
        match self.max_reached {
            // Boundaries passed before the machine started date from its start.
            None => self.max_reached = Some(reached),
            Some(max) if reached > max => {
                self.first_reached.insert(max + 1, now_ms);
                self.max_reached = Some(reached);
            }
            Some(_) => {}
        }
    }

    fn note_set(&mut self, chain: ChainId, view: &ChainEpochs) {
        if self.mismatch.is_some() {
            return;
        }
        match self.sets.get(&view.reached) {
            None => {
                self.sets.insert(view.reached, (chain, view.set));
            }
            Some(&(_, first)) if first != view.set => {
                self.mismatch = Some(Deadlock::SetMismatch {
                    epoch: view.reached,
                    first,
                    second: view.set,
                });
            }
            Some(_) => {}
        }
    }

    /// Drops what both chains are past (and the oldest beyond [`MAX_TRACKED`]).
    fn prune(&mut self) {
        let (Some(alpha), Some(delta)) = (self.alpha, self.delta) else {
            return;
        };
        let both = alpha.reached.min(delta.reached);
        let pending = both.saturating_add(1);
        // Keep the entry covering `pending` (the next boundary one chain lacks).
        while let Some((&first, _)) = self.first_reached.first_key_value()
            && self
                .first_reached
                .range(first.saturating_add(1)..)
                .next()
                .is_some_and(|(&next, _)| next <= pending)
        {
            self.first_reached.pop_first();
        }
        self.sets = self.sets.split_off(&both);
        while self.first_reached.len() > MAX_TRACKED {
            self.first_reached.pop_first();
        }
        while self.sets.len() > MAX_TRACKED {
            self.sets.pop_first();
        }
    }

    pub fn phase(&self) -> Phase {
        let (Some(alpha), Some(delta)) = (self.alpha, self.delta) else {
            return Phase::Unknown;
        };
        if alpha.reached != delta.reached {
            let behind = if alpha.reached < delta.reached {
                ChainId::Alpha
            } else {
                ChainId::Delta
            };
            return Phase::Paused {
                // The smaller is below the larger: no overflow.
                next: alpha.reached.min(delta.reached) + 1,
                behind,
            };
        }
        let (alpha_running, delta_running) = (alpha.running(), delta.running());
        if alpha_running && delta_running {
            Phase::Steady {
                epoch: alpha.reached,
            }
        } else {
            Phase::Applying {
                next: alpha.reached,
                alpha_running,
                delta_running,
            }
        }
    }

    /// Whether cross-chain submissions (relays of records other than validator sets)
    /// wait: from the first boundary until the other chain reached it too, so no
    /// operation is judged against a set one chain has left and the other has not
    /// reached.
    pub fn cross_chain_paused(&self) -> bool {
        matches!(self.phase(), Phase::Paused { .. })
    }

    /// When the step in progress began.
    fn step_since(&self) -> Option<u64> {
        match self.phase() {
            Phase::Unknown | Phase::Steady { .. } => None,
            Phase::Paused { next, .. } => Some(
                self.first_reached
                    .range(..=next)
                    .next_back()
                    .map_or(self.started_ms, |(_, &at)| at),
            ),
            Phase::Applying { next, .. } => Some(
                self.applying_since
                    .filter(|(epoch, _)| *epoch == next)
                    .map_or(self.started_ms, |(_, at)| at),
            ),
        }
    }

    /// The step in progress if it overran its timeout at `now_ms`.
    pub fn stuck(&self, now_ms: u64) -> Option<Stuck> {
        let for_ms = now_ms.saturating_sub(self.step_since()?);
        let (timeout, waiting_for) = match self.phase() {
            Phase::Unknown | Phase::Steady { .. } => return None,
            Phase::Paused { next, behind } => (
                self.timeouts.reach_boundary_ms,
                format!("{behind} to reach the boundary into epoch {next}"),
            ),
            Phase::Applying {
                next,
                alpha_running,
                delta_running,
            } => {
                let waiting = match (alpha_running, delta_running) {
                    (false, false) => "alpha and delta",
                    (false, true) => "alpha",
                    _ => "delta",
                };
                (
                    self.timeouts.apply_ms,
                    format!("{waiting} to commit a block with the validator set of epoch {next}"),
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
        if let Some(mismatch) = &self.mismatch {
            return Some(mismatch.clone());
        }
        let Phase::Applying { next, .. } = self.phase() else {
            return None;
        };
        let overdue = now_ms.saturating_sub(self.step_since()?) > self.timeouts.apply_ms;
        if !overdue {
            return None;
        }
        [(ChainId::Alpha, self.alpha), (ChainId::Delta, self.delta)]
            .into_iter()
            .filter_map(|(chain, view)| Some((chain, view?)))
            .filter(|(_, view)| !view.running())
            .find_map(|(chain, view)| {
                let (stake, quorum) = view.reachable?;
                (stake < quorum).then_some(Deadlock::NoQuorum {
                    chain,
                    epoch: next,
                    stake,
                    quorum,
                })
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

    /// A chain that reached `reached` and whose newest block is of `head_epoch`.
    fn at(reached: u64, head_epoch: u64) -> Option<ChainEpochs> {
        Some(ChainEpochs {
            reached,
            set: SET,
            head_epoch,
            reachable: None,
        })
    }

    fn steady(epoch: u64, now: u64) -> EpochTransition {
        let mut t = EpochTransition::new(TIMEOUTS, now);
        t.observe(ChainId::Alpha, at(epoch, epoch), now);
        t.observe(ChainId::Delta, at(epoch, epoch), now);
        assert_eq!(t.phase(), Phase::Steady { epoch });
        t
    }

    #[test]
    fn a_transition_pauses_waits_for_both_chains_applies_and_resumes() {
        let mut t = steady(3, 1_000);
        assert!(!t.cross_chain_paused());
        t.observe(ChainId::Alpha, at(4, 3), 2_000);
        assert_eq!(
            t.phase(),
            Phase::Paused {
                next: 4,
                behind: ChainId::Delta
            }
        );
        assert!(t.cross_chain_paused());
        t.observe(ChainId::Delta, at(4, 3), 3_000);
        assert_eq!(
            t.phase(),
            Phase::Applying {
                next: 4,
                alpha_running: false,
                delta_running: false
            }
        );
        assert!(
            !t.cross_chain_paused(),
            "both chains judge cross-chain operations against the same set"
        );
        t.observe(ChainId::Delta, at(4, 4), 3_500);
        assert!(matches!(t.phase(), Phase::Applying { .. }));
        t.observe(ChainId::Alpha, at(4, 4), 4_000);
        assert_eq!(t.phase(), Phase::Steady { epoch: 4 });
        assert!(!t.cross_chain_paused());
        assert_eq!(t.stuck(1_000_000), None);
        assert_eq!(t.deadlock(1_000_000), None);
    }

    #[test]
    fn each_step_reports_when_it_overruns_its_timeout() {
        let mut t = steady(0, 0);
        t.observe(ChainId::Alpha, at(1, 0), 10_000);
        assert_eq!(t.stuck(70_000), None, "exactly at the timeout is not late");
        let stuck = t.stuck(70_001).unwrap();
        assert_eq!(stuck.for_ms, 60_001);
        assert_eq!(
            stuck.waiting_for,
            "delta to reach the boundary into epoch 1"
        );
        t.observe(ChainId::Delta, at(1, 0), 80_000);
        assert_eq!(t.stuck(95_000), None, "a new step has its own clock");
        t.observe(ChainId::Alpha, at(1, 1), 81_000);
        let stuck = t.stuck(95_001).unwrap();
        assert_eq!(
            stuck.waiting_for,
            "delta to commit a block with the validator set of epoch 1"
        );
        assert_eq!(stuck.for_ms, 15_001);
    }

    #[test]
    fn a_chain_epochs_behind_is_one_pause_timed_from_its_first_missed_boundary() {
        let mut t = steady(0, 0);
        for (epoch, now) in [(1, 10_000), (2, 20_000), (3, 30_000)] {
            t.observe(ChainId::Alpha, at(epoch, epoch), now);
            t.observe(ChainId::Delta, at(0, 0), now);
        }
        assert_eq!(
            t.phase(),
            Phase::Paused {
                next: 1,
                behind: ChainId::Delta
            }
        );
        assert_eq!(t.stuck(70_001).map(|s| s.for_ms), Some(60_001));
        // Delta catches up one boundary: the next one was passed at 20 s.
        t.observe(ChainId::Delta, at(1, 1), 75_000);
        assert_eq!(
            t.phase(),
            Phase::Paused {
                next: 2,
                behind: ChainId::Delta
            }
        );
        assert_eq!(t.stuck(80_000), None);
        assert_eq!(t.stuck(80_001).map(|s| s.for_ms), Some(60_001));
        // Two boundaries between observations are not missed.
        t.observe(ChainId::Delta, at(3, 2), 85_000);
        assert!(matches!(t.phase(), Phase::Applying { next: 3, .. }));
        assert_eq!(t.stuck(100_000), None, "the apply step began at 85 s");
        assert!(t.stuck(100_001).is_some());
        t.observe(ChainId::Delta, at(3, 3), 100_500);
        assert_eq!(t.phase(), Phase::Steady { epoch: 3 });
    }

    #[test]
    fn boundaries_passed_before_the_start_date_from_the_start() {
        let mut t = EpochTransition::new(TIMEOUTS, 5_000);
        t.observe(ChainId::Alpha, at(7, 7), 5_000);
        assert_eq!(t.phase(), Phase::Unknown, "one chain is not a transition");
        assert!(!t.cross_chain_paused());
        t.observe(ChainId::Delta, at(6, 6), 6_000);
        assert_eq!(t.stuck(65_000), None);
        assert_eq!(t.stuck(65_001).map(|s| s.for_ms), Some(60_001));
        // The other container stops answering: nothing is judged without it.
        t.observe(ChainId::Delta, None, 70_000);
        assert_eq!(t.phase(), Phase::Unknown);
        assert_eq!(t.stuck(200_000), None);
    }

    #[test]
    fn chains_naming_different_sets_for_one_epoch_are_a_lasting_deadlock() {
        let mut t = steady(0, 0);
        t.observe(ChainId::Alpha, at(1, 0), 1);
        let other = ChainEpochs {
            set: Digest([6; 32]),
            ..at(1, 0).unwrap()
        };
        t.observe(ChainId::Delta, Some(other), 2);
        assert_eq!(
            t.deadlock(3),
            Some(Deadlock::SetMismatch {
                epoch: 1,
                first: SET,
                second: Digest([6; 32])
            })
        );
        t.observe(ChainId::Delta, at(1, 1), 4);
        t.observe(ChainId::Alpha, at(1, 1), 4);
        assert!(
            t.deadlock(5).is_some(),
            "later observations cannot clear it"
        );
    }

    #[test]
    fn a_committee_out_of_reach_is_a_deadlock_once_the_apply_step_overran() {
        let mut t = steady(0, 0);
        let short = |head_epoch| {
            Some(ChainEpochs {
                reachable: Some((2, 5)),
                ..at(1, head_epoch).unwrap()
            })
        };
        t.observe(ChainId::Alpha, short(0), 0);
        t.observe(ChainId::Delta, at(1, 1), 1_000);
        assert_eq!(t.deadlock(16_000), None, "connections may still form");
        assert_eq!(
            t.deadlock(16_001),
            Some(Deadlock::NoQuorum {
                chain: ChainId::Alpha,
                epoch: 1,
                stake: 2,
                quorum: 5
            })
        );
        let healed = ChainEpochs {
            reachable: Some((5, 5)),
            ..at(1, 0).unwrap()
        };
        t.observe(ChainId::Alpha, Some(healed), 16_500);
        assert_eq!(t.deadlock(17_000), None, "reachability recovered");
        assert!(t.stuck(17_000).is_some(), "but the step is still late");
    }

    #[test]
    fn extreme_epochs_neither_panic_nor_grow_the_tables() {
        let mut t = steady(0, 0);
        for i in 0..3_000u64 {
            t.observe(ChainId::Alpha, at(i + 1, i), i);
        }
        t.observe(ChainId::Delta, at(u64::MAX, u64::MAX), 3_000);
        t.observe(ChainId::Alpha, at(u64::MAX - 1, 0), 3_001);
        assert!(t.first_reached.len() <= MAX_TRACKED);
        assert!(t.sets.len() <= MAX_TRACKED);
        assert_eq!(
            t.phase(),
            Phase::Paused {
                next: u64::MAX,
                behind: ChainId::Alpha
            }
        );
        assert!(t.stuck(u64::MAX).is_some());
    }
}
