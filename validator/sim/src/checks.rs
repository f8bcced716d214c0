//! What a run must show, read from the honest validators' stores after they stopped:
//! identical blocks (and so receipts and state roots) per height on both chains,
//! receipts that match their headers, state that matches its roots, a quorum
//! certificate for every height, and every accepted transaction executed exactly
//! once. Also the run's trace digest, for the determinism check.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::chain_store::ChainStore;
use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, Block, BlockCertificate, ChainId, EpochRecord, EpochSchedule, LockRecord, LockStatus,
    RECORD_PREFIX, Receipt, ReceiptStatus, RecordKey, RecordKind, StakeRecord, StakeStatus,
    ValidatorIndex, ValidatorSet,
};
use dualchain_execution::epochs::entered_epoch;
use dualchain_storage::{Column, KvEngine};

use crate::seams::{SimStore, slot};

/// One honest validator's chain as it ended.
pub struct ChainView {
    pub node: ValidatorIndex,
    pub blocks: Vec<Block>,
    pub receipts: Vec<Vec<Receipt>>,
    pub certified: BTreeSet<u64>,
    /// The validator left the set: its chain stopped at a boundary, below the others'.
    pub stopped: bool,
}

/// Findings of the checks.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub safety: Vec<String>,
    pub certificates: Vec<String>,
    pub exactly_once: Vec<String>,
    /// Lowest head height among the honest validators, per chain (Alpha, Delta).
    pub min_heights: [u64; 2],
    /// Certificates (by the hash of header digest and certificate bytes) already found
    /// valid: honest nodes hold byte-identical ones, and ML-DSA-87 verification is
    /// most of what reading a chain costs.
    verified_certificates: BTreeSet<Digest>,
}

/// Reads `node`'s chain from its store (reopening it checks state against roots).
/// Each block must be of the epoch its chain was in (the first epoch, plus one per
/// earlier block whose events say `epoch_boundary_reached`: the chain switches right
/// after the block that fixed the next set, never elsewhere), and its certificate
/// must verify against that epoch's set as the chain's records hold it.
pub fn read_chain(
    node: ValidatorIndex,
    chain: ChainId,
    store: &Arc<SimStore>,
    (genesis, network): (&ValidatorSet, NetworkId),
    findings: &mut Findings,
) -> Option<ChainView> {
    let store = match ChainStore::open(store.clone(), chain) {
        Ok(store) => store,
        Err(e) => {
            findings
                .safety
                .push(format!("node {node} {chain}: store does not reopen: {e}"));
            return None;
        }
    };
    let reader = store.reader();
    let head = reader.head().map_or(0, |h| h.height);
    let mut view = ChainView {
        node,
        blocks: Vec::new(),
        receipts: Vec::new(),
        certified: BTreeSet::new(),
        stopped: false,
    };
    let mut epoch = 0;
    let mut sets: BTreeMap<u64, ValidatorSet> = BTreeMap::new();
    for height in 1..=head {
        let (block, receipts, certificate) = match (
            reader.get_block(height),
            reader.get_receipts(height),
            reader.get_certificate(height),
        ) {
            (Ok(Some(b)), Ok(r), Ok(c)) => (b, r, c),
            other => {
                findings.safety.push(format!(
                    "node {node} {chain}: block {height} unreadable: {:?}",
                    other.0.err()
                ));
                return None;
            }
        };
        if Receipt::root(&receipts) != block.header.receipts_root {
            findings.safety.push(format!(
                "node {node} {chain}: stored receipts of block {height} do not match its header"
            ));
        }
        if block.header.epoch != epoch {
            findings.safety.push(format!(
                "node {node} {chain}: block {height} is of epoch {} but the chain was in epoch {epoch}",
                block.header.epoch
            ));
        }
        if entered_epoch(&reader.events(height).map(|e| e.0).unwrap_or_default()).is_some() {
            epoch += 1;
        }
        let set_epoch = block.header.epoch;
        if !sets.contains_key(&set_epoch)
            && let Ok(Some(set)) = reader.validator_set(set_epoch)
        {
            sets.insert(set_epoch, set.with_known_keys(genesis));
        }
        let validators = sets.get(&set_epoch);
        if let (Some(cert), None) = (&certificate, &validators) {
            findings.safety.push(format!(
                "node {node} {chain}: block {height} has a certificate of epoch {} whose set the chain does not record",
                cert.epoch
            ));
        }
        if let (Some(cert), Some(validators)) = (certificate, validators) {
            let key = certificate_key(&block, &cert);
            if findings.verified_certificates.contains(&key) {
                view.certified.insert(height);
            } else {
                match cert.verify(&block.header, validators, network) {
                    Ok(()) => {
                        findings.verified_certificates.insert(key);
                        view.certified.insert(height);
                    }
                    Err(e) => findings.safety.push(format!(
                        "node {node} {chain}: certificate of block {height} does not verify: {e}"
                    )),
                }
            }
        }
        view.blocks.push(block);
        view.receipts.push(receipts);
    }
    Some(view)
}

