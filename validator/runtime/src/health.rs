//! The health of a chain on a node: stalled (no block for 3× the block time),
//! degraded (restarted in the last minute, paused, the other chain stopped sealing,
//! or the epoch transition is stuck or cannot complete), catching up, healthy.
//! [`monitor`] re-assesses every chain once a second and feeds the node's
//! [`EpochTransition`] with what both chains show; the other chain is either in this
//! process or, in the two-container pod, behind a [`SiblingProbe`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dualchain_api::Health;
use dualchain_core::types::ChainId;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::context::ChainContext;
use crate::epoch_transition::{ChainEpochs, Deadlock, EpochTransition, Stuck, TransitionTimeouts};
use crate::seams::Seams;

/// The newest block of the other chain, for timing-drift checks.
#[derive(Clone, Copy, Debug)]
pub struct OtherChain {
    pub chain: ChainId,
    pub block_time_ms: u64,
    pub last_block_unix_ms: u64,
}

/// What the other chain's process says of it.
#[derive(Clone, Copy, Debug)]
pub struct SiblingStatus {
    pub chain: ChainId,
    /// Unix ms it committed its head.
    pub last_block_unix_ms: u64,
    /// Its epochs, for the epoch transition (`None`: it runs no committee, e.g. it
    /// left the set or is starting).
    pub epochs: Option<ChainEpochs>,
}

/// Asks the other chain of this validator, run by another process, for its status.
pub trait SiblingProbe: Send {
    fn status(&mut self) -> BoxFuture<'_, Result<SiblingStatus, String>>;
    /// Where the sibling is, for messages.
    fn describe(&self) -> String;
}

/// What `ctx`'s chain shows the epoch transition; `None` while it runs no committee
/// (starting, restarting, or it left the set).
pub fn chain_epochs<S: Seams>(ctx: &ChainContext<S>) -> Option<ChainEpochs> {
    if ctx.left_set().is_some() || !ctx.is_running() {
        return None;
    }
    let (committee, set) = ctx.committee_with_digest();
    Some(ChainEpochs {
        reached: committee.epoch(),
        set,
        head_epoch: ctx.head().epoch,
        reachable: Some((
            ctx.reachable_stake.load(Ordering::Relaxed),
            committee.quorum_stake(),
        )),
    })
}

/// The epoch transition's part of the health: why it is late (`stuck`) or can never
/// complete (`deadlock`).
pub fn transition_problem(deadlock: Option<&Deadlock>, stuck: Option<&Stuck>) -> Option<String> {
    if let Some(deadlock) = deadlock {
        return Some(format!("the epoch transition cannot complete: {deadlock}"));
    }
    stuck.map(|stuck| {
        format!(
            "the epoch transition is stuck: waiting {:.0} s for {}",
            stuck.for_ms as f64 / 1000.0,
            stuck.waiting_for
        )
    })
}

/// Feeds `transition` with what every chain of the node shows at `now` (`sibling`:
/// the other container's chain and view, when it has one), publishes the result on
/// each local chain (the relay pause and the transition gauges) and returns the
/// transition's problem for the health, if it has one.
pub fn observe_transition<S: Seams>(
    transition: &mut EpochTransition,
    chains: &[Arc<ChainContext<S>>],
    sibling: Option<(ChainId, Option<ChainEpochs>)>,
    now: u64,
) -> Option<String> {
    let before = transition.phase();
    for ctx in chains {
        transition.observe(ctx.chain, chain_epochs(ctx), now);
    }
    if let Some((chain, epochs)) = sibling
        && chains.iter().all(|c| c.chain != chain)
    {
        transition.observe(chain, epochs, now);
    }
    let phase = transition.phase();
    if phase != before {
        tracing::debug!(?phase, "epoch transition");
    }
    let paused = transition.cross_chain_paused();
    let (stuck, deadlock) = (transition.stuck(now), transition.deadlock(now));
    let stuck_s = stuck.as_ref().map_or(0, |s| s.for_ms / 1000);
    let deadlocked = deadlock.is_some();
    for ctx in chains {
        ctx.cross_chain_paused.store(paused, Ordering::Release);
        ctx.metrics.cross_chain_paused.set(i64::from(paused));
        ctx.metrics
            .epoch_transition_stuck_seconds
            .set(stuck_s as i64);
        ctx.metrics
            .epoch_transition_deadlocked
            .set(i64::from(deadlocked));
    }
    transition_problem(deadlock.as_ref(), stuck.as_ref())
}

