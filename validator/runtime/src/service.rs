//! [`ChainApi`] for a running chain, in domain types: what the gRPC server (and the
//! simulator's clients) call. Admission here is the same path for both.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use dualchain_api::{
    Admission, AdmissionStatus, ApiError, BlockRecords, ChainApi, DoorShut, FaultChange, FaultPlan,
    FinalizedBlock, NodeStatus, OrderedCommit, RecordAtHead, SnapshotInfo,
};
use dualchain_core::Digest;
use dualchain_core::chain_store::ChainReader;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Attestation, ChainId, CrossChainFailure, CrossChainOp, Receipt, SignedTransaction, TxPayload,
};
use dualchain_execution::admission::{SenderRefusal, Stage, check_sender};
use dualchain_execution::crosschain::{check_attest_admission, check_leave_admission};
use dualchain_mempool::{AdmissionTime, Rejection};
use dualchain_merkle::{hash_key, hash_value};
use dualchain_net::PeerId;
use tokio::sync::broadcast;

use crate::admission_gate::Candidate;
use crate::clock::Clock;
use crate::committed::CommittedState;
use crate::context::ChainContext;
use crate::executor::ExecCommand;
use crate::seams::Seams;

/// How long `TriggerSnapshot` waits for the executor.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);
/// Attempts to read a record and its proof from one state (a block committing
/// between the two reads makes them disagree), and the pause between attempts.
const RECORD_READ_ATTEMPTS: usize = 32;
const RECORD_READ_PAUSE: Duration = Duration::from_millis(2);

/// Every chain of the node, for the node-wide status each chain's API reports.
pub struct NodeChains<S: Seams> {
    pub chains: Vec<Arc<ChainContext<S>>>,
}

impl<S: Seams> NodeChains<S> {
    /// One [`ChainApi`] per chain, in the order of `chains`.
    pub fn apis(self: &Arc<Self>) -> Vec<Arc<dyn ChainApi>> {
        self.chains
            .iter()
            .map(|ctx| {
                Arc::new(ChainService {
                    ctx: ctx.clone(),
                    node: self.clone(),
                }) as Arc<dyn ChainApi>
            })
            .collect()
    }
}

/// The API of one chain of a validator.
pub struct ChainService<S: Seams> {
    pub ctx: Arc<ChainContext<S>>,
    pub node: Arc<NodeChains<S>>,
}

/// Alpha holds records and sAX: it takes only cross-chain operations. Delta takes
/// every kind (an operation meant for Alpha fails there with a typed receipt, like any
/// transaction of the wrong kind for its chain).
fn accepts_kind(chain: ChainId, payload: &TxPayload) -> bool {
    chain == ChainId::Delta || matches!(payload, TxPayload::CrossChain(_))
}

/// The executor's refusal of validator join requests, given at the door: the same
/// switch (`CrossChainSetup::accept_joins`, the consensus rule) decides, so the API
/// never admits what every block would refuse.
fn join_refused(accepted: bool, payload: &TxPayload) -> Option<CrossChainFailure> {
    let join = matches!(
        payload,
        TxPayload::CrossChain(CrossChainOp::ValidatorJoin { .. })
    );
    (join && !accepted).then_some(CrossChainFailure::JoinsNotAccepted)
}

/// Attestations pass the admission gate whatever the load (see
/// [`crate::admission_gate::Candidate::priority`]).
fn is_attestation(tx: &SignedTransaction) -> bool {
    matches!(
        tx.tx().payload,
        TxPayload::CrossChain(CrossChainOp::Attest(_))
    )
}