/// What makes a verified certificate the same one: the header it certifies and its
/// exact bytes.
fn certificate_key(block: &Block, cert: &BlockCertificate) -> Digest {
    let mut h = blake3::Hasher::new_derive_key("dualchain 2026-12 sim verified certificate v1");
    h.update(block.header.digest().as_bytes());
    h.update(&cert.to_canonical_bytes());
    Digest(*h.finalize().as_bytes())
}

/// Cross-node checks of one chain; `margin` heights at the tip need no certificate
/// (their votes may still be in flight when the run stops).
pub fn check_chain(chain: ChainId, views: &[ChainView], margin: u64, findings: &mut Findings) {
    let mut by_height: BTreeMap<u64, (Digest, ValidatorIndex)> = BTreeMap::new();
    for view in views {
        for block in &view.blocks {
            let height = block.header.height;
            let digest = block.header.digest();
            match by_height.get(&height) {
                Some((other, who)) if *other != digest => findings.safety.push(format!(
                    "{chain} height {height}: nodes {who} and {} hold different blocks",
                    view.node
                )),
                Some(_) => {}
                None => {
                    by_height.insert(height, (digest, view.node));
                }
            }
        }
    }
    // Chains of validators that left stop at their boundary: the lowest head is the
    // lowest of those that run on (their blocks still count for agreement above).
    let running = views.iter().filter(|v| !v.stopped);
    let min_head = running.map(|v| v.blocks.len() as u64).min().unwrap_or(0);
    findings.min_heights[slot(chain)] = min_head;
    for height in 1..=min_head.saturating_sub(margin) {
        if !views.iter().any(|v| v.certified.contains(&height)) {
            findings.certificates.push(format!(
                "{chain} height {height}: no honest validator holds a quorum certificate"
            ));
        }
    }
}

/// The positions of failed transactions the observer's API gave clients (on
/// `GetBlock` and `StreamFinality`, read back from the store) are those of the failed
/// receipts in its store, for each of the `observed` first blocks; the failures seen.
pub fn check_failed_positions(
    reported: &BTreeMap<u64, Arc<[u32]>>,
    observed: u64,
    view: &ChainView,
    safety: &mut Vec<String>,
) -> u64 {
    let mut failures = 0;
    for (block, receipts) in view.blocks.iter().zip(&view.receipts) {
        let height = block.header.height;
        if height == 0 || height > observed {
            continue;
        }
        let stored = Receipt::failed_positions(receipts);
        let said = reported.get(&height).map_or(&[][..], |p| &p[..]);
        if said != stored.as_slice() {
            safety.push(format!(
                "node {} {}: block {height}'s API said transactions {said:?} failed, \
                 its stored receipts say {stored:?}",
                view.node, block.header.chain
            ));
        }
        failures += stored.len() as u64;
    }
    failures
}

/// Every accepted transaction has exactly one successful receipt in the chain
/// (duplicates included by two proposers fail their nonce check and change nothing).
/// Transactions of the validators' `relayers` (attestations) are not the clients' and
/// are left out.
pub fn check_exactly_once(
    accepted: &BTreeSet<Digest>,
    longest: &ChainView,
    relayers: &BTreeSet<Address>,
    findings: &mut Findings,
) {
    let mut successes: BTreeMap<Digest, u32> = BTreeMap::new();
    for (block, receipts) in longest.blocks.iter().zip(&longest.receipts) {
        for (tx, r) in block.body.transactions.iter().zip(receipts) {
            if r.status == ReceiptStatus::Success && !relayers.contains(&tx.tx().sender) {
                *successes.entry(r.tx_digest).or_default() += 1;
            }
        }
    }
    let mut missing = 0;
    for digest in accepted {
        match successes.get(digest).copied().unwrap_or(0) {
            1 => {}
            0 => missing += 1,
            n => findings
                .exactly_once
                .push(format!("transaction {digest} executed {n} times")),
        }
    }
    if missing > 0 {
        findings.exactly_once.push(format!(
            "{missing} of {} accepted transactions never executed",
            accepted.len()
        ));
    }
    let unknown = successes.keys().filter(|d| !accepted.contains(d)).count();
    if unknown > 0 {
        findings.exactly_once.push(format!(
            "{unknown} transactions executed that no client had submitted"
        ));
    }
}

