//! Taking blocks a node did not make: verify, re-execute, check, commit.
//!
//! [`BlockReplayer`] is the one path by which a chain store grows from someone
//! else's blocks: `dualchain replay` (a database, a peer's history, a synthetic
//! history) uses it today, and block sync will. For each block, cheapest check
//! first:
//! 1. it is of this chain and extends the head (height and parent digest), so a
//!    block of another history is refused before any work;
//! 2. its body matches its header (vertex and transaction roots);
//! 3. it is of the epoch the chain is in (the genesis epoch plus one per boundary
//!    block replayed so far);
//! 4. its certificate, when one comes with it, names this header and carries a
//!    quorum of valid signatures of *that epoch's* set, read from the records the
//!    replay itself wrote (never from the source);
//! 5. re-executed with the node's own executor at the header's consensus time, its
//!    receipts root and state root are the header's; only then are block, receipts,
//!    state, events and certificate committed, in one batch.
//!
//! **What a certificate covers.** A certificate signs a header, and each header
//! names its parent's digest, so a certificate at height `h` vouches for every block
//! up to `h` that this replayer committed (it only commits a block whose parent is
//! its head). Blocks after the newest verified certificate are re-executed and
//! root-checked but not yet vouched for: [`BlockReplayer::certified_through`] says
//! how far the history is certified, and callers report the rest (a node holds no
//! certificate for blocks whose votes it missed; a synthetic history certifies
//! every k-th block).

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::chain_store::{ChainStore, ChainStoreError, events_key};
use dualchain_core::crypto::NetworkId;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Block, BlockCertificate, BlockEvents, CertificateError, ChainId, Genesis, TxEvent, ValidatorSet,
};
use dualchain_execution::epochs::{committed_set, entered_epoch};
use dualchain_execution::{ExecutionError, ExecutionMode, Executor, StateCache, StateError};
use dualchain_storage::{Column, KvEngine, WriteBatch};

use crate::chain::{block_executor, genesis_changes};

/// Validator sets a replayer keeps at once (the current epoch's and a few before:
/// a certificate is always of the block's own epoch, so older ones are not needed).
const SETS_KEPT: usize = 4;

/// Why a block was refused. The replayer's store and state are unchanged by a
/// refused block.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("block {height} does not extend this chain's head: {source}")]
    NotNext {
        height: u64,
        source: ChainStoreError,
    },
    #[error("block {height}: the body does not match the header")]
    BodyMismatch { height: u64 },
    #[error("block {height} is of epoch {got}, but the chain is in epoch {expected} there")]
    WrongEpoch {
        height: u64,
        expected: u64,
        got: u64,
    },
    #[error("block {height}: the chain's records hold no validator set for its epoch {epoch}")]
    UnknownSet { height: u64, epoch: u64 },
    #[error("block {height}: the certificate is refused: {source}")]
    Certificate {
        height: u64,
        source: CertificateError,
    },
    #[error("block {height} could not be executed: {source}")]
    Execution { height: u64, source: ExecutionError },
    #[error("block {height} of epoch {epoch} entered epoch {entered}")]
    EpochSkip {
        height: u64,
        epoch: u64,
        entered: u64,
    },
    #[error("block {height} diverges from its re-execution: {source}")]
    Diverged {
        height: u64,
        source: ChainStoreError,
    },
    #[error("reading the replayed state: {0}")]
    State(#[from] StateError),
    #[error(transparent)]
    Store(ChainStoreError),
}

impl ReplayError {
    /// The height of the refused block, if the error is about one.
    pub fn height(&self) -> Option<u64> {
        match self {
            Self::NotNext { height, .. }
            | Self::BodyMismatch { height }
            | Self::WrongEpoch { height, .. }
            | Self::UnknownSet { height, .. }
            | Self::Certificate { height, .. }
            | Self::Execution { height, .. }
            | Self::EpochSkip { height, .. }
            | Self::Diverged { height, .. } => Some(*height),
            Self::State(_) | Self::Store(_) => None,
        }
    }
}