fn rejection_status(rejection: &Rejection) -> AdmissionStatus {
    match rejection {
        Rejection::WrongChain { .. } => AdmissionStatus::WrongChain,
        Rejection::Oversize { .. } => AdmissionStatus::TooLarge,
        Rejection::InvalidSignature => AdmissionStatus::InvalidSignature,
        Rejection::UnsignedNotAllowed => AdmissionStatus::UnsignedNotAllowed,
        Rejection::DuplicatePending { .. } | Rejection::DuplicateIncluded { .. } => {
            AdmissionStatus::Duplicate
        }
        Rejection::NonceConflict { .. } => AdmissionStatus::RejectedOther,
        Rejection::SenderCapReached { .. } => AdmissionStatus::RateLimited,
        Rejection::Full { .. } => AdmissionStatus::MempoolFull,
    }
}

/// The API status of a refusal against the committed state.
fn sender_refusal_status(refusal: &SenderRefusal) -> AdmissionStatus {
    match refusal {
        SenderRefusal::NonceTooOld { .. } => AdmissionStatus::NonceTooOld,
        SenderRefusal::NonceTooNew { .. } => AdmissionStatus::NonceTooNew,
        SenderRefusal::UnknownSender
        | SenderRefusal::CannotPayFee { .. }
        | SenderRefusal::InsufficientBalance { .. } => AdmissionStatus::InsufficientBalance,
    }
}

fn restarting(chain: ChainId) -> ApiError {
    ApiError::Unavailable(format!(
        "the {chain} chain is restarting; try again shortly"
    ))
}

fn store_error(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("reading {what}: {e}"))
}

impl<S: Seams> ChainService<S> {
    /// Why an `Attest` or a `ValidatorLeave` could only fail here, if it could (see
    /// `check_attest_admission`, `check_leave_admission`): such transactions may come
    /// from unfunded accounts with no fee, so the mempool takes only those that may
    /// apply. `None` for every other kind.
    fn unfunded_refusal(&self, tx: &SignedTransaction) -> Option<String> {
        let TxPayload::CrossChain(op) = &tx.tx().payload else {
            return None;
        };
        let what = match op {
            CrossChainOp::Attest(_) => "attestation",
            CrossChainOp::ValidatorLeave { .. } => "leave request",
            _ => return None,
        };
        let Some(setup) = self.ctx.executor.cross_chain() else {
            return Some("cross-chain operations are disabled on this node".into());
        };
        let Some(reader) = self.ctx.live().reader.clone() else {
            return Some(format!(
                "the {} chain is restarting; send the {what} again shortly",
                self.ctx.chain
            ));
        };
        let records = CommittedState(reader);
        let verdict = match op {
            CrossChainOp::Attest(attestation) => {
                check_attest_admission(setup, self.ctx.chain, attestation, &records)
            }
            CrossChainOp::ValidatorLeave { key, proof } if self.ctx.chain == ChainId::Alpha => {
                check_leave_admission(setup, tx.tx().sender, key, proof, &records)
            }
            // On Delta the kind check refuses it.
            _ => return None,
        };
        match verdict {
            Ok(Ok(())) => None,
            Ok(Err(failure)) => Some(format!("the {what} could only fail: {failure}")),
            Err(e) => Some(format!("reading the records to check the {what}: {e}")),
        }
    }

    /// Why `tx` could only fail against this chain's committed state, if it could:
    /// the attestation or leave check for those kinds, then the sender check for every kind (see
    /// `dualchain_execution::admission`). A transaction the mempool already holds or
    /// recently saw is left to it, so a client's retry of its own transaction is
    /// answered `Duplicate`, not `NonceTooOld`.
    fn state_refusal(&self, tx: &SignedTransaction) -> Option<(AdmissionStatus, String)> {
        if let Some(reason) = self.unfunded_refusal(tx) {
            return Some((AdmissionStatus::RejectedOther, reason));
        }
        let digest = tx.digest();
        if self.ctx.mempool.is_pending(&digest) || self.ctx.mempool.is_recent(&digest) {
            return None;
        }
        // While the chain restarts there is no reader: admit, and let the proposer's
        // check (the same one) keep out what cannot pay.
        let reader = self.ctx.live().reader.clone()?;
        let stage = Stage::Admission {
            nonce_window: self.ctx.mempool.config().max_nonce_ahead,
        };
        match check_sender(tx.tx(), &CommittedState(reader), stage) {
            Ok(Ok(())) => None,
            Ok(Err(refusal)) => Some((sender_refusal_status(&refusal), refusal.to_string())),
            Err(e) => Some((
                AdmissionStatus::InternalError,
                format!("reading the sender's account: {e}"),
            )),
        }
    }