/// How one validator's two chains agree on sAX: its Alpha locks against its Delta
/// stakes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordsAgreement {
    /// Alpha locks (held or released).
    pub locks: u64,
    /// Delta stakes created from attested locks.
    pub stakes: u64,
    /// Held locks with no stake on Delta yet (attestation still on its way).
    pub unattested: u64,
}

fn records<E: KvEngine, T>(
    store: &E,
    kind: RecordKind,
    decode: impl Fn(&[u8]) -> Option<T>,
) -> Result<BTreeMap<Vec<u8>, Option<T>>, String> {
    let prefix = [RECORD_PREFIX, kind as u8];
    let iter = store
        .scan_prefix(Column::State, &prefix)
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for item in iter {
        let (key, value) = item.map_err(|e| e.to_string())?;
        out.insert(key[2..].to_vec(), decode(&value));
    }
    Ok(out)
}

/// Compares `node`'s Alpha locks with its Delta stakes: a stake must match the lock
/// it attests (owner, amount, time lock, and a released stake the release time of a
/// released lock; an active stake of a released lock is money on both chains) and a
/// stake without a lock, or a record that does not decode, is a safety violation. Held locks without a stake are counted.
pub fn check_records<E: KvEngine>(
    node: ValidatorIndex,
    alpha: &E,
    delta: &E,
    safety: &mut Vec<String>,
) -> RecordsAgreement {
    let (locks, stakes) = match (
        records(alpha, RecordKind::Lock, |v| {
            LockRecord::from_canonical_bytes(v).ok()
        }),
        records(delta, RecordKind::Stake, |v| {
            StakeRecord::from_canonical_bytes(v).ok()
        }),
    ) {
        (Ok(locks), Ok(stakes)) => (locks, stakes),
        (Err(e), _) | (_, Err(e)) => {
            safety.push(format!("node {node}: records unreadable: {e}"));
            return RecordsAgreement::default();
        }
    };
    let mut agreement = RecordsAgreement {
        locks: locks.len() as u64,
        stakes: stakes.len() as u64,
        unattested: 0,
    };
    for (id, stake) in &stakes {
        let lock = locks.get(id);
        let agrees = match (stake, lock) {
            (Some(stake), Some(Some(lock))) => {
                stake.owner == lock.owner
                    && stake.amount == lock.amount
                    && stake.unlock_at_ms == lock.unlock_at_ms
            }
            _ => false,
        };
        let status_agrees = match (stake, lock) {
            (Some(stake), Some(Some(lock))) => match (stake.status, lock.status) {
                (StakeStatus::Released { at_ms }, LockStatus::Released { at_ms: released }) => {
                    at_ms == released
                }
                (StakeStatus::Released { .. }, LockStatus::Locked) => false,
                (StakeStatus::Active, LockStatus::Released { .. }) => false,
                _ => true,
            },
            _ => true,
        };
        if !agrees || !status_agrees {
            safety.push(format!(
                "node {node}: Delta stake {} does not match an Alpha lock ({stake:?} against {lock:?})",
                Digest(id.as_slice().try_into().unwrap_or([0; 32]))
            ));
        }
    }
    for (id, lock) in &locks {
        match lock {
            None => safety.push(format!("node {node}: an Alpha lock record does not decode")),
            Some(lock) if lock.status == LockStatus::Locked && !stakes.contains_key(id) => {
                agreement.unattested += 1;
            }
            Some(_) => {}
        }
    }
    agreement
}

/// The epochs one honest validator's chains entered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochsAgreement {
    /// The epoch Alpha entered at its last boundary block.
    pub alpha: u64,
    /// The epoch Delta entered from Alpha's attested set.
    pub delta: u64,
}

/// One chain's validator sets by epoch (their record bytes) and its epoch record.
type EpochState = (BTreeMap<u64, Vec<u8>>, EpochRecord);

fn epoch_state<E: KvEngine>(store: &E) -> Result<EpochState, String> {
    let mut sets = BTreeMap::new();
    for (id, bytes) in records(store, RecordKind::ValidatorSet, |v| Some(v.to_vec()))? {
        let epoch = u64::from_be_bytes(id[..8].try_into().map_err(|_| "short record id")?);
        sets.insert(epoch, bytes.unwrap_or_default());
    }
    let key = RecordKey::singleton(RecordKind::Epoch).state_key();
    let bytes = store
        .get(Column::State, &key)
        .map_err(|e| e.to_string())?
        .ok_or("no epoch record")?;
    let record = EpochRecord::from_canonical_bytes(&bytes).map_err(|e| e.to_string())?;
    Ok((sets, record))
}

