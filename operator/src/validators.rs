//! Talking to validators over `dualchain.v1` gRPC: status probes and admin calls.
//!
//! Behind a trait so reconcile tests substitute a fake; the real implementation uses the
//! tonic clients of `dualchain-proto` with short timeouts, because an unreachable
//! validator must become a status condition quickly, never a stuck reconcile.

use std::time::Duration;

use dualchain_core::encoding::Canonical;
use dualchain_core::types::{PendingSetChanges, RecordKey, RecordKind, SetChange};
use dualchain_proto::v1::{
    Chain, FaultInjection, GetRecordRequest, GetStatusRequest, PauseChainRequest, PeerGroup,
    ResumeChainRequest,
};
use dualchain_proto::{AdminClient, AdminToken, CrossChainClient, NodeClient};
use futures::future::BoxFuture;
use tonic::transport::Endpoint;
use zeroize::Zeroizing;

use crate::build::network::ChainName;

/// One chain endpoint of one validator.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// The validator's index (its admin token is that validator's own).
    pub index: u32,
    /// Pod name (for messages).
    pub validator: String,
    pub host: String,
    pub chain: ChainName,
}

impl Target {
    fn uri(&self) -> String {
        format!("http://{}:{}", self.host, self.chain.api_port())
    }
    fn proto_chain(&self) -> i32 {
        match self.chain {
            ChainName::Alpha => Chain::Alpha as i32,
            ChainName::Delta => Chain::Delta as i32,
        }
    }
}

/// What the operator keeps of a `NodeStatus` for one chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainReport {
    pub height: u64,
    pub finalized_height: u64,
    /// The epoch whose validator set the chain runs, and the epoch of its head block
    /// (below it between the chain's boundary and its first block of the epoch).
    pub epoch: u64,
    pub head_epoch: u64,
    /// The validator is in the set of `epoch` (it has an index there).
    pub member: bool,
    pub peer_id: String,
    /// Why the chain is not healthy, as the node says it (empty when healthy).
    pub health_reason: String,
}

/// Validator-set changes Alpha holds for its next epoch boundary, as the first 16
/// hex digits of each validator key's id, in request order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingChanges {
    pub joining: Vec<String>,
    pub leaving: Vec<String>,
}

impl PendingChanges {
    pub fn is_empty(&self) -> bool {
        self.joining.is_empty() && self.leaving.is_empty()
    }

    /// From the canonical `PendingSetChanges` record (absent: none pending).
    pub fn decode(value: Option<&[u8]>) -> Result<Self, String> {
        let Some(bytes) = value else {
            return Ok(Self::default());
        };
        let record = PendingSetChanges::from_canonical_bytes(bytes).map_err(|e| e.to_string())?;
        let mut changes = Self::default();
        for change in &record.0 {
            let id = change.key().id().to_hex();
            let short = id.chars().take(16).collect();
            match change {
                SetChange::Join { .. } => changes.joining.push(short),
                SetChange::Leave { .. } => changes.leaving.push(short),
            }
        }
        Ok(changes)
    }
}

/// A fault to set on one validator's chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSettings {
    pub drop_probability: f64,
    pub added_delay_ms: u32,
    pub jitter_ms: u32,
    /// Partition groups of peer ids (empty: no partition).
    pub partitions: Vec<Vec<String>>,
    /// The node clears the fault by itself after this long (safety net).
    pub expires_after_ms: u64,
}

/// Why a call to a validator failed (always treated as transient).
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    #[error("{validator} ({chain}): unreachable: {detail}")]
    Unreachable {
        validator: String,
        chain: &'static str,
        detail: String,
    },
    #[error("{validator} ({chain}): {code}: {message}")]
    Call {
        validator: String,
        chain: &'static str,
        code: String,
        message: String,
    },
    #[error("the admin token is not usable as a bearer token")]
    BadToken,
}

/// The calls the operator makes to validators.
pub trait ValidatorApi: Send + Sync {
    fn status(&self, target: Target) -> BoxFuture<'static, Result<ChainReport, ValidatorError>>;
    fn pause(
        &self,
        target: Target,
        token: Zeroizing<String>,
        paused: bool,
    ) -> BoxFuture<'static, Result<(), ValidatorError>>;
    fn set_fault(
        &self,
        target: Target,
        token: Zeroizing<String>,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>>;
    /// The set changes pending on `target`'s chain (Alpha holds them).
    fn pending_set_changes(
        &self,
        target: Target,
    ) -> BoxFuture<'static, Result<PendingChanges, ValidatorError>>;
}

/// The real gRPC implementation.
#[derive(Clone, Debug)]
pub struct GrpcValidators {
    pub connect_timeout: Duration,
    pub call_timeout: Duration,
}

impl Default for GrpcValidators {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(800),
            call_timeout: Duration::from_secs(2),
        }
    }
}

impl GrpcValidators {
    async fn channel(&self, target: &Target) -> Result<tonic::transport::Channel, ValidatorError> {
        let unreachable = |detail: String| ValidatorError::Unreachable {
            validator: target.validator.clone(),
            chain: target.chain.as_str(),
            detail,
        };
        Endpoint::from_shared(target.uri())
            .map_err(|e| unreachable(e.to_string()))?
            .connect_timeout(self.connect_timeout)
            .timeout(self.call_timeout)
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))
    }
}

