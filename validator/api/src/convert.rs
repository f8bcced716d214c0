//! Conversions between this crate's inputs and `dualchain.v1` messages: core
//! block types → proto, and the domain types of [`crate::domain`] ↔ proto. This
//! is the only place where either meets the wire format.
//!
//! # Blocks and certificates
//!
//! Byte fields carry the canonical encodings of `dualchain_core::encoding`
//! (`Canonical::to_canonical_bytes`: a version byte followed by the encoding),
//! so a client decodes them with `from_canonical_bytes` and gets exactly the
//! objects the validators hashed and signed:
//!
//! - `Block.header_bytes` = canonical [`BlockHeader`] bytes. The header digest
//!   (`BlockHeader.digest`, the message validators sign) is the block-header
//!   domain BLAKE3 hash of the encoding *after* the version byte, i.e.
//!   `HashDomain::BlockHeader.hash(&header_bytes[1..])`;
//! - `Block.body` = canonical [`dualchain_core::types::BlockBody`] bytes;
//! - `BlockCertificate.certificate_bytes` = canonical [`BlockCertificate`] bytes.
//!
//! `FinalityEvent.confirmation_depth` counts blocks built *on top of* the block
//! (0 when BFT commit finalized it at the tip), while
//! [`FinalizedBlock::confirmation_depth`] counts the block itself too, hence the
//! subtraction of one.
//!
//! # Domain types
//!
//! - digests, roots and checksums become 32-byte `bytes` fields (a transaction
//!   digest the chain could not compute becomes empty bytes);
//! - [`Admission`] → `TxResult` with index 0: the caller knows the position;
//! - [`FaultPlan`] → `FaultInjection` names the serving chain, `active` is
//!   [`FaultPlan::is_active`], `clear` is always false, and peer ids are lowercase
//!   hex (as `NodeStatus.peer_id`);
//! - `FaultInjection` → [`FaultChange`] first applies
//!   [`validate_fault_injection`], then requires every partition peer id to be 64
//!   hex characters (a 32-byte peer id); both refusals are INVALID_ARGUMENT.

use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    BlockCertificate, BlockHeader, ChainId, CrossChainEvent, GovernanceChange, ProposalStatus,
    TxEvent,
};
use dualchain_proto::v1;
use tonic::Status;

use crate::chain::to_proto;
use crate::domain::{
    Admission, AdmissionStatus, ChainStatus, FaultChange, FaultPlan, Health, NodeStatus,
    SnapshotInfo,
};
use crate::faults::validate_fault_injection;
use crate::{FinalizedBlock, OrderedCommit};
use dualchain_proto::limits::MAX_ORDERING_EVENT_DIGESTS;

/// The proto header of a core header (decoded fields plus its digest).
fn header_to_proto(header: &BlockHeader) -> v1::BlockHeader {
    v1::BlockHeader {
        chain: to_proto(header.chain) as i32,
        height: header.height,
        parent_digest: header.parent.as_bytes().to_vec(),
        state_root: header.state_root.as_bytes().to_vec(),
        tx_root: header.transactions_root.as_bytes().to_vec(),
        receipts_root: header.receipts_root.as_bytes().to_vec(),
        timestamp_unix_ms: header.timestamp_ms,
        epoch: header.epoch,
        tx_count: header.tx_count,
        digest: header.digest().as_bytes().to_vec(),
    }
}

/// The proto certificate: signer indices in increasing order (the core type
/// keeps them sorted and the decoder refuses anything else), the validator
/// count of the block's epoch when known (0 otherwise), and the canonical bytes.
fn certificate_to_proto(
    certificate: &BlockCertificate,
    validator_count: Option<u32>,
) -> v1::BlockCertificate {
    let signer_indices: Vec<u32> = certificate
        .signatures
        .iter()
        .map(|(index, _)| u32::from(*index))
        .collect();
    v1::BlockCertificate {
        signer_count: u32::try_from(signer_indices.len()).unwrap_or(u32::MAX),
        signer_indices,
        validator_count: validator_count.unwrap_or(0),
        certificate_bytes: certificate.to_canonical_bytes(),
    }
}

/// Builds the `GetBlock` answer for a committed block.
///
/// `finalized` is whether the block is at or below the chain's finalized height;
/// the body and certificate are included only when asked for (the certificate
/// also only when the block has one), as `GetBlockRequest` documents.
pub fn block_to_proto(
    block: &FinalizedBlock,
    include_body: bool,
    include_certificate: bool,
    finalized: bool,
    validator_count: Option<u32>,
) -> v1::Block {
    let header = &block.block.header;
    v1::Block {
        header: Some(header_to_proto(header)),
        header_bytes: header.to_canonical_bytes(),
        body: include_body.then(|| block.block.body.to_canonical_bytes()),
        certificate: if include_certificate {
            block
                .certificate
                .as_ref()
                .map(|certificate| certificate_to_proto(certificate, validator_count))
        } else {
            None
        },
        finalized,
        failed_tx_count: block.failed_txs.len() as u32,
    }
}