/// Compares `node`'s epochs on both chains. Alpha holds the set of every epoch from 0
/// to its current one, and its epoch record is the chain of exactly those sets; Delta
/// is not ahead of Alpha, holds byte-identical sets for its epochs, and the very epoch
/// record Alpha wrote for its epoch. Anything else is a safety violation.
pub fn check_epochs<E: KvEngine>(
    node: ValidatorIndex,
    (alpha, delta): (&E, &E),
    schedule: EpochSchedule,
    safety: &mut Vec<String>,
) -> EpochsAgreement {
    let ((alpha_sets, alpha_record), (delta_sets, delta_record)) =
        match (epoch_state(alpha), epoch_state(delta)) {
            (Ok(a), Ok(d)) => (a, d),
            (Err(e), _) | (_, Err(e)) => {
                safety.push(format!("node {node}: epoch records unreadable: {e}"));
                return EpochsAgreement::default();
            }
        };
    let agreement = EpochsAgreement {
        alpha: alpha_record.epoch,
        delta: delta_record.epoch,
    };
    let mut chain = Vec::new();
    for epoch in 0..=alpha_record.epoch {
        let set = alpha_sets
            .get(&epoch)
            .and_then(|bytes| ValidatorSet::from_canonical_bytes(bytes).ok());
        let Some(set) = set.filter(|s| s.epoch() == epoch) else {
            safety.push(format!(
                "node {node}: Alpha has no valid set of epoch {epoch}"
            ));
            return agreement;
        };
        let record = match chain.last() {
            None => EpochRecord::genesis(&set),
            Some(previous) => {
                let start = schedule.first_height_of(epoch).unwrap_or(u64::MAX);
                EpochRecord::successor(previous, &set, start)
            }
        };
        chain.push(record);
    }
    if alpha_sets.len() != chain.len() || chain.last() != Some(&alpha_record) {
        safety.push(format!(
            "node {node}: Alpha's epoch record {alpha_record:?} is not the chain of its {} sets",
            alpha_sets.len()
        ));
    }
    let delta_agrees = delta_record.epoch <= alpha_record.epoch
        && chain.get(delta_record.epoch as usize) == Some(&delta_record)
        && delta_sets
            .iter()
            .all(|(epoch, bytes)| alpha_sets.get(epoch) == Some(bytes));
    if !delta_agrees {
        safety.push(format!(
            "node {node}: Delta's epoch {} (record {delta_record:?}) is not Alpha's",
            delta_record.epoch
        ));
    }
    agreement
}

/// A run's trace: every honest validator's chains (block digests and certified
/// heights) and named outcome counters. Two runs of a seed must give equal traces; when
/// they do not, [`Trace::first_difference`] says where they part (a digest alone could
/// only say that they do).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trace {
    /// `(chain slot, validator, block digests, certified heights)`.
    chains: Vec<(usize, ValidatorIndex, Vec<Digest>, Vec<u64>)>,
    /// Outcome counters, by name.
    counters: Vec<(String, u64)>,
}

impl Trace {
    pub fn new(chains: &[&[ChainView]; 2]) -> Self {
        let chains = chains
            .iter()
            .enumerate()
            .flat_map(|(slot, views)| {
                views.iter().map(move |view| {
                    let digests = view.blocks.iter().map(|b| b.header.digest()).collect();
                    let certified = view.certified.iter().copied().collect();
                    (slot, view.node, digests, certified)
                })
            })
            .collect();
        Self {
            chains,
            counters: Vec::new(),
        }
    }

    pub fn count(&mut self, name: impl Into<String>, value: u64) {
        self.counters.push((name.into(), value));
    }

