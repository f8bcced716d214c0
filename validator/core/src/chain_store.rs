//! The typed storage layer of one chain: one owner per keyspace.
//!
//! - [`ChainStore`] is the chain's only **writer**: it keeps the chain's sparse Merkle
//!   tree in step with the `state` column and commits each block — header and body,
//!   receipts, state changes, optional certificate and the new chain head — as a
//!   single [`WriteBatch`]. The head record is the commit point: after a crash,
//!   whatever it names is complete, and nothing of a later block is visible.
//!   [`ChainStore::seal_and_commit`] is the production path: it applies the executed
//!   changes to the live tree **once**, takes the root from it for the header, and
//!   writes; [`ChainStore::commit_block`] commits a block made elsewhere (tests, block
//!   sync) after checking its declared roots.
//! - [`ChainReader`] is the cloneable **reader** the API and the runtime share:
//!   blocks, certificates, receipts, state values, the head and state proofs. It never
//!   sees a tree or head of a block whose batch is not durable: the writer updates
//!   both under their locks only after the write succeeded (or rolls the tree back).
//!
//! The tree is rebuilt from the `state` column when the store opens (in parallel) and
//! its root is checked against the head's recorded state root, so silent corruption of
//! the state column is detected at start-up rather than at the next block.
//!
//! If a commit fails (the engine refuses the batch, or the block's state root is not
//! the root its changes produce), the in-memory tree is rolled back and nothing is
//! written: a failed commit loses nothing and leaves the store usable.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use dualchain_merkle::{Hash32, SparseMerkleTree, hash_key, hash_value};
use dualchain_storage::meta::{ChainHead, read_head};
use dualchain_storage::{Column, KvEngine, StorageError, WriteBatch, keys};

use crate::encoding::{Canonical, DecodeError};
use crate::hash::Digest;
use crate::types::{
    Attestation, Block, BlockBody, BlockCertificate, BlockEvents, BlockHeader, ChainId, Receipt,
    RecordProof, ValidatorSet, is_attestable,
};
use dualchain_merkle::Proof;

/// A change to one state key: `Some(value)` to set, `None` to delete.
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// Why the chain store refused an operation.
#[derive(Debug, thiserror::Error)]
pub enum ChainStoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("stored {what} does not decode: {source}")]
    Decode {
        what: &'static str,
        source: DecodeError,
    },
    #[error("database belongs to chain tag {found}, not {expected}")]
    WrongChain { expected: ChainId, found: u8 },
    #[error("block {got} does not follow the head {head:?} (expected height {expected})")]
    NotNextHeight {
        head: Option<u64>,
        expected: u64,
        got: u64,
    },
    #[error("block {height} names parent {got} but the head block is {expected}")]
    WrongParent {
        height: u64,
        expected: Digest,
        got: Digest,
    },
    #[error("block {height} declares state root {declared} but its changes produce {computed}")]
    StateRootMismatch {
        height: u64,
        declared: Digest,
        computed: Digest,
    },
    #[error("block {height} carries {receipts} receipts for {txs} transactions")]
    ReceiptCount {
        height: u64,
        receipts: usize,
        txs: usize,
    },
    #[error("block {height}: receipts root in the header does not match the receipts")]
    ReceiptsRoot { height: u64 },
    #[error("block {height}: the body does not match the header")]
    BodyMismatch { height: u64 },
    #[error(
        "the state column's Merkle root {computed} differs from the head's recorded root {recorded}: the state is corrupt"
    )]
    CorruptState { recorded: Digest, computed: Digest },
    #[error("genesis state can only be written into an empty store")]
    AlreadyInitialised,
    #[error("no block at height {0}")]
    NoBlock(u64),
}

/// What a reader shares with the writer.
struct Shared<E> {
    engine: E,
    chain: ChainId,
    /// Written only by the [`ChainStore`], after its batch is durable.
    head: RwLock<Option<ChainHead>>,
    /// The state tree at `head` (held by the writer's write lock while it commits).
    tree: RwLock<SparseMerkleTree>,
}

/// Header fields of a block that the sealer decides before execution.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockDraft {
    pub epoch: u64,
    pub slot: u64,
    pub timestamp_ms: u64,
}

/// The writer of one chain's storage over any [`KvEngine`] (one per database).
pub struct ChainStore<E: KvEngine> {
    shared: Arc<Shared<E>>,
}

/// A read-only view of one chain's storage, cheap to clone and share.
pub struct ChainReader<E: KvEngine> {
    shared: Arc<Shared<E>>,
}