/// The ordering events of one commit: one per [`MAX_ORDERING_EVENT_DIGESTS`]
/// transactions (at least one, so an empty commit is still seen), each with the
/// commit's identity; `missed_before` goes on the first.
///
/// [`MAX_ORDERING_EVENT_DIGESTS`]: dualchain_proto::limits::MAX_ORDERING_EVENT_DIGESTS
pub fn ordering_events(
    chain: ChainId,
    commit: &OrderedCommit,
    missed_before: u64,
) -> Vec<v1::OrderingEvent> {
    let event = |digests: &[Digest], missed_before| v1::OrderingEvent {
        chain: to_proto(chain) as i32,
        epoch: commit.epoch,
        commit_sequence: commit.sequence,
        ordered_at_unix_ms: commit.ordered_at_unix_ms,
        commit_timestamp_ms: commit.commit_timestamp_ms,
        tx_digests: digests.iter().map(|d| d.as_bytes().to_vec()).collect(),
        missed_before,
    };
    if commit.tx_digests.is_empty() {
        return vec![event(&[], missed_before)];
    }
    commit
        .tx_digests
        .chunks(MAX_ORDERING_EVENT_DIGESTS)
        .enumerate()
        .map(|(i, part)| event(part, if i == 0 { missed_before } else { 0 }))
        .collect()
}

/// Builds the finality event of a committed block; the kind follows the
/// block's chain. Transaction digests are included only when asked for, and
/// then there is one per transaction, in block order.
pub fn finality_event(
    block: &FinalizedBlock,
    include_tx_digests: bool,
    replayed: bool,
) -> v1::FinalityEvent {
    let header = &block.block.header;
    let chain = to_proto(header.chain);
    let (tx_digests, failed_tx_indexes) = if include_tx_digests {
        let digests = block
            .block
            .body
            .transactions
            .iter()
            .map(|tx| tx.digest().as_bytes().to_vec())
            .collect();
        (digests, block.failed_txs.to_vec())
    } else {
        (Vec::new(), Vec::new())
    };
    v1::FinalityEvent {
        kind: chain.finality_event_kind() as i32,
        chain: chain as i32,
        height: header.height,
        block_digest: header.digest().as_bytes().to_vec(),
        state_root: header.state_root.as_bytes().to_vec(),
        tx_count: header.tx_count,
        finalized_at_unix_ms: block.finalized_at_unix_ms,
        block_timestamp_unix_ms: header.timestamp_ms,
        confirmation_depth: block.confirmation_depth.saturating_sub(1),
        tx_digests,
        replayed,
        cross_chain_events: block.events.0.iter().map(event_to_proto).collect(),
        failed_tx_indexes,
    }
}

/// The proto form of one cross-chain event.
pub(crate) fn event_to_proto(event: &TxEvent) -> v1::CrossChainEvent {
    let bytes = |d: &Digest| d.as_bytes().to_vec();
    let mut out = v1::CrossChainEvent {
        name: event.event.name().to_string(),
        tx_digest: bytes(&event.tx),
        ..Default::default()
    };
    match &event.event {
        CrossChainEvent::SaxLocked {
            lock,
            owner,
            amount,
        }
        | CrossChainEvent::SaxLockAttested {
            lock,
            owner,
            amount,
        }
        | CrossChainEvent::SaxReleased {
            lock,
            owner,
            amount,
        } => {
            out.id = bytes(lock);
            out.account = owner.as_bytes().to_vec();
            out.amount = *amount;
        }
        CrossChainEvent::SaxUnlockRequested { lock }
        | CrossChainEvent::SaxUnlockCompleted { lock } => out.id = bytes(lock),
        CrossChainEvent::ProposalOpened { proposal } => out.id = bytes(proposal),
        CrossChainEvent::VoteCast {
            proposal,
            voter,
            weight,
        } => {
            out.id = bytes(proposal);
            out.account = voter.as_bytes().to_vec();
            out.amount = *weight;
        }
        CrossChainEvent::ProposalFinalized { proposal, status } => {
            out.id = bytes(proposal);
            out.proposal_status = match status {
                ProposalStatus::Open => "OPEN",
                ProposalStatus::Passed => "PASSED",
                ProposalStatus::RejectedNoQuorum => "REJECTED_NO_QUORUM",
                ProposalStatus::RejectedThreshold => "REJECTED_THRESHOLD",
            }
            .to_string();
        }
        CrossChainEvent::GovernanceExecuted { proposal, change } => {
            out.id = bytes(proposal);
            out.governance_action = change.action().to_string();
            match change {
                GovernanceChange::Parameter(change) => {
                    out.parameter = change.name.as_str().to_string();
                    out.value = change.value;
                }
                GovernanceChange::RemoveValidator { member } => {
                    out.validator = bytes(member);
                }
                GovernanceChange::ValidatorStake { member, stake }
                | GovernanceChange::AdmitValidator { member, stake } => {
                    out.validator = bytes(member);
                    out.value = *stake;
                }
            }
        }
        CrossChainEvent::ValidatorJoinRequested {
            validator,
            owner,
            stake,
        } => {
            out.id = bytes(validator);
            out.account = owner.as_bytes().to_vec();
            out.amount = *stake;
        }
        CrossChainEvent::ValidatorLeaveRequested { validator } => out.id = bytes(validator),
        CrossChainEvent::EpochBoundaryReached {
            epoch,
            validators,
            set,
        } => {
            out.id = bytes(set);
            out.amount = u64::from(*validators);
            out.value = *epoch;
        }
    }
    out
}