    /// Keeps of `txs` (at `positions` of the batch) what the admission gate lets
    /// through to signature verification; the rest get `Overloaded` with the gate's
    /// retry hint in `results`.
    fn pass_gate(
        &self,
        positions: Vec<usize>,
        txs: Vec<SignedTransaction>,
        results: &mut [Option<Admission>],
        now_ms: u64,
    ) -> (Vec<usize>, Vec<SignedTransaction>) {
        let ctx = &self.ctx;
        let candidates: Vec<Candidate> = txs
            .iter()
            .map(|tx| Candidate {
                sender: tx.tx().sender,
                signed: !tx.is_unsigned(),
                priority: is_attestation(tx),
            })
            .collect();
        let verdict = ctx.gate.admit_batch(&candidates, ctx.mempool.len(), now_ms);
        let Some(refusal) = verdict.refusal else {
            return (positions, txs);
        };
        let mut kept = (Vec::with_capacity(txs.len()), Vec::with_capacity(txs.len()));
        let mut refused = 0u64;
        for ((i, tx), admitted) in positions.into_iter().zip(txs).zip(verdict.admitted) {
            if admitted {
                kept.0.push(i);
                kept.1.push(tx);
            } else {
                refused += 1;
                results[i] = Some(Admission::deferred(
                    Some(tx.digest()),
                    AdmissionStatus::Overloaded,
                    refusal.reason.clone(),
                    refusal.retry_after_ms,
                ));
            }
        }
        ctx.metrics
            .admission_refused
            .with_label_values(&[refusal.cause.label()])
            .inc_by(refused);
        kept
    }

    /// The answer to a mempool refusal; the transient ones carry the gate's hint.
    fn mempool_refusal(&self, digest: Digest, rejection: &Rejection, now_ms: u64) -> Admission {
        let status = rejection_status(rejection);
        let transient = matches!(
            status,
            AdmissionStatus::MempoolFull | AdmissionStatus::RateLimited
        );
        if !transient {
            return Admission::refused(Some(digest), status, rejection.to_string());
        }
        let hint = self.ctx.gate.retry_hint(self.ctx.mempool.len(), now_ms);
        Admission::deferred(Some(digest), status, rejection.to_string(), hint)
    }

    /// The store reader, or Unavailable while the chain restarts.
    fn reader(&self) -> Result<ChainReader<S::Engine>, ApiError> {
        self.ctx
            .live()
            .reader
            .clone()
            .ok_or_else(|| restarting(self.ctx.chain))
    }

    /// The record `key` and its proof, read from one state: the value, then the proof
    /// with the head it is against; a block committed in between (or a tree already
    /// ahead of the head while a block commits) fails the proof check, and the read is
    /// repeated.
    fn read_record(&self, key: &[u8]) -> Result<RecordAtHead, ApiError> {
        let reader = self.reader()?;
        let hashed = hash_key(key);
        for _ in 0..RECORD_READ_ATTEMPTS {
            let value = reader
                .get_state(key)
                .map_err(|e| store_error("a record", e))?;
            let (head, proof) = reader.prove(key);
            let (height, root) =
                head.map_or((0, reader.state_root().0), |h| (h.height, h.state_root));
            let value_hash = value.as_deref().map(hash_value);
            if proof.verify(&root, &hashed, value_hash.as_ref()).is_ok() {
                return Ok(RecordAtHead {
                    height,
                    state_root: Digest(root),
                    key: key.to_vec(),
                    value,
                    proof,
                });
            }
            std::thread::sleep(RECORD_READ_PAUSE);
        }
        Err(ApiError::Unavailable(
            "blocks committed during every read of this record; try again".into(),
        ))
    }

