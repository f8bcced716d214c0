//! [`ChainApi`] for a running chain: what the gRPC server calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use dualchain_api::{ApiError, ChainApi, FinalizedBlock};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Block, BlockCertificate, ChainId, SignedTransaction};
use dualchain_mempool::{AdmissionTime, Rejection};
use dualchain_net::PeerId;
use dualchain_proto::v1::{self, TxStatus};
use dualchain_storage::{Column, KvEngine, keys::height_key};
use tokio::sync::broadcast;

use super::shared::{ChainShared, proto_chain, unix_ms};

/// How long `TriggerSnapshot` waits for the executor thread.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(600);

/// Node-wide facts every chain's `GetStatus` reports.
pub struct NodeFacts {
    pub chains: Vec<Arc<ChainShared>>,
}

pub struct ChainService {
    pub shared: Arc<ChainShared>,
    pub node: Arc<NodeFacts>,
}

fn rejection_status(rejection: &Rejection) -> TxStatus {
    match rejection {
        Rejection::WrongChain { .. } => TxStatus::WrongChain,
        Rejection::Oversize { .. } => TxStatus::TooLarge,
        Rejection::InvalidSignature => TxStatus::InvalidSignature,
        Rejection::UnsignedNotAllowed => TxStatus::UnsignedNotAllowed,
        Rejection::DuplicatePending { .. } | Rejection::DuplicateIncluded { .. } => {
            TxStatus::Duplicate
        }
        Rejection::NonceConflict { .. } => TxStatus::RejectedOther,
        Rejection::SenderCapReached { .. } => TxStatus::RateLimited,
        Rejection::Full { .. } => TxStatus::MempoolFull,
    }
}

fn result(
    index: usize,
    digest: Option<dualchain_core::Digest>,
    status: TxStatus,
    reason: String,
) -> v1::TxResult {
    v1::TxResult {
        index: index as u64,
        digest: digest.map(|d| d.as_bytes().to_vec()).unwrap_or_default(),
        status: status as i32,
        reason,
    }
}

impl ChainService {
    fn read_block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError> {
        let Some(db) = self.shared.live().db.clone() else {
            return Err(ApiError::Unavailable(format!(
                "the {} chain is restarting; try again shortly",
                self.shared.chain
            )));
        };
        let key = height_key(height);
        let Some(bytes) = db
            .get(Column::Blocks, &key)
            .map_err(|e| ApiError::Internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let block = Block::from_canonical_bytes(&bytes).map_err(|e| {
            ApiError::Internal(format!("stored block {height} is undecodable: {e}"))
        })?;
        let certificate = db
            .get(Column::Certificates, &key)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map(|b| BlockCertificate::from_canonical_bytes(&b))
            .transpose()
            .map_err(|e| {
                ApiError::Internal(format!("stored certificate {height} is undecodable: {e}"))
            })?;
        let head = self.shared.head().height;
        Ok(Some(FinalizedBlock {
            block: Arc::new(block),
            certificate,
            finalized_at_unix_ms: 0,
            confirmation_depth: (head.saturating_sub(height) + 1).min(u32::MAX as u64) as u32,
        }))
    }
}

impl ChainApi for ChainService {
    fn chain(&self) -> ChainId {
        self.shared.chain
    }

    fn node_status(&self) -> v1::NodeStatus {
        let s = &self.shared;
        v1::NodeStatus {
            node_version: env!("CARGO_PKG_VERSION").to_string(),
            validator_key_digest: s.key.public().id().as_bytes().to_vec(),
            validator_index: Some(s.me as u32),
            epoch: s.validators.epoch(),
            chains: self.node.chains.iter().map(|c| c.chain_status()).collect(),
            peer_id: hex::encode(s.peer_id.0.as_bytes()),
            started_at_unix_ms: s.started_at_unix_ms,
        }
    }