/// When the chain last made progress (its head's commit, else its start).
pub fn last_activity<S: Seams>(ctx: &ChainContext<S>) -> u64 {
    let head = ctx.head();
    if head.committed_at_unix_ms > 0 {
        head.committed_at_unix_ms
    } else {
        ctx.started_at_unix_ms.max(ctx.genesis().genesis_time_ms)
    }
}

/// The health of `ctx`'s chain at `now` (Unix ms), given every chain's newest block.
pub fn assess<S: Seams>(ctx: &ChainContext<S>, now: u64, all: &[OtherChain]) -> (Health, String) {
    if let Some(epoch) = ctx.left_set() {
        return (
            Health::Stopped,
            crate::context::left_set_reason(ctx.chain, epoch),
        );
    }
    if ctx.state_syncing.load(Ordering::Acquire) {
        return (
            Health::Degraded,
            "state sync: filling the empty data directory from a verified snapshot; the chain \
             then follows by block sync to the tip"
                .into(),
        );
    }
    if ctx.following.load(Ordering::Acquire) {
        let head = ctx.head();
        if let Some(epoch) = ctx.joining() {
            return (
                Health::Degraded,
                format!(
                    "joining: following by block sync at height {}; {}",
                    head.height,
                    crate::context::joining_reason(ctx.chain, epoch)
                ),
            );
        }
        return (
            Health::Degraded,
            format!(
                "catching up by block sync (further behind than the consensus window): at height {} of epoch {}; consensus resumes at an epoch boundary",
                head.height, head.epoch
            ),
        );
    }
    if !ctx.is_running() {
        let restarts = ctx.restarts.load(Ordering::Relaxed);
        return if restarts > 0 {
            (
                Health::Degraded,
                format!(
                    "restarting (restart {restarts}) after: {}",
                    ctx.last_failure()
                ),
            )
        } else {
            (Health::Stopped, "opening the store and starting".into())
        };
    }
    let head = ctx.head();
    let behind = now.saturating_sub(head.block_timestamp_ms);
    ctx.catching_up.store(
        behind > 10 * ctx.block_time_ms.max(1_000) && head.height > 0,
        Ordering::Release,
    );
    let idle = now.saturating_sub(last_activity(ctx));
    if idle > 3 * ctx.block_time_ms {
        return (
            Health::Stalled,
            format!(
                "no block for {:.1} s (3x the {} ms block time)",
                idle as f64 / 1000.0,
                ctx.block_time_ms
            ),
        );
    }
    if ctx.is_paused() {
        return (Health::Degraded, "paused by an admin call".into());
    }
    if ctx.partitioned.load(Ordering::Relaxed) {
        return (
            Health::Degraded,
            "partitioned: more than half of the latest consensus queries timed out (the \
             Avalanche rule cannot hear a majority of its peers)"
                .into(),
        );
    }
    let last_restart = ctx.last_restart_unix_ms.load(Ordering::Relaxed);
    if last_restart > 0 && now.saturating_sub(last_restart) < 60_000 {
        return (
            Health::Degraded,
            format!(
                "restarted within the last minute after: {}",
                ctx.last_failure()
            ),
        );
    }
    if let Some(other) = all.iter().find(|o| o.chain != ctx.chain) {
        let other_idle = now.saturating_sub(other.last_block_unix_ms);
        if other_idle > 3 * other.block_time_ms {
            return (
                Health::Degraded,
                format!(
                    "timing drift: the {} chain has sealed no block for {:.1} s",
                    other.chain,
                    other_idle as f64 / 1000.0
                ),
            );
        }
    }
    (Health::Healthy, String::new())
}