fn call_error(target: &Target, status: tonic::Status) -> ValidatorError {
    ValidatorError::Call {
        validator: target.validator.clone(),
        chain: target.chain.as_str(),
        code: format!("{:?}", status.code()),
        message: status.message().chars().take(200).collect(),
    }
}

impl ValidatorApi for GrpcValidators {
    fn status(&self, target: Target) -> BoxFuture<'static, Result<ChainReport, ValidatorError>> {
        let this = self.clone();
        Box::pin(async move {
            let channel = this.channel(&target).await?;
            let status = NodeClient::new(channel)
                .get_status(GetStatusRequest {})
                .await
                .map_err(|s| call_error(&target, s))?
                .into_inner();
            let chain = status
                .chains
                .iter()
                .find(|c| c.chain == target.proto_chain())
                .ok_or_else(|| ValidatorError::Call {
                    validator: target.validator.clone(),
                    chain: target.chain.as_str(),
                    code: "NotServed".into(),
                    message: "the endpoint does not report this chain".into(),
                })?;
            Ok(ChainReport {
                height: chain.height,
                finalized_height: chain.finalized_height,
                epoch: chain.epoch,
                head_epoch: chain.head_epoch,
                member: status.validator_index.is_some(),
                peer_id: status.peer_id.clone(),
                health_reason: chain.health_reason.chars().take(300).collect(),
            })
        })
    }

    fn pending_set_changes(
        &self,
        target: Target,
    ) -> BoxFuture<'static, Result<PendingChanges, ValidatorError>> {
        let this = self.clone();
        Box::pin(async move {
            let channel = this.channel(&target).await?;
            let key = RecordKey::singleton(RecordKind::PendingSetChanges).state_key();
            let record = CrossChainClient::new(channel)
                .get_record(GetRecordRequest {
                    chain: target.proto_chain(),
                    key: key.to_vec(),
                })
                .await
                .map_err(|s| call_error(&target, s))?
                .into_inner();
            PendingChanges::decode(record.value.as_deref()).map_err(|message| {
                ValidatorError::Call {
                    validator: target.validator.clone(),
                    chain: target.chain.as_str(),
                    code: "Malformed".into(),
                    message,
                }
            })
        })
    }

    fn pause(
        &self,
        target: Target,
        token: Zeroizing<String>,
        paused: bool,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        let this = self.clone();
        Box::pin(async move {
            let auth = AdminToken::new(&token).map_err(|_| ValidatorError::BadToken)?;
            let channel = this.channel(&target).await?;
            let mut admin = AdminClient::with_interceptor(channel, auth);
            let chain = target.proto_chain();
            let result = if paused {
                admin
                    .pause_chain(PauseChainRequest {
                        chain,
                        reason: "benchmark fault: kill".into(),
                    })
                    .await
                    .map(|_| ())
            } else {
                admin
                    .resume_chain(ResumeChainRequest { chain })
                    .await
                    .map(|_| ())
            };
            result.map_err(|s| call_error(&target, s))
        })
    }

    fn set_fault(
        &self,
        target: Target,
        token: Zeroizing<String>,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        let this = self.clone();
        Box::pin(async move {
            let auth = AdminToken::new(&token).map_err(|_| ValidatorError::BadToken)?;
            let channel = this.channel(&target).await?;
            let mut admin = AdminClient::with_interceptor(channel, auth);
            let chain = target.proto_chain();
            let request = match fault {
                None => FaultInjection {
                    chain,
                    clear: true,
                    ..Default::default()
                },
                Some(f) => FaultInjection {
                    chain,
                    drop_probability: f.drop_probability,
                    added_delay_ms: f.added_delay_ms,
                    jitter_ms: f.jitter_ms,
                    partitions: f
                        .partitions
                        .into_iter()
                        .map(|peer_ids| PeerGroup { peer_ids })
                        .collect(),
                    clear: false,
                    expires_after_ms: f.expires_after_ms,
                    active: false,
                },
            };
            admin
                .set_fault_injection(request)
                .await
                .map(|_| ())
                .map_err(|s| call_error(&target, s))
        })
    }
}

#[cfg(test)]
mod tests {
    use dualchain_core::crypto::ValidatorKeypair;
    use dualchain_core::types::Address;

    use super::*;

    #[test]
    fn pending_changes_are_read_from_alphas_record_and_garbage_is_an_error() {
        let leaver = ValidatorKeypair::from_seed(&[1; 32]);
        let joiner = ValidatorKeypair::from_seed(&[2; 32]);
        let record = PendingSetChanges(vec![
            SetChange::Leave {
                key: leaver.public().clone(),
            },
            SetChange::Join {
                key: joiner.public().clone(),
                owner: Address([3; 32]),
                lock: dualchain_core::Digest([4; 32]),
                stake: 5,
            },
        ]);
        let bytes = record.to_canonical_bytes();
        let pending = PendingChanges::decode(Some(&bytes)).unwrap();
        let short = |key: &ValidatorKeypair| key.public().id().to_hex()[..16].to_string();
        assert_eq!(pending.leaving, vec![short(&leaver)]);
        assert_eq!(pending.joining, vec![short(&joiner)]);
        assert_eq!(PendingChanges::decode(None), Ok(PendingChanges::default()));
        assert!(PendingChanges::decode(Some(&[0xff, 0xff, 0xff])).is_err());
    }
}