    fn read_block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError> {
        let reader = self.reader()?;
        let Some(block) = reader
            .get_block(height)
            .map_err(|e| ApiError::Internal(format!("reading block {height}: {e}")))?
        else {
            return Ok(None);
        };
        let certificate = reader
            .get_certificate(height)
            .map_err(|e| ApiError::Internal(format!("reading certificate {height}: {e}")))?;
        let events = reader
            .events(height)
            .map_err(|e| ApiError::Internal(format!("reading events {height}: {e}")))?;
        let receipts = reader
            .get_receipts(height)
            .map_err(|e| ApiError::Internal(format!("reading receipts {height}: {e}")))?;
        // A block is stored with its receipts in one batch: a count that differs is
        // a damaged store, not a block whose transactions all succeeded.
        if receipts.len() != block.body.transactions.len() {
            return Err(ApiError::Internal(format!(
                "block {height} has {} transactions but {} receipts stored",
                block.body.transactions.len(),
                receipts.len()
            )));
        }
        let head = self.ctx.head().height;
        Ok(Some(FinalizedBlock {
            block: Arc::new(block),
            certificate,
            finalized_at_unix_ms: 0,
            confirmation_depth: (head.saturating_sub(height) + 1).min(u32::MAX as u64) as u32,
            events: Arc::new(events),
            failed_txs: Receipt::failed_positions(&receipts).into(),
        }))
    }

    /// Applies `plan` to the transport's fault injector.
    fn apply_faults(&self, plan: &FaultPlan) -> Result<(), ApiError> {
        let Some(injector) = self.ctx.live().faults.clone() else {
            return Err(restarting(self.ctx.chain));
        };
        let groups: Vec<Vec<PeerId>> = plan
            .partitions
            .iter()
            .map(|group| group.iter().map(|id| PeerId::from_bytes(*id)).collect())
            .collect();
        injector
            .set_drop_probability(plan.drop_probability)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        injector.set_delay(Duration::from_millis(u64::from(plan.added_delay_ms)));
        injector.set_jitter(Duration::from_millis(u64::from(plan.jitter_ms)));
        injector
            .set_bandwidth(Some(plan.bandwidth_bytes_per_sec).filter(|rate| *rate > 0))
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        if groups.is_empty() {
            injector.heal();
        } else {
            injector
                .partition(groups)
                .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        }
        Ok(())
    }

    /// Clears the faults after `after` unless they changed meanwhile.
    fn expire_faults(&self, generation: u64, after: Duration) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let ctx = self.ctx.clone();
        handle.spawn(async move {
            tokio::time::sleep(after).await;
            if ctx.faults_generation.load(Ordering::Acquire) == generation {
                if let Some(injector) = ctx.live().faults.clone() {
                    injector.clear();
                }
                ctx.set_faults(FaultPlan::default());
                tracing::info!(chain = %ctx.chain, "fault injection expired");
            }
        });
    }
}

impl<S: Seams> ChainApi for ChainService<S> {
    fn chain(&self) -> ChainId {
        self.ctx.chain
    }

    fn node_status(&self) -> NodeStatus {
        let ctx = &self.ctx;
        // As documented: the newest epoch of the chains this node serves, and our
        // index in its set (none once the set left us out).
        let newest = self
            .node
            .chains
            .iter()
            .map(|c| c.committee())
            .max_by_key(|set| set.epoch())
            .unwrap_or_else(|| ctx.committee());
        NodeStatus {
            node_version: env!("CARGO_PKG_VERSION").to_string(),
            validator_key_digest: ctx.key().public().id(),
            validator_index: newest.index_of(ctx.key().public()).map(u32::from),
            epoch: newest.epoch(),
            chains: self.node.chains.iter().map(|c| c.chain_status()).collect(),
            peer_id: hex::encode(ctx.peer_id.0.as_bytes()),
            started_at_unix_ms: ctx.started_at_unix_ms,
            network_id: ctx.identity.network(),
        }
    }