/// The block write's record of `events` (none when there are none): what the API's
/// event stream and `epoch_boundary_reached` readers find for the block at `height`.
/// Every writer of blocks (executor, replayer, synthetic history) goes through it.
pub(crate) fn events_batch(height: u64, events: &[TxEvent]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    if !events.is_empty() {
        batch.put(
            Column::Meta,
            events_key(height),
            BlockEvents(events.to_vec()).to_canonical_bytes(),
        );
    }
    batch
}

/// What one applied block did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    pub height: u64,
    pub state_root: Digest,
    pub transactions: usize,
    /// Whether its certificate came with it and verified.
    pub certified: bool,
    /// The epoch the block entered (it ended its own), if it did.
    pub entered_epoch: Option<u64>,
}

/// Re-executes blocks of one chain onto a chain store (see the module docs).
pub struct BlockReplayer<E: KvEngine> {
    store: ChainStore<E>,
    cache: StateCache<E>,
    executor: Executor,
    network: NetworkId,
    /// The genesis set: the key objects a set read from the records takes (see
    /// [`ValidatorSet::with_known_keys`]).
    genesis_set: ValidatorSet,
    /// The epoch of the next block.
    epoch: u64,
    certified_through: u64,
    sets: BTreeMap<u64, Arc<ValidatorSet>>,
    /// The last certificate that verified (not verified twice).
    verified: Option<BlockCertificate>,
}

impl<E: KvEngine + Clone> BlockReplayer<E> {
    /// A replayer of `chain` of the network `genesis` describes, over `engine`: an
    /// empty store is initialised with the genesis state; a store that already holds
    /// blocks continues after its head (it must be of this genesis).
    pub fn open(
        engine: E,
        chain: ChainId,
        genesis: &Genesis,
        mode: ExecutionMode,
    ) -> anyhow::Result<Self> {
        use anyhow::Context;
        genesis.validate().context("the genesis is invalid")?;
        let genesis_digest = genesis.hash();
        let network = NetworkId(genesis_digest);
        let genesis_set = genesis
            .validator_set()
            .context("the genesis validator set")?;
        let mut store =
            ChainStore::open(engine.clone(), chain).context("opening the chain store")?;
        if store.head().is_none() {
            let changes = genesis_changes(chain, genesis, &genesis_set);
            store
                .init_genesis(genesis_digest, &changes)
                .context("writing the genesis state")?;
        }
        let head = store.head().expect("initialised above");
        let first = if head.height == 0 {
            None
        } else {
            store.get_block(1)?
        };
        let genesis_matches = match &first {
            None => head.height > 0 || head.block_digest == genesis_digest.0,
            Some(block) => block.header.parent == genesis_digest,
        };
        anyhow::ensure!(
            genesis_matches,
            "the {chain} database belongs to another genesis; replay into an empty directory"
        );
        let epoch = match store.get_block(head.height)? {
            None => genesis_set.epoch(),
            Some(block) => {
                let events = store.reader().events(head.height)?;
                block.header.epoch + u64::from(entered_epoch(&events.0).is_some())
            }
        };
        let (executor, _) = block_executor(chain, genesis, &genesis_set, network, mode)?;
        let cache = StateCache::new(engine, head.height);
        Ok(Self {
            store,
            cache,
            executor,
            network,
            genesis_set,
            epoch,
            certified_through: 0,
            sets: BTreeMap::new(),
            verified: None,
        })
    }
}

impl<E: KvEngine> BlockReplayer<E> {
    /// Height of the last committed block (0: the genesis state).
    pub fn height(&self) -> u64 {
        self.store.head().map_or(0, |h| h.height)
    }

    pub fn state_root(&self) -> Digest {
        self.store.state_root()
    }

    /// The epoch of the next block.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The newest height vouched for by a verified certificate (0 if none yet).
    pub fn certified_through(&self) -> u64 {
        self.certified_through
    }

    pub fn store(&self) -> &ChainStore<E> {
        &self.store
    }