/// The proto value of a chain's health.
pub(crate) fn health_to_proto(health: Health) -> v1::Health {
    match health {
        Health::Healthy => v1::Health::Healthy,
        Health::Degraded => v1::Health::Degraded,
        Health::Stalled => v1::Health::Stalled,
        Health::Stopped => v1::Health::Stopped,
    }
}

/// The health a `dualchain.v1` status reports, e.g. in another node's
/// `GetStatus` answer; `None` for `HEALTH_UNSPECIFIED` (unknown).
pub fn health_from_proto(health: v1::Health) -> Option<Health> {
    match health {
        v1::Health::Unspecified => None,
        v1::Health::Healthy => Some(Health::Healthy),
        v1::Health::Degraded => Some(Health::Degraded),
        v1::Health::Stalled => Some(Health::Stalled),
        v1::Health::Stopped => Some(Health::Stopped),
    }
}

/// The `GetStatus` entry of one chain.
pub(crate) fn chain_status_to_proto(status: ChainStatus) -> v1::ChainStatus {
    v1::ChainStatus {
        chain: to_proto(status.chain) as i32,
        height: status.height,
        finalized_height: status.finalized_height,
        round: status.round,
        epoch: status.epoch,
        connected_peers: status.connected_peers,
        mempool_depth: status.mempool_depth,
        mempool_capacity: status.mempool_capacity,
        health: health_to_proto(status.health) as i32,
        health_reason: status.health_reason,
        paused: status.paused,
        last_block_time_unix_ms: status.last_block_time_unix_ms,
        latest_state_root: status.latest_state_root.as_bytes().to_vec(),
        head_digest: status.head_digest.as_bytes().to_vec(),
        fault_injection_active: status.fault_injection_active,
        validator_set_digest: status.validator_set.as_bytes().to_vec(),
        head_epoch: status.head_epoch,
    }
}

/// The `GetStatus` answer; chains keep the node's order.
pub(crate) fn node_status_to_proto(status: NodeStatus) -> v1::NodeStatus {
    v1::NodeStatus {
        node_version: status.node_version,
        validator_key_digest: status.validator_key_digest.as_bytes().to_vec(),
        validator_index: status.validator_index,
        epoch: status.epoch,
        chains: status
            .chains
            .into_iter()
            .map(chain_status_to_proto)
            .collect(),
        peer_id: status.peer_id,
        started_at_unix_ms: status.started_at_unix_ms,
        network_id: status.network_id.0.as_bytes().to_vec(),
    }
}

/// The proto value of an admission outcome.
pub(crate) fn admission_status_to_proto(status: AdmissionStatus) -> v1::TxStatus {
    match status {
        AdmissionStatus::Accepted => v1::TxStatus::Accepted,
        AdmissionStatus::Duplicate => v1::TxStatus::Duplicate,
        AdmissionStatus::MempoolFull => v1::TxStatus::MempoolFull,
        AdmissionStatus::Overloaded => v1::TxStatus::Overloaded,
        AdmissionStatus::InvalidEncoding => v1::TxStatus::InvalidEncoding,
        AdmissionStatus::InvalidSignature => v1::TxStatus::InvalidSignature,
        AdmissionStatus::WrongChain => v1::TxStatus::WrongChain,
        AdmissionStatus::UnsignedNotAllowed => v1::TxStatus::UnsignedNotAllowed,
        AdmissionStatus::TooLarge => v1::TxStatus::TooLarge,
        AdmissionStatus::NonceTooOld => v1::TxStatus::NonceTooOld,
        AdmissionStatus::NonceTooNew => v1::TxStatus::NonceTooNew,
        AdmissionStatus::InsufficientBalance => v1::TxStatus::InsufficientBalance,
        AdmissionStatus::RateLimited => v1::TxStatus::RateLimited,
        AdmissionStatus::RejectedOther => v1::TxStatus::RejectedOther,
        AdmissionStatus::InternalError => v1::TxStatus::InternalError,
    }
}