impl<E: KvEngine> Clone for ChainReader<E> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<E: KvEngine> ChainStore<E> {
    /// Opens the chain's store, rebuilding and checking the state tree.
    pub fn open(engine: E, chain: ChainId) -> Result<Self, ChainStoreError> {
        let head = read_head(&engine)?;
        if let Some(h) = &head
            && h.chain != chain.tag()
        {
            return Err(ChainStoreError::WrongChain {
                expected: chain,
                found: h.chain,
            });
        }
        let tree = dualchain_storage::state::state_tree(&engine)?;
        if let Some(h) = &head
            && tree.root() != h.state_root
        {
            return Err(ChainStoreError::CorruptState {
                recorded: Digest(h.state_root),
                computed: Digest(tree.root()),
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                chain,
                head: RwLock::new(head),
                tree: RwLock::new(tree),
            }),
        })
    }

    /// A reader sharing this store's view (for the API and other tasks).
    pub fn reader(&self) -> ChainReader<E> {
        ChainReader {
            shared: self.shared.clone(),
        }
    }

    pub fn chain(&self) -> ChainId {
        self.shared.chain
    }

    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// The last committed block (height 0 is the genesis state), if any.
    pub fn head(&self) -> Option<ChainHead> {
        self.reader().head()
    }

    pub fn state_root(&self) -> Digest {
        self.reader().state_root()
    }

    /// The state tree at the head (for proofs and state commitments of tools).
    pub fn state_tree(&self) -> RwLockReadGuard<'_, SparseMerkleTree> {
        self.shared
            .tree
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ChainStoreError> {
        self.reader().get_state(key)
    }

    pub fn get_block(&self, height: u64) -> Result<Option<Block>, ChainStoreError> {
        self.reader().get_block(height)
    }

    /// The state root that `changes` would produce, without applying them (a copy of
    /// the tree: for tests and tools, never on the block path).
    pub fn preview_state_root(&self, changes: &[StateChange]) -> Digest {
        let mut tree = self.state_tree().clone();
        Digest(tree.update_batch(leaf_updates(changes)))
    }

    /// The state root that `changes` would produce, computed on the live tree and
    /// rolled back at once (no copy of the tree). Tools and tests only: the block path
    /// is [`Self::seal_and_commit`], which updates the tree once.
    pub fn state_root_after(&mut self, changes: &[StateChange]) -> Digest {
        let mut tree = self.write_tree();
        let undo = apply_to_tree(&mut tree, changes);
        let root = Digest(tree.root());
        tree.update_batch(undo);
        root
    }

    /// Writes the genesis state as height 0 of an empty store.
    pub fn init_genesis(
        &mut self,
        genesis_digest: Digest,
        changes: &[StateChange],
    ) -> Result<Digest, ChainStoreError> {
        if self.head().is_some() {
            return Err(ChainStoreError::AlreadyInitialised);
        }
        let shared = self.shared.clone();
        let mut tree = shared.tree.write().unwrap_or_else(PoisonError::into_inner);
        let undo = apply_to_tree(&mut tree, changes);
        let head = ChainHead {
            chain: self.chain().tag(),
            height: 0,
            block_digest: genesis_digest.0,
            state_root: tree.root(),
        };
        let mut batch = WriteBatch::with_capacity(changes.len() + 1);
        put_state_changes(&mut batch, changes);
        head.put_into(&mut batch);
        self.write_or_undo(&mut tree, batch, undo, head)?;
        Ok(Digest(head.state_root))
    }

    /// Seals and commits an executed block in one atomic batch: the next block after
    /// the head, holding `body` and its `receipts`, whose header takes the receipts
    /// root from `receipts` and the state root from the live tree after `changes`
    /// (computed once: the tree is updated in place and rolled back only if the write
    /// fails). `extra` writes of the caller go into the same batch.
    pub fn seal_and_commit(
        &mut self,
        draft: BlockDraft,
        body: BlockBody,
        receipts: &[Receipt],
        changes: &[StateChange],
        extra: WriteBatch,
    ) -> Result<Block, ChainStoreError> {
        let head = self.head();
        let height = head.map_or(1, |h| h.height + 1);
        if receipts.len() != body.transactions.len() {
            return Err(ChainStoreError::ReceiptCount {
                height,
                receipts: receipts.len(),
                txs: body.transactions.len(),
            });
        }
        let shared = self.shared.clone();
        let mut tree = shared.tree.write().unwrap_or_else(PoisonError::into_inner);
        let undo = apply_to_tree(&mut tree, changes);
        let header = BlockHeader {
            chain: self.chain(),
            height,
            epoch: draft.epoch,
            slot: draft.slot,
            parent: head.map_or(Digest::ZERO, |h| Digest(h.block_digest)),
            timestamp_ms: draft.timestamp_ms,
            vertices_root: body.vertices_root(),
            transactions_root: body.transactions_root(),
            receipts_root: Receipt::root(receipts),
            state_root: Digest(tree.root()),
            tx_count: body.transactions.len() as u32,
        };
        let block = Block { header, body };
        debug_assert!(block.body_matches_header());
        let proofs = attestable_proofs(&tree, self.chain(), changes);
        let mut extra = extra;
        extra.extend(epoch_proof_writes(&tree, height, changes));
        let batch = block_batch(&block, receipts, changes, &proofs, None, extra);
        let new_head = head_of(&block);
        self.write_or_undo(&mut tree, batch, undo, new_head)?;
        Ok(block)
    }

    /// Commits a block made elsewhere (with its declared roots) in one atomic batch,
    /// with the caller's `extra` writes.
    ///
    /// Checks that the block extends the head, that its body matches its header, that
    /// there is one receipt per transaction matching the receipts root, and that the
    /// header's state root is the root `changes` produce.
    pub fn commit_block(
        &mut self,
        block: &Block,
        receipts: &[Receipt],
        changes: &[StateChange],
        certificate: Option<&BlockCertificate>,
        extra: WriteBatch,
    ) -> Result<Digest, ChainStoreError> {
        let header = &block.header;
        self.check_extends_head(header)?;
        if !block.body_matches_header() {
            return Err(ChainStoreError::BodyMismatch {
                height: header.height,
            });
        }
        if receipts.len() != block.body.transactions.len() {
            return Err(ChainStoreError::ReceiptCount {
                height: header.height,
                receipts: receipts.len(),
                txs: block.body.transactions.len(),
            });
        }
        if Receipt::root(receipts) != header.receipts_root {
            return Err(ChainStoreError::ReceiptsRoot {
                height: header.height,
            });
        }

        let shared = self.shared.clone();
        let mut tree = shared.tree.write().unwrap_or_else(PoisonError::into_inner);
        let undo = apply_to_tree(&mut tree, changes);
        let computed = Digest(tree.root());
        if computed != header.state_root {
            tree.update_batch(undo);
            return Err(ChainStoreError::StateRootMismatch {
                height: header.height,
                declared: header.state_root,
                computed,
            });
        }
        let proofs = attestable_proofs(&tree, self.chain(), changes);
        let mut extra = extra;
        extra.extend(epoch_proof_writes(&tree, header.height, changes));
        let batch = block_batch(block, receipts, changes, &proofs, certificate, extra);
        self.write_or_undo(&mut tree, batch, undo, head_of(block))?;
        Ok(computed)
    }

    /// Stores a certificate that arrived after its block was committed.
    pub fn put_certificate(&self, certificate: &BlockCertificate) -> Result<(), ChainStoreError> {
        if self.get_block(certificate.height)?.is_none() {
            return Err(ChainStoreError::NoBlock(certificate.height));
        }
        let mut batch = WriteBatch::new();
        batch.put(
            Column::Certificates,
            keys::height_key(certificate.height).to_vec(),
            certificate.to_canonical_bytes(),
        );
        Ok(self.shared.engine.write(batch)?)
    }

    fn write_tree(&self) -> std::sync::RwLockWriteGuard<'_, SparseMerkleTree> {
        self.shared
            .tree
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `header` is of this chain and the next block after the head (height and
    /// parent digest): cheap, so a caller about to execute a block made elsewhere asks
    /// first.
    pub fn check_extends_head(&self, header: &BlockHeader) -> Result<(), ChainStoreError> {
        let head = self.head();
        let (expected_height, expected_parent) = match &head {
            Some(h) => (h.height + 1, Digest(h.block_digest)),
            None => (1, Digest::ZERO),
        };
        if header.chain != self.chain() {
            return Err(ChainStoreError::WrongChain {
                expected: self.chain(),
                found: header.chain.tag(),
            });
        }
        if header.height != expected_height {
            return Err(ChainStoreError::NotNextHeight {
                head: head.map(|h| h.height),
                expected: expected_height,
                got: header.height,
            });
        }
        if header.parent != expected_parent {
            return Err(ChainStoreError::WrongParent {
                height: header.height,
                expected: expected_parent,
                got: header.parent,
            });
        }
        Ok(())
    }

    /// Writes `batch`; on success publishes `head` (the tree already holds its state),
    /// on failure rolls the tree back.
    fn write_or_undo(
        &self,
        tree: &mut SparseMerkleTree,
        batch: WriteBatch,
        undo: Vec<(Hash32, Option<Hash32>)>,
        head: ChainHead,
    ) -> Result<(), ChainStoreError> {
        match self.shared.engine.write(batch) {
            Ok(()) => {
                assert_eq!(tree.root(), head.state_root, "tree and head must agree");
                *self
                    .shared
                    .head
                    .write()
                    .unwrap_or_else(PoisonError::into_inner) = Some(head);
                Ok(())
            }
            Err(e) => {
                // Every undo entry holds the value from before the batch, so a key
                // changed twice in one block is restored whichever entry wins.
                tree.update_batch(undo);
                Err(e.into())
            }
        }
    }
}

