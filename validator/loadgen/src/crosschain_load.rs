//! The cross-chain part of `dualchain devnet --workload crosschain`, run beside the
//! Delta transfer load:
//! - **lockers** (accounts of their own) lock sAX on Alpha, one lock per Alpha block
//!   time in turn; each lock's *attestation latency* is the time from the lock being
//!   visible on Alpha to its stake being visible on Delta (both polled on validator 0
//!   every [`POLL`], so ±[`POLL`]);
//! - **governance stakers** run the whole flow once: lock, stake, one proposal, every
//!   staker votes for it, finalize after the deadline, the result executed on Alpha,
//!   unlock after the time lock, release on Alpha, release attested back;
//! - at the end, every lock's and the proposal's records are read on **every**
//!   validator (with their proofs) and must agree within each chain and across the
//!   chains (`records_agree`).
//!
//! Each account sends its next operation only after the previous one took effect (its
//! nonce is read from the chain), so nothing here races the transfer load, which uses
//! other accounts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dualchain_client::crosschain::{ChainClient, Sender};
use dualchain_contract::stats::Percentiles;
use dualchain_core::Digest;
use dualchain_core::crypto::AccountKeypair;
use dualchain_core::types::{
    ChainId, CrossChainOp, LockRecord, LockStatus, ParameterChange, ParameterName, ParameterRecord,
    ProposalRecord, ProposalStatus, RecordKind, StakeRecord, StakeStatus,
};
use dualchain_testkit::sleep_until_unix_ms;
use serde::Serialize;

/// Accounts that lock for latency samples.
pub const LOCKERS: usize = 8;
/// Accounts that run the governance flow.
pub const GOV_STAKERS: usize = 3;
/// Extra funded accounts the cross-chain workload needs beyond the transfer load's.
pub const EXTRA_ACCOUNTS: usize = LOCKERS + GOV_STAKERS;
/// How often records are polled.
pub const POLL: Duration = Duration::from_millis(50);
/// sAX each latency lock holds (every generated account has 1,000,000).
const LOCK_AMOUNT: u64 = 1_000;
/// sAX each governance staker locks: a hundred lockers' worth, so the stakers hold
/// the quorum of the total stake whatever number of the lockers' locks were attested
/// by the time the proposal opens (the quorum is of all stake).
const GOV_LOCK_AMOUNT: u64 = 100 * LOCK_AMOUNT;
/// The parameter the governance flow sets.
pub const PARAMETER: &str = "devnet.crosschain";
/// Errors kept in the report.
const MAX_ERRORS: usize = 20;

/// What the cross-chain workload measured (`crosschain` in report.json).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CrosschainFigures {
    /// Locks sent on Alpha.
    pub locks_sent: u64,
    /// Attestations applied, as seen through their effects: locks staked on Delta,
    /// unlock requests released on Alpha, releases attested back on Delta, governance
    /// results executed on Alpha.
    pub attestations: u64,
    pub locks_attested: u64,
    pub unlocks_released: u64,
    pub releases_attested: u64,
    pub governance_executed: u64,
    /// Lock visible on Alpha → stake visible on Delta (validator 0, ±50 ms).
    pub attestation_latency_ms_p50: u64,
    pub attestation_latency_ms_p95: u64,
    pub attestation_latency_ms_p99: u64,
    /// `(seconds since the workload started, latency ms)` per attested lock.
    pub attestation_latencies: Vec<(f64, f64)>,
    /// Every lock's and the proposal's records agree on every validator, within and
    /// across the chains.
    pub records_agree: bool,
    pub disagreements: Vec<String>,
    /// Operations that failed (first few).
    pub errors: Vec<String>,
    /// The transfer load ran alone for its first `baseline_s` seconds and beside the
    /// cross-chain flow afterwards: own transfers committed per second in each phase
    /// (see [`TransferRates`]) and `with / without`.
    pub baseline_s: f64,
    pub transfer_tps_without_crosschain: f64,
    pub transfer_tps_with_crosschain: f64,
    pub transfer_tps_ratio: f64,
}

