//! A client of the cross-chain flow over gRPC: read a chain's records (lock, stake,
//! proposal, parameter, account) with their proofs, and send the flow's operations
//! (sAX lock on Alpha; unlock, propose, vote and finalize on Delta) at the sender's
//! next nonce. `dualchain sax …` / `dualchain gov …` and the process-cluster tests use it.
//!
//! A record's proof is checked against the state root the same answer names; a client
//! that must not trust the node compares that root with the header of a certified block
//! (`Node/GetBlock` with its certificate).

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use dualchain_core::Digest;
use dualchain_core::crypto::{AccountKeypair, NetworkId};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, Attestation, ChainId, CrossChainOp, EpochRecord, EpochSchedule, RecordKey, RecordKind,
    SignedTransaction, Transaction, TxPayload, ValidatorSet, validator_set_key,
};
use dualchain_execution::keys::{AccountRecord, account_key};
use dualchain_merkle::{Proof, hash_key, hash_value};
use dualchain_proto::v1::{self, TxStatus};
use dualchain_proto::{CrossChainClient, TransactionsClient};
use tonic::transport::Channel;

use crate::node::{CALL_TIMEOUT, connect, network_id, proto_chain};

/// Fee of every operation sent here (cross-chain operations pay the transfer minimum).
pub const OPERATION_FEE: u64 = 1;

/// Who sends an operation: a key that signs it, or an address whose transactions go
/// unsigned (only on a network whose genesis allows unsigned benchmark transactions).
pub enum Sender {
    Key(Box<AccountKeypair>),
    Unsigned(Address),
}

impl Sender {
    pub fn address(&self) -> Address {
        match self {
            Sender::Key(key) => Address::of(key.public()),
            Sender::Unsigned(address) => *address,
        }
    }

    fn authorise(&self, tx: Transaction, network: NetworkId) -> SignedTransaction {
        match self {
            Sender::Key(key) => tx.sign(key, network),
            Sender::Unsigned(_) => tx.unsigned(),
        }
    }
}

/// One chain's API, for the flow.
pub struct ChainClient {
    url: String,
    chain: ChainId,
    channel: Channel,
    /// What the node says its network is: operations are signed for it.
    network: NetworkId,
}

