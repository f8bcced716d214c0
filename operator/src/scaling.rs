//! Changing a running network's validator set to `spec.validators`.
//!
//! Pure, so every rule is unit-tested: from the desired size, this network's keys by
//! ordinal, the set Alpha runs and what the operator already did (the
//! [`SetChangeProgress`] it keeps in the status), decide which validators must join or
//! leave, each one's next step, and how many validators keep their pods.
//! `reconcile::set_changes` carries the steps out.
//!
//! The chain decides, the operator asks: a join or leave is a request signed by the
//! validator's own key for one Alpha epoch, applied at the next boundary. So the
//! operator never assumes a request took effect: it reads the set again, and sends a
//! request again (signed for the new epoch) when an epoch ended without it.

use dualchain_core::Digest;

use crate::crd::network::SetChangeProgress;
use crate::validators::SetView;

/// Epochs a stake lock may stay absent from Alpha before the operator makes another
/// (one sent just before a boundary may commit in the next epoch).
pub const LOCK_RETRY_EPOCHS: u64 = 2;

/// The change a validator needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Join => "Join",
            Change::Leave => "Leave",
        }
    }
}

/// A validator of this network whose membership must change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// Its index (pod `<network>-<index>-0`).
    pub index: u32,
    pub change: Change,
    /// Alpha already holds its request for the next boundary.
    pub pending: bool,
}

/// What the operator does about the set at this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalePlan {
    /// Validators that keep their pods (indices `0..replicas`): `spec.validators`, and
    /// those still in the set (or whose leave Delta has not reached yet).
    pub replicas: u32,
    /// Validators whose membership must change, by ordinal.
    pub needed: Vec<Needed>,
    /// Ordinals out of Alpha's set whose pods stay until Delta runs Alpha's epoch too
    /// (Delta switches sets at the boundary's attestation, a little later).
    pub awaiting_delta: Vec<u32>,
    /// Whether the set was known (a member answered); without it nothing is changed
    /// and no pod is removed.
    pub set_known: bool,
}

impl ScalePlan {
    /// Nothing left to do: the set holds exactly the validators wanted and every pod
    /// kept is one of them.
    pub fn settled(&self, desired: u32) -> bool {
        self.set_known
            && self.needed.is_empty()
            && self.awaiting_delta.is_empty()
            && self.replicas == desired
    }
}

/// Decides the plan. `keys[i]` is the key id (hex) of ordinal `i` (every ordinal below
/// `max(desired, running)`); `running` the validators with a StatefulSet (`None` before
/// the first exists); `delta_epoch` the lowest epoch the Delta chains of members report.
pub fn plan(
    desired: u32,
    running: Option<u32>,
    keys: &[String],
    set: Option<&SetView>,
    delta_epoch: Option<u64>,
) -> ScalePlan {
    let running = running.unwrap_or(desired);
    let keep_all = desired.max(running);
    let Some(set) = set else {
        return ScalePlan {
            replicas: keep_all,
            ..Default::default()
        };
    };
    let member = |i: u32| {
        keys.get(i as usize)
            .is_some_and(|k| set.members.contains(k))
    };
    let pending_in =
        |list: &[String], i: u32| keys.get(i as usize).is_some_and(|k| list.contains(k));
    let mut needed = Vec::new();
    for index in 0..keep_all.min(keys.len() as u32) {
        let wanted = index < desired;
        if wanted != member(index) {
            let (change, list) = if wanted {
                (Change::Join, &set.pending.joining)
            } else {
                (Change::Leave, &set.pending.leaving)
            };
            needed.push(Needed {
                index,
                change,
                pending: pending_in(list, index),
            });
        }
    }
    let last_member = (desired..keep_all).rev().find(|&i| member(i));
    let delta_caught_up = delta_epoch.is_some_and(|d| d >= set.epoch);
    let (replicas, awaiting_delta) = if delta_caught_up {
        (
            last_member.map_or(desired, |i| i + 1).max(desired),
            Vec::new(),
        )
    } else {
        let out: Vec<u32> = (desired..keep_all).filter(|&i| !member(i)).collect();
        (keep_all, out)
    };
    debug_assert!(replicas >= desired && replicas <= keep_all);
    ScalePlan {
        replicas,
        needed,
        awaiting_delta,
        set_known: true,
    }
}

/// The next thing to send for one validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make the join's stake: an sAX lock of the sponsor's.
    Lock,
    /// Ask to join with this lock as the stake, signed for Alpha's current epoch.
    Join { lock: Digest },
    /// Ask to leave, signed for Alpha's current epoch.
    Leave,
    /// Nothing to send now, and why.
    Wait(String),
}