/// Committed-transfer rates of the two phases of one run, each measured from block to
/// block ([`rate_between`]) over its phase less its first `lag_s` seconds (the
/// transactions still in flight when a phase starts belong to the one before).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransferRates {
    pub without: f64,
    pub with: f64,
}

impl TransferRates {
    /// The rates of `[lag, baseline)` and `[baseline + lag, end)`, from the
    /// loadgen's `(seconds since start, committed)` finality events; `None` when a
    /// phase saw fewer than two blocks with own transactions.
    pub fn measure(events: &[(f64, u64)], baseline_s: f64, end_s: f64, lag_s: f64) -> Option<Self> {
        Some(Self {
            without: rate_between(events, lag_s, baseline_s)?,
            with: rate_between(events, baseline_s + lag_s, end_s)?,
        })
    }

    /// `with / without` (0 when nothing committed without).
    pub fn ratio(&self) -> f64 {
        if self.without > 0.0 {
            self.with / self.without
        } else {
            0.0
        }
    }
}

/// Transactions committed per second by the finality events in `[from_s, to_s)`,
/// from the first such event to the last: the first event's own transactions were
/// sealed before the measured span, so they are not counted; `None` with fewer than
/// two events. Whole-second bins would count a block more or less depending on
/// where the window's edges fall.
pub fn rate_between(events: &[(f64, u64)], from_s: f64, to_s: f64) -> Option<f64> {
    let inside: Vec<&(f64, u64)> = events
        .iter()
        .filter(|(t, _)| *t >= from_s && *t < to_s)
        .collect();
    let (first, last) = (inside.first()?, inside.last()?);
    let span = last.0 - first.0;
    if inside.len() < 2 || span <= 0.0 {
        return None;
    }
    let committed: u64 = inside[1..].iter().map(|(_, n)| n).sum();
    Some(committed as f64 / span)
}

/// Where the workload runs and who sends.
pub struct CrosschainConfig {
    pub alpha_urls: Vec<String>,
    pub delta_urls: Vec<String>,
    /// [`LOCKERS`] then [`GOV_STAKERS`] senders (keys, or addresses sending unsigned
    /// transactions when the genesis allows them).
    pub senders: Vec<Sender>,
    pub alpha_block_ms: u64,
    pub delta_block_ms: u64,
    /// How long locks are sent.
    pub duration: Duration,
}

#[derive(Default)]
struct Shared {
    figures: CrosschainFigures,
    locks: Vec<Digest>,
    proposal: Option<(Digest, ParameterChange)>,
}

impl Shared {
    fn error(&mut self, error: String) {
        if self.figures.errors.len() < MAX_ERRORS {
            self.figures.errors.push(error);
        }
    }
}

type State = Arc<Mutex<Shared>>;

fn state(shared: &State) -> std::sync::MutexGuard<'_, Shared> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The senders of the workload from the funded account keys after the transfer
/// load's.
pub fn senders(keys: Vec<AccountKeypair>, unsigned: bool) -> Vec<Sender> {
    keys.into_iter()
        .map(|key| {
            if unsigned {
                Sender::Unsigned(dualchain_core::types::Address::of(key.public()))
            } else {
                Sender::Key(Box::new(key))
            }
        })
        .collect()
}

