//! Admission under overload: the door refuses early — before a signature is checked —
//! what this node could not order within its wait limit.
//!
//! Why: a transaction admitted beyond what consensus and execution drain only waits,
//! and what was spent on it (the ML-DSA verification above all) is wasted when it is
//! refused later or resubmitted. Under signed overload that waste took the CPU the
//! chain needed: 741 TPS committed at 3,000 offered, against 1,450 at 1,500, with
//! latency in the tens of seconds. The mempool's own bounds (500,000 transactions)
//! are about memory, not time; this gate bounds the *wait*.
//!
//! Three signals, each read in constant time per batch:
//! - **backlog against service rate**: the backlog is the mempool plus what the
//!   proposer holds for its next vertices; the service rate is our own transactions
//!   that went into our vertices per second over the last [`SERVICE_WINDOW_MS`]. The
//!   node takes at most `max(min_backlog, rate × max_wait)` — what it can order within
//!   `max_wait`. The rate is what consensus *and* execution allow: the driver proposes
//!   nothing while the executor's queue is full, so a slow executor slows the rate.
//!   The floor `min_backlog` admits while the rate is still unknown (a fresh node).
//! - **executor behind**: while the executor's queue is full the driver proposes
//!   nothing; everything is refused until it drains.
//! - **verification budget**: a token bucket of signature verifications per second
//!   (one second of burst), so no client mix — valid or not — takes more CPU for
//!   verification than the operator allows.
//!
//! While the gate is shut (no room, or the executor behind) the API refuses ordinary
//! transactions before even its state checks ([`AdmissionGate::shut`]): a flood then
//! costs a decode each, not a store read and a verification.
//!
//! A refusal carries a retry hint: how long until the backlog above the limit drains
//! at the current rate (or the bucket refills). The walk over a batch keeps each
//! sender's transactions contiguous: once one of a sender's transactions is refused,
//! its later ones in the batch are refused too, so the gate never opens a nonce gap a
//! block would fail on. Time is an input (the chain clock's milliseconds): under the
//! simulator the gate is deterministic.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use dualchain_core::types::Address;

/// The window over which the service rate is measured.
pub const SERVICE_WINDOW_MS: u64 = 5_000;
/// The default admission wait limit.
pub const DEFAULT_MAX_WAIT_MS: u64 = 2_000;
/// The accepted range of the wait limit (`--admission-max-wait-ms`).
pub const MAX_WAIT_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;
/// The default backlog admitted whatever the rate (a fresh node, a quiet chain).
pub const DEFAULT_MIN_BACKLOG: usize = 4_096;
/// Bounds of a retry hint.
const MIN_HINT_MS: u64 = 50;
const MAX_HINT_MS: u64 = 10_000;
/// The hint while the executor is behind: about one executed commit.
const EXECUTOR_HINT_MS: u64 = 500;
/// Buckets of the service meter (one per 100 ms).
const BUCKET_MS: u64 = 100;

/// Limits of the gate.
#[derive(Clone, Debug, PartialEq)]
pub struct GateConfig {
    /// The longest a newly admitted transaction should wait to be ordered.
    pub max_wait_ms: u64,
    /// Backlog admitted whatever the measured rate.
    pub min_backlog: usize,
    /// Signature verifications per second at the door (`None`: unbounded).
    pub verify_budget_per_sec: Option<u32>,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            max_wait_ms: DEFAULT_MAX_WAIT_MS,
            min_backlog: DEFAULT_MIN_BACKLOG,
            verify_budget_per_sec: None,
        }
    }
}

/// Which signal refused a transaction (the metric's `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    Backlog,
    ExecutorBehind,
    VerifyBudget,
}

impl Cause {
    pub fn label(self) -> &'static str {
        match self {
            Cause::Backlog => "backlog",
            Cause::ExecutorBehind => "executor_behind",
            Cause::VerifyBudget => "verify_budget",
        }
    }
}

