//! Who a chain's transport admits: the members of the epoch its consensus runs, those
//! of the previous epoch (whose last blocks may still be certifying), and the
//! validators Alpha expects next ([`ExpectedMembers`]).
//!
//! A validator joining a running network has to follow both chains *before* the
//! boundary that makes it a member, or the new committee would count stake that is
//! not there yet. Its join request sits in Alpha's `PendingSetChanges` record, backed
//! by a bonded lock, so admitting the validators named there costs an attacker stake.
//! Alpha's executor publishes them (with Alpha's current set, which Delta reaches a
//! little later through the set's attestation) to every chain of the process; each
//! chain's driver admits them on its next tick. A chain running in a process without
//! Alpha (the pod's Delta container) learns a joiner only at Delta's boundary, and the
//! joiner's Delta catches up from there.

use std::sync::Arc;

use anyhow::Context;
use dualchain_core::crypto::ValidatorPublicKey;
use dualchain_core::types::{ChainId, CrossChainEvent, TxEvent, ValidatorSet};
use dualchain_execution::StateCache;
use dualchain_execution::epochs::committed_members_and_joiners;
use dualchain_net::MemberSet;
use tokio::sync::watch;

use crate::context::ChainContext;
use crate::seams::Seams;

/// Who the transport admits while `current` runs: its members, those of the
/// `previous` epoch, and `expected` (Alpha's current set and pending joiners).
pub fn transport_members(
    current: &ValidatorSet,
    previous: Option<&ValidatorSet>,
    expected: &[ValidatorPublicKey],
) -> MemberSet {
    let keys = previous
        .into_iter()
        .chain([current])
        .flat_map(|set| set.validators().iter().map(|v| v.public_key.clone()))
        .chain(expected.iter().cloned());
    MemberSet::new(current.epoch(), keys)
}

/// Alpha's current set and the validators whose joins wait for its next boundary,
/// shared by the chains of one process. Clones share one view.
#[derive(Clone)]
pub struct ExpectedMembers {
    sender: Arc<watch::Sender<Arc<Vec<ValidatorPublicKey>>>>,
}

impl Default for ExpectedMembers {
    fn default() -> Self {
        Self {
            sender: Arc::new(watch::Sender::new(Arc::new(Vec::new()))),
        }
    }
}

impl ExpectedMembers {
    /// Replaces the view; subscribers see a change only if the keys differ.
    pub fn publish(&self, keys: Vec<ValidatorPublicKey>) {
        self.sender.send_if_modified(|current| {
            let changed = current.as_slice() != keys.as_slice();
            if changed {
                *current = Arc::new(keys);
            }
            changed
        });
    }

    pub fn current(&self) -> Arc<Vec<ValidatorPublicKey>> {
        self.sender.borrow().clone()
    }

    /// Notified on every change.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<ValidatorPublicKey>>> {
        self.sender.subscribe()
    }
}

/// Alpha: publishes the committed current set and pending joiners to the process's
/// chains (nothing on Delta, which has no pending joins).
pub fn publish_expected<S: Seams>(
    ctx: &ChainContext<S>,
    cache: &StateCache<S::Engine>,
) -> anyhow::Result<()> {
    if ctx.chain != ChainId::Alpha {
        return Ok(());
    }
    let keys = committed_members_and_joiners(cache)
        .context("reading Alpha's current set and pending joins")?;
    ctx.identity.expected.publish(keys);
    Ok(())
}

/// Whether a block's events change who Alpha expects: a join request, or a boundary.
pub fn changes_expected(events: &[TxEvent]) -> bool {
    events.iter().any(|e| {
        matches!(
            e.event,
            CrossChainEvent::ValidatorJoinRequested { .. }
                | CrossChainEvent::EpochBoundaryReached { .. }
        )
    })
}

impl std::fmt::Debug for ExpectedMembers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExpectedMembers({} keys)", self.current().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::crypto::ValidatorKeypair;
    use dualchain_core::types::ValidatorSet;
    use dualchain_net::PeerId;

    fn key(seed: u8) -> ValidatorPublicKey {
        ValidatorKeypair::from_seed(&[seed; 32]).public().clone()
    }

    fn set(epoch: u64, keys: &[ValidatorPublicKey]) -> ValidatorSet {
        ValidatorSet::new(epoch, keys.iter().map(|k| (k.clone(), 1))).expect("valid set")
    }

    #[test]
    fn the_transport_admits_both_epochs_and_the_expected_joiners_only() {
        let (a, b, c, joiner, stranger) = (key(1), key(2), key(3), key(4), key(5));
        let current = set(2, &[a.clone(), b.clone()]);
        let previous = set(1, &[a.clone(), c.clone()]);
        let members = transport_members(&current, Some(&previous), std::slice::from_ref(&joiner));
        assert_eq!(members.epoch, 2);
        for admitted in [&a, &b, &c, &joiner] {
            assert!(members.contains(&PeerId::of(admitted)));
        }
        assert!(!members.contains(&PeerId::of(&stranger)));
        assert_eq!(members.len(), 4);
    }

    #[test]
    fn subscribers_see_a_change_only_when_the_keys_differ() {
        let expected = ExpectedMembers::default();
        let mut seen = expected.subscribe();
        expected.publish(vec![key(1)]);
        assert!(seen.has_changed().expect("open"));
        seen.mark_unchanged();
        expected.publish(vec![key(1)]);
        assert!(!seen.has_changed().expect("open"));
        expected.publish(vec![key(1), key(2)]);
        assert!(seen.has_changed().expect("open"));
        assert_eq!(expected.current().len(), 2);
    }
}
