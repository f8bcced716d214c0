//! Talking to validators over `dualchain.v1` gRPC: status probes and admin calls.
//!
//! Behind a trait so reconcile tests substitute a fake; the real implementation uses the
//! tonic clients of `dualchain-proto` with short timeouts, because an unreachable
//! validator must become a status condition quickly, never a stuck reconcile.

use std::time::Duration;

use dualchain_client::crosschain::{ChainClient, Sender};
use dualchain_core::Digest;
use dualchain_core::crypto::{AccountKeypair, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, ChainId, CrossChainOp, LockRecord, LockStatus, PendingSetChanges, RecordKind,
    SetChange, set_change_op,
};
use dualchain_proto::v1::{Chain, FaultInjection, GetStatusRequest, PeerGroup};
use dualchain_proto::{AdminClient, AdminToken, NodeClient};
use futures::future::BoxFuture;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
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

/// What the operator needs to call one validator's `Admin`: that validator's own
/// token, and the certificate its admin listener must present (nothing else is
/// trusted there). Never printed.
#[derive(Clone)]
pub struct AdminAccess {
    pub token: Zeroizing<String>,
    pub certificate_pem: Vec<u8>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminAccess(<redacted>)")
    }
}

impl Target {
    fn uri(&self) -> String {
        format!("http://{}:{}", self.host, self.chain.api_port())
    }
    fn admin_uri(&self) -> String {
        format!("https://{}:{}", self.host, self.chain.admin_port())
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

/// Validator-set changes Alpha holds for its next epoch boundary, as each validator
/// key's id (hex), in request order.
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
        Ok(Self::of(&record))
    }

    /// From the decoded record.
    pub fn of(record: &PendingSetChanges) -> Self {
        let mut changes = Self::default();
        for change in &record.0 {
            let id = change.key().id().to_hex();
            match change {
                SetChange::Join { .. } => changes.joining.push(id),
                SetChange::Leave { .. } => changes.leaving.push(id),
                // A governance re-weighting: the members stay who they are, so
                // nothing the operator scales by is pending.
                SetChange::Stake { .. } => {}
            }
        }
        changes
    }
}

/// The validator set Alpha runs, as one member answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetView {
    /// Alpha's current epoch.
    pub epoch: u64,
    /// The key ids (hex) of its set, in set order.
    pub members: Vec<String>,
    /// What Alpha holds for the next boundary.
    pub pending: PendingChanges,
}

/// A validator-set change request for [`ValidatorApi::request_set_change`]: the
/// validator's key signs it; `sender` sends (and pays for) the transaction.
pub struct SetChangeRequest {
    pub key: ValidatorKeypair,
    pub sender: AccountKeypair,
    /// A join's stake (a lock of `sender`'s); `None` asks to leave.
    pub lock: Option<Digest>,
    pub fee: u64,
    /// Alpha's epoch the request is signed for (valid only in that epoch).
    pub epoch: u64,
}

/// A fault to set on one validator's chain.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultSettings {
    pub drop_probability: f64,
    pub added_delay_ms: u32,
    pub jitter_ms: u32,
    /// Partition groups of peer ids (empty: no partition).
    pub partitions: Vec<Vec<String>>,
    /// Outbound bytes per second on each p2p link (0: no limit).
    pub bandwidth_bytes_per_sec: u64,
    /// Milliseconds the chain's wall clock is set off (0: none).
    pub clock_skew_ms: i64,
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
    fn set_fault(
        &self,
        target: Target,
        access: AdminAccess,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>>;
    /// The validator set `target`'s Alpha runs and the changes it holds for the next
    /// boundary.
    fn validator_set(&self, target: Target) -> BoxFuture<'static, Result<SetView, ValidatorError>>;
    /// Locks `amount` sAX of `sponsor` on `target`'s Alpha until `unlock_at_ms` (the
    /// stake of a joining validator); returns the lock's id.
    fn lock_stake(
        &self,
        target: Target,
        sponsor: AccountKeypair,
        amount: u64,
        unlock_at_ms: u64,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>>;
    /// Whether lock `lock` is committed and locked on `target`'s Alpha.
    fn lock_committed(
        &self,
        target: Target,
        lock: Digest,
    ) -> BoxFuture<'static, Result<bool, ValidatorError>>;
    /// Sends a join or leave request to `target`'s Alpha; returns the transaction's digest.
    fn request_set_change(
        &self,
        target: Target,
        request: SetChangeRequest,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>>;
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
    /// A TLS channel to `target`'s admin listener that trusts only the validator's
    /// own certificate, for the pod name in it.
    async fn admin_channel(
        &self,
        target: &Target,
        access: &AdminAccess,
    ) -> Result<tonic::transport::Channel, ValidatorError> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&access.certificate_pem))
            .domain_name(target.validator.clone());
        self.connect(target, target.admin_uri(), Some(tls)).await
    }

    /// A channel to `target`'s public API.
    async fn channel(&self, target: &Target) -> Result<tonic::transport::Channel, ValidatorError> {
        self.connect(target, target.uri(), None).await
    }

    async fn connect(
        &self,
        target: &Target,
        uri: String,
        tls: Option<ClientTlsConfig>,
    ) -> Result<tonic::transport::Channel, ValidatorError> {
        let unreachable = |detail: String| ValidatorError::Unreachable {
            validator: target.validator.clone(),
            chain: target.chain.as_str(),
            detail,
        };
        let mut endpoint = Endpoint::from_shared(uri).map_err(|e| unreachable(e.to_string()))?;
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| unreachable(e.to_string()))?;
        }
        endpoint
            .connect_timeout(self.connect_timeout)
            .timeout(self.call_timeout)
            .connect()
            .await
            .map_err(|e| unreachable(e.to_string()))
    }
}

