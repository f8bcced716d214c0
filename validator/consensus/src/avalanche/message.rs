//! The Avalanche engine's messages: queries and signed responses.
//!
//! A [`Query`] asks a sampled peer for its preferences on a run of consecutive leader
//! slots; the [`Response`] carries one [`Preference`] per slot and the voter's ML-DSA-87
//! signature (domain `QueryResponse`, on the network) over everything else in it,
//! querier and query id included, so a response can be neither forged nor replayed to
//! another query or another node. A vote for a vertex says the voter holds it: it
//! verified its signature and hash, holds every parent, and it conflicts with nothing
//! the voter finalized.

use dualchain_core::Digest;
use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair, ValidatorSignature};
use dualchain_core::encoding::{Decode, DecodeError, Encode, Reader, write_len};
use dualchain_core::types::{ValidatorIndex, ValidatorSet};

use crate::consensus::Round;

/// Slots one query may ask about (a response then stays under 2.2 KiB of votes).
pub const MAX_QUERY_SLOTS: usize = 64;

/// A node's current answer for one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Preference {
    /// The node has not opened the slot yet (it has not seen the round after it).
    Unknown,
    /// No vertex of the slot is committed.
    Skip,
    /// The leader vertex with this digest is committed (with its causal history).
    Commit(Digest),
}

const PREF_UNKNOWN: u8 = 0;
const PREF_SKIP: u8 = 1;
const PREF_COMMIT: u8 = 2;

impl Encode for Preference {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            Preference::Unknown => out.push(PREF_UNKNOWN),
            Preference::Skip => out.push(PREF_SKIP),
            Preference::Commit(d) => {
                out.push(PREF_COMMIT);
                d.encode_to(out);
            }
        }
    }
}

impl Decode for Preference {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("preference")? {
            PREF_UNKNOWN => Ok(Preference::Unknown),
            PREF_SKIP => Ok(Preference::Skip),
            PREF_COMMIT => Ok(Preference::Commit(Digest::decode_from(r)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "preference",
                tag,
            }),
        }
    }
}

/// "What do you prefer for slots `first_slot .. first_slot + count`?"
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    pub epoch: u64,
    /// Unique per querier (a counter): binds the response to this query.
    pub id: u64,
    pub first_slot: Round,
    pub count: u16,
}

/// What a voter signs in answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Votes {
    pub epoch: u64,
    pub id: u64,
    pub querier: ValidatorIndex,
    pub voter: ValidatorIndex,
    pub first_slot: Round,
    pub preferences: Vec<Preference>,
}

/// A signed answer to a [`Query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub votes: Votes,
    pub signature: ValidatorSignature,
}

/// Why a response is refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ResponseError {
    #[error("response signed as validator {voter} arrived from validator {from}")]
    WrongSender {
        voter: ValidatorIndex,
        from: ValidatorIndex,
    },
    #[error("voter {0} is not in the validator set")]
    UnknownVoter(ValidatorIndex),
    #[error("the response's signature does not verify")]
    BadSignature,
}

impl Response {
    /// Signs the preferences of `voter` for `query` from `querier`.
    pub fn sign(
        query: &Query,
        querier: ValidatorIndex,
        voter: ValidatorIndex,
        preferences: Vec<Preference>,
        key: &ValidatorKeypair,
        network: NetworkId,
    ) -> Self {
        assert!(
            preferences.len() <= MAX_QUERY_SLOTS,
            "a response answers one query"
        );
        let votes = Votes {
            epoch: query.epoch,
            id: query.id,
            querier,
            voter,
            first_slot: query.first_slot,
            preferences,
        };
        let mut bytes = Vec::with_capacity(40 + votes.preferences.len() * 33);
        votes.encode_to(&mut bytes);
        let signature = key.sign(SigningDomain::QueryResponse.on(network), &bytes);
        Response { votes, signature }
    }

    /// Checks that `from` (the authenticated sender) signed this response.
    pub fn verify(
        &self,
        from: ValidatorIndex,
        validators: &ValidatorSet,
        network: NetworkId,
    ) -> Result<(), ResponseError> {
        let voter = self.votes.voter;
        if voter != from {
            return Err(ResponseError::WrongSender { voter, from });
        }
        let info = validators
            .get(voter)
            .ok_or(ResponseError::UnknownVoter(voter))?;
        let mut bytes = Vec::with_capacity(40 + self.votes.preferences.len() * 33);
        self.votes.encode_to(&mut bytes);
        info.public_key
            .verify(
                SigningDomain::QueryResponse.on(network),
                &bytes,
                &self.signature,
            )
            .map_err(|_| ResponseError::BadSignature)
    }
}

impl Encode for Votes {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.epoch.encode_to(out);
        self.id.encode_to(out);
        self.querier.encode_to(out);
        self.voter.encode_to(out);
        self.first_slot.encode_to(out);
        write_len(out, self.preferences.len());
        for p in &self.preferences {
            p.encode_to(out);
        }
    }
}