impl<E: KvEngine> ChainReader<E> {
    pub fn chain(&self) -> ChainId {
        self.shared.chain
    }

    pub fn engine(&self) -> &E {
        &self.shared.engine
    }

    /// The last committed block (height 0 is the genesis state), if any.
    pub fn head(&self) -> Option<ChainHead> {
        *self
            .shared
            .head
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The state root at the head.
    pub fn state_root(&self) -> Digest {
        self.head().map_or_else(
            || {
                Digest(
                    self.shared
                        .tree
                        .read()
                        .unwrap_or_else(PoisonError::into_inner)
                        .root(),
                )
            },
            |h| Digest(h.state_root),
        )
    }

    /// An inclusion (or non-inclusion) proof of `key` against the state root at the
    /// head, returned with that head.
    pub fn prove(&self, key: &[u8]) -> (Option<ChainHead>, Proof) {
        let tree = self
            .shared
            .tree
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let head = self.head();
        (head, tree.prove(&hash_key(key)))
    }

    pub fn get_state(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ChainStoreError> {
        Ok(self.shared.engine.get(Column::State, key)?)
    }

    pub fn get_block(&self, height: u64) -> Result<Option<Block>, ChainStoreError> {
        self.get_decoded(Column::Blocks, &keys::height_key(height), "block")
    }

    /// The validator set of `epoch` in the chain's committed records (a chain keeps
    /// the set of every epoch it entered; `None` for one it has not).
    pub fn validator_set(&self, epoch: u64) -> Result<Option<ValidatorSet>, ChainStoreError> {
        let key = crate::types::validator_set_key(epoch).state_key();
        self.get_decoded(Column::State, &key, "validator set")
    }

    pub fn get_certificate(
        &self,
        height: u64,
    ) -> Result<Option<BlockCertificate>, ChainStoreError> {
        self.get_decoded(
            Column::Certificates,
            &keys::height_key(height),
            "certificate",
        )
    }

    /// The attestable records the block at `height` changed, with their inclusion
    /// proofs against its state root, in state-change order.
    pub fn record_proofs(&self, height: u64) -> Result<Vec<RecordProof>, ChainStoreError> {
        self.shared
            .engine
            .scan_prefix(Column::Meta, &record_proof_height_prefix(height))?
            .map(|item| {
                let (_, bytes) = item?;
                RecordProof::from_canonical_bytes(&bytes).map_err(|source| {
                    ChainStoreError::Decode {
                        what: "record proof",
                        source,
                    }
                })
            })
            .collect()
    }

    /// The attestation of the record `key` as the block at `height` changed it: `None`
    /// when that block did not change an attestable `key` or this node does not hold the
    /// block's certificate.
    pub fn attestation(
        &self,
        height: u64,
        key: &[u8],
    ) -> Result<Option<Attestation>, ChainStoreError> {
        let Some(proof) = self.get_decoded::<RecordProof>(
            Column::Meta,
            &record_proof_key(height, key),
            "record proof",
        )?
        else {
            return Ok(None);
        };
        self.attest_with(height, vec![proof])
            .map(|list| list.and_then(|mut list| list.pop()))
    }

    /// Attestations of every attestable record the block at `height` changed; `None`
    /// when this node does not hold the block's certificate (yet).
    pub fn attestations_at(
        &self,
        height: u64,
    ) -> Result<Option<Vec<Attestation>>, ChainStoreError> {
        let proofs = self.record_proofs(height)?;
        if proofs.is_empty() {
            return Ok(Some(Vec::new()));
        }
        self.attest_with(height, proofs)
    }

    fn attest_with(
        &self,
        height: u64,
        proofs: Vec<RecordProof>,
    ) -> Result<Option<Vec<Attestation>>, ChainStoreError> {
        let Some(certificate) = self.get_certificate(height)? else {
            return Ok(None);
        };
        let block = self
            .get_block(height)?
            .ok_or(ChainStoreError::NoBlock(height))?;
        Ok(Some(
            proofs
                .into_iter()
                .map(|proof| proof.attest(block.header.clone(), certificate.clone()))
                .collect(),
        ))
    }

    /// The link of this chain's epoch chain that proves the validator set of `epoch`
    /// (at least 1): the attestation of the set's record by the block of the epoch
    /// before that wrote it. A link received and verified while bootstrapping from a
    /// snapshot is stored whole ([`epoch_links_batch`]); otherwise it is assembled
    /// from the proof kept when the block was committed and the block's certificate.
    /// `None` when this node holds neither (the certificate may not be formed yet).
    pub fn epoch_link(&self, epoch: u64) -> Result<Option<Attestation>, ChainStoreError> {
        if let Some(link) =
            self.get_decoded::<Attestation>(Column::Meta, &epoch_link_key(epoch), "epoch link")?
        {
            return Ok(Some(link));
        }
        let Some(bytes) = self
            .shared
            .engine
            .get(Column::Meta, &epoch_proof_key(epoch))?
        else {
            return Ok(None);
        };
        let (height, proof) = decode_epoch_proof(&bytes)?;
        self.attest_with(height, vec![proof])
            .map(|list| list.and_then(|mut list| list.pop()))
    }

    /// The cross-chain events of the block at `height` (empty when it had none).
    pub fn events(&self, height: u64) -> Result<BlockEvents, ChainStoreError> {
        Ok(self
            .get_decoded(Column::Meta, &events_key(height), "block events")?
            .unwrap_or_default())
    }

    pub fn get_receipts(&self, height: u64) -> Result<Vec<Receipt>, ChainStoreError> {
        self.shared
            .engine
            .scan_prefix(Column::Receipts, &keys::height_key(height))?
            .map(|item| {
                let (_, bytes) = item?;
                Receipt::from_canonical_bytes(&bytes).map_err(|source| ChainStoreError::Decode {
                    what: "receipt",
                    source,
                })
            })
            .collect()
    }

    fn get_decoded<T: Canonical>(
        &self,
        column: Column,
        key: &[u8],
        what: &'static str,
    ) -> Result<Option<T>, ChainStoreError> {
        self.shared
            .engine
            .get(column, key)?
            .map(|bytes| {
                T::from_canonical_bytes(&bytes)
                    .map_err(|source| ChainStoreError::Decode { what, source })
            })
            .transpose()
    }
}

fn head_of(block: &Block) -> ChainHead {
    ChainHead {
        chain: block.header.chain.tag(),
        height: block.header.height,
        block_digest: block.header.digest().0,
        state_root: block.header.state_root.0,
    }
}

/// The one batch of a block: block, receipts, state, certificate, the caller's
/// extra writes, and the head record last.
fn block_batch(
    block: &Block,
    receipts: &[Receipt],
    changes: &[StateChange],
    proofs: &[RecordProof],
    certificate: Option<&BlockCertificate>,
    extra: WriteBatch,
) -> WriteBatch {
    let height = block.header.height;
    let mut batch =
        WriteBatch::with_capacity(receipts.len() + changes.len() + proofs.len() + extra.len() + 3);
    for proof in proofs {
        batch.put(
            Column::Meta,
            record_proof_key(height, &proof.key),
            proof.to_canonical_bytes(),
        );
    }
    batch.put(
        Column::Blocks,
        keys::height_key(height).to_vec(),
        block.to_canonical_bytes(),
    );
    for (index, receipt) in receipts.iter().enumerate() {
        batch.put(
            Column::Receipts,
            keys::receipt_key(height, index as u32).to_vec(),
            receipt.to_canonical_bytes(),
        );
    }
    put_state_changes(&mut batch, changes);
    if let Some(cert) = certificate {
        batch.put(
            Column::Certificates,
            keys::height_key(height).to_vec(),
            cert.to_canonical_bytes(),
        );
    }
    batch.extend(extra);
    head_of(block).put_into(&mut batch);
    batch
}

/// `meta` prefixes of the epoch chain: the proof of an epoch's validator set record
/// (height of the block that wrote it, then the [`RecordProof`]), and a whole link
/// (an [`Attestation`]) received from peers.
const EPOCH_PROOF_PREFIX: &[u8] = b"epoch-proof/";
const EPOCH_LINK_PREFIX: &[u8] = b"epoch-link/";

fn epoch_proof_key(epoch: u64) -> Vec<u8> {
    [EPOCH_PROOF_PREFIX, &epoch.to_be_bytes()].concat()
}

fn epoch_link_key(epoch: u64) -> Vec<u8> {
    [EPOCH_LINK_PREFIX, &epoch.to_be_bytes()].concat()
}

fn decode_epoch_proof(bytes: &[u8]) -> Result<(u64, RecordProof), ChainStoreError> {
    let corrupt = |detail: String| ChainStoreError::Decode {
        what: "epoch proof",
        source: DecodeError::Invalid {
            what: "epoch proof",
            detail,
        },
    };
    let (height, proof) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt(format!("{} bytes, fewer than a height", bytes.len())))?;
    let proof =
        RecordProof::from_canonical_bytes(proof).map_err(|source| ChainStoreError::Decode {
            what: "epoch proof",
            source,
        })?;
    Ok((u64::from_le_bytes(*height), proof))
}

/// The writes that keep, with the block at `height`, the inclusion proof of every
/// validator set record it wrote (against `tree`, already updated): the links of the
/// epoch chain a node bootstrapping from a snapshot verifies, on either chain (Alpha
/// writes a set at its boundary block, Delta when the set's attestation applies).
fn epoch_proof_writes(tree: &SparseMerkleTree, height: u64, changes: &[StateChange]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (key, value) in changes {
        let Some(value) = value else { continue };
        let Some(epoch) = set_record_epoch(key, value) else {
            continue;
        };
        let proof = RecordProof {
            key: key.clone(),
            value: value.clone(),
            proof: tree.prove(&hash_key(key)),
        };
        let mut bytes = height.to_le_bytes().to_vec();
        bytes.extend_from_slice(&proof.to_canonical_bytes());
        batch.put(Column::Meta, epoch_proof_key(epoch), bytes);
    }
    batch
}

/// The epoch of a validator set record (`key` names the set's own epoch), else `None`.
fn set_record_epoch(key: &[u8], value: &[u8]) -> Option<u64> {
    let record = crate::types::RecordKey::from_state_key(key)?;
    if record.kind != crate::types::RecordKind::ValidatorSet {
        return None;
    }
    let set = ValidatorSet::from_canonical_bytes(value).ok()?;
    (record == crate::types::validator_set_key(set.epoch())).then_some(set.epoch())
}

/// Stores verified links of the epoch chain whole, for a node whose store holds no
/// blocks of those epochs (bootstrapped from a snapshot) to serve them in turn.
pub fn epoch_links_batch(links: &[Attestation]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for link in links {
        if let Some(epoch) = set_record_epoch(&link.key, &link.value) {
            batch.put(
                Column::Meta,
                epoch_link_key(epoch),
                link.to_canonical_bytes(),
            );
        }
    }
    batch
}

/// Prefix of the stored record proofs in the `meta` column: prefix, height (big
/// endian, so a height's proofs are one prefix scan), state key.
const RECORD_PROOF_PREFIX: &[u8] = b"record-proof/";
const EVENTS_PREFIX: &[u8] = b"events/";

/// The `meta` key of the cross-chain events of the block at `height` (written by the
/// block's executor into the block's batch; see [`ChainReader::events`]).
pub fn events_key(height: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(EVENTS_PREFIX.len() + 8);
    out.extend_from_slice(EVENTS_PREFIX);
    out.extend_from_slice(&height.to_be_bytes());
    out
}

fn record_proof_key(height: u64, key: &[u8]) -> Vec<u8> {
    let mut out = record_proof_height_prefix(height);
    out.extend_from_slice(key);
    out
}

fn record_proof_height_prefix(height: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_PROOF_PREFIX.len() + 8 + 34);
    out.extend_from_slice(RECORD_PROOF_PREFIX);
    out.extend_from_slice(&height.to_be_bytes());
    out
}