/// The cross-chain client of `target`'s Alpha (it reads the network id the node runs,
/// which requests are signed for).
async fn alpha_client(target: &Target) -> Result<ChainClient, ValidatorError> {
    ChainClient::connect(&target.uri(), ChainId::Alpha)
        .await
        .map_err(|e| ValidatorError::Unreachable {
            validator: target.validator.clone(),
            chain: target.chain.as_str(),
            detail: format!("{e:#}").chars().take(200).collect(),
        })
}

fn flow_error(target: &Target, error: anyhow::Error) -> ValidatorError {
    ValidatorError::Call {
        validator: target.validator.clone(),
        chain: target.chain.as_str(),
        code: "Failed".into(),
        message: format!("{error:#}").chars().take(300).collect(),
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

    fn validator_set(&self, target: Target) -> BoxFuture<'static, Result<SetView, ValidatorError>> {
        Box::pin(async move {
            let alpha = alpha_client(&target).await?;
            let (epoch, set) = alpha
                .current_set()
                .await
                .map_err(|e| flow_error(&target, e))?;
            let pending: Option<PendingSetChanges> = alpha
                .decoded(RecordKind::PendingSetChanges, Digest::ZERO)
                .await
                .map_err(|e| flow_error(&target, e))?;
            Ok(SetView {
                epoch,
                members: set
                    .validators()
                    .iter()
                    .map(|v| v.public_key.id().to_hex())
                    .collect(),
                pending: pending.as_ref().map(PendingChanges::of).unwrap_or_default(),
            })
        })
    }

    fn lock_stake(
        &self,
        target: Target,
        sponsor: AccountKeypair,
        amount: u64,
        unlock_at_ms: u64,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>> {
        Box::pin(async move {
            let alpha = alpha_client(&target).await?;
            let op = CrossChainOp::SaxLock {
                amount,
                unlock_at_ms,
            };
            alpha
                .send(&Sender::Key(Box::new(sponsor)), op)
                .await
                .map_err(|e| flow_error(&target, e))
        })
    }

    fn lock_committed(
        &self,
        target: Target,
        lock: Digest,
    ) -> BoxFuture<'static, Result<bool, ValidatorError>> {
        Box::pin(async move {
            let alpha = alpha_client(&target).await?;
            let record: Option<LockRecord> = alpha
                .decoded(RecordKind::Lock, lock)
                .await
                .map_err(|e| flow_error(&target, e))?;
            Ok(record.is_some_and(|l| l.status == LockStatus::Locked))
        })
    }

    fn request_set_change(
        &self,
        target: Target,
        request: SetChangeRequest,
    ) -> BoxFuture<'static, Result<Digest, ValidatorError>> {
        Box::pin(async move {
            let alpha = alpha_client(&target).await?;
            let sender = Address::of(request.sender.public());
            let op = set_change_op(
                alpha.network(),
                &request.key,
                &sender,
                request.lock,
                request.epoch,
            );
            alpha
                .send_with_fee(&Sender::Key(Box::new(request.sender)), op, request.fee)
                .await
                .map_err(|e| flow_error(&target, e))
        })
    }

    fn set_fault(
        &self,
        target: Target,
        access: AdminAccess,
        fault: Option<FaultSettings>,
    ) -> BoxFuture<'static, Result<(), ValidatorError>> {
        let this = self.clone();
        Box::pin(async move {
            let auth = AdminToken::new(&access.token).map_err(|_| ValidatorError::BadToken)?;
            let channel = this.admin_channel(&target, &access).await?;
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
                    bandwidth_bytes_per_sec: f.bandwidth_bytes_per_sec,
                    clock_skew_ms: f.clock_skew_ms,
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
        let id = |key: &ValidatorKeypair| key.public().id().to_hex();
        assert_eq!(pending.leaving, vec![id(&leaver)]);
        assert_eq!(pending.joining, vec![id(&joiner)]);
        assert_eq!(PendingChanges::decode(None), Ok(PendingChanges::default()));
        assert!(PendingChanges::decode(Some(&[0xff, 0xff, 0xff])).is_err());
    }
}