/// Re-assesses every chain of the node once a second until `stop`.
pub async fn monitor<S: Seams>(
    chains: Vec<Arc<ChainContext<S>>>,
    mut sibling: Option<Box<dyn SiblingProbe>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let Some(first) = chains.first() else { return };
    let alpha_block_ms = first.genesis().chain(ChainId::Alpha).block_time_ms;
    let mut transition = EpochTransition::new(
        TransitionTimeouts::for_alpha_block_ms(alpha_block_ms),
        first.clock.unix_ms(),
    );
    // Whether the transition was late at the last tick (logged when that changes).
    let mut late = false;
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let now = first.clock.unix_ms();
        let mut others: Vec<OtherChain> = chains
            .iter()
            .map(|c| OtherChain {
                chain: c.chain,
                block_time_ms: c.block_time_ms,
                last_block_unix_ms: last_activity(c),
            })
            .collect();
        let mut sibling_error = None;
        let mut sibling_epochs = None;
        if let Some(probe) = sibling.as_mut() {
            let other = first.chain.other();
            match probe.status().await {
                Ok(status) => {
                    others.push(OtherChain {
                        chain: status.chain,
                        block_time_ms: first.genesis().chain(status.chain).block_time_ms,
                        last_block_unix_ms: status.last_block_unix_ms,
                    });
                    sibling_epochs = Some((status.chain, status.epochs));
                }
                Err(e) => {
                    sibling_epochs = Some((other, None));
                    sibling_error = Some(format!(
                        "the other chain's API at {} does not answer: {e}",
                        probe.describe()
                    ))
                }
            }
        }
        let problem = observe_transition(&mut transition, &chains, sibling_epochs, now);
        match (&problem, late) {
            (Some(problem), false) => tracing::warn!(%problem, "epoch transition late"),
            (None, true) => {
                tracing::info!(phase = ?transition.phase(), "epoch transition on time again")
            }
            _ => {}
        }
        late = problem.is_some();
        for chain in &chains {
            let (mut health, mut reason) = assess(chain, now, &others);
            if matches!(health, Health::Healthy | Health::Degraded)
                && let Some(problem) = &problem
            {
                (health, reason) = (Health::Degraded, problem.clone());
            } else if health == Health::Healthy
                && let Some(e) = &sibling_error
            {
                (health, reason) = (Health::Degraded, format!("timing drift unknown: {e}"));
            }
            chain.set_health(health, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use dualchain_core::Digest;

    use super::*;

    fn at(reached: u64, head_epoch: u64, reachable: (u64, u64)) -> Option<ChainEpochs> {
        Some(ChainEpochs {
            reached,
            set: Digest([1; 32]),
            head_epoch,
            reachable: Some(reachable),
        })
    }

    #[test]
    fn a_late_or_impossible_transition_says_what_it_waits_for() {
        let timeouts = TransitionTimeouts::for_alpha_block_ms(15_000);
        assert_eq!(timeouts.reach_boundary_ms, 60_000);
        let mut t = EpochTransition::new(timeouts, 0);
        t.observe(ChainId::Alpha, at(1, 0, (4, 3)), 0);
        t.observe(ChainId::Delta, at(0, 0, (4, 3)), 0);
        let problem = |t: &EpochTransition, now| {
            transition_problem(t.deadlock(now).as_ref(), t.stuck(now).as_ref())
        };
        assert_eq!(problem(&t, 60_000), None);
        assert_eq!(
            problem(&t, 61_000).as_deref(),
            Some(
                "the epoch transition is stuck: waiting 61 s for delta to reach the boundary into epoch 1"
            )
        );
        t.observe(ChainId::Delta, at(1, 0, (1, 3)), 62_000);
        let problem = problem(&t, 122_001).unwrap();
        assert!(
            problem.starts_with("the epoch transition cannot complete: delta reaches 1 of the 3"),
            "{problem}"
        );
    }
}