/// The next step of `needed` in Alpha's `epoch`, given what the operator did before
/// (`progress`) and whether its lock is committed (`None`: not asked, or no lock).
pub fn next_step(
    needed: &Needed,
    progress: Option<&SetChangeProgress>,
    epoch: u64,
    lock_committed: Option<bool>,
) -> Step {
    let signed_now = progress.and_then(|p| p.signed_for_epoch) == Some(epoch);
    match needed.change {
        Change::Leave if needed.pending => Step::Wait(
            "Alpha holds its leave request; it leaves the set at the next epoch boundary".into(),
        ),
        Change::Leave if signed_now => Step::Wait(format!(
            "leave request signed for epoch {epoch} sent; waiting for Alpha to hold it (sent again next epoch if it does not)"
        )),
        Change::Leave => Step::Leave,
        Change::Join if needed.pending => Step::Wait(
            "Alpha holds its join request; it joins the set at the next epoch boundary".into(),
        ),
        Change::Join => join_step(progress, epoch, lock_committed, signed_now),
    }
}

fn join_step(
    progress: Option<&SetChangeProgress>,
    epoch: u64,
    lock_committed: Option<bool>,
    signed_now: bool,
) -> Step {
    let lock = progress
        .and_then(|p| p.lock.as_deref())
        .and_then(|hex| hex.parse::<Digest>().ok());
    let Some(lock) = lock else {
        return Step::Lock;
    };
    if lock_committed != Some(true) {
        let sent = progress.and_then(|p| p.lock_sent_in_epoch).unwrap_or(0);
        return if epoch >= sent.saturating_add(LOCK_RETRY_EPOCHS) {
            Step::Lock
        } else {
            Step::Wait(format!(
                "waiting for its stake lock {} to commit on Alpha",
                short(&lock.to_hex())
            ))
        };
    }
    if signed_now {
        Step::Wait(format!(
            "join request signed for epoch {epoch} sent; waiting for Alpha to hold it (sent again next epoch if it does not)"
        ))
    } else {
        Step::Join { lock }
    }
}

/// The first 16 hex digits of an id, for messages.
pub fn short(id: &str) -> String {
    id.chars().take(16).collect()
}