    /// Verifies, re-executes and commits `block` (see the module docs).
    pub fn apply(
        &mut self,
        block: &Block,
        certificate: Option<&BlockCertificate>,
    ) -> Result<Applied, ReplayError> {
        let header = &block.header;
        let height = header.height;
        self.store
            .check_extends_head(header)
            .map_err(|source| ReplayError::NotNext { height, source })?;
        if !block.body_matches_header() {
            return Err(ReplayError::BodyMismatch { height });
        }
        if header.epoch != self.epoch {
            return Err(ReplayError::WrongEpoch {
                height,
                expected: self.epoch,
                got: header.epoch,
            });
        }
        // The very certificate that verified over this very header need not be
        // verified again.
        let verified = |c: &BlockCertificate| {
            self.verified.as_ref() == Some(c) && c.header_digest == header.digest()
        };
        if let Some(certificate) = certificate
            && !verified(certificate)
        {
            self.check_certificate(header, certificate)?;
        }

        let txs = &block.body.transactions;
        let outcome = self
            .executor
            .execute_block_at(&self.cache, txs, header.timestamp_ms)
            .map_err(|source| ReplayError::Execution { height, source })?;
        let entered = entered_epoch(&outcome.events);
        if let Some(entered) = entered
            && entered != header.epoch + 1
        {
            return Err(ReplayError::EpochSkip {
                height,
                epoch: header.epoch,
                entered,
            });
        }
        let extra = events_batch(height, &outcome.events);
        let state_root = self
            .store
            .commit_block(
                block,
                &outcome.receipts,
                &outcome.state_changes(),
                certificate,
                extra,
            )
            .map_err(|source| match source {
                ChainStoreError::Storage(_) => ReplayError::Store(source),
                source => ReplayError::Diverged { height, source },
            })?;
        self.cache.apply_block(height, &outcome)?;
        if let Some(entered) = entered {
            self.epoch = entered;
        }
        if certificate.is_some() {
            self.certified_through = height;
        }
        Ok(Applied {
            height,
            state_root,
            transactions: txs.len(),
            certified: certificate.is_some(),
            entered_epoch: entered,
        })
    }

    /// The writer's parts, for a generator that makes blocks the way a node's
    /// executor does ([`crate::synthetic`]); it reports epochs with [`Self::entered`].
    pub(crate) fn parts(&mut self) -> (&mut ChainStore<E>, &StateCache<E>, &Executor) {
        (&mut self.store, &self.cache, &self.executor)
    }

    /// A block made through [`Self::parts`] entered `epoch`.
    pub(crate) fn entered(&mut self, epoch: u64) {
        assert_eq!(epoch, self.epoch + 1, "epochs are entered one at a time");
        self.epoch = epoch;
    }

    /// Checks `certificate` over `header` against the set of the header's epoch in
    /// the records replayed so far; the header need not be next (block sync checks
    /// the certificate that covers a run of blocks before committing any of them).
    /// A certificate that verified is not verified again when its block is applied.
    pub fn check_certificate(
        &mut self,
        header: &dualchain_core::types::BlockHeader,
        certificate: &BlockCertificate,
    ) -> Result<(), ReplayError> {
        let height = header.height;
        let set = self.set_of(height, header.epoch)?;
        certificate
            .verify(header, &set, self.network)
            .map_err(|source| ReplayError::Certificate { height, source })?;
        self.verified = Some(certificate.clone());
        Ok(())
    }

    /// The set of `epoch` in the records replayed so far.
    fn set_of(&mut self, height: u64, epoch: u64) -> Result<Arc<ValidatorSet>, ReplayError> {
        if let Some(set) = self.sets.get(&epoch) {
            return Ok(set.clone());
        }
        let set = committed_set(&self.cache, epoch)?
            .ok_or(ReplayError::UnknownSet { height, epoch })?
            .with_known_keys(&self.genesis_set);
        let set = Arc::new(set);
        self.sets.insert(epoch, set.clone());
        while self.sets.len() > SETS_KEPT {
            self.sets.pop_first();
        }
        Ok(set)
    }
}

#[cfg(test)]
#[path = "replay_tests.rs"]
pub(crate) mod tests;