/// Why the gate refused, and when to come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub cause: Cause,
    pub retry_after_ms: u32,
    pub reason: String,
}

/// One transaction offered to the gate, in batch order.
#[derive(Clone, Copy, Debug)]
pub struct Candidate {
    pub sender: Address,
    /// Carries a signature the door would verify.
    pub signed: bool,
    /// Passes whatever the load: an attestation, which the relays must deliver for
    /// the chains to agree (and epochs to turn). Their number is bounded by the
    /// other chain's certified records (each applies once, duplicates are refused
    /// by digest, and the state check before the gate refuses what could only
    /// fail), so a client cannot flood through this door.
    pub priority: bool,
}

/// The gate's answer for one batch: `admitted[i]` for candidate `i`, and the refusal
/// every other one gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchVerdict {
    pub admitted: Vec<bool>,
    pub refusal: Option<Refusal>,
}

/// Own transactions proposed, in [`BUCKET_MS`] buckets over [`SERVICE_WINDOW_MS`].
#[derive(Debug, Default)]
struct ServiceMeter {
    buckets: VecDeque<(u64, u64)>,
    first_ms: Option<u64>,
}

impl ServiceMeter {
    fn record(&mut self, n: u64, now_ms: u64) {
        self.first_ms.get_or_insert(now_ms);
        let bucket = now_ms / BUCKET_MS;
        match self.buckets.back_mut() {
            Some((b, count)) if *b == bucket => *count += n,
            _ => self.buckets.push_back((bucket, n)),
        }
        self.forget_before(now_ms);
    }

    fn forget_before(&mut self, now_ms: u64) {
        let oldest = now_ms.saturating_sub(SERVICE_WINDOW_MS) / BUCKET_MS;
        while self.buckets.front().is_some_and(|(b, _)| *b < oldest) {
            self.buckets.pop_front();
        }
    }

    /// Transactions per second over the window (or since the first record, if that
    /// is shorter; at least one bucket long).
    fn rate_per_sec(&mut self, now_ms: u64) -> f64 {
        self.forget_before(now_ms);
        let Some(first) = self.first_ms else {
            return 0.0;
        };
        let span = now_ms
            .saturating_sub(first)
            .clamp(BUCKET_MS, SERVICE_WINDOW_MS);
        let total: u64 = self.buckets.iter().map(|(_, n)| n).sum();
        total as f64 * 1000.0 / span as f64
    }
}

/// A token bucket of verifications, one second of burst.
#[derive(Debug)]
struct VerifyBucket {
    per_sec: u32,
    tokens: f64,
    refilled_at_ms: Option<u64>,
}

impl VerifyBucket {
    fn refill(&mut self, now_ms: u64) {
        let since = self
            .refilled_at_ms
            .map_or(0, |at| now_ms.saturating_sub(at));
        self.refilled_at_ms = Some(now_ms);
        let cap = f64::from(self.per_sec);
        self.tokens = (self.tokens + since as f64 * cap / 1000.0).min(cap);
    }

    /// Milliseconds until `needed` tokens are there.
    fn wait_ms(&self, needed: f64) -> u64 {
        let missing = (needed - self.tokens).max(1.0);
        (missing * 1000.0 / f64::from(self.per_sec)).ceil() as u64
    }
}

#[derive(Debug)]
struct GateState {
    served: ServiceMeter,
    bucket: Option<VerifyBucket>,
}

/// The admission gate of one chain, shared by the API (which asks) and the driver
/// (which reports what it proposed and whether the executor keeps up).
#[derive(Debug)]
pub struct AdmissionGate {
    config: GateConfig,
    state: Mutex<GateState>,
    /// Set by the driver on every turn of its loop: atomics, so that costs no lock.
    proposer_queue: AtomicUsize,
    executor_behind: AtomicBool,
}

