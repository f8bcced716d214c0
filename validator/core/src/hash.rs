//! BLAKE3 digests with one domain-separation context per object type.
//!
//! Every digest is computed in BLAKE3's `derive_key` mode with a context string that
//! names the object type and its encoding version. Two objects of different types can
//! therefore never share a digest even if their encodings happen to coincide, and a
//! signature over one kind of digest can never be replayed as another.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::encoding::{Decode, DecodeError, Encode, Reader};

/// The object types that get digests. Adding a variant is the only way to hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashDomain {
    Transaction,
    Vertex,
    BlockHeader,
    BlockBody,
    Receipt,
    ReceiptsRoot,
    TransactionsRoot,
    VertexListRoot,
    Genesis,
    AccountAddress,
    ValidatorId,
    Snapshot,
    AttestationId,
    RecordId,
    EpochSeed,
}

impl HashDomain {
    const COUNT: usize = HashDomain::EpochSeed as usize + 1;

    /// The BLAKE3 `derive_key` context: globally unique, fixed forever per version.
    pub const fn context(self) -> &'static str {
        match self {
            HashDomain::Transaction => "dualchain 2026-11 transaction v1",
            HashDomain::Vertex => "dualchain 2026-11 vertex v1",
            HashDomain::BlockHeader => "dualchain 2026-11 block header v1",
            HashDomain::BlockBody => "dualchain 2026-11 block body v1",
            HashDomain::Receipt => "dualchain 2026-11 receipt v1",
            HashDomain::ReceiptsRoot => "dualchain 2026-11 receipts root v1",
            HashDomain::TransactionsRoot => "dualchain 2026-11 transactions root v1",
            HashDomain::VertexListRoot => "dualchain 2026-11 vertex list root v1",
            HashDomain::Genesis => "dualchain 2026-11 genesis v1",
            HashDomain::AccountAddress => "dualchain 2026-11 account address v1",
            HashDomain::ValidatorId => "dualchain 2026-11 validator id v1",
            HashDomain::Snapshot => "dualchain 2026-11 snapshot v1",
            HashDomain::AttestationId => "dualchain 2026-12 attestation id v1",
            HashDomain::RecordId => "dualchain 2026-12 record id v1",
            HashDomain::EpochSeed => "dualchain 2026-12 epoch seed v1",
        }
    }

    /// A hasher for this domain, for incremental input.
    ///
    /// Equivalent to `blake3::Hasher::new_derive_key(self.context())`, but the context
    /// is hashed once per process and cached: on 32-byte inputs that halves the cost.
    pub fn hasher(self) -> blake3::Hasher {
        use blake3::hazmat::{ContextKey, HasherExt, hash_derive_key_context};
        static CONTEXT_KEYS: [OnceLock<ContextKey>; HashDomain::COUNT] =
            [const { OnceLock::new() }; HashDomain::COUNT];
        let key =
            CONTEXT_KEYS[self as usize].get_or_init(|| hash_derive_key_context(self.context()));
        blake3::Hasher::new_from_context_key(key)
    }

    /// Digest of `data` in this domain.
    pub fn hash(self, data: &[u8]) -> Digest {
        Digest(*self.hasher().update(data).finalize().as_bytes())
    }
}

/// A 32-byte BLAKE3 digest. Displays and (de)serialises as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    pub const ZERO: Digest = Digest([0; 32]);

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl FromStr for Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|e| format!("invalid digest hex: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("a digest is 32 bytes, got {}", b.len()))?;
        Ok(Digest(array))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Encode for Digest {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Digest {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Digest(reader.read_array("digest")?))
    }
}

/// Binary Merkle root of an ordered list of digests (transactions, receipts, vertices).
///
/// Leaves are the digests themselves; a level with an odd count carries its last node
/// up unchanged; the root of an empty list is the domain's hash of nothing, and the
/// list length is mixed into the root so that lists differing only by such carried
/// nodes cannot collide.
pub fn list_root(domain: HashDomain, leaves: &[Digest]) -> Digest {
    let mut level: Vec<[u8; 32]> = leaves.iter().map(|d| d.0).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut h = domain.hasher();
                    h.update(left).update(right);
                    *h.finalize().as_bytes()
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    let mut h = domain.hasher();
    h.update(&(leaves.len() as u64).to_le_bytes());
    if let Some(top) = level.first() {
        h.update(top);
    }
    Digest(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_inputs() {
        let all = [
            HashDomain::Transaction,
            HashDomain::Vertex,
            HashDomain::BlockHeader,
            HashDomain::BlockBody,
            HashDomain::Receipt,
            HashDomain::ReceiptsRoot,
            HashDomain::TransactionsRoot,
            HashDomain::VertexListRoot,
            HashDomain::Genesis,
            HashDomain::AccountAddress,
            HashDomain::ValidatorId,
            HashDomain::Snapshot,
            HashDomain::AttestationId,
            HashDomain::RecordId,
            HashDomain::EpochSeed,
        ];
        assert_eq!(all.len(), HashDomain::COUNT);
        let digests: std::collections::HashSet<_> =
            all.iter().map(|d| d.hash(b"same bytes")).collect();
        assert_eq!(digests.len(), all.len());
    }

    #[test]
    fn cached_context_keys_equal_blake3_derive_key() {
        for domain in [
            HashDomain::Transaction,
            HashDomain::Snapshot,
            HashDomain::Genesis,
        ] {
            for data in [&b""[..], b"x", &[7u8; 2000]] {
                assert_eq!(
                    domain.hash(data).0,
                    blake3::derive_key(domain.context(), data),
                    "{domain:?}"
                );
            }
        }
    }

    #[test]
    fn digest_hex_round_trip() {
        let d = HashDomain::Vertex.hash(b"x");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("abcd".parse::<Digest>().is_err());
        let json = serde_json_like(&d);
        assert_eq!(json.len(), 64);
    }

    fn serde_json_like(d: &Digest) -> String {
        d.to_string()
    }

    #[test]
    fn list_root_depends_on_order_and_length() {
        let a = HashDomain::Transaction.hash(b"a");
        let b = HashDomain::Transaction.hash(b"b");
        let r = |l: &[Digest]| list_root(HashDomain::TransactionsRoot, l);
        assert_ne!(r(&[a, b]), r(&[b, a]));
        assert_ne!(r(&[a]), r(&[a, a]));
        assert_ne!(r(&[]), r(&[a]));
        assert_eq!(r(&[a, b]), r(&[a, b]));
    }
}