    fn submit(&self, transactions: &[Bytes]) -> Vec<v1::TxResult> {
        let s = &self.shared;
        if s.chain == ChainId::Alpha {
            return (0..transactions.len())
                .map(|i| {
                    result(
                        i,
                        None,
                        TxStatus::RejectedOther,
                        "the Alpha chain accepts no transaction kinds yet (its cross-chain kinds, tags 16-31, are not defined); submit transfers to Delta".into(),
                    )
                })
                .collect();
        }
        let mut results: Vec<Option<v1::TxResult>> = vec![None; transactions.len()];
        // Positions and transactions side by side, so the batch verifies in place
        // and each transaction then moves into the mempool without a copy.
        let mut positions = Vec::with_capacity(transactions.len());
        let mut txs = Vec::with_capacity(transactions.len());
        for (i, bytes) in transactions.iter().enumerate() {
            match SignedTransaction::from_canonical_bytes(bytes) {
                Ok(tx) => {
                    positions.push(i);
                    txs.push(tx);
                }
                Err(e) => {
                    results[i] = Some(result(i, None, TxStatus::InvalidEncoding, e.to_string()));
                }
            }
        }
        let verdicts = s.verifier.verify_batch(&txs);
        let now = AdmissionTime::from_micros(unix_ms().saturating_mul(1000));
        for ((i, tx), verdict) in positions.into_iter().zip(txs).zip(verdicts) {
            let digest = tx.digest();
            results[i] = Some(match s.mempool.admit(tx, verdict, now) {
                Ok(_) => result(i, Some(digest), TxStatus::Accepted, String::new()),
                Err(rejection) => result(
                    i,
                    Some(digest),
                    rejection_status(&rejection),
                    rejection.to_string(),
                ),
            });
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| result(i, None, TxStatus::InternalError, "no result".into()))
            })
            .collect()
    }

    fn mempool_depth(&self) -> u64 {
        self.shared.mempool.len() as u64
    }

    fn block(&self, height: u64) -> Result<Option<FinalizedBlock>, ApiError> {
        self.read_block(height)
    }

    fn finalized_height(&self) -> u64 {
        self.shared.head().height
    }

    fn subscribe_finality(&self) -> broadcast::Receiver<FinalizedBlock> {
        self.shared.finality.subscribe()
    }

    fn ready(&self) -> bool {
        self.shared.is_ready()
    }

    fn pause(&self, reason: &str) -> Result<(bool, u64), ApiError> {
        let was = self.shared.paused.swap(true, Ordering::AcqRel);
        if !was {
            tracing::warn!(chain = %self.shared.chain, reason, "chain paused by an admin call");
        }
        Ok((was, self.shared.head().height))
    }

    fn resume(&self) -> Result<(bool, u64), ApiError> {
        let was_paused = self.shared.paused.swap(false, Ordering::AcqRel);
        if was_paused {
            tracing::info!(chain = %self.shared.chain, "chain resumed by an admin call");
        }
        Ok((!was_paused, self.shared.head().height))
    }

    fn snapshot(&self) -> Result<v1::SnapshotResult, ApiError> {
        let Some(exec) = self.shared.live().exec.clone() else {
            return Err(ApiError::Unavailable(format!(
                "the {} chain is restarting; try again shortly",
                self.shared.chain
            )));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        exec.send(super::exec::ExecCommand::Snapshot(tx))
            .map_err(|_| ApiError::Unavailable("the block executor is stopping".into()))?;
        match rx.recv_timeout(SNAPSHOT_TIMEOUT) {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(e)) => Err(ApiError::Internal(e)),
            Err(_) => Err(ApiError::Unavailable(
                "the snapshot did not finish in time (the executor is busy or stopping)".into(),
            )),
        }
    }

    fn set_faults(&self, faults: v1::FaultInjection) -> Result<v1::FaultInjection, ApiError> {
        let Some(injector) = self.shared.live().faults.clone() else {
            return Err(ApiError::Unavailable(format!(
                "the {} chain is restarting; try again shortly",
                self.shared.chain
            )));
        };
        let generation = self.shared.faults_generation.fetch_add(1, Ordering::AcqRel) + 1;
        let chain = proto_chain(self.shared.chain) as i32;
        if faults.clear {
            injector.clear();
            let cleared = v1::FaultInjection {
                chain,
                ..Default::default()
            };
            *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = cleared.clone();
            tracing::info!(chain = %self.shared.chain, "fault injection cleared");
            return Ok(cleared);
        }
        if faults.jitter_ms > 0 {
            return Err(ApiError::FailedPrecondition(
                "jitter_ms is not supported by this transport's fault injector (only a fixed added delay); set jitter_ms to 0".into(),
            ));
        }
        let mut groups = Vec::with_capacity(faults.partitions.len());
        for group in &faults.partitions {
            let mut ids = Vec::with_capacity(group.peer_ids.len());
            for id in &group.peer_ids {
                let bytes: [u8; 32] = hex::decode(id)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        ApiError::InvalidArgument(format!(
                            "peer id {id:?} is not 64 hex characters (use GetStatus.peer_id)"
                        ))
                    })?;
                ids.push(PeerId::from_bytes(bytes));
            }
            groups.push(ids);
        }
        injector
            .set_drop_probability(faults.drop_probability)
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        injector.set_delay(Duration::from_millis(faults.added_delay_ms as u64));
        if groups.is_empty() {
            injector.heal();
        } else {
            injector
                .partition(groups)
                .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        }
        let active = faults.drop_probability > 0.0
            || faults.added_delay_ms > 0
            || !faults.partitions.is_empty();
        let applied = v1::FaultInjection {
            chain,
            active,
            clear: false,
            ..faults
        };
        *self.shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = applied.clone();
        tracing::warn!(
            chain = %self.shared.chain,
            drop = applied.drop_probability,
            delay_ms = applied.added_delay_ms,
            groups = applied.partitions.len(),
            expires_after_ms = applied.expires_after_ms,
            "fault injection set"
        );
        if applied.expires_after_ms > 0
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            let shared = self.shared.clone();
            let after = Duration::from_millis(applied.expires_after_ms);
            handle.spawn(async move {
                tokio::time::sleep(after).await;
                if shared.faults_generation.load(Ordering::Acquire) == generation {
                    if let Some(injector) = shared.live().faults.clone() {
                        injector.clear();
                    }
                    *shared.faults.lock().unwrap_or_else(|e| e.into_inner()) = v1::FaultInjection {
                        chain: proto_chain(shared.chain) as i32,
                        ..Default::default()
                    };
                    tracing::info!(chain = %shared.chain, "fault injection expired");
                }
            });
        }
        Ok(applied)
    }

    fn validator_count(&self, epoch: u64) -> Option<u32> {
        (epoch == self.shared.validators.epoch()).then(|| self.shared.validators.len() as u32)
    }

    fn faults(&self) -> v1::FaultInjection {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