/// Inclusion proofs, against `tree` (already updated with `changes`), of the changed
/// records the other chain acts on ([`is_attestable`]). A key changed twice in one
/// batch is proven once, with its final value.
fn attestable_proofs(
    tree: &SparseMerkleTree,
    chain: ChainId,
    changes: &[StateChange],
) -> Vec<RecordProof> {
    let mut seen = std::collections::BTreeSet::new();
    let mut proofs = Vec::new();
    for (key, value) in changes.iter().rev() {
        if !seen.insert(key.as_slice()) {
            continue;
        }
        let Some(value) = value else { continue };
        if is_attestable(chain, key, value) {
            proofs.push(RecordProof {
                key: key.clone(),
                value: value.clone(),
                proof: tree.prove(&hash_key(key)),
            });
        }
    }
    proofs.reverse();
    proofs
}

/// Applies `changes` to the tree and returns the updates that undo them.
fn apply_to_tree(
    tree: &mut SparseMerkleTree,
    changes: &[StateChange],
) -> Vec<(Hash32, Option<Hash32>)> {
    let updates = leaf_updates(changes);
    let undo = updates
        .iter()
        .map(|(key, _)| (*key, tree.get(key)))
        .collect::<Vec<_>>();
    tree.update_batch(updates);
    undo
}