fn unix_ms_in(after: Duration) -> u64 {
    dualchain_testkit::unix_ms() + u64::try_from(after.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the workload: locks for `config.duration`, the governance flow beside them,
/// everything bounded by `deadline` (then the records are compared).
pub async fn run(config: CrosschainConfig, deadline: Instant) -> anyhow::Result<CrosschainFigures> {
    anyhow::ensure!(
        config.senders.len() == EXTRA_ACCOUNTS,
        "the cross-chain workload needs {EXTRA_ACCOUNTS} accounts"
    );
    let alpha = Arc::new(ChainClient::connect(&config.alpha_urls[0], ChainId::Alpha).await?);
    let delta = Arc::new(ChainClient::connect(&config.delta_urls[0], ChainId::Delta).await?);
    let shared: State = Arc::default();
    let started = Instant::now();
    let config = Arc::new(config);
    let mut tasks = Vec::new();
    for locker in 0..LOCKERS {
        tasks.push(tokio::spawn(lock_loop(
            config.clone(),
            (alpha.clone(), delta.clone()),
            shared.clone(),
            locker,
            started,
        )));
    }
    tasks.push(tokio::spawn(governance(
        config.clone(),
        (alpha.clone(), delta.clone()),
        shared.clone(),
        deadline,
    )));
    let remaining = deadline.saturating_duration_since(Instant::now());
    if tokio::time::timeout(remaining, futures::future::join_all(tasks.iter_mut()))
        .await
        .is_err()
    {
        for task in &tasks {
            task.abort();
        }
    }
    let (locks, proposal) = {
        let s = state(&shared);
        (s.locks.clone(), s.proposal.clone())
    };
    let settle = Duration::from_millis(3 * config.alpha_block_ms + 3 * config.delta_block_ms);
    let disagreements = compare_records(&config, &locks, proposal.as_ref(), settle).await;
    let mut s = state(&shared);
    let mut samples: Vec<u32> = s
        .figures
        .attestation_latencies
        .iter()
        .map(|(_, ms)| (ms * 1000.0) as u32)
        .collect();
    samples.sort_unstable();
    let p = Percentiles::from_sorted_micros(&samples);
    let f = &mut s.figures;
    f.attestation_latency_ms_p50 = p.p50;
    f.attestation_latency_ms_p95 = p.p95;
    f.attestation_latency_ms_p99 = p.p99;
    f.attestations =
        f.locks_attested + f.unlocks_released + f.releases_attested + f.governance_executed;
    f.records_agree = disagreements.is_empty() && !locks.is_empty();
    if locks.is_empty() {
        f.disagreements
            .push("no lock was made, nothing to compare".into());
    }
    f.disagreements.extend(disagreements);
    Ok(s.figures.clone())
}

/// One locker: a lock every `LOCKERS` Alpha block times (the lockers staggered), each
/// followed to its stake on Delta in the background.
async fn lock_loop(
    config: Arc<CrosschainConfig>,
    (alpha, delta): (Arc<ChainClient>, Arc<ChainClient>),
    shared: State,
    locker: usize,
    started: Instant,
) {
    let spacing = Duration::from_millis(config.alpha_block_ms);
    tokio::time::sleep(spacing.mul_f64(locker as f64 / LOCKERS as f64)).await;
    let sender = &config.senders[locker];
    let timeout = Duration::from_millis(10 * config.alpha_block_ms + 20 * config.delta_block_ms);
    while started.elapsed() < config.duration {
        let next = Instant::now() + spacing * LOCKERS as u32;
        let op = CrossChainOp::SaxLock {
            amount: LOCK_AMOUNT,
            // Held past the run: these locks only measure the way to Delta.
            unlock_at_ms: unix_ms_in(config.duration + Duration::from_secs(3_600)),
        };
        match lock_and_attest(&alpha, &delta, sender, op, timeout, &shared, started).await {
            Ok(_) => {}
            Err(e) => state(&shared).error(format!("locker {locker}: {e:#}")),
        }
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Sends a lock and waits for it on Alpha; its stake on Delta is awaited in the
/// background (the account's next lock needs only Alpha's nonce).
async fn lock_and_attest(
    alpha: &Arc<ChainClient>,
    delta: &Arc<ChainClient>,
    sender: &Sender,
    op: CrossChainOp,
    timeout: Duration,
    shared: &State,
    started: Instant,
) -> anyhow::Result<Digest> {
    let lock = alpha.send(sender, op).await?;
    {
        let mut s = state(shared);
        s.figures.locks_sent += 1;
        s.locks.push(lock);
    }
    alpha
        .wait_for_every::<LockRecord>(RecordKind::Lock, lock, timeout, POLL, |_| true)
        .await?;
    let on_alpha = Instant::now();
    let (delta, shared) = (delta.clone(), shared.clone());
    tokio::spawn(async move {
        let staked = delta
            .wait_for_every::<StakeRecord>(RecordKind::Stake, lock, timeout, POLL, |s| {
                s.status == StakeStatus::Active
            })
            .await;
        let mut s = state(&shared);
        match staked {
            Ok(_) => {
                let latency = on_alpha.elapsed().as_secs_f64() * 1000.0;
                let at = on_alpha.duration_since(started).as_secs_f64();
                s.figures.locks_attested += 1;
                s.figures.attestation_latencies.push((at, latency));
            }
            Err(e) => s.error(format!("lock {lock}: {e:#}")),
        }
    });
    Ok(lock)
}

/// The governance flow of the [`GOV_STAKERS`]; errors end it (and are reported).
async fn governance(
    config: Arc<CrosschainConfig>,
    chains: (Arc<ChainClient>, Arc<ChainClient>),
    shared: State,
    deadline: Instant,
) {
    if let Err(e) = governance_flow(&config, &chains, &shared, deadline).await {
        state(&shared).error(format!("governance flow: {e:#}"));
    }
}

async fn governance_flow(
    config: &CrosschainConfig,
    (alpha, delta): &(Arc<ChainClient>, Arc<ChainClient>),
    shared: &State,
    deadline: Instant,
) -> anyhow::Result<()> {
    let stakers = &config.senders[LOCKERS..];
    let wait = deadline.saturating_duration_since(Instant::now());
    // Unlockable after about half the run (at least a few Alpha blocks after locking).
    let hold = (config.duration / 2).max(Duration::from_millis(6 * config.alpha_block_ms));
    let unlock_at_ms = unix_ms_in(hold);
    let mut locks = Vec::new();
    for staker in stakers {
        let op = CrossChainOp::SaxLock {
            amount: GOV_LOCK_AMOUNT,
            unlock_at_ms,
        };
        locks.push(alpha.send(staker, op).await?);
    }
    {
        let mut s = state(shared);
        s.figures.locks_sent += locks.len() as u64;
        s.locks.extend(&locks);
    }
    for lock in &locks {
        delta
            .wait_for_every::<StakeRecord>(RecordKind::Stake, *lock, wait, POLL, |s| {
                s.status == StakeStatus::Active
            })
            .await?;
        state(shared).figures.locks_attested += 1;
    }

    let change = ParameterChange {
        name: ParameterName::new(PARAMETER).map_err(|e| anyhow::anyhow!("{e}"))?,
        value: dualchain_testkit::unix_ms(),
    };
    let voting_period_ms = (4 * config.delta_block_ms).max(2_000);
    let proposal = delta
        .send(
            &stakers[0],
            CrossChainOp::Propose {
                change: change.clone().into(),
                voting_period_ms,
            },
        )
        .await?;
    state(shared).proposal = Some((proposal, change.clone()));
    let opened = delta
        .wait_for_every::<ProposalRecord>(RecordKind::Proposal, proposal, wait, POLL, |_| true)
        .await?;
    for staker in stakers {
        let before = delta
            .decoded::<ProposalRecord>(RecordKind::Proposal, proposal)
            .await?
            .map_or(0, |p| p.votes_for);
        let op = CrossChainOp::Vote {
            proposal,
            approve: true,
        };
        delta.send(staker, op).await?;
        delta
            .wait_for_every::<ProposalRecord>(RecordKind::Proposal, proposal, wait, POLL, |p| {
                p.votes_for > before
            })
            .await?;
    }
    sleep_until_unix_ms(opened.voting_deadline_ms + 2 * config.delta_block_ms).await;
    delta
        .send(&stakers[0], CrossChainOp::FinalizeProposal { proposal })
        .await?;
    let closed = delta
        .wait_for_every::<ProposalRecord>(RecordKind::Proposal, proposal, wait, POLL, |p| {
            p.status != ProposalStatus::Open
        })
        .await?;
    anyhow::ensure!(
        closed.status == ProposalStatus::Passed,
        "the proposal ended {:?}",
        closed.status
    );
    alpha
        .wait_for_every::<ParameterRecord>(
            RecordKind::Parameter,
            Digest(change.name.record_id()),
            wait,
            POLL,
            |p| p.proposal == proposal,
        )
        .await?;
    state(shared).figures.governance_executed += 1;

    sleep_until_unix_ms(unlock_at_ms + config.alpha_block_ms).await;
    for (staker, lock) in stakers.iter().zip(&locks) {
        delta
            .send(staker, CrossChainOp::SaxUnlock { lock: *lock })
            .await?;
    }
    for lock in &locks {
        alpha
            .wait_for_every::<LockRecord>(RecordKind::Lock, *lock, wait, POLL, |l| {
                matches!(l.status, LockStatus::Released { .. })
            })
            .await?;
        state(shared).figures.unlocks_released += 1;
    }
    for lock in &locks {
        delta
            .wait_for_every::<StakeRecord>(RecordKind::Stake, *lock, wait, POLL, |s| {
                matches!(s.status, StakeStatus::Released { .. })
            })
            .await?;
        state(shared).figures.releases_attested += 1;
    }
    Ok(())
}

/// Whether a lock's Alpha record and its Delta stake tell one story.
fn consistent(lock: &Option<LockRecord>, stake: &Option<StakeRecord>) -> bool {
    match (lock, stake) {
        (Some(l), Some(s)) => {
            (l.owner, l.amount, l.unlock_at_ms) == (s.owner, s.amount, s.unlock_at_ms)
                && matches!(
                    (l.status, s.status),
                    (LockStatus::Locked, StakeStatus::Active)
                        | (LockStatus::Released { .. }, StakeStatus::Released { .. })
                )
        }
        // Not attested at all yet is a disagreement too: the run settled.
        _ => false,
    }
}

/// Both chains' APIs of one validator, or why it could not be reached.
type Validator = Result<(ChainClient, ChainClient), String>;

/// Every validator's view of every lock and of the proposal; retried until `settle`
/// passes so transitions in flight at the end can land. Returns what disagrees.
async fn compare_records(
    config: &CrosschainConfig,
    locks: &[Digest],
    proposal: Option<&(Digest, ParameterChange)>,
    settle: Duration,
) -> Vec<String> {
    let until = Instant::now() + settle;
    let mut validators: Vec<Validator> = Vec::new();
    for (a, d) in config.alpha_urls.iter().zip(&config.delta_urls) {
        let both = async {
            Ok::<_, anyhow::Error>((
                ChainClient::connect(a, ChainId::Alpha).await?,
                ChainClient::connect(d, ChainId::Delta).await?,
            ))
        };
        validators.push(both.await.map_err(|e| format!("{e:#}")));
    }
    loop {
        let found = disagreements(&validators, locks, proposal).await;
        if found.is_empty() || Instant::now() >= until {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(config.delta_block_ms.max(100))).await;
    }
}

async fn disagreements(
    validators: &[Validator],
    locks: &[Digest],
    proposal: Option<&(Digest, ParameterChange)>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut clients = Vec::new();
    for (i, validator) in validators.iter().enumerate() {
        match validator {
            Ok((alpha, delta)) => clients.push((i, alpha, delta)),
            Err(e) => out.push(format!("cannot reach validator {i}: {e}")),
        }
    }
    for lock in locks {
        let mut views = BTreeMap::new();
        for &(i, alpha, delta) in &clients {
            let l = alpha.decoded::<LockRecord>(RecordKind::Lock, *lock).await;
            let s = delta.decoded::<StakeRecord>(RecordKind::Stake, *lock).await;
            match (l, s) {
                (Ok(l), Ok(s)) => {
                    if !consistent(&l, &s) {
                        out.push(format!(
                            "lock {lock} on validator {i}: alpha {l:?}, delta {s:?}"
                        ));
                    }
                    views.insert(i, (l, s));
                }
                (l, s) => out.push(format!(
                    "lock {lock} on validator {i}: {:?} / {:?}",
                    l.err(),
                    s.err()
                )),
            }
        }
        let mut distinct: Vec<_> = views.values().collect();
        distinct.dedup();
        if distinct.len() > 1 {
            out.push(format!("lock {lock}: validators disagree: {views:?}"));
        }
    }
    if let Some((id, change)) = proposal {
        let mut seen = Vec::new();
        for &(_, alpha, delta) in &clients {
            let p = delta
                .decoded::<ProposalRecord>(RecordKind::Proposal, *id)
                .await;
            let q = alpha
                .decoded::<ParameterRecord>(RecordKind::Parameter, Digest(change.name.record_id()))
                .await;
            match (p, q) {
                (Ok(p), Ok(q)) => {
                    let executed = q.is_some_and(|q| q.proposal == *id && q.value == change.value);
                    let passed = p
                        .as_ref()
                        .is_some_and(|p| p.status == ProposalStatus::Passed);
                    if passed != executed {
                        out.push(format!(
                            "proposal {id}: passed on Delta {passed}, executed on Alpha {executed}"
                        ));
                    }
                    seen.push(p.map(|p| (p.votes_for, p.votes_against, p.status)));
                }
                (p, q) => out.push(format!("proposal {id}: {:?} / {:?}", p.err(), q.err())),
            }
        }
        seen.dedup();
        if seen.len() > 1 {
            out.push(format!("proposal {id}: validators disagree: {seen:?}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::types::Address;

    fn lock(status: LockStatus) -> Option<LockRecord> {
        Some(LockRecord {
            owner: Address([1; 32]),
            amount: 5,
            unlock_at_ms: 9,
            status,
        })
    }

    fn stake(status: StakeStatus) -> Option<StakeRecord> {
        Some(StakeRecord {
            owner: Address([1; 32]),
            amount: 5,
            unlock_at_ms: 9,
            status,
        })
    }

    #[test]
    fn a_lock_and_its_stake_agree_only_in_matching_states() {
        let released = LockStatus::Released { at_ms: 3 };
        assert!(consistent(
            &lock(LockStatus::Locked),
            &stake(StakeStatus::Active)
        ));
        assert!(consistent(
            &lock(released),
            &stake(StakeStatus::Released { at_ms: 4 })
        ));
        assert!(!consistent(&lock(LockStatus::Locked), &None));
        assert!(!consistent(&None, &stake(StakeStatus::Active)));
        assert!(!consistent(
            &lock(LockStatus::Locked),
            &stake(StakeStatus::Released { at_ms: 4 })
        ));
        assert!(!consistent(
            &lock(released),
            &stake(StakeStatus::Unlocking { requested_at_ms: 2 })
        ));
        let mut other = stake(StakeStatus::Active);
        other.as_mut().unwrap().amount = 6;
        assert!(!consistent(&lock(LockStatus::Locked), &other));
    }

    /// Blocks every `period` s with `per_block` transactions, from `t0`.
    fn blocks(t0: f64, period: f64, count: usize, per_block: u64) -> Vec<(f64, u64)> {
        (0..count)
            .map(|i| (t0 + period * i as f64, per_block))
            .collect()
    }

    #[test]
    fn rates_are_measured_from_block_to_block_whatever_the_phase() {
        // 900 transactions every 3 s is 300/s wherever the window's edges fall.
        for t0 in [0.1, 0.9, 1.7, 2.5] {
            let events = blocks(t0, 3.0, 40, 900);
            let rate = rate_between(&events, 2.0, 20.0).unwrap();
            assert!((rate - 300.0).abs() < 1e-9, "phase {t0}: {rate}");
        }
        assert_eq!(rate_between(&blocks(0.5, 3.0, 40, 900), 1.0, 3.0), None);
        assert_eq!(rate_between(&[], 0.0, 100.0), None);
    }

    #[test]
    fn a_slower_second_phase_shows_in_the_ratio() {
        let mut events = blocks(0.2, 0.5, 40, 100); // 200/s until 19.7 s
        events.extend(blocks(20.2, 0.5, 80, 90)); // 180/s after
        let rates = TransferRates::measure(&events, 20.0, 60.0, 1.0).unwrap();
        assert!((rates.without - 200.0).abs() < 1e-9, "{rates:?}");
        assert!((rates.with - 180.0).abs() < 1e-9, "{rates:?}");
        assert!((rates.ratio() - 0.9).abs() < 1e-9);
        // A phase without two blocks cannot be measured.
        assert_eq!(TransferRates::measure(&events[..2], 20.0, 60.0, 1.0), None);
    }
}
