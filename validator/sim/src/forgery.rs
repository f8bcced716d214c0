//! Forged attestations a Byzantine validator relays to the honest validators' Delta:
//! a real certified lock whose value it rewrote (a thousand times the amount, to
//! itself), and a lock of a block that never existed, certified by its own signature
//! alone. Delta must refuse both with typed receipts and create no stake: the
//! records check ([`crate::checks::check_records`]) finds any stake without a
//! matching Alpha lock.

use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{
    Address, Attestation, BlockCertificate, BlockHeader, ChainId, LockRecord, LockStatus,
    RecordKey, RecordKind, RecordProof, ValidatorIndex,
};
use dualchain_merkle::{SparseMerkleTree, hash_key, hash_value};

/// The account a Byzantine validator sends its forgeries from.
pub fn forger_address(index: ValidatorIndex) -> Address {
    Address(blake3::derive_key(
        "dualchain 2026-12 simulated forger v1",
        &index.to_le_bytes(),
    ))
}

/// The `k`-th account a Byzantine validator sends unpayable transfers from: never
/// funded, so every transfer from it could only fail.
pub fn spammer_address(index: ValidatorIndex, k: u64) -> Address {
    let mut seed = [0u8; 10];
    seed[..2].copy_from_slice(&index.to_le_bytes());
    seed[2..].copy_from_slice(&k.to_le_bytes());
    Address(blake3::derive_key(
        "dualchain 2026-12 simulated spammer v1",
        &seed,
    ))
}

/// `real` with its lock rewritten: the forger owns it, and it holds 1000 times more.
/// The inclusion proof no longer matches the value.
pub fn tampered(real: &Attestation, forger: Address) -> Option<Attestation> {
    let mut lock = LockRecord::from_canonical_bytes(&real.value).ok()?;
    lock.owner = forger;
    lock.amount = lock.amount.saturating_mul(1000);
    let mut forged = real.clone();
    forged.value = lock.to_canonical_bytes();
    Some(forged)
}

/// A lock of `amount` for `forger` in an Alpha block at `height` that no quorum
/// finalized: the proof is sound against the invented state root, the certificate
/// carries only the forger's vote.
pub fn invented(
    (key, network): (&ValidatorKeypair, NetworkId),
    index: ValidatorIndex,
    forger: Address,
    height: u64,
    amount: u64,
) -> Attestation {
    let lock = LockRecord {
        owner: forger,
        amount,
        unlock_at_ms: u64::MAX,
        status: LockStatus::Locked,
    };
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&height.to_le_bytes());
    id[8..10].copy_from_slice(&index.to_le_bytes());
    let state_key = RecordKey::new(RecordKind::Lock, id).state_key().to_vec();
    let value = lock.to_canonical_bytes();
    let mut tree = SparseMerkleTree::new();
    tree.insert(hash_key(&state_key), hash_value(&value));
    let header = BlockHeader {
        chain: ChainId::Alpha,
        height,
        epoch: 0,
        slot: height,
        parent: Digest::ZERO,
        timestamp_ms: 0,
        vertices_root: Digest::ZERO,
        transactions_root: Digest::ZERO,
        receipts_root: Digest::ZERO,
        state_root: Digest(tree.root()),
        tx_count: 0,
    };
    let certificate = BlockCertificate::from_votes(
        &header,
        [(index, BlockCertificate::vote(key, &header, network))],
    );
    RecordProof {
        proof: tree.prove(&hash_key(&state_key)),
        key: state_key,
        value,
    }
    .attest(header, certificate)
}
