//! The health of a chain on a node: stalled (no block for 3× the block time),
//! degraded (restarted in the last minute, paused, or the other chain stopped
//! sealing), catching up, healthy. [`monitor`] re-assesses every chain once a
//! second; the other chain is either in this process or, in the two-container pod,
//! behind a [`SiblingProbe`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dualchain_api::Health;
use dualchain_core::types::ChainId;
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::context::ChainContext;
use crate::seams::Seams;

/// The newest block of the other chain, for timing-drift checks.
#[derive(Clone, Copy, Debug)]
pub struct OtherChain {
    pub chain: ChainId,
    pub block_time_ms: u64,
    pub last_block_unix_ms: u64,
}

/// Asks the other chain of this validator, run by another process, for its newest
/// block: (its chain, Unix ms it committed its head).
pub trait SiblingProbe: Send {
    fn last_block(&mut self) -> BoxFuture<'_, Result<(ChainId, u64), String>>;
    /// Where the sibling is, for messages.
    fn describe(&self) -> String;
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
    if !ctx.is_running() {
        let restarts = ctx.restarts.load(Ordering::Relaxed);
        return if restarts > 0 {
            (Health::Degraded, format!("restarting (restart {restarts})"))
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
    let last_restart = ctx.last_restart_unix_ms.load(Ordering::Relaxed);
    if last_restart > 0 && now.saturating_sub(last_restart) < 60_000 {
        return (Health::Degraded, "restarted within the last minute".into());
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
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = tick.tick() => {}
        }
        let Some(first) = chains.first() else { return };
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
        if let Some(probe) = sibling.as_mut() {
            match probe.last_block().await {
                Ok((chain, last_block_unix_ms)) => others.push(OtherChain {
                    chain,
                    block_time_ms: first.genesis().chain(chain).block_time_ms,
                    last_block_unix_ms,
                }),
                Err(e) => {
                    sibling_error = Some(format!(
                        "the other chain's API at {} does not answer: {e}",
                        probe.describe()
                    ))
                }
            }
        }
        for chain in &chains {
            let (mut health, mut reason) = assess(chain, now, &others);
            if health == Health::Healthy
                && let Some(e) = &sibling_error
            {
                (health, reason) = (Health::Degraded, format!("timing drift unknown: {e}"));
            }
            chain.set_health(health, reason);
        }
    }
}