/// The result of one admission, with `index` 0: the caller sets the
/// transaction's position (in the request, or across the stream).
pub(crate) fn admission_to_proto(admission: Admission) -> v1::TxResult {
    v1::TxResult {
        index: 0,
        digest: admission
            .digest
            .map(|digest| digest.as_bytes().to_vec())
            .unwrap_or_default(),
        status: admission_status_to_proto(admission.status) as i32,
        reason: admission.reason,
        retry_after_ms: admission.retry_after_ms,
    }
}

/// The `TriggerSnapshot` answer.
pub(crate) fn snapshot_to_proto(snapshot: SnapshotInfo) -> v1::SnapshotResult {
    v1::SnapshotResult {
        height: snapshot.height,
        path: snapshot.path,
        checksum: snapshot.checksum.to_vec(),
        chain: to_proto(snapshot.chain) as i32,
        size_bytes: snapshot.size_bytes,
        state_root: snapshot.state_root.as_bytes().to_vec(),
        created_at_unix_ms: snapshot.created_at_unix_ms,
    }
}

/// The fault injection in force on `chain` (the serving chain), as answered by
/// `SetFaultInjection` and `GetFaultInjection`.
pub(crate) fn fault_plan_to_proto(plan: &FaultPlan, chain: ChainId) -> v1::FaultInjection {
    v1::FaultInjection {
        chain: to_proto(chain) as i32,
        drop_probability: plan.drop_probability,
        added_delay_ms: plan.added_delay_ms,
        jitter_ms: plan.jitter_ms,
        partitions: plan
            .partitions
            .iter()
            .map(|group| v1::PeerGroup {
                peer_ids: group.iter().map(hex::encode).collect(),
            })
            .collect(),
        clear: false,
        expires_after_ms: plan.expires_after_ms,
        active: plan.is_active(),
        bandwidth_bytes_per_sec: plan.bandwidth_bytes_per_sec,
        clock_skew_ms: plan.clock_skew_ms,
    }
}

