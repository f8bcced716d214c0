//! The layout of execution state in the `state` column, and its value encodings.
//!
//! Every key starts with a one-byte namespace so the namespaces never collide:
//!
//! | key | value |
//! |---|---|
//! | `A ‖ address(32)` | [`AccountRecord`]: nonce, native balance, optional multisig policy |
//! | `B ‖ address(32) ‖ asset(4, big-endian)` | balance of a non-native asset, `u64` little-endian |
//! | `F` | fee pool: every fee ever charged, `u128` little-endian |
//! | `X ‖ asset(4, big-endian)` | burned supply of the asset, `u128` little-endian |
//! | `R ‖ kind(1) ‖ id(32)` | an Alpha record (see [`crate::records`]) |
//!
//! The native asset (fees) lives in the account record rather than under a `B` key:
//! every transaction moves its sender's nonce *and* native balance (the fee), so
//! keeping them together makes a transfer change two state entries instead of
//! three — one Merkle leaf and one cache lookup less per account, on the hot path.
//!
//! Absent means zero / default: a balance that drops to zero is deleted rather than
//! stored as `0`, and an account is only written once its nonce or policy differs
//! from the default. So the state — and its root — has exactly one form for one set
//! of balances. The accumulators are `u128` because the sum of all fees or burns of
//! a chain's life can exceed `u64` even though no single balance can.

use dualchain_core::encoding::{
    Decode, DecodeError, Encode, Reader, check_strictly_increasing, write_vec,
};
use dualchain_core::types::{Address, AssetId, tx_limits};
use std::sync::Arc;

/// Namespace byte of account records.
pub const ACCOUNT_PREFIX: u8 = b'A';
/// Namespace byte of balances.
pub const BALANCE_PREFIX: u8 = b'B';
/// Key of the fee pool.
pub const FEE_POOL_KEY: &[u8] = b"F";
/// Namespace byte of burned supply per asset.
pub const BURNED_PREFIX: u8 = b'X';
/// Namespace byte of cross-chain records.
pub use dualchain_core::types::RECORD_PREFIX;

/// Key of an account record.
pub fn account_key(address: &Address) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = ACCOUNT_PREFIX;
    key[1..].copy_from_slice(address.as_bytes());
    key
}

/// Key of one balance. Assets are big-endian so an account's balances scan in order.
pub fn balance_key(address: &Address, asset: AssetId) -> [u8; 37] {
    let mut key = [0u8; 37];
    key[0] = BALANCE_PREFIX;
    key[1..33].copy_from_slice(address.as_bytes());
    key[33..].copy_from_slice(&asset.0.to_be_bytes());
    key
}

/// Key of the burned supply of `asset`.
pub fn burned_key(asset: AssetId) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[0] = BURNED_PREFIX;
    key[1..].copy_from_slice(&asset.0.to_be_bytes());
    key
}

/// A balance value; `None` for zero, which is stored as "absent".
pub fn encode_balance(amount: u64) -> Option<Vec<u8>> {
    (amount != 0).then(|| amount.to_le_bytes().to_vec())
}

/// Decodes a stored balance (exactly 8 bytes).
pub fn decode_balance(bytes: &[u8]) -> Result<u64, DecodeError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| DecodeError::Invalid {
        what: "balance",
        detail: format!("a balance is 8 bytes, got {}", bytes.len()),
    })?;
    Ok(u64::from_le_bytes(array))
}

/// An accumulator value (fee pool, burned supply); `None` for zero.
pub fn encode_total(amount: u128) -> Option<Vec<u8>> {
    (amount != 0).then(|| amount.to_le_bytes().to_vec())
}

/// Decodes a stored accumulator (exactly 16 bytes).
pub fn decode_total(bytes: &[u8]) -> Result<u128, DecodeError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| DecodeError::Invalid {
        what: "accumulator",
        detail: format!("an accumulator is 16 bytes, got {}", bytes.len()),
    })?;
    Ok(u128::from_le_bytes(array))
}

