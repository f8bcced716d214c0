//! The mempool of one chain: admission, batch draining, committed removal.
//!
//! Concurrency: producers lock only their sender's shard (and, briefly, one shard of
//! the recent-digest set inside it); capacity is reserved with atomic
//! compare-and-swap so the bound holds under any interleaving. Consumers serialise on
//! a drain lock among themselves (two proposers must never take the same
//! transaction) but hold each shard lock only while copying its candidates or
//! removing the chosen ones, so admission continues while a batch is being built.
//!
//! Lock order: a shard, then a recent-set shard. Nothing takes a shard lock while
//! holding a recent-set lock, so there is no cycle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use dualchain_core::hash::Digest;
use dualchain_core::types::{Address, ChainId, SignedTransaction, Verdict, VerdictSource};
use foldhash::fast::RandomState;
use prometheus::Registry;

use crate::config::MempoolConfig;
use crate::envelope::{AdmissionTime, Batch, Envelope, encoded_len};
use crate::error::{MempoolError, Rejection};
use crate::metrics::MempoolMetrics;
use crate::occupancy::{Occupancy, Padded};
use crate::recent::RecentSet;
use crate::select::{Candidate, rounds_needed, select};
use crate::shard::Shard;

/// Counts at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MempoolStats {
    pub pending_txs: usize,
    pub pending_bytes: usize,
    pub senders: usize,
    /// Digests remembered as recently proposed or included.
    pub recent: usize,
}

/// What a committed block's removal did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitRemoval {
    /// Pending transactions that the block included.
    pub removed: usize,
    /// Pending transactions of the same senders whose nonce the block used up.
    pub stale_dropped: usize,
}

/// The bounded, fair, sharded mempool of one chain.
pub struct Mempool {
    chain: ChainId,
    config: MempoolConfig,
    shards: Box<[Padded<Mutex<Shard>>]>,
    recent: RecentSet,
    occupancy: Arc<Occupancy>,
    drain: Mutex<()>,
    metrics: Option<MempoolMetrics>,
}

impl Mempool {
    /// A pool without metrics.
    pub fn new(chain: ChainId, config: MempoolConfig) -> Result<Self, MempoolError> {
        config.validate()?;
        Ok(Self {
            chain,
            shards: (0..config.shards)
                .map(|_| Padded(Mutex::new(Shard::default())))
                .collect(),
            recent: RecentSet::new(config.recent_capacity, config.shards),
            occupancy: Arc::default(),
            drain: Mutex::new(()),
            metrics: None,
            config,
        })
    }

    /// A pool whose metrics are registered into `registry`, labelled with the chain.
    pub fn with_metrics(
        chain: ChainId,
        config: MempoolConfig,
        registry: &Registry,
    ) -> Result<Self, MempoolError> {
        let mut pool = Self::new(chain, config)?;
        pool.metrics = Some(MempoolMetrics::register(
            registry,
            chain,
            pool.occupancy.clone(),
        )?);
        Ok(pool)
    }

    pub fn chain(&self) -> ChainId {
        self.chain
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Admits a transaction whose signatures were already judged (`verdict`, from the
    /// execution crate's cached verifier in a node), stamped with the caller's
    /// admission time.
    ///
    /// Returns the digest, or why it was refused. The enqueue-latency metric is
    /// measured here with [`Instant`], which feeds only the histogram, never ordering.
    pub fn admit(
        &self,
        tx: SignedTransaction,
        verdict: Verdict,
        at: AdmissionTime,
    ) -> Result<Digest, Rejection> {
        let Some(metrics) = &self.metrics else {
            return self.admit_untimed(tx, verdict, at);
        };
        let started = Instant::now();
        let result = self.admit_untimed(tx, verdict, at);
        let latency = started.elapsed();
        match &result {
            Ok(_) => metrics.admitted(latency),
            Err(rejection) => metrics.rejected(rejection.reason(), latency),
        }
        result
    }

    /// Verifies with `verifier` (cached verdicts) and admits.
    pub fn admit_verified(
        &self,
        tx: SignedTransaction,
        verifier: &impl VerdictSource,
        at: AdmissionTime,
    ) -> Result<Digest, Rejection> {
        let verdict = verifier.verdict(&tx);
        self.admit(tx, verdict, at)
    }

    fn admit_untimed(
        &self,
        tx: SignedTransaction,
        verdict: Verdict,
        at: AdmissionTime,
    ) -> Result<Digest, Rejection> {
        if tx.tx().chain != self.chain {
            return Err(Rejection::WrongChain {
                tx_chain: tx.tx().chain,
                pool_chain: self.chain,
            });
        }
        match verdict {
            Verdict::Valid => {}
            Verdict::Invalid => return Err(Rejection::InvalidSignature),
            Verdict::UnsignedNotAllowed => return Err(Rejection::UnsignedNotAllowed),
        }
        let size = encoded_len(&tx);
        let limit = self.config.max_tx_bytes_of(&tx.tx().payload);
        if size > limit {
            return Err(Rejection::Oversize { size, limit });
        }
        self.insert(Envelope {
            tx,
            admitted_at: at,
            encoded_len: size,
        })
    }

    /// The shard-level checks, capacity reservation and insertion.
    fn insert(&self, envelope: Envelope) -> Result<Digest, Rejection> {
        let digest = envelope.digest();
        let sender = envelope.tx.tx().sender;
        let nonce = envelope.tx.tx().nonce;
        let mut shard = self.shard_of(&sender);
        shard.check_admissible(&digest, &sender, nonce, self.config.max_per_sender)?;
        // Checked under the shard lock: a concurrent commit marks the digest before it
        // scans the shards, so either we see the mark or its scan sees our insertion.
        if self.recent.refuses(&digest, envelope.admitted_at) {
            return Err(Rejection::DuplicateIncluded { digest });
        }
        self.reserve(envelope.encoded_len)?;
        shard.insert(envelope);
        Ok(digest)
    }

    /// Reserves room for one transaction of `size` bytes, or refuses: full.
    fn reserve(&self, size: usize) -> Result<(), Rejection> {
        if self
            .occupancy
            .reserve(size, self.config.max_txs, self.config.max_bytes)
        {
            Ok(())
        } else {
            Err(Rejection::Full {
                max_txs: self.config.max_txs,
                max_bytes: self.config.max_bytes,
            })
        }
    }

    fn shard_index(&self, sender: &Address) -> usize {
        // Addresses are BLAKE3 output: their first bytes spread evenly over shards.
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&sender.0[..8]);
        (u64::from_le_bytes(prefix) as usize) & (self.shards.len() - 1)
    }

    fn shard_of(&self, sender: &Address) -> MutexGuard<'_, Shard> {
        self.lock_shard(self.shard_index(sender))
    }