impl ChainClient {
    /// Connects to the `chain` API at `url` (`http://host:port`) and learns its
    /// network id.
    pub async fn connect(url: &str, chain: ChainId) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.to_string(),
            chain,
            channel: connect(url).await?,
            network: network_id(url).await?,
        })
    }

    pub fn chain(&self) -> ChainId {
        self.chain
    }

    /// The network the node says it runs (what its operations are signed for).
    pub fn network(&self) -> NetworkId {
        self.network
    }

    /// The chain's current epoch and the validator set its records name for it.
    pub async fn current_set(&self) -> anyhow::Result<(u64, ValidatorSet)> {
        let record: EpochRecord = self
            .decoded(RecordKind::Epoch, Digest::ZERO)
            .await?
            .with_context(|| format!("{} holds no epoch record", self.url))?;
        let key = validator_set_key(record.epoch);
        let set = self
            .decoded(key.kind, Digest(key.id))
            .await?
            .with_context(|| {
                format!(
                    "{} holds no validator set for its epoch {}",
                    self.url, record.epoch
                )
            })?;
        Ok((record.epoch, set))
    }

    /// The record `key` at the node's head: (head height, value), its proof checked.
    pub async fn record(&self, key: &[u8]) -> anyhow::Result<(u64, Option<Vec<u8>>)> {
        let mut client = CrossChainClient::new(self.channel.clone());
        let request = v1::GetRecordRequest {
            chain: proto_chain(self.chain) as i32,
            key: key.to_vec(),
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.get_record(request))
            .await
            .with_context(|| format!("GetRecord on {} timed out", self.url))?
            .with_context(|| format!("GetRecord on {}", self.url))?
            .into_inner();
        let root: [u8; 32] = answer.state_root.as_slice().try_into().map_err(|_| {
            anyhow!(
                "{} sent a state root of {} bytes",
                self.url,
                answer.state_root.len()
            )
        })?;
        let proof = Proof::from_bytes(&answer.proof)
            .map_err(|e| anyhow!("{} sent a malformed proof: {e}", self.url))?;
        let value_hash = answer.value.as_deref().map(hash_value);
        proof
            .verify(&root, &hash_key(key), value_hash.as_ref())
            .map_err(|e| anyhow!("{}'s proof of the record does not verify: {e}", self.url))?;
        Ok((answer.height, answer.value))
    }

    /// The attestation of record `key` as this chain's block at `height` changed it
    /// (`CrossChain/GetAttestation`); `None` while the node holds no certificate of
    /// that block or the block did not change the record. Nothing is verified here:
    /// the caller checks it against the set it trusts.
    pub async fn attestation(
        &self,
        height: u64,
        key: &[u8],
    ) -> anyhow::Result<Option<Attestation>> {
        let mut client = CrossChainClient::new(self.channel.clone());
        let request = v1::GetAttestationRequest {
            chain: proto_chain(self.chain) as i32,
            height,
            key: key.to_vec(),
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.get_attestation(request))
            .await
            .with_context(|| format!("GetAttestation on {} timed out", self.url))?;
        match answer {
            Ok(answer) => Attestation::from_canonical_bytes(&answer.into_inner().attestation)
                .map(Some)
                .with_context(|| format!("{} sent a malformed attestation", self.url)),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::NotFound | tonic::Code::Unavailable
                ) =>
            {
                Ok(None)
            }
            Err(status) => Err(anyhow!("GetAttestation on {}: {status}", self.url)),
        }
    }

    /// The links of Alpha's epoch chain from epoch 1 through `through`: for each epoch
    /// the attestation of its `ValidatorSet` record from the boundary block that fixed
    /// it, for `dualchain_core::types::verify_epoch_chain`. Fails while a boundary is
    /// not certified at this node yet.
    pub async fn epoch_chain(
        &self,
        schedule: EpochSchedule,
        through: u64,
    ) -> anyhow::Result<Vec<Attestation>> {
        let mut links = Vec::new();
        for epoch in 1..=through {
            let height = schedule
                .boundary_of(epoch - 1)
                .context("epoch beyond the height range")?;
            let key = validator_set_key(epoch).state_key();
            let link = self.attestation(height, &key).await?.with_context(|| {
                format!(
                    "{} has no certified attestation of the set of epoch {epoch} at height {height}",
                    self.url
                )
            })?;
            links.push(link);
        }
        Ok(links)
    }

    /// The record of `kind` with `id`, decoded; `None` if there is none.
    pub async fn decoded<T: Canonical>(
        &self,
        kind: RecordKind,
        id: Digest,
    ) -> anyhow::Result<Option<T>> {
        let key = RecordKey::new(kind, id.0).state_key();
        match self.record(&key).await?.1 {
            Some(bytes) => Ok(Some(T::from_canonical_bytes(&bytes).with_context(
                || format!("{} sent a malformed {kind:?} record", self.url),
            )?)),
            None => Ok(None),
        }
    }

    /// The next nonce of `address` on this chain (0 for an account it does not know).
    pub async fn nonce(&self, address: &Address) -> anyhow::Result<u64> {
        match self.record(&account_key(address)).await?.1 {
            Some(bytes) => Ok(AccountRecord::decode_value(&bytes)
                .with_context(|| format!("{} sent a malformed account record", self.url))?
                .nonce),
            None => Ok(0),
        }
    }

    /// Sends `op` from `sender` at its next nonce; returns the transaction's digest
    /// (the id of the lock or proposal it creates). A refusal is an error with the
    /// node's reason.
    pub async fn send(&self, sender: &Sender, op: CrossChainOp) -> anyhow::Result<Digest> {
        self.send_with_fee(sender, op, OPERATION_FEE).await
    }

    /// [`ChainClient::send`] with the fee `fee` (0: a validator's leave from its own
    /// unfunded set-change account).
    pub async fn send_with_fee(
        &self,
        sender: &Sender,
        op: CrossChainOp,
        fee: u64,
    ) -> anyhow::Result<Digest> {
        let nonce = self.nonce(&sender.address()).await?;
        let tx = sender.authorise(
            Transaction {
                chain: self.chain,
                sender: sender.address(),
                nonce,
                fee,
                payload: TxPayload::CrossChain(op),
            },
            self.network,
        );
        let digest = tx.digest();
        let mut client = TransactionsClient::new(self.channel.clone());
        let request = v1::SubmitBatchRequest {
            chain: proto_chain(self.chain) as i32,
            transactions: vec![tx.to_canonical_bytes()],
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, client.submit_batch(request))
            .await
            .with_context(|| format!("SubmitBatch on {} timed out", self.url))?
            .with_context(|| format!("SubmitBatch on {}", self.url))?
            .into_inner();
        let result = answer
            .results
            .first()
            .ok_or_else(|| anyhow!("{} answered no result", self.url))?;
        match result.status() {
            TxStatus::Accepted | TxStatus::Duplicate => Ok(digest),
            status => bail!(
                "{} refused the transaction ({}): {}",
                self.url,
                status.as_str_name(),
                result.reason
            ),
        }
    }

    /// Waits until the record of `kind` with `id` exists and `done` holds for it,
    /// polling every 200 ms, for at most `timeout`; returns it. Read errors (a node
    /// restarting) are retried until the deadline.
    pub async fn wait_for<T: Canonical>(
        &self,
        kind: RecordKind,
        id: Digest,
        timeout: Duration,
        done: impl Fn(&T) -> bool,
    ) -> anyhow::Result<T> {
        self.wait_for_every(kind, id, timeout, Duration::from_millis(200), done)
            .await
    }

    /// [`ChainClient::wait_for`], polling every `poll`.
    pub async fn wait_for_every<T: Canonical>(
        &self,
        kind: RecordKind,
        id: Digest,
        timeout: Duration,
        poll: Duration,
        done: impl Fn(&T) -> bool,
    ) -> anyhow::Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no record yet");
        loop {
            match self.decoded::<T>(kind, id).await {
                Ok(Some(record)) if done(&record) => return Ok(record),
                Ok(Some(_)) => last = "the record is not in the expected state yet".into(),
                Ok(None) => {}
                Err(e) => last = format!("{e:#}"),
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{kind:?} record {} on {} ({}) not as expected after {timeout:?}: {last}",
                    id,
                    self.chain,
                    self.url
                );
            }
            tokio::time::sleep(poll).await;
        }
    }
}