fn leaf_updates(changes: &[StateChange]) -> Vec<(Hash32, Option<Hash32>)> {
    changes
        .iter()
        .map(|(key, value)| (hash_key(key), value.as_deref().map(hash_value)))
        .collect()
}

fn put_state_changes(batch: &mut WriteBatch, changes: &[StateChange]) {
    for (key, value) in changes {
        match value {
            Some(v) => batch.put(Column::State, key.clone(), v.clone()),
            None => batch.delete(Column::State, key.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::NetworkId;
    use crate::hash::HashDomain;

    const NET: NetworkId = NetworkId(Digest([0x11; 32]));
    use crate::types::{BlockBody, ReceiptStatus};
    use dualchain_storage::MemoryEngine;
    use std::sync::Arc;

    fn block_after(
        store: &ChainStore<Arc<MemoryEngine>>,
        receipts: &[Receipt],
        changes: &[StateChange],
    ) -> Block {
        let head = store.head();
        let body = BlockBody::default();
        Block {
            header: BlockHeader {
                chain: ChainId::Delta,
                height: head.map_or(1, |h| h.height + 1),
                epoch: 0,
                slot: 0,
                parent: head.map_or(Digest::ZERO, |h| Digest(h.block_digest)),
                timestamp_ms: 0,
                vertices_root: body.vertices_root(),
                transactions_root: body.transactions_root(),
                receipts_root: Receipt::root(receipts),
                state_root: store.preview_state_root(changes),
                tx_count: 0,
            },
            body,
        }
    }

    /// A certificate of `header` by the first three of `keys`.
    fn certify(keys: &[crate::crypto::ValidatorKeypair], header: &BlockHeader) -> BlockCertificate {
        BlockCertificate::from_votes(
            header,
            keys.iter()
                .take(3)
                .enumerate()
                .map(|(i, k)| (i as u16, BlockCertificate::vote(k, header, NET))),
        )
    }

    fn change(k: &str, v: Option<&str>) -> StateChange {
        (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec()))
    }

    #[test]
    fn sealed_blocks_keep_proofs_of_attestable_records_until_certified() {
        use crate::crypto::ValidatorKeypair;
        use crate::types::{
            AttestationContext, LockRecord, LockStatus, RecordKey, RecordKind, ValidatorSet,
        };
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Alpha).unwrap();
        store
            .init_genesis(HashDomain::Genesis.hash(b"g"), &[change("a", Some("1"))])
            .unwrap();
        let lock = LockRecord {
            owner: crate::types::Address([5; 32]),
            amount: 500,
            unlock_at_ms: 9,
            status: LockStatus::Locked,
        };
        let lock_key = RecordKey::new(RecordKind::Lock, [1; 32])
            .state_key()
            .to_vec();
        let weight_key = RecordKey::new(RecordKind::StakeWeight, [2; 32])
            .state_key()
            .to_vec();
        let changes = vec![
            (lock_key.clone(), Some(b"first".to_vec())),
            (weight_key, Some(7u64.to_le_bytes().to_vec())),
            change("a", Some("2")),
            (lock_key.clone(), Some(lock.to_canonical_bytes())),
        ];
        let draft = BlockDraft::default();
        let block = store
            .seal_and_commit(
                draft,
                BlockBody::default(),
                &[],
                &changes,
                WriteBatch::new(),
            )
            .unwrap();
        let proofs = store.reader().record_proofs(1).unwrap();
        assert_eq!(proofs.len(), 1, "only the lock, once, with its final value");
        assert_eq!(proofs[0].key, lock_key);
        assert_eq!(proofs[0].value, lock.to_canonical_bytes());
        assert_eq!(store.reader().attestations_at(1).unwrap(), None);
        assert_eq!(store.reader().record_proofs(2).unwrap(), vec![]);

        let keys: Vec<_> = (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 90; 32]))
            .collect();
        let set = ValidatorSet::new(0, keys.iter().map(|k| (k.public().clone(), 1))).unwrap();
        store
            .put_certificate(&certify(&keys, &block.header))
            .unwrap();
        // Committing more blocks moves the head; the proof still attests height 1.
        let more = vec![change("a", Some("3"))];
        store
            .seal_and_commit(
                BlockDraft::default(),
                BlockBody::default(),
                &[],
                &more,
                WriteBatch::new(),
            )
            .unwrap();
        let reopened = ChainStore::open(engine, ChainId::Alpha).unwrap();
        let attestations = reopened.reader().attestations_at(1).unwrap().unwrap();
        assert_eq!(attestations.len(), 1);
        assert_eq!(
            reopened
                .reader()
                .attestation(1, &lock_key)
                .unwrap()
                .as_ref(),
            Some(&attestations[0])
        );
        let sets = |epoch: u64| (epoch == 0).then_some(&set);
        let context = AttestationContext {
            target: ChainId::Delta,
            validator_sets: &sets,
            newest_source_height: 0,
            freshness_blocks: 10,
            consumed: &|_| false,
            network: NET,
        };
        attestations[0].verify(&context, None).unwrap();
    }

    #[test]
    fn a_block_that_writes_a_validator_set_keeps_its_epoch_link_on_either_chain() {
        use crate::crypto::ValidatorKeypair;
        use crate::types::{validator_set_key, verify_epoch_chain_of};
        let keys: Vec<_> = (0..4u8)
            .map(|i| ValidatorKeypair::from_seed(&[i + 40; 32]))
            .collect();
        let set = |epoch| ValidatorSet::new(epoch, keys.iter().map(|k| (k.public().clone(), 1)));
        let (genesis_set, next) = (set(0).unwrap(), set(1).unwrap());
        let engine = Arc::new(MemoryEngine::new());
        // Delta: its set records are not attestable to the other chain, yet it keeps
        // the proof of each for the epoch chain.
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(HashDomain::Genesis.hash(b"g"), &[change("a", Some("1"))])
            .unwrap();
        let set_key = validator_set_key(1).state_key().to_vec();
        let wrong_epoch_key = validator_set_key(7).state_key().to_vec();
        let changes = vec![
            (set_key.clone(), Some(next.to_canonical_bytes())),
            // A set under another epoch's key is not a link.
            (wrong_epoch_key, Some(next.to_canonical_bytes())),
        ];
        let block = store
            .seal_and_commit(
                BlockDraft::default(),
                BlockBody::default(),
                &[],
                &changes,
                WriteBatch::new(),
            )
            .unwrap();
        assert_eq!(store.reader().record_proofs(1).unwrap(), vec![]);
        assert_eq!(
            store.reader().epoch_link(1).unwrap(),
            None,
            "no certificate yet"
        );
        assert_eq!(store.reader().epoch_link(7).unwrap(), None);
        store
            .put_certificate(&certify(&keys, &block.header))
            .unwrap();
        store
            .seal_and_commit(
                BlockDraft::default(),
                BlockBody::default(),
                &[],
                &[change("a", Some("2"))],
                WriteBatch::new(),
            )
            .unwrap();
        let link = store.reader().epoch_link(1).unwrap().expect("certified");
        assert_eq!(link.key, set_key);
        let proven = verify_epoch_chain_of(
            ChainId::Delta,
            NET,
            &genesis_set,
            std::slice::from_ref(&link),
        );
        assert_eq!(proven, Ok(next.clone()));
        assert!(
            verify_epoch_chain_of(
                ChainId::Alpha,
                NET,
                &genesis_set,
                std::slice::from_ref(&link)
            )
            .is_err(),
            "a Delta link is not an Alpha one"
        );

        // A node that holds none of those blocks stores the link whole and serves it.
        let bare = Arc::new(MemoryEngine::new());
        let other = ChainStore::open(bare.clone(), ChainId::Delta).unwrap();
        assert_eq!(other.reader().epoch_link(1).unwrap(), None);
        bare.write(epoch_links_batch(std::slice::from_ref(&link)))
            .unwrap();
        assert_eq!(other.reader().epoch_link(1).unwrap(), Some(link));
    }

    #[test]
    fn blocks_commit_in_order_and_survive_reopen() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(
                HashDomain::Genesis.hash(b"g"),
                &[change("alice", Some("100"))],
            )
            .unwrap();
        for i in 0..5 {
            let changes = vec![
                change("alice", Some(&format!("{}", 100 - i))),
                change(&format!("k{i}"), Some("v")),
                change("k0", if i == 3 { None } else { Some("x") }),
            ];
            let block = block_after(&store, &[], &changes);
            let root = store
                .commit_block(&block, &[], &changes, None, WriteBatch::new())
                .unwrap();
            assert_eq!(root, block.header.state_root);
        }
        assert_eq!(store.head().unwrap().height, 5);
        let reopened = ChainStore::open(engine, ChainId::Delta).unwrap();
        assert_eq!(reopened.state_root(), store.state_root());
        assert_eq!(reopened.get_state(b"alice").unwrap(), Some(b"96".to_vec()));
        assert!(reopened.get_block(5).unwrap().is_some());
        assert!(ChainStore::open(reopened.engine().clone(), ChainId::Alpha).is_err());
    }

    #[test]
    fn a_refused_write_rolls_back_the_tree_and_writes_nothing() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(Digest::ZERO, &[change("a", Some("1"))])
            .unwrap();
        let root_before = store.state_root();
        let changes = vec![
            change("a", Some("2")),
            change("a", Some("3")),
            change("b", Some("1")),
        ];
        let block = block_after(&store, &[], &changes);
        engine.set_fail_writes(true);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None, WriteBatch::new()),
            Err(ChainStoreError::Storage(_))
        ));
        assert_eq!(store.state_root(), root_before);
        assert_eq!(store.head().unwrap().height, 0);
        engine.set_fail_writes(false);
        store
            .commit_block(&block, &[], &changes, None, WriteBatch::new())
            .unwrap();
        assert_eq!(store.get_state(b"a").unwrap(), Some(b"3".to_vec()));
    }

    #[test]
    fn wrong_root_parent_height_and_receipts_are_refused() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine, ChainId::Delta).unwrap();
        let changes = vec![change("a", Some("1"))];
        let mut block = block_after(&store, &[], &changes);
        block.header.state_root = Digest([1; 32]);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None, WriteBatch::new()),
            Err(ChainStoreError::StateRootMismatch { .. })
        ));
        assert_eq!(store.state_root(), Digest(dualchain_merkle::EMPTY_ROOT));

        let mut block = block_after(&store, &[], &changes);
        block.header.height = 2;
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None, WriteBatch::new()),
            Err(ChainStoreError::NotNextHeight { .. })
        ));
        let mut block = block_after(&store, &[], &changes);
        block.header.parent = Digest([9; 32]);
        assert!(matches!(
            store.commit_block(&block, &[], &changes, None, WriteBatch::new()),
            Err(ChainStoreError::WrongParent { .. })
        ));
        let receipt = Receipt {
            tx_digest: Digest::ZERO,
            status: ReceiptStatus::Success,
            fee_charged: 0,
        };
        let block = block_after(&store, &[], &changes);
        assert!(matches!(
            store.commit_block(&block, &[receipt], &changes, None, WriteBatch::new()),
            Err(ChainStoreError::ReceiptCount { .. })
        ));
    }

    #[test]
    fn seal_and_commit_fills_the_roots_once_and_readers_see_only_durable_blocks() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Delta).unwrap();
        store
            .init_genesis(Digest::ZERO, &[change("a", Some("1"))])
            .unwrap();
        let reader = store.reader();
        let changes = vec![change("a", Some("2")), change("b", Some("1"))];
        let expected_root = store.preview_state_root(&changes);
        let draft = BlockDraft {
            epoch: 0,
            slot: 7,
            timestamp_ms: 21_000,
        };

        engine.set_fail_writes(true);
        assert!(matches!(
            store.seal_and_commit(
                draft.clone(),
                BlockBody::default(),
                &[],
                &changes,
                WriteBatch::new()
            ),
            Err(ChainStoreError::Storage(_))
        ));
        assert_eq!(reader.head().unwrap().height, 0);
        assert_ne!(reader.state_root(), expected_root);
        engine.set_fail_writes(false);

        let mut extra = WriteBatch::new();
        extra.put(Column::Meta, b"extra".to_vec(), b"x".to_vec());
        let block = store
            .seal_and_commit(draft, BlockBody::default(), &[], &changes, extra)
            .unwrap();
        assert_eq!(block.header.height, 1);
        assert_eq!(block.header.slot, 7);
        assert_eq!(block.header.state_root, expected_root);
        assert_eq!(block.header.parent, Digest::ZERO);
        assert!(block.body_matches_header());
        let head = reader.head().unwrap();
        assert_eq!(head.height, 1);
        assert_eq!(head.block_digest, block.header.digest().0);
        assert_eq!(reader.state_root(), expected_root);
        assert_eq!(reader.get_block(1).unwrap(), Some(block.clone()));
        assert_eq!(
            engine.get(Column::Meta, b"extra").unwrap(),
            Some(b"x".to_vec())
        );
        let (at, proof) = reader.prove(b"b");
        assert_eq!(at, Some(head));
        proof
            .verify(
                &expected_root.0,
                &hash_key(b"b"),
                Some(&dualchain_merkle::hash_value(b"1")),
            )
            .unwrap();
        // The next block names the executed header as its parent.
        let next = store
            .seal_and_commit(
                BlockDraft::default(),
                BlockBody::default(),
                &[],
                &[],
                WriteBatch::new(),
            )
            .unwrap();
        assert_eq!(next.header.parent, block.header.digest());
        // A block with receipts for transactions it does not hold is refused.
        let receipt = Receipt {
            tx_digest: Digest::ZERO,
            status: ReceiptStatus::Success,
            fee_charged: 0,
        };
        assert!(matches!(
            store.seal_and_commit(
                BlockDraft::default(),
                BlockBody::default(),
                &[receipt],
                &[],
                WriteBatch::new()
            ),
            Err(ChainStoreError::ReceiptCount { .. })
        ));
    }

    #[test]
    fn corrupt_state_is_detected_at_open() {
        let engine = Arc::new(MemoryEngine::new());
        let mut store = ChainStore::open(engine.clone(), ChainId::Alpha).unwrap();
        store
            .init_genesis(Digest::ZERO, &[change("a", Some("1"))])
            .unwrap();
        let mut batch = WriteBatch::new();
        batch.put(Column::State, b"a".to_vec(), b"tampered".to_vec());
        engine.write(batch).unwrap();
        assert!(matches!(
            ChainStore::open(engine, ChainId::Alpha),
            Err(ChainStoreError::CorruptState { .. })
        ));
    }
}