    /// Where `other` first differs from this trace, in words; `None` when equal.
    pub fn first_difference(&self, other: &Trace) -> Option<String> {
        const CHAINS: [&str; 2] = ["alpha", "delta"];
        for (a, b) in self.chains.iter().zip(&other.chains) {
            let name = format!("{} of validator {}", CHAINS[a.0.min(1)], a.1);
            if let Some(h) = a.2.iter().zip(&b.2).position(|(x, y)| x != y) {
                return Some(format!("{name}: block {} differs", h + 1));
            }
            if a.2.len() != b.2.len() {
                return Some(format!("{name}: {} blocks, then {}", a.2.len(), b.2.len()));
            }
            if a.3 != b.3 {
                return Some(format!("{name}: certified heights differ"));
            }
        }
        if self.chains.len() != other.chains.len() {
            return Some("a different number of honest chains".into());
        }
        for ((name, x), (_, y)) in self.counters.iter().zip(&other.counters) {
            if x != y {
                return Some(format!("{name}: {x}, then {y}"));
            }
        }
        (self.counters != other.counters).then(|| "different counters".into())
    }
}

#[cfg(test)]
mod trace_tests {
    use super::Trace;

    #[test]
    fn equal_traces_have_no_difference_and_a_changed_counter_is_named() {
        let mut a = Trace::new(&[&[], &[]]);
        a.count("delta committed", 10);
        a.count("flow stage 3 reached at ms", 5_000);
        let mut b = a.clone();
        assert_eq!(a.first_difference(&b), None);
        b.counters[1].1 = 5_200;
        assert_eq!(
            a.first_difference(&b).as_deref(),
            Some("flow stage 3 reached at ms: 5000, then 5200")
        );
    }
}

#[cfg(test)]
mod tests {
    use dualchain_core::crypto::ValidatorKeypair;
    use dualchain_core::types::validator_set_key;
    use dualchain_storage::{MemoryEngine, WriteBatch};

    use super::*;

    const SCHEDULE: u64 = 4;

    fn set(epoch: u64, members: u8) -> ValidatorSet {
        let keys =
            (0..members).map(|i| (ValidatorKeypair::simulated(&[i; 32]).public().clone(), 1));
        ValidatorSet::new(epoch, keys).unwrap()
    }

    /// A chain's store holding `sets` and the epoch record `record`.
    fn store(sets: &[ValidatorSet], record: &EpochRecord) -> MemoryEngine {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for s in sets {
            batch.put(
                Column::State,
                validator_set_key(s.epoch()).state_key().to_vec(),
                s.to_canonical_bytes(),
            );
        }
        batch.put(
            Column::State,
            RecordKey::singleton(RecordKind::Epoch).state_key().to_vec(),
            record.to_canonical_bytes(),
        );
        engine.write(batch).unwrap();
        engine
    }

    fn chain(sets: &[ValidatorSet]) -> Vec<EpochRecord> {
        let schedule = EpochSchedule::new(SCHEDULE);
        let mut records = vec![EpochRecord::genesis(&sets[0])];
        for s in &sets[1..] {
            let start = schedule.first_height_of(s.epoch()).unwrap();
            records.push(records.last().unwrap().successor(s, start));
        }
        records
    }

    fn check(alpha: &MemoryEngine, delta: &MemoryEngine) -> (EpochsAgreement, Vec<String>) {
        let mut safety = Vec::new();
        let agreement = check_epochs(0, (alpha, delta), EpochSchedule::new(SCHEDULE), &mut safety);
        (agreement, safety)
    }

    #[test]
    fn chains_that_hold_one_epoch_chain_agree_and_any_divergence_is_found() {
        let sets = [set(0, 4), set(1, 5), set(2, 3)];
        let records = chain(&sets);
        let alpha = store(&sets, &records[2]);

        // Delta one epoch behind, with Alpha's sets: agreement.
        let delta = store(&sets[..2], &records[1]);
        let (agreement, safety) = check(&alpha, &delta);
        assert_eq!(safety, Vec::<String>::new());
        assert_eq!(agreement, EpochsAgreement { alpha: 2, delta: 1 });

        // Delta holding another set for epoch 1.
        let other = [set(0, 4), set(1, 6)];
        let delta = store(&other, &chain(&other)[1]);
        assert_eq!(check(&alpha, &delta).1.len(), 1);

        // Delta ahead of Alpha.
        let short = store(&sets[..2], &records[1]);
        let ahead = store(&sets, &records[2]);
        assert_eq!(check(&short, &ahead).1.len(), 1);

        // Alpha's record not the chain of its sets (a boundary at another height).
        let mut moved = records[2];
        moved.alpha_start_height += 1;
        let alpha = store(&sets, &moved);
        let delta = store(&sets[..1], &records[0]);
        assert_eq!(check(&alpha, &delta).1.len(), 1);

        // Alpha missing the set of an epoch it entered.
        let alpha = store(&[sets[0].clone(), sets[2].clone()], &records[2]);
        assert_eq!(check(&alpha, &delta).1.len(), 1);
    }
}