impl Encode for Response {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.votes.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for Response {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Response {
            votes: Votes {
                epoch: r.read_u64("response epoch")?,
                id: r.read_u64("response id")?,
                querier: r.read_u16("response querier")?,
                voter: r.read_u16("response voter")?,
                first_slot: r.read_u64("response first slot")?,
                preferences: r.read_vec(MAX_QUERY_SLOTS, 1, "response preferences")?,
            },
            signature: ValidatorSignature::decode_from(r)?,
        })
    }
}

/// A message of the Avalanche engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AvalancheMessage {
    Query(Query),
    Response(Response),
}

const TAG_QUERY: u8 = 0;
const TAG_RESPONSE: u8 = 1;

impl Encode for AvalancheMessage {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            AvalancheMessage::Query(q) => {
                out.push(TAG_QUERY);
                q.epoch.encode_to(out);
                q.id.encode_to(out);
                q.first_slot.encode_to(out);
                q.count.encode_to(out);
            }
            AvalancheMessage::Response(r) => {
                out.push(TAG_RESPONSE);
                r.encode_to(out);
            }
        }
    }
}

impl Decode for AvalancheMessage {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("avalanche message")? {
            TAG_QUERY => {
                let epoch = r.read_u64("query epoch")?;
                let id = r.read_u64("query id")?;
                let first_slot = r.read_u64("query first slot")?;
                let count = r.read_u16("query slot count")?;
                if count == 0 || usize::from(count) > MAX_QUERY_SLOTS {
                    return Err(DecodeError::Invalid {
                        what: "query slot count",
                        detail: format!("{count} slots, 1 to {MAX_QUERY_SLOTS} allowed"),
                    });
                }
                Ok(AvalancheMessage::Query(Query {
                    epoch,
                    id,
                    first_slot,
                    count,
                }))
            }
            TAG_RESPONSE => Ok(AvalancheMessage::Response(Response::decode_from(r)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "avalanche message",
                tag,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;
    use dualchain_core::encoding::Canonical;
    use proptest::prelude::*;

    /// Wraps a message the way the wire does, for round trips.
    #[derive(Debug, PartialEq, Eq)]
    struct Wrapped(AvalancheMessage);
    impl Encode for Wrapped {
        fn encode_to(&self, out: &mut Vec<u8>) {
            self.0.encode_to(out)
        }
    }
    impl Decode for Wrapped {
        fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
            AvalancheMessage::decode_from(r).map(Wrapped)
        }
    }
    impl Canonical for Wrapped {
        const NAME: &'static str = "test avalanche message";
        const MAX_ENCODED_LEN: usize = 64 * 1024;
    }

    fn signed(b: &DagBuilder, voter: ValidatorIndex) -> Response {
        let query = Query {
            epoch: 2,
            id: 7,
            first_slot: 40,
            count: 3,
        };
        let prefs = vec![
            Preference::Commit(Digest([9; 32])),
            Preference::Skip,
            Preference::Unknown,
        ];
        Response::sign(&query, 0, voter, prefs, b.key(voter), b.network())
    }

    #[test]
    fn responses_round_trip_and_verify_only_as_signed() {
        let b = DagBuilder::new(4);
        let r = signed(&b, 1);
        let bytes = Wrapped(AvalancheMessage::Response(r.clone())).to_canonical_bytes();
        let Wrapped(AvalancheMessage::Response(back)) =
            Wrapped::from_canonical_bytes(&bytes).unwrap()
        else {
            panic!("a response")
        };
        assert_eq!(back, r);
        back.verify(1, b.validators(), b.network()).unwrap();
        assert_eq!(
            back.verify(2, b.validators(), b.network()),
            Err(ResponseError::WrongSender { voter: 1, from: 2 })
        );
        for tamper in [
            |r: &mut Response| r.votes.id += 1,
            |r: &mut Response| r.votes.querier = 3,
            |r: &mut Response| r.votes.first_slot -= 1,
            |r: &mut Response| r.votes.preferences[1] = Preference::Unknown,
        ] {
            let mut t = r.clone();
            tamper(&mut t);
            assert_eq!(
                t.verify(1, b.validators(), b.network()),
                Err(ResponseError::BadSignature)
            );
        }
    }

    #[test]
    fn queries_with_no_or_too_many_slots_are_refused() {
        for count in [0u16, MAX_QUERY_SLOTS as u16 + 1] {
            let q = AvalancheMessage::Query(Query {
                epoch: 0,
                id: 1,
                first_slot: 0,
                count,
            });
            assert!(Wrapped::from_canonical_bytes(&Wrapped(q).to_canonical_bytes()).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = Wrapped::from_canonical_bytes(&bytes);
        }

        #[test]
        fn any_flipped_byte_of_a_signed_response_is_refused(at in 0usize..400, bit in 0u8..8) {
            let b = DagBuilder::new(4);
            let r = signed(&b, 1);
            let mut bytes = Wrapped(AvalancheMessage::Response(r.clone())).to_canonical_bytes();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            if let Ok(Wrapped(AvalancheMessage::Response(t))) = Wrapped::from_canonical_bytes(&bytes) {
                prop_assert!(t.verify(1, b.validators(), b.network()).is_err());
            }
        }
    }
}