/// A `threshold`-of-`signers` policy over an account's spends.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MultisigPolicy {
    pub threshold: u8,
    /// Strictly increasing, 1 to [`tx_limits::MAX_MULTISIG_SIGNERS`] entries.
    pub signers: Vec<Address>,
}

impl MultisigPolicy {
    /// The policy if `threshold` and `signers` follow the rules the decoder enforces.
    pub fn new(threshold: u8, signers: &[Address]) -> Option<Self> {
        let well_formed = !signers.is_empty()
            && signers.len() <= tx_limits::MAX_MULTISIG_SIGNERS
            && threshold >= 1
            && usize::from(threshold) <= signers.len()
            && signers.windows(2).all(|w| w[0] < w[1]);
        well_formed.then(|| Self {
            threshold,
            signers: signers.to_vec(),
        })
    }
}

impl Encode for MultisigPolicy {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.threshold.encode_to(out);
        write_vec(out, &self.signers);
    }
}

impl Decode for MultisigPolicy {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let threshold = r.read_u8("multisig threshold")?;
        let signers: Vec<Address> =
            r.read_vec(tx_limits::MAX_MULTISIG_SIGNERS, 32, "multisig signers")?;
        check_strictly_increasing(signers.iter(), "multisig signers")?;
        MultisigPolicy::new(threshold, &signers).ok_or_else(|| DecodeError::Invalid {
            what: "multisig policy",
            detail: format!(
                "threshold {threshold} must be between 1 and the {} signers",
                signers.len()
            ),
        })
    }
}

/// An account's nonce, native balance and policy. The policy is shared (`Arc`) so
/// that the cache and every block's working copy can hold it without copying.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountRecord {
    /// The nonce the account's next transaction must carry.
    pub nonce: u64,
    /// Balance of [`AssetId::NATIVE`].
    pub native: u64,
    pub policy: Option<Arc<MultisigPolicy>>,
}

impl AccountRecord {
    /// Largest encoding: nonce, native, option tag, threshold, length, 16 signers.
    pub const MAX_ENCODED_LEN: usize = 8 + 8 + 1 + 1 + 4 + 32 * tx_limits::MAX_MULTISIG_SIGNERS;

    pub fn is_default(&self) -> bool {
        self.nonce == 0 && self.native == 0 && self.policy.is_none()
    }

    /// The stored value; `None` (absent) for the default record.
    pub fn encode_value(&self) -> Option<Vec<u8>> {
        if self.is_default() {
            return None;
        }
        let mut out = Vec::with_capacity(17);
        self.nonce.encode_to(&mut out);
        self.native.encode_to(&mut out);
        match &self.policy {
            None => out.push(0),
            Some(policy) => {
                out.push(1);
                policy.encode_to(&mut out);
            }
        }
        Some(out)
    }