    fn lock_shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        self.shards[index]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Drains up to `max_txs` transactions and `max_bytes` encoded bytes for a
    /// proposal, in the deterministic fair order (see the `select` module). Drained
    /// transactions are remembered as recently proposed, so a resubmission is refused
    /// as a duplicate; give them back with [`Mempool::reinstate`] if the proposal is
    /// abandoned.
    pub fn take_batch(&self, max_txs: usize, max_bytes: usize) -> Batch {
        self.take(max_txs, max_bytes, None)
    }

    /// [`Mempool::take_batch`], also recording each transaction's queue wait up to
    /// `now` (the caller's clock, same unit as the admission times) in the metrics.
    pub fn take_batch_at(&self, max_txs: usize, max_bytes: usize, now: AdmissionTime) -> Batch {
        self.take(max_txs, max_bytes, Some(now))
    }

    fn take(&self, max_txs: usize, max_bytes: usize, now: Option<AdmissionTime>) -> Batch {
        let _one_consumer_at_a_time = self.drain.lock().unwrap_or_else(PoisonError::into_inner);
        if max_txs == 0 || max_bytes == 0 || self.is_empty() {
            return Batch::default();
        }
        let mut lane_lengths = Vec::new();
        for index in 0..self.shards.len() {
            self.lock_shard(index).lane_lengths(&mut lane_lengths);
        }
        let mut rounds = rounds_needed(&lane_lengths, max_txs);
        let selection = loop {
            let mut candidates = Vec::with_capacity(max_txs.min(self.len()));
            let mut truncated = false;
            for index in 0..self.shards.len() {
                truncated |=
                    self.lock_shard(index)
                        .collect_candidates(index, rounds, &mut candidates);
            }
            let selection = select(&mut candidates, max_txs, max_bytes);
            // More rounds can only help if a lane was cut short and there is room left
            // (the byte budget skipped some senders). Lanes never exceed the sender cap,
            // so this ends.
            let room_left = selection.picks.len() < max_txs && !selection.budget_exhausted;
            if !(truncated && room_left) || rounds >= self.config.max_per_sender {
                break selection;
            }
            rounds = rounds.saturating_mul(2).min(self.config.max_per_sender);
        };
        let batch = self.remove_picked(&selection.picks, now);
        if let Some(metrics) = &self.metrics {
            metrics.drained(batch.len());
            if let Some(now) = now {
                for envelope in &batch.envelopes {
                    metrics.queue_wait(now.0.saturating_sub(envelope.admitted_at.0));
                }
            }
        }
        batch
    }