/// The change a `SetFaultInjection` request asks for. The request is checked
/// against the documented limits first ([`validate_fault_injection`]), then
/// every partition peer id must be 64 hex characters; `chain` and `active` are
/// ignored (the caller resolved the chain; `active` is output only).
pub(crate) fn fault_change_from_proto(faults: &v1::FaultInjection) -> Result<FaultChange, Status> {
    validate_fault_injection(faults)
        .map_err(|error| Status::invalid_argument(error.to_string()))?;
    if faults.clear {
        return Ok(FaultChange::Clear);
    }
    let partitions = faults
        .partitions
        .iter()
        .map(|group| {
            group
                .peer_ids
                .iter()
                .map(|id| peer_id_from_hex(id))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(FaultChange::Set(FaultPlan {
        drop_probability: faults.drop_probability,
        added_delay_ms: faults.added_delay_ms,
        jitter_ms: faults.jitter_ms,
        partitions,
        bandwidth_bytes_per_sec: faults.bandwidth_bytes_per_sec,
        clock_skew_ms: faults.clock_skew_ms,
        expires_after_ms: faults.expires_after_ms,
    }))
}

/// A peer id as `NodeStatus.peer_id` spells it: 64 hex characters.
fn peer_id_from_hex(id: &str) -> Result<[u8; 32], Status> {
    let mut bytes = [0u8; 32];
    if id.len() != 64 || hex::decode_to_slice(id, &mut bytes).is_err() {
        return Err(Status::invalid_argument(format!(
            "peer id {id:?} is not 64 hex characters (use GetStatus.peer_id)"
        )));
    }
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use dualchain_core::crypto::ValidatorKeypair;
    use dualchain_core::hash::{Digest, HashDomain};
    use dualchain_core::types::{
        Address, AssetId, Block, BlockBody, BlockHeader, ChainId, Output, Transaction, TxPayload,
    };
    use dualchain_proto::v1::{Chain, FinalityEventKind, PeerGroup, TxStatus};
    use tonic::Code;

    use super::*;

    const NET: dualchain_core::crypto::NetworkId =
        dualchain_core::crypto::NetworkId(dualchain_core::Digest([0x11; 32]));

    #[test]
    fn a_large_commit_is_split_into_events_of_the_same_commit_with_every_digest_once() {
        let digests: Vec<Digest> = (0..MAX_ORDERING_EVENT_DIGESTS * 2 + 3)
            .map(|i| HashDomain::Transaction.hash(&(i as u64).to_le_bytes()))
            .collect();
        let commit = OrderedCommit {
            epoch: 4,
            sequence: 17,
            ordered_at_unix_ms: 1_700_000_000_123,
            commit_timestamp_ms: 1_700_000_000_100,
            tx_digests: digests.clone(),
        };
        let events = ordering_events(ChainId::Delta, &commit, 5);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events.iter().map(|e| e.missed_before).collect::<Vec<_>>(),
            vec![5, 0, 0]
        );
        assert!(events.iter().all(|e| e.chain() == Chain::Delta
            && e.epoch == 4
            && e.commit_sequence == 17
            && e.ordered_at_unix_ms == 1_700_000_000_123
            && e.commit_timestamp_ms == 1_700_000_000_100));
        let streamed: Vec<Vec<u8>> = events.into_iter().flat_map(|e| e.tx_digests).collect();
        let expected: Vec<Vec<u8>> = digests.iter().map(|d| d.as_bytes().to_vec()).collect();
        assert_eq!(streamed, expected);

        let empty = OrderedCommit {
            tx_digests: Vec::new(),
            ..commit
        };
        let events = ordering_events(ChainId::Alpha, &empty, 0);
        assert_eq!(events.len(), 1);
        assert!(events[0].tx_digests.is_empty());
        assert_eq!(events[0].chain(), Chain::Alpha);
    }

    /// A block at `height` with `tx_count` unsigned transfers whose header
    /// commits to its body, as the chain store would hold it.
    pub(crate) fn sample_block(chain: ChainId, height: u64, tx_count: usize) -> Block {
        let transactions: Vec<_> = (0..tx_count)
            .map(|i| {
                Transaction {
                    chain,
                    sender: Address([7; 32]),
                    nonce: height * 1_000 + i as u64,
                    fee: 1,
                    payload: TxPayload::Transfer {
                        outputs: vec![Output {
                            to: Address([9; 32]),
                            asset: AssetId::NATIVE,
                            amount: 5,
                        }],
                    },
                }
                .unsigned()
            })
            .collect();
        let body = BlockBody {
            vertices: vec![Digest([height as u8; 32])],
            transactions,
        };
        let header = BlockHeader {
            chain,
            height,
            epoch: 3,
            slot: height,
            parent: Digest([height.wrapping_sub(1) as u8; 32]),
            timestamp_ms: 1_700_000_000_000 + height * 3_000,
            vertices_root: body.vertices_root(),
            transactions_root: body.transactions_root(),
            receipts_root: Digest([0xEE; 32]),
            state_root: Digest([height as u8 ^ 0x5A; 32]),
            tx_count: tx_count as u32,
        };
        Block { header, body }
    }

    fn certified(block: Block) -> FinalizedBlock {
        let keys: Vec<_> = (0..3u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 1; 32]))
            .collect();
        let votes = [0u16, 2].into_iter().map(|i| {
            (
                i,
                BlockCertificate::vote(&keys[i as usize], &block.header, NET),
            )
        });
        FinalizedBlock {
            certificate: Some(BlockCertificate::from_votes(&block.header, votes)),
            block: Arc::new(block),
            finalized_at_unix_ms: 1_700_000_001_234,
            confirmation_depth: 1,
            events: Arc::default(),
            failed_txs: Arc::default(),
        }
    }

    #[test]
    fn block_fields_and_bytes_round_trip() {
        let finalized = certified(sample_block(ChainId::Delta, 12, 3));
        let proto = block_to_proto(&finalized, true, true, true, Some(4));
        let header = proto.header.as_ref().unwrap();
        let core = &finalized.block.header;
        assert_eq!(header.chain(), Chain::Delta);
        assert_eq!(header.height, 12);
        assert_eq!(header.tx_count, 3);
        assert_eq!(header.digest, core.digest().as_bytes().to_vec());
        assert_eq!(header.state_root, core.state_root.as_bytes().to_vec());
        assert_eq!(header.tx_root, core.transactions_root.as_bytes().to_vec());
        assert_eq!(header.parent_digest.len(), 32);

        let decoded = BlockHeader::from_canonical_bytes(&proto.header_bytes).unwrap();
        assert_eq!(&decoded, core);
        assert_eq!(
            HashDomain::BlockHeader.hash(&proto.header_bytes[1..]),
            core.digest()
        );
        let body = BlockBody::from_canonical_bytes(proto.body.as_deref().unwrap()).unwrap();
        assert_eq!(body, finalized.block.body);

        let certificate = proto.certificate.unwrap();
        assert_eq!(certificate.signer_indices, vec![0, 2]);
        assert_eq!(certificate.signer_count, 2);
        assert_eq!(certificate.validator_count, 4);
        let decoded = BlockCertificate::from_canonical_bytes(&certificate.certificate_bytes)
            .expect("canonical certificate");
        assert_eq!(Some(decoded), finalized.certificate);
        assert!(proto.finalized);
    }

    #[test]
    fn body_and_certificate_only_when_asked() {
        let finalized = certified(sample_block(ChainId::Alpha, 2, 0));
        let proto = block_to_proto(&finalized, false, false, false, None);
        assert!(proto.body.is_none());
        assert!(proto.certificate.is_none());
        assert!(!proto.finalized);
        let with_body = block_to_proto(&finalized, true, false, false, None);
        assert!(with_body.body.is_some(), "an empty block still has a body");
        let uncertified = FinalizedBlock {
            certificate: None,
            ..finalized
        };
        assert!(
            block_to_proto(&uncertified, false, true, true, None)
                .certificate
                .is_none()
        );
    }

    #[test]
    fn finality_event_kind_digests_and_depth() {
        let finalized = certified(sample_block(ChainId::Alpha, 5, 4));
        let event = finality_event(&finalized, true, true);
        assert_eq!(event.kind(), FinalityEventKind::AlphaBlockFinalized);
        assert_eq!(event.chain(), Chain::Alpha);
        assert_eq!(event.height, 5);
        assert_eq!(event.tx_count, 4);
        assert_eq!(event.tx_digests.len(), 4);
        assert_eq!(
            event.tx_digests[1],
            finalized.block.body.transactions[1]
                .digest()
                .as_bytes()
                .to_vec()
        );
        assert!(event.failed_tx_indexes.is_empty());
        let with_failures = FinalizedBlock {
            failed_txs: vec![1, 3].into(),
            ..finalized.clone()
        };
        assert_eq!(
            finality_event(&with_failures, true, false).failed_tx_indexes,
            vec![1, 3]
        );
        assert!(
            finality_event(&with_failures, false, false)
                .failed_tx_indexes
                .is_empty(),
            "positions come with the digests they index"
        );
        assert_eq!(
            block_to_proto(&with_failures, false, false, true, None).failed_tx_count,
            2
        );
        assert_eq!(event.confirmation_depth, 0, "finalized at the tip");
        assert_eq!(event.finalized_at_unix_ms, 1_700_000_001_234);
        assert!(event.replayed);
        let delta = finality_event(&certified(sample_block(ChainId::Delta, 1, 2)), false, false);
        assert_eq!(delta.kind(), FinalityEventKind::DeltaBlockFinalized);
        assert!(delta.tx_digests.is_empty());
        assert!(!delta.replayed);
    }

    #[test]
    fn cross_chain_events_ride_on_the_finality_event() {
        use dualchain_core::types::{Address, BlockEvents, ParameterChange, ParameterName};
        let (lock, owner) = (Digest([7; 32]), Address([8; 32]));
        let events = vec![
            TxEvent {
                tx: Digest([1; 32]),
                event: CrossChainEvent::SaxLockAttested {
                    lock,
                    owner,
                    amount: 500,
                },
            },
            TxEvent {
                tx: Digest([2; 32]),
                event: CrossChainEvent::ProposalFinalized {
                    proposal: lock,
                    status: ProposalStatus::RejectedNoQuorum,
                },
            },
            TxEvent {
                tx: Digest([3; 32]),
                event: CrossChainEvent::GovernanceExecuted {
                    proposal: lock,
                    change: ParameterChange {
                        name: ParameterName::new("gov.id").unwrap(),
                        value: 9,
                    }
                    .into(),
                },
            },
            TxEvent {
                tx: Digest([4; 32]),
                event: CrossChainEvent::GovernanceExecuted {
                    proposal: lock,
                    change: GovernanceChange::AdmitValidator {
                        member: Digest([5; 32]),
                        stake: 3,
                    },
                },
            },
        ];
        let finalized = FinalizedBlock {
            events: Arc::new(BlockEvents(events)),
            ..certified(sample_block(ChainId::Delta, 3, 1))
        };
        let proto = finality_event(&finalized, false, false).cross_chain_events;
        let names: Vec<&str> = proto.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sax_lock_attested",
                "proposal_finalized",
                "governance_executed",
                "governance_executed"
            ]
        );
        assert_eq!(proto[0].tx_digest, vec![1; 32]);
        assert_eq!(
            (proto[0].id.clone(), proto[0].account.clone()),
            (vec![7; 32], vec![8; 32])
        );
        assert_eq!(proto[0].amount, 500);
        assert_eq!(proto[1].proposal_status, "REJECTED_NO_QUORUM");
        assert!(proto[1].account.is_empty());
        assert_eq!((proto[2].parameter.as_str(), proto[2].value), ("gov.id", 9));
        assert_eq!(proto[2].governance_action, "parameter");
        assert!(proto[2].validator.is_empty());
        assert_eq!(
            (proto[3].governance_action.as_str(), proto[3].value),
            ("admit_validator", 3)
        );
        assert_eq!(
            (proto[3].validator.clone(), proto[3].id.clone()),
            (vec![5; 32], vec![7; 32])
        );
        assert!(proto[3].parameter.is_empty());
    }

    #[test]
    fn every_admission_status_maps_to_its_tx_status() {
        let cases = [
            (AdmissionStatus::Accepted, TxStatus::Accepted),
            (AdmissionStatus::Duplicate, TxStatus::Duplicate),
            (AdmissionStatus::MempoolFull, TxStatus::MempoolFull),
            (AdmissionStatus::Overloaded, TxStatus::Overloaded),
            (AdmissionStatus::InvalidEncoding, TxStatus::InvalidEncoding),
            (
                AdmissionStatus::InvalidSignature,
                TxStatus::InvalidSignature,
            ),
            (AdmissionStatus::WrongChain, TxStatus::WrongChain),
            (
                AdmissionStatus::UnsignedNotAllowed,
                TxStatus::UnsignedNotAllowed,
            ),
            (AdmissionStatus::TooLarge, TxStatus::TooLarge),
            (AdmissionStatus::NonceTooOld, TxStatus::NonceTooOld),
            (AdmissionStatus::NonceTooNew, TxStatus::NonceTooNew),
            (
                AdmissionStatus::InsufficientBalance,
                TxStatus::InsufficientBalance,
            ),
            (AdmissionStatus::RateLimited, TxStatus::RateLimited),
            (AdmissionStatus::RejectedOther, TxStatus::RejectedOther),
            (AdmissionStatus::InternalError, TxStatus::InternalError),
        ];
        for (status, expected) in cases {
            assert_eq!(admission_status_to_proto(status), expected, "{status:?}");
            let result = admission_to_proto(Admission::refused(None, status, "why".into()));
            assert_eq!(result.status(), expected);
            assert!(result.digest.is_empty(), "no digest: empty bytes");
            assert_eq!(result.reason, "why");
            assert_eq!(result.index, 0, "the caller sets the position");
        }
        let accepted = admission_to_proto(Admission::accepted(Digest([7; 32])));
        assert_eq!(accepted.status(), TxStatus::Accepted);
        assert_eq!(accepted.digest, vec![7; 32]);
        assert!(accepted.reason.is_empty());
    }

    #[test]
    fn health_round_trips() {
        for health in [
            Health::Healthy,
            Health::Degraded,
            Health::Stalled,
            Health::Stopped,
        ] {
            assert_eq!(health_from_proto(health_to_proto(health)), Some(health));
        }
        assert_eq!(health_to_proto(Health::Stalled), v1::Health::Stalled);
        assert_eq!(health_from_proto(v1::Health::Unspecified), None);
    }

    #[test]
    fn node_status_fields() {
        let chain = ChainStatus {
            chain: ChainId::Delta,
            height: 9,
            finalized_height: 8,
            round: 31,
            epoch: 2,
            connected_peers: 3,
            mempool_depth: 17,
            mempool_capacity: 1_000,
            health: Health::Degraded,
            health_reason: "paused by an admin call".into(),
            paused: true,
            last_block_time_unix_ms: 1_700_000_000_000,
            latest_state_root: Digest([5; 32]),
            head_digest: Digest([6; 32]),
            fault_injection_active: true,
            validator_set: Digest([7; 32]),
            head_epoch: 1,
        };
        let status = node_status_to_proto(NodeStatus {
            node_version: "0.1.0".into(),
            validator_key_digest: Digest([0xAB; 32]),
            validator_index: Some(0),
            epoch: 2,
            chains: vec![chain.clone()],
            peer_id: "ab".repeat(32),
            started_at_unix_ms: 1_699_000_000_000,
            network_id: dualchain_core::crypto::NetworkId(Digest([0xCD; 32])),
        });
        assert_eq!(status.network_id, vec![0xCD; 32]);
        assert_eq!(status.node_version, "0.1.0");
        assert_eq!(status.validator_key_digest, vec![0xAB; 32]);
        assert_eq!(status.validator_index, Some(0));
        assert_eq!(status.epoch, 2);
        assert_eq!(status.peer_id, "ab".repeat(32));
        assert_eq!(status.started_at_unix_ms, 1_699_000_000_000);
        assert_eq!(
            status.chains,
            vec![v1::ChainStatus {
                chain: Chain::Delta as i32,
                height: 9,
                finalized_height: 8,
                round: 31,
                epoch: 2,
                connected_peers: 3,
                mempool_depth: 17,
                mempool_capacity: 1_000,
                health: v1::Health::Degraded as i32,
                health_reason: "paused by an admin call".into(),
                paused: true,
                last_block_time_unix_ms: 1_700_000_000_000,
                latest_state_root: vec![5; 32],
                head_digest: vec![6; 32],
                fault_injection_active: true,
                validator_set_digest: vec![7; 32],
                head_epoch: 1,
            }]
        );
    }

    #[test]
    fn snapshot_fields() {
        let result = snapshot_to_proto(SnapshotInfo {
            chain: ChainId::Alpha,
            height: 40,
            path: "/data/snapshots/alpha-40.snap".into(),
            checksum: [3; 32],
            size_bytes: 4_096,
            state_root: Digest([4; 32]),
            created_at_unix_ms: 1_700_000_000_000,
        });
        assert_eq!(
            result,
            v1::SnapshotResult {
                height: 40,
                path: "/data/snapshots/alpha-40.snap".into(),
                checksum: vec![3; 32],
                chain: Chain::Alpha as i32,
                size_bytes: 4_096,
                state_root: vec![4; 32],
                created_at_unix_ms: 1_700_000_000_000,
            }
        );
    }

    #[test]
    fn a_bad_peer_id_is_refused_with_its_name() {
        let good = "0f".repeat(32);
        for bad in [
            "validator-0".to_owned(),
            "0f".repeat(31),
            format!("{good}00"),
            format!("{}zz", "0f".repeat(31)),
        ] {
            let faults = v1::FaultInjection {
                drop_probability: 0.5,
                partitions: vec![
                    PeerGroup {
                        peer_ids: vec![good.clone()],
                    },
                    PeerGroup {
                        peer_ids: vec![good.clone(), bad.clone()],
                    },
                ],
                ..Default::default()
            };
            let status = fault_change_from_proto(&faults).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
            assert!(status.message().contains(&bad), "{}", status.message());
            assert!(
                status.message().contains("GetStatus.peer_id"),
                "{}",
                status.message()
            );
        }
    }

    #[test]
    fn limits_are_checked_before_peer_ids() {
        let faults = v1::FaultInjection {
            drop_probability: 2.0,
            partitions: vec![PeerGroup {
                peer_ids: vec!["not-hex".into()],
            }],
            ..Default::default()
        };
        let status = fault_change_from_proto(&faults).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().contains("drop_probability"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn clear_is_a_clear_change() {
        let clear = v1::FaultInjection {
            chain: Chain::Delta as i32,
            clear: true,
            active: true,
            ..Default::default()
        };
        assert_eq!(fault_change_from_proto(&clear).unwrap(), FaultChange::Clear);
        let with_settings = v1::FaultInjection {
            clear: true,
            jitter_ms: 5,
            ..Default::default()
        };
        assert_eq!(
            fault_change_from_proto(&with_settings).unwrap_err().code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn a_fault_plan_round_trips_through_proto() {
        let plan = FaultPlan {
            drop_probability: 0.125,
            added_delay_ms: 250,
            jitter_ms: 40,
            partitions: vec![vec![[0x01; 32], [0xAB; 32]], vec![[0xFE; 32]]],
            bandwidth_bytes_per_sec: 250_000,
            clock_skew_ms: -1_500,
            expires_after_ms: 30_000,
        };
        let proto = fault_plan_to_proto(&plan, ChainId::Delta);
        assert_eq!(proto.chain(), Chain::Delta);
        assert!(proto.active);
        assert!(!proto.clear);
        assert_eq!(proto.partitions[0].peer_ids[1], "ab".repeat(32));
        assert_eq!(
            fault_change_from_proto(&proto).unwrap(),
            FaultChange::Set(plan)
        );

        let idle = fault_plan_to_proto(&FaultPlan::default(), ChainId::Alpha);
        assert_eq!(idle.chain(), Chain::Alpha);
        assert!(!idle.active);
        assert_eq!(
            fault_change_from_proto(&idle).unwrap(),
            FaultChange::Set(FaultPlan::default())
        );
    }

    #[test]
    fn upper_case_peer_ids_are_accepted() {
        let faults = v1::FaultInjection {
            partitions: vec![PeerGroup {
                peer_ids: vec!["AB".repeat(32)],
            }],
            ..Default::default()
        };
        let FaultChange::Set(plan) = fault_change_from_proto(&faults).unwrap() else {
            panic!("not a set");
        };
        assert_eq!(plan.partitions, vec![vec![[0xAB; 32]]]);
    }
}