fn clamp_hint(ms: u64) -> u32 {
    ms.clamp(MIN_HINT_MS, MAX_HINT_MS) as u32
}

impl AdmissionGate {
    pub fn new(config: GateConfig) -> Self {
        assert!(config.max_wait_ms > 0, "a zero wait limit admits nothing");
        let bucket = config.verify_budget_per_sec.map(|per_sec| {
            assert!(per_sec > 0, "a zero verification budget admits nothing");
            VerifyBucket {
                per_sec,
                tokens: f64::from(per_sec),
                refilled_at_ms: None,
            }
        });
        Self {
            config,
            state: Mutex::new(GateState {
                served: ServiceMeter::default(),
                bucket,
            }),
            proposer_queue: AtomicUsize::new(0),
            executor_behind: AtomicBool::new(false),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `n` of our own transactions went into a vertex we proposed.
    pub fn record_proposed(&self, n: usize, now_ms: u64) {
        self.state().served.record(n as u64, now_ms);
    }

    /// What the driver holds for its next vertices, and whether the executor's
    /// queue is full (the driver then proposes nothing).
    pub fn set_driver_state(&self, proposer_queue: usize, executor_behind: bool) {
        self.proposer_queue.store(proposer_queue, Ordering::Relaxed);
        self.executor_behind
            .store(executor_behind, Ordering::Relaxed);
    }

    fn executor_behind(&self) -> bool {
        self.executor_behind.load(Ordering::Relaxed)
    }

    /// The backlog now (the mempool plus what the proposer holds), the largest one
    /// admitted, and the measured rate.
    fn load(&self, state: &mut GateState, mempool_len: usize, now_ms: u64) -> (usize, usize, f64) {
        let rate = state.served.rate_per_sec(now_ms);
        let by_rate = (rate * self.config.max_wait_ms as f64 / 1000.0) as usize;
        let backlog = mempool_len + self.proposer_queue.load(Ordering::Relaxed);
        (backlog, by_rate.max(self.config.min_backlog), rate)
    }

    /// How long until a backlog of `backlog` drains below `limit` at `rate`.
    fn backlog_hint(&self, backlog: usize, limit: usize, rate: f64) -> u32 {
        if rate <= 0.0 {
            return clamp_hint(self.config.max_wait_ms);
        }
        let excess = backlog.saturating_sub(limit).max(1) as f64;
        clamp_hint((excess * 1000.0 / rate).ceil() as u64)
    }

    /// The retry hint for a refusal decided elsewhere (a full mempool, a sender at
    /// its cap): when the backlog is expected to be back under the limit.
    pub fn retry_hint(&self, mempool_len: usize, now_ms: u64) -> u32 {
        let (backlog, limit, rate) = self.load(&mut self.state(), mempool_len, now_ms);
        self.backlog_hint(backlog, limit.min(backlog.saturating_sub(1)), rate)
    }

    fn backlog_refusal(&self, backlog: usize, refused: usize, limit: usize, rate: f64) -> Refusal {
        Refusal {
            cause: Cause::Backlog,
            retry_after_ms: self.backlog_hint(backlog + refused, limit, rate),
            reason: format!(
                "the node holds {backlog} transactions, more than it can order within {} ms at its current {rate:.0}/s",
                self.config.max_wait_ms
            ),
        }
    }

    /// The refusal every ordinary transaction gets now, if the gate is shut (the
    /// executor behind, or no room left): the API then spares such transactions its
    /// state checks, which a flood would otherwise pay for in store reads. Charges
    /// nothing.
    pub fn shut(&self, mempool_len: usize, now_ms: u64) -> Option<Refusal> {
        if self.executor_behind() {
            return Some(executor_refusal());
        }
        let (backlog, limit, rate) = self.load(&mut self.state(), mempool_len, now_ms);
        // Come back once a quarter of the wait limit's worth has drained: a shut
        // door would otherwise reopen for one transaction's room.
        let reopen = (limit / 4).max(1);
        (backlog >= limit).then(|| self.backlog_refusal(backlog, reopen, limit, rate))
    }

    /// Decides a batch (see the module docs); charges the verification budget for
    /// the signed transactions it admits.
    pub fn admit_batch(
        &self,
        candidates: &[Candidate],
        mempool_len: usize,
        now_ms: u64,
    ) -> BatchVerdict {
        if candidates.is_empty() {
            return BatchVerdict {
                admitted: Vec::new(),
                refusal: None,
            };
        }
        if self.executor_behind() {
            return refuse_all(candidates, executor_refusal());
        }
        let mut state = self.state();
        let (backlog, limit, rate) = self.load(&mut state, mempool_len, now_ms);
        let room = limit.saturating_sub(backlog);
        if let Some(bucket) = state.bucket.as_mut() {
            bucket.refill(now_ms);
        }
        let tokens = state.bucket.as_ref().map(|b| b.tokens.floor() as usize);
        let walk = walk_batch(candidates, room, tokens);
        if let Some(bucket) = state.bucket.as_mut() {
            bucket.tokens -= walk.verifications as f64;
        }
        let refusal = walk.stopped_by.map(|cause| match cause {
            Cause::VerifyBudget => {
                let bucket = state
                    .bucket
                    .as_ref()
                    .expect("only a bucket stops a walk so");
                Refusal {
                    cause,
                    retry_after_ms: clamp_hint(bucket.wait_ms(walk.refused_signed as f64)),
                    reason: format!(
                        "the node's signature verification budget ({} per second) is spent",
                        bucket.per_sec
                    ),
                }
            }
            _ => self.backlog_refusal(backlog, walk.refused, limit, rate),
        });
        BatchVerdict {
            admitted: walk.admitted,
            refusal,
        }
    }
}

fn executor_refusal() -> Refusal {
    Refusal {
        cause: Cause::ExecutorBehind,
        retry_after_ms: clamp_hint(EXECUTOR_HINT_MS),
        reason:
            "the executor is behind consensus: the node takes no transactions until it catches up"
                .into(),
    }
}

/// Refuses all but the priority candidates.
fn refuse_all(candidates: &[Candidate], refusal: Refusal) -> BatchVerdict {
    BatchVerdict {
        admitted: candidates.iter().map(|c| c.priority).collect(),
        refusal: Some(refusal),
    }
}

/// The outcome of walking a batch against the room and the tokens.
struct Walk {
    admitted: Vec<bool>,
    verifications: usize,
    refused: usize,
    refused_signed: usize,
    /// The first limit that refused a transaction.
    stopped_by: Option<Cause>,
}

/// Admits in order while there is room (and tokens for the signed), refusing every
/// later transaction of a sender once one of its transactions was refused.
fn walk_batch(candidates: &[Candidate], room: usize, tokens: Option<usize>) -> Walk {
    let mut walk = Walk {
        admitted: vec![false; candidates.len()],
        verifications: 0,
        refused: 0,
        refused_signed: 0,
        stopped_by: None,
    };
    let mut held_back: HashSet<Address> = HashSet::new();
    let mut taken = 0usize;
    for (i, candidate) in candidates.iter().enumerate() {
        let cause = if candidate.priority {
            None
        } else if held_back.contains(&candidate.sender) || taken >= room {
            Some(Cause::Backlog)
        } else if candidate.signed && tokens.is_some_and(|t| walk.verifications >= t) {
            Some(Cause::VerifyBudget)
        } else {
            None
        };
        match cause {
            None => {
                walk.admitted[i] = true;
                taken += 1;
                walk.verifications += usize::from(candidate.signed);
            }
            Some(cause) => {
                walk.stopped_by.get_or_insert(cause);
                walk.refused += 1;
                walk.refused_signed += usize::from(candidate.signed);
                held_back.insert(candidate.sender);
            }
        }
    }
    walk
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(n: u8) -> Address {
        Address([n; 32])
    }

    fn batch(senders: &[u8]) -> Vec<Candidate> {
        senders
            .iter()
            .map(|&n| Candidate {
                sender: sender(n),
                signed: true,
                priority: false,
            })
            .collect()
    }

    fn gate(min_backlog: usize, budget: Option<u32>) -> AdmissionGate {
        AdmissionGate::new(GateConfig {
            max_wait_ms: 2_000,
            min_backlog,
            verify_budget_per_sec: budget,
        })
    }

    #[test]
    fn a_quiet_node_admits_up_to_the_floor() {
        let gate = gate(3, None);
        let verdict = gate.admit_batch(&batch(&[1, 2, 3, 4, 5]), 0, 1_000);
        assert_eq!(verdict.admitted, [true, true, true, false, false]);
        let refusal = verdict.refusal.unwrap();
        assert_eq!(refusal.cause, Cause::Backlog);
        // Nothing was ever proposed: the hint is the wait limit.
        assert_eq!(refusal.retry_after_ms, 2_000);
    }

    #[test]
    fn the_limit_follows_what_the_proposer_drains() {
        let gate = gate(10, None);
        // 1,000 own transactions proposed per second for five seconds.
        for t in 0..50 {
            gate.record_proposed(100, t * 100);
        }
        // 2 s at 1,000/s: 2,000 pending are the limit.
        let verdict = gate.admit_batch(&batch(&[1; 1]), 1_999, 5_000);
        assert_eq!(verdict.admitted, [true]);
        let verdict = gate.admit_batch(&batch(&[1; 1]), 2_000, 5_000);
        assert_eq!(verdict.admitted, [false]);
        // 1 over the limit (plus the refused one) drains in 2 ms: the hint's floor.
        assert_eq!(verdict.refusal.unwrap().retry_after_ms, MIN_HINT_MS as u32);
        // 3,000 over the limit drain in 3 s.
        let verdict = gate.admit_batch(&batch(&[1; 1]), 4_999, 5_000);
        assert_eq!(verdict.refusal.unwrap().retry_after_ms, 3_000);
        // What the proposer holds counts as backlog.
        gate.set_driver_state(1_500, false);
        let verdict = gate.admit_batch(&batch(&[1; 1]), 600, 5_000);
        assert_eq!(verdict.admitted, [false]);
    }

    #[test]
    fn an_old_rate_is_forgotten() {
        let gate = gate(10, None);
        for t in 0..50 {
            gate.record_proposed(100, t * 100);
        }
        // Ten seconds later nothing was proposed: back to the floor.
        let verdict = gate.admit_batch(&batch(&[1, 2, 3]), 9, 15_000);
        assert_eq!(verdict.admitted, [true, false, false]);
    }

    #[test]
    fn a_refused_sender_gets_no_later_transaction_in() {
        // One verification a second: the second signed transaction is refused, and
        // its sender's unsigned one after it too (it would leave a nonce gap), while
        // another sender's unsigned one still goes in.
        let gate = gate(100, Some(1));
        let candidate = |n: u8, signed: bool| Candidate {
            sender: sender(n),
            signed,
            priority: false,
        };
        let verdict = gate.admit_batch(
            &[
                candidate(1, true),
                candidate(2, true),
                candidate(2, false),
                candidate(3, false),
            ],
            0,
            0,
        );
        assert_eq!(verdict.admitted, [true, false, false, true]);
        assert_eq!(verdict.refusal.unwrap().cause, Cause::VerifyBudget);
        // Out of room, every later transaction is refused, whoever sends it.
        let gate = gate_with_room_for_three();
        let verdict = gate.admit_batch(&batch(&[5, 6, 5, 7, 6]), 0, 0);
        assert_eq!(verdict.admitted, [true, true, true, false, false]);
    }

    fn gate_with_room_for_three() -> AdmissionGate {
        gate(3, None)
    }

    #[test]
    fn a_shut_gate_says_so_before_any_batch() {
        let gate = gate(3, None);
        assert_eq!(gate.shut(2, 0), None);
        let refusal = gate.shut(3, 0).unwrap();
        assert_eq!(refusal.cause, Cause::Backlog);
        assert_eq!(refusal.retry_after_ms, 2_000);
        // At 1,000/s the limit is 2,000: shut at 2,000 until 500 (a quarter) drained.
        for t in 0..50 {
            gate.record_proposed(100, t * 100);
        }
        assert_eq!(gate.shut(1_999, 5_000), None);
        assert_eq!(gate.shut(2_000, 5_000).unwrap().retry_after_ms, 500);
        gate.set_driver_state(0, true);
        assert_eq!(gate.shut(0, 0).unwrap().cause, Cause::ExecutorBehind);
    }

    #[test]
    fn a_behind_executor_refuses_everything() {
        let gate = gate(1_000, None);
        gate.set_driver_state(0, true);
        let mut candidates = batch(&[1, 2, 3]);
        candidates[1].priority = true;
        let verdict = gate.admit_batch(&candidates, 0, 0);
        // Only the attestation goes in.
        assert_eq!(verdict.admitted, [false, true, false]);
        let refusal = verdict.refusal.unwrap();
        assert_eq!(refusal.cause, Cause::ExecutorBehind);
        assert_eq!(refusal.retry_after_ms, EXECUTOR_HINT_MS as u32);
        gate.set_driver_state(0, false);
        assert_eq!(gate.admit_batch(&batch(&[1]), 0, 0).admitted, [true]);
    }

    #[test]
    fn the_verification_budget_refills_with_time() {
        let gate = gate(1_000_000, Some(4));
        let verdict = gate.admit_batch(&batch(&[1, 2, 3, 4, 5, 6]), 0, 0);
        assert_eq!(verdict.admitted, [true, true, true, true, false, false]);
        let refusal = verdict.refusal.unwrap();
        assert_eq!(refusal.cause, Cause::VerifyBudget);
        // Two tokens at 4/s: 500 ms.
        assert_eq!(refusal.retry_after_ms, 500);
        // Unsigned transactions cost no verification.
        let unsigned = [Candidate {
            sender: sender(9),
            signed: false,
            priority: false,
        }];
        assert_eq!(gate.admit_batch(&unsigned, 0, 0).admitted, [true]);
        // Half a second later two tokens are back.
        let verdict = gate.admit_batch(&batch(&[7, 8, 9]), 0, 500);
        assert_eq!(verdict.admitted, [true, true, false]);
        // The bucket holds at most one second's worth.
        let verdict = gate.admit_batch(&batch(&[1, 2, 3, 4, 5, 6]), 0, 60_000);
        assert_eq!(verdict.admitted.iter().filter(|a| **a).count(), 4);
    }

    #[test]
    fn attestations_pass_a_full_gate_and_take_no_room() {
        let gate = gate(1, Some(1));
        let mut candidates = batch(&[1, 2, 3, 4]);
        candidates[0].priority = true;
        candidates[2].priority = true;
        let verdict = gate.admit_batch(&candidates, 5, 0);
        assert_eq!(verdict.admitted, [true, false, true, false]);
    }

    #[test]
    fn hints_stay_within_their_bounds() {
        let gate = gate(10, None);
        gate.record_proposed(1, 0);
        // A huge backlog at a tiny rate: at most ten seconds.
        let verdict = gate.admit_batch(&batch(&[1]), 1_000_000, 100);
        assert_eq!(verdict.refusal.unwrap().retry_after_ms, MAX_HINT_MS as u32);
        assert!(gate.retry_hint(1_000_000, 100) <= MAX_HINT_MS as u32);
        assert!(gate.retry_hint(0, 100) >= MIN_HINT_MS as u32);
    }
}