    /// Removes the picked transactions from their shards (marking them proposed at
    /// `now`) and returns them in pick order. A pick that a concurrent commit removed
    /// meanwhile is simply absent.
    fn remove_picked(&self, picks: &[Candidate], now: Option<AdmissionTime>) -> Batch {
        let mut slots: Vec<Option<Envelope>> = vec![None; picks.len()];
        let mut order: Vec<usize> = (0..picks.len()).collect();
        // Stable: within a lane, picks stay in nonce order, so removal pops the front.
        order.sort_by_key(|&i| picks[i].shard);
        let mut position = 0;
        while position < order.len() {
            let shard_index = picks[order[position]].shard as usize;
            let mut shard = self.lock_shard(shard_index);
            while position < order.len() && picks[order[position]].shard as usize == shard_index {
                let pick = &picks[order[position]];
                if let Some(envelope) = shard.remove_exact(&pick.sender, pick.nonce, &pick.digest) {
                    self.recent.mark_proposed(pick.digest, now);
                    slots[order[position]] = Some(envelope);
                }
                position += 1;
            }
        }
        let envelopes: Vec<Envelope> = slots.into_iter().flatten().collect();
        let bytes = envelopes.iter().map(|e| e.encoded_len).sum();
        self.occupancy.release(envelopes.len(), bytes);
        Batch { envelopes, bytes }
    }

    /// Gives back the transactions of an abandoned proposal (taken by
    /// [`Mempool::take_batch`] but not committed), with their original admission times
    /// so they keep their place in the order. Each may still be refused, for example if
    /// the pool filled up meanwhile.
    pub fn reinstate(&self, batch: Batch) -> Vec<Result<Digest, Rejection>> {
        batch
            .envelopes
            .into_iter()
            .map(|envelope| {
                self.recent.forget(&envelope.digest());
                self.insert(envelope)
            })
            .collect()
    }

    /// Removes the transactions of a committed block and remembers their digests, so
    /// replays are refused. Pending transactions of the same senders with a nonce at or
    /// below a committed one can never execute; they are dropped (and counted).
    pub fn remove_committed(&self, committed: &[SignedTransaction]) -> CommitRemoval {
        let mut outcome = CommitRemoval::default();
        let mut released_bytes = 0;
        let mut highest_nonce: HashMap<Address, u64, RandomState> = HashMap::default();
        for stx in committed {
            let (sender, nonce, digest) = (stx.tx().sender, stx.tx().nonce, stx.digest());
            let mut shard = self.shard_of(&sender);
            self.recent.mark_included(digest);
            if let Some(envelope) = shard.remove_digest(&digest) {
                released_bytes += envelope.encoded_len;
                outcome.removed += 1;
            }
            let highest = highest_nonce.entry(sender).or_insert(nonce);
            *highest = (*highest).max(nonce);
        }
        // Only after every included transaction was counted as such: the rest at or
        // below a sender's highest committed nonce is stale, whatever the block order.
        for (sender, nonce) in highest_nonce {
            for envelope in self.shard_of(&sender).remove_up_to_nonce(&sender, nonce) {
                released_bytes += envelope.encoded_len;
                outcome.stale_dropped += 1;
            }
        }
        self.occupancy
            .release(outcome.removed + outcome.stale_dropped, released_bytes);
        if let Some(metrics) = &self.metrics {
            metrics.committed_removed(outcome.removed);
            metrics.dropped_stale(outcome.stale_dropped);
        }
        outcome
    }

    /// Like [`Mempool::remove_committed`] when only the digests are known. Slower (each
    /// digest is looked up in every shard) and without stale-nonce dropping; prefer
    /// the full transactions when the block is at hand.
    pub fn remove_committed_digests(&self, digests: &[Digest]) -> CommitRemoval {
        for digest in digests {
            self.recent.mark_included(*digest);
        }
        let mut outcome = CommitRemoval::default();
        let mut released_bytes = 0;
        for index in 0..self.shards.len() {
            let mut shard = self.lock_shard(index);
            for digest in digests {
                if let Some(envelope) = shard.remove_digest(digest) {
                    released_bytes += envelope.encoded_len;
                    outcome.removed += 1;
                }
            }
        }
        self.occupancy.release(outcome.removed, released_bytes);
        if let Some(metrics) = &self.metrics {
            metrics.committed_removed(outcome.removed);
        }
        outcome
    }

    /// Pending transactions.
    pub fn len(&self) -> usize {
        self.occupancy.txs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encoded bytes of the pending transactions.
    pub fn bytes(&self) -> usize {
        self.occupancy.bytes()
    }

    /// Whether `digest` is pending (looks in every shard: for diagnostics and tests).
    pub fn is_pending(&self, digest: &Digest) -> bool {
        (0..self.shards.len()).any(|index| self.lock_shard(index).contains(digest))
    }

    /// Whether `digest` is remembered as recently proposed or included.
    pub fn is_recent(&self, digest: &Digest) -> bool {
        self.recent.contains(digest)
    }

    /// Pending transactions of one sender.
    pub fn pending_of(&self, sender: &Address) -> usize {
        self.shard_of(sender).pending_of(sender)
    }

    pub fn stats(&self) -> MempoolStats {
        MempoolStats {
            pending_txs: self.len(),
            pending_bytes: self.bytes(),
            senders: (0..self.shards.len())
                .map(|index| self.lock_shard(index).senders())
                .sum(),
            recent: self.recent.len(),
        }
    }
}