    fn submit(&self, transactions: &[Bytes]) -> Vec<Admission> {
        let ctx = &self.ctx;
        let outside = match (ctx.left_set(), ctx.joining()) {
            (Some(epoch), _) => Some(crate::context::left_set_reason(ctx.chain, epoch)),
            (None, Some(epoch)) => Some(crate::context::joining_reason(ctx.chain, epoch)),
            (None, None) => None,
        };
        if let Some(reason) = outside {
            return transactions
                .iter()
                .map(|_| Admission::refused(None, AdmissionStatus::RejectedOther, reason.clone()))
                .collect();
        }
        let accepts_joins = ctx
            .executor
            .cross_chain()
            .is_some_and(|setup| setup.accept_joins);
        let mut results: Vec<Option<Admission>> = vec![None; transactions.len()];
        let now_ms = ctx.clock.monotonic_ms();
        let shut = ctx.gate.shut(ctx.mempool.len(), now_ms);
        let mut shut_out = 0u64;
        // Positions and transactions side by side, so the batch verifies in place
        // and each transaction then moves into the mempool without a copy.
        let mut positions = Vec::with_capacity(transactions.len());
        let mut txs = Vec::with_capacity(transactions.len());
        for (i, bytes) in transactions.iter().enumerate() {
            match SignedTransaction::from_canonical_bytes(bytes) {
                Ok(tx) if !accepts_kind(ctx.chain, &tx.tx().payload) => {
                    results[i] = Some(Admission::refused(
                        Some(tx.digest()),
                        AdmissionStatus::RejectedOther,
                        "the Alpha chain accepts only cross-chain operations (kinds 16-23: sAX lock, attestations, governance results, validator set changes); submit transfers to Delta".into(),
                    ));
                }
                Ok(tx) if join_refused(accepts_joins, &tx.tx().payload).is_some() => {
                    results[i] = Some(Admission::refused(
                        Some(tx.digest()),
                        AdmissionStatus::RejectedOther,
                        CrossChainFailure::JoinsNotAccepted.to_string(),
                    ));
                }
                Ok(tx) if shut.is_some() && !is_attestation(&tx) => {
                    let refusal = shut.as_ref().expect("guarded by the arm");
                    results[i] = Some(Admission::deferred(
                        Some(tx.digest()),
                        AdmissionStatus::Overloaded,
                        refusal.reason.clone(),
                        refusal.retry_after_ms,
                    ));
                    shut_out += 1;
                }
                Ok(tx) => match self.state_refusal(&tx) {
                    Some((status, reason)) => {
                        results[i] = Some(Admission::refused(Some(tx.digest()), status, reason));
                    }
                    None => {
                        positions.push(i);
                        txs.push(tx);
                    }
                },
                Err(e) => {
                    let status = if SignedTransaction::is_oversize(&e) {
                        AdmissionStatus::TooLarge
                    } else {
                        AdmissionStatus::InvalidEncoding
                    };
                    results[i] = Some(Admission::refused(None, status, e.to_string()));
                }
            }
        }
        if let Some(refusal) = &shut {
            ctx.metrics
                .admission_refused
                .with_label_values(&[refusal.cause.label()])
                .inc_by(shut_out);
        }
        let (positions, txs) = self.pass_gate(positions, txs, &mut results, now_ms);
        let verdicts = ctx.verifier.verify_batch(&txs);
        let now = AdmissionTime::from_micros(now_ms.saturating_mul(1000));
        for ((i, tx), verdict) in positions.into_iter().zip(txs).zip(verdicts) {
            let digest = tx.digest();
            results[i] = Some(match ctx.mempool.admit(tx, verdict, now) {
                Ok(_) => Admission::accepted(digest),
                Err(rejection) => self.mempool_refusal(digest, &rejection, now_ms),
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Admission::refused(None, AdmissionStatus::InternalError, "no result".into())
                })
            })
            .collect()
    }

    fn door_shut(&self) -> Option<DoorShut> {
        let ctx = &self.ctx;
        let refusal = ctx.gate.shut(ctx.mempool.len(), ctx.clock.monotonic_ms())?;
        ctx.metrics
            .admission_calls_refused
            .with_label_values(&[refusal.cause.label()])
            .inc();
        Some(DoorShut {
            retry_after_ms: refusal.retry_after_ms,
            reason: refusal.reason,
        })
    }

    fn mempool_depth(&self) -> u64 {
        self.ctx.mempool.len() as u64
    }

    fn block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError> {
        self.read_block(height)
    }

    fn finalized_height(&self) -> u64 {
        self.ctx.head().height
    }

    fn subscribe_finality(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.ctx.finality.subscribe()
    }

    fn subscribe_ordering(&self) -> broadcast::Receiver<Arc<OrderedCommit>> {
        self.ctx.ordering.subscribe()
    }

    fn ready(&self) -> bool {
        self.ctx.is_ready()
    }

    fn pause(&self, reason: &str) -> Result<(bool, u64), ApiError> {
        let was = self.ctx.paused.swap(true, Ordering::AcqRel);
        if !was {
            tracing::warn!(chain = %self.ctx.chain, reason, "chain paused by an admin call");
        }
        Ok((was, self.ctx.head().height))
    }

    fn resume(&self) -> Result<(bool, u64), ApiError> {
        let was_paused = self.ctx.paused.swap(false, Ordering::AcqRel);
        if was_paused {
            tracing::info!(chain = %self.ctx.chain, "chain resumed by an admin call");
        }
        Ok((!was_paused, self.ctx.head().height))
    }

    fn snapshot(&self) -> Result<SnapshotInfo, ApiError> {
        if self.ctx.snapshot_dir.is_none() {
            return Err(ApiError::FailedPrecondition(format!(
                "the {} chain has no snapshot directory configured",
                self.ctx.chain
            )));
        }
        let Some(exec) = self.ctx.live().exec.clone() else {
            return Err(restarting(self.ctx.chain));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        exec.blocking_send(ExecCommand::Snapshot(tx))
            .map_err(|_| ApiError::Unavailable("the block executor is stopping".into()))?;
        match rx.recv_timeout(SNAPSHOT_TIMEOUT) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => Err(ApiError::Internal(e)),
            Err(_) => Err(ApiError::Unavailable(
                "the snapshot did not finish in time (the executor is busy or stopping)".into(),
            )),
        }
    }

    fn set_faults(&self, change: FaultChange) -> Result<FaultPlan, ApiError> {
        let generation = self.ctx.faults_generation.fetch_add(1, Ordering::AcqRel) + 1;
        let plan = match change {
            FaultChange::Clear => {
                let Some(injector) = self.ctx.live().faults.clone() else {
                    return Err(restarting(self.ctx.chain));
                };
                injector.clear();
                self.ctx.set_faults(FaultPlan::default());
                tracing::info!(chain = %self.ctx.chain, "fault injection cleared");
                return Ok(FaultPlan::default());
            }
            FaultChange::Set(plan) => plan,
        };
        self.apply_faults(&plan)?;
        self.ctx.set_faults(plan.clone());
        tracing::warn!(
            chain = %self.ctx.chain,
            drop = plan.drop_probability,
            delay_ms = plan.added_delay_ms,
            groups = plan.partitions.len(),
            bandwidth = plan.bandwidth_bytes_per_sec,
            clock_skew_ms = plan.clock_skew_ms,
            expires_after_ms = plan.expires_after_ms,
            "fault injection set"
        );
        if plan.expires_after_ms > 0 {
            self.expire_faults(generation, Duration::from_millis(plan.expires_after_ms));
        }
        Ok(plan)
    }

    /// The set of `epoch` from the chain's own records (every epoch's set is kept).
    fn validator_count(&self, epoch: u64) -> Option<u32> {
        let committee = self.ctx.committee();
        if epoch == committee.epoch() {
            return Some(committee.len() as u32);
        }
        let reader = self.ctx.live().reader.clone()?;
        let set = reader.validator_set(epoch).ok()??;
        Some(set.len() as u32)
    }

    fn faults(&self) -> FaultPlan {
        self.ctx.faults()
    }

    fn record(&self, key: &[u8]) -> Result<RecordAtHead, ApiError> {
        self.read_record(key)
    }

    fn block_records(
        &self,
        height: u64,
        start: usize,
        limit: usize,
    ) -> Result<Option<BlockRecords>, ApiError> {
        let reader = self.reader()?;
        let Some(block) = reader
            .get_block(height)
            .map_err(|e| store_error("a block", e))?
        else {
            return Ok(None);
        };
        let certificate = reader
            .get_certificate(height)
            .map_err(|e| store_error("a certificate", e))?;
        let records = reader
            .record_proofs(height)
            .map_err(|e| store_error("record proofs", e))?;
        Ok(Some(BlockRecords::page(
            block.header,
            certificate,
            records,
            start,
            limit,
        )))
    }

    fn attestation(&self, height: u64, key: &[u8]) -> Result<Attestation, ApiError> {
        let reader = self.reader()?;
        if let Some(attestation) = reader
            .attestation(height, key)
            .map_err(|e| store_error("an attestation", e))?
        {
            return Ok(attestation);
        }
        let changed = reader
            .record_proofs(height)
            .map_err(|e| store_error("record proofs", e))?
            .iter()
            .any(|proof| proof.key == key);
        if changed {
            Err(ApiError::Unavailable(format!(
                "this node does not hold the certificate of {} block {height} yet; try again",
                self.ctx.chain
            )))
        } else {
            Err(ApiError::NotFound(format!(
                "{} block {height} did not change an attestable record with this key",
                self.ctx.chain
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair};

    use super::*;

    #[test]
    fn joins_are_refused_at_the_door_only_where_the_setup_turns_them_off() {
        let key = ValidatorKeypair::from_seed(&[3; 32]);
        let proof = key.sign(
            SigningDomain::ValidatorSetChange.on(NetworkId(Digest::ZERO)),
            b"x",
        );
        let join = TxPayload::CrossChain(CrossChainOp::ValidatorJoin {
            key: key.public().clone(),
            lock: Digest([1; 32]),
            proof: proof.clone(),
        });
        let leave = TxPayload::CrossChain(CrossChainOp::ValidatorLeave {
            key: key.public().clone(),
            proof,
        });
        assert!(accepts_kind(ChainId::Alpha, &join));
        let reason = join_refused(false, &join).expect("refused").to_string();
        assert!(reason.contains("not accepted on this network"), "{reason}");
        assert_eq!(join_refused(true, &join), None);
        assert!(accepts_kind(ChainId::Alpha, &leave));
        assert_eq!(join_refused(false, &leave), None);
        let lock = TxPayload::CrossChain(CrossChainOp::SaxLock {
            amount: 1,
            unlock_at_ms: 2,
        });
        assert_eq!(join_refused(false, &lock), None);
        assert!(accepts_kind(ChainId::Alpha, &lock));
        let burn = TxPayload::Burn {
            asset: dualchain_core::types::AssetId::NATIVE,
            amount: 1,
        };
        assert!(!accepts_kind(ChainId::Alpha, &burn));
        assert!(accepts_kind(ChainId::Delta, &burn));
    }
}