    /// Decodes a stored record, refusing oversized input and trailing bytes.
    pub fn decode_value(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_ENCODED_LEN {
            return Err(DecodeError::TooLong {
                what: "account record",
                len: bytes.len(),
                max: Self::MAX_ENCODED_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let nonce = r.read_u64("nonce")?;
        let native = r.read_u64("native balance")?;
        let policy = r
            .read_option::<MultisigPolicy>("multisig policy")?
            .map(Arc::new);
        r.finish("account record")?;
        Ok(Self {
            nonce,
            native,
            policy,
        })
    }
}

/// A state key decoded for people: used by the shadow-mode diff.
pub fn describe_key(key: &[u8]) -> String {
    let asset_of = |b: &[u8]| AssetId(u32::from_be_bytes(b.try_into().unwrap_or([0; 4])));
    match key {
        [ACCOUNT_PREFIX, rest @ ..] if rest.len() == 32 => {
            format!("account {}", Address(rest.try_into().unwrap_or([0; 32])))
        }
        [BALANCE_PREFIX, rest @ ..] if rest.len() == 36 => format!(
            "balance of {} in {}",
            Address(rest[..32].try_into().unwrap_or([0; 32])),
            asset_of(&rest[32..])
        ),
        [b'F'] => "fee pool".to_string(),
        [BURNED_PREFIX, rest @ ..] if rest.len() == 4 => {
            format!("burned supply of {}", asset_of(rest))
        }
        other => format!("key {}", hex_bytes(other)),
    }
}

/// A stored value decoded for people, given its key.
pub fn describe_value(key: &[u8], value: Option<&[u8]>) -> String {
    let Some(value) = value else {
        return "absent".to_string();
    };
    match key.first() {
        Some(&ACCOUNT_PREFIX) => match AccountRecord::decode_value(value) {
            Ok(record) => format!(
                "nonce {} native {} policy {}",
                record.nonce,
                record.native,
                record.policy.map_or("none".to_string(), |p| format!(
                    "{}-of-{}",
                    p.threshold,
                    p.signers.len()
                ))
            ),
            Err(e) => format!("undecodable account record ({e})"),
        },
        Some(&BALANCE_PREFIX) => {
            decode_balance(value).map_or_else(|e| e.to_string(), |b| b.to_string())
        }
        Some(&b'F') | Some(&BURNED_PREFIX) => {
            decode_total(value).map_or_else(|e| e.to_string(), |b| b.to_string())
        }
        _ => hex_bytes(value),
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_records_round_trip_and_default_is_absent() {
        assert_eq!(AccountRecord::default().encode_value(), None);
        let policy = MultisigPolicy::new(2, &[Address([1; 32]), Address([2; 32])]).unwrap();
        for record in [
            AccountRecord {
                nonce: 7,
                native: 0,
                policy: None,
            },
            AccountRecord {
                nonce: 0,
                native: 5,
                policy: Some(Arc::new(policy)),
            },
        ] {
            let bytes = record.encode_value().unwrap();
            assert_eq!(AccountRecord::decode_value(&bytes).unwrap(), record);
            let mut trailing = bytes.clone();
            trailing.push(0);
            assert!(AccountRecord::decode_value(&trailing).is_err());
        }
        assert!(AccountRecord::decode_value(&[0; 4]).is_err());
        assert!(AccountRecord::decode_value(&vec![0; 10_000]).is_err());
    }

    #[test]
    fn policies_must_be_well_formed() {
        let (a, b) = (Address([1; 32]), Address([2; 32]));
        assert!(MultisigPolicy::new(1, &[a, b]).is_some());
        assert!(MultisigPolicy::new(0, &[a, b]).is_none());
        assert!(MultisigPolicy::new(3, &[a, b]).is_none());
        assert!(MultisigPolicy::new(1, &[b, a]).is_none());
        assert!(MultisigPolicy::new(1, &[a, a]).is_none());
        assert!(MultisigPolicy::new(1, &[]).is_none());
        let many: Vec<Address> = (0..17u8).map(|i| Address([i; 32])).collect();
        assert!(MultisigPolicy::new(1, &many).is_none());
    }

    #[test]
    fn keys_do_not_collide_and_values_decode() {
        let a = Address([5; 32]);
        assert_ne!(account_key(&a)[..], balance_key(&a, AssetId(0))[..33]);
        assert_eq!(encode_balance(0), None);
        assert_eq!(decode_balance(&encode_balance(9).unwrap()).unwrap(), 9);
        assert!(decode_balance(&[1, 2]).is_err());
        assert_eq!(
            decode_total(&encode_total(1 << 70).unwrap()).unwrap(),
            1 << 70
        );
        assert!(describe_key(&balance_key(&a, AssetId(3))).contains("asset#3"));
        assert_eq!(describe_value(FEE_POOL_KEY, None), "absent");
    }
}