/// The sponsor of ordinal `index`'s join: an account of the network's keyring
/// (`accounts` of them), from the last one down, so the load generators (which use
/// the first ones) rarely share it.
pub fn sponsor_account(index: u32, accounts: u32) -> Option<u32> {
    (accounts > 0).then(|| accounts - 1 - index % accounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validators::PendingChanges;

    fn keys(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("{i:064x}")).collect()
    }

    fn set(epoch: u64, members: &[u32], joining: &[u32], leaving: &[u32]) -> SetView {
        let ids = |list: &[u32]| list.iter().map(|&i| format!("{i:064x}")).collect();
        SetView {
            epoch,
            members: ids(members),
            pending: PendingChanges {
                joining: ids(joining),
                leaving: ids(leaving),
            },
        }
    }

    fn needed(index: u32, change: Change, pending: bool) -> Needed {
        Needed {
            index,
            change,
            pending,
        }
    }

    #[test]
    fn growing_adds_pods_at_once_and_asks_each_newcomer_in() {
        let plan = plan(
            5,
            Some(4),
            &keys(5),
            Some(&set(3, &[0, 1, 2, 3], &[], &[])),
            Some(3),
        );
        assert_eq!(plan.replicas, 5);
        assert_eq!(plan.needed, vec![needed(4, Change::Join, false)]);
        assert!(!plan.settled(5));
        // Alpha holds the request: still needed, now pending.
        let plan2 = super::plan(
            5,
            Some(5),
            &keys(5),
            Some(&set(3, &[0, 1, 2, 3], &[4], &[])),
            Some(3),
        );
        assert_eq!(plan2.needed, vec![needed(4, Change::Join, true)]);
        // The boundary took it in: settled.
        let done = super::plan(
            5,
            Some(5),
            &keys(5),
            Some(&set(4, &[0, 1, 2, 3, 4], &[], &[])),
            Some(4),
        );
        assert!(done.settled(5), "{done:?}");
    }

    #[test]
    fn shrinking_keeps_the_pods_until_both_chains_passed_the_boundary() {
        let k = keys(7);
        // Still members: asked to leave, pods kept.
        let p = plan(
            5,
            Some(7),
            &k,
            Some(&set(2, &[0, 1, 2, 3, 4, 5, 6], &[], &[])),
            Some(2),
        );
        assert_eq!(p.replicas, 7);
        assert_eq!(
            p.needed,
            vec![
                needed(5, Change::Leave, false),
                needed(6, Change::Leave, false)
            ]
        );
        // Alpha took them out but Delta still runs the old epoch: pods kept.
        let p = plan(
            5,
            Some(7),
            &k,
            Some(&set(3, &[0, 1, 2, 3, 4], &[], &[])),
            Some(2),
        );
        assert_eq!((p.replicas, p.awaiting_delta.clone()), (7, vec![5, 6]));
        assert!(p.needed.is_empty());
        // No Delta answered: nothing is removed on a guess.
        let p = plan(
            5,
            Some(7),
            &k,
            Some(&set(3, &[0, 1, 2, 3, 4], &[], &[])),
            None,
        );
        assert_eq!(p.replicas, 7);
        // Delta caught up: the pods go.
        let p = plan(
            5,
            Some(7),
            &k,
            Some(&set(3, &[0, 1, 2, 3, 4], &[], &[])),
            Some(3),
        );
        assert!(p.settled(5), "{p:?}");
        // Only the higher leaver is out: pods go from the highest index down (the
        // indices stay contiguous), so ordinal 5's pod keeps 6.
        let p = plan(
            5,
            Some(7),
            &k,
            Some(&set(3, &[0, 1, 2, 3, 4, 5], &[], &[5])),
            Some(3),
        );
        assert_eq!(p.replicas, 6);
        assert_eq!(p.needed, vec![needed(5, Change::Leave, true)]);
    }

    #[test]
    fn an_unknown_set_changes_nothing_and_removes_no_pod() {
        let p = plan(3, Some(5), &keys(5), None, Some(9));
        assert_eq!(p.replicas, 5);
        assert!(p.needed.is_empty() && !p.set_known && !p.settled(3));
        // Growing needs no knowledge of the set to create the pods.
        assert_eq!(plan(6, Some(4), &keys(6), None, None).replicas, 6);
        assert_eq!(plan(4, None, &keys(4), None, None).replicas, 4);
    }

    #[test]
    fn a_wanted_validator_that_left_by_itself_is_asked_back_and_foreign_members_are_left_alone() {
        let mut s = set(5, &[0, 2, 3], &[], &[]);
        s.members.push("f".repeat(64));
        let p = plan(4, Some(4), &keys(4), Some(&s), Some(5));
        assert_eq!(p.needed, vec![needed(1, Change::Join, false)]);
        assert_eq!(p.replicas, 4);
    }

    fn progress(
        lock: Option<&str>,
        lock_sent: Option<u64>,
        signed: Option<u64>,
    ) -> SetChangeProgress {
        SetChangeProgress {
            validator: "net-4".into(),
            change: "Join".into(),
            lock: lock.map(str::to_string),
            lock_sent_in_epoch: lock_sent,
            signed_for_epoch: signed,
            state: String::new(),
        }
    }

    #[test]
    fn a_join_locks_once_then_asks_once_per_epoch() {
        let join = needed(4, Change::Join, false);
        let lock = Digest([7; 32]);
        let hex = lock.to_hex();
        assert_eq!(next_step(&join, None, 3, None), Step::Lock);
        // The lock is in flight: wait, then make another only after LOCK_RETRY_EPOCHS.
        let sent = progress(Some(&hex), Some(3), None);
        assert!(matches!(
            next_step(&join, Some(&sent), 3, Some(false)),
            Step::Wait(_)
        ));
        assert!(matches!(
            next_step(&join, Some(&sent), 4, Some(false)),
            Step::Wait(_)
        ));
        assert_eq!(next_step(&join, Some(&sent), 5, Some(false)), Step::Lock);
        // Committed: ask to join, once in this epoch, again in the next.
        assert_eq!(
            next_step(&join, Some(&sent), 3, Some(true)),
            Step::Join { lock }
        );
        let asked = progress(Some(&hex), Some(3), Some(3));
        assert!(matches!(
            next_step(&join, Some(&asked), 3, Some(true)),
            Step::Wait(_)
        ));
        assert_eq!(
            next_step(&join, Some(&asked), 4, Some(true)),
            Step::Join { lock }
        );
        // Alpha holds it: wait for the boundary.
        let held = needed(4, Change::Join, true);
        assert!(matches!(
            next_step(&held, Some(&asked), 4, Some(true)),
            Step::Wait(_)
        ));
        // A lock id the status garbled is made again rather than trusted.
        let garbled = progress(Some("zz"), Some(3), None);
        assert_eq!(next_step(&join, Some(&garbled), 3, None), Step::Lock);
    }

    #[test]
    fn a_leave_is_asked_once_per_epoch_until_alpha_holds_it() {
        let leave = needed(6, Change::Leave, false);
        assert_eq!(next_step(&leave, None, 2, None), Step::Leave);
        let asked = progress(None, None, Some(2));
        assert!(matches!(
            next_step(&leave, Some(&asked), 2, None),
            Step::Wait(_)
        ));
        assert_eq!(next_step(&leave, Some(&asked), 3, None), Step::Leave);
        let held = needed(6, Change::Leave, true);
        assert!(matches!(
            next_step(&held, Some(&asked), 3, None),
            Step::Wait(_)
        ));
    }

    #[test]
    fn sponsors_come_from_the_end_of_the_keyring() {
        assert_eq!(sponsor_account(4, 100), Some(95));
        assert_eq!(sponsor_account(5, 100), Some(94));
        assert_eq!(sponsor_account(4, 3), Some(1));
        assert_eq!(sponsor_account(4, 0), None);
    }
}
