//! The canonical byte encoding of consensus messages between validators.
//!
//! Transports (QUIC in the node, the virtual network in the simulator) carry these
//! bytes; [`NetMessage::from_canonical_bytes`] is the only way in, so every message is
//! size-limited before parsing, every vertex digest is recomputed from the received
//! bytes, and malformed input is an error, never a panic.

use std::sync::Arc;

use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use dualchain_core::types::Vertex;

use crate::avalanche::AvalancheMessage;
use crate::consensus::{Input, SyncRequest};
use crate::engine::MAX_SYNC_DIGESTS;
use crate::evidence::Evidence;
use dualchain_core::types::ValidatorIndex;

/// Vertices in one sync response on the wire.
pub const MAX_WIRE_SYNC_VERTICES: usize = 10_000;

/// A consensus message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetMessage {
    Vertex(Arc<Vertex>),
    SyncRequest(SyncRequest),
    SyncResponse(Vec<Arc<Vertex>>),
    /// A query or signed response of the Avalanche ordering rule.
    Engine(AvalancheMessage),
    /// Proof of a validator's misbehaviour, passed on (the simulator's carriage; the
    /// node's transport has a message kind of its own for it).
    Evidence(Evidence),
}

const TAG_VERTEX: u8 = 0;
const TAG_SYNC_REQUEST: u8 = 1;
const TAG_SYNC_RESPONSE: u8 = 2;
const TAG_ENGINE: u8 = 3;
const TAG_EVIDENCE: u8 = 4;

impl NetMessage {
    /// The engine input this message becomes when it arrives from `from`.
    pub fn into_input(self, from: ValidatorIndex) -> Input<AvalancheMessage> {
        match self {
            NetMessage::Vertex(vertex) => Input::VertexReceived { from, vertex },
            NetMessage::SyncRequest(request) => Input::SyncRequest { from, request },
            NetMessage::SyncResponse(vertices) => Input::SyncResponse { from, vertices },
            NetMessage::Engine(message) => Input::Engine { from, message },
            NetMessage::Evidence(evidence) => Input::EvidenceReceived { from, evidence },
        }
    }
}

impl Encode for NetMessage {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            NetMessage::Vertex(v) => {
                out.push(TAG_VERTEX);
                v.encode_to(out);
            }
            NetMessage::SyncRequest(r) => {
                out.push(TAG_SYNC_REQUEST);
                r.epoch.encode_to(out);
                crate::store::write_named(out, &r.wanted);
                r.have_through_round.encode_to(out);
            }
            NetMessage::SyncResponse(vs) => {
                out.push(TAG_SYNC_RESPONSE);
                dualchain_core::encoding::write_len(out, vs.len());
                for v in vs {
                    v.encode_to(out);
                }
            }
            NetMessage::Engine(m) => {
                out.push(TAG_ENGINE);
                m.encode_to(out);
            }
            NetMessage::Evidence(e) => {
                out.push(TAG_EVIDENCE);
                e.encode_to(out);
            }
        }
    }
}

impl Decode for NetMessage {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.read_u8("consensus message")? {
            TAG_VERTEX => Ok(NetMessage::Vertex(Arc::new(Vertex::decode_from(r)?))),
            TAG_SYNC_REQUEST => {
                let epoch = r.read_u64("sync request epoch")?;
                let wanted = crate::store::read_named(r, MAX_SYNC_DIGESTS, "sync request")?;
                let have_through_round = r.read_u64("have-through round")?;
                Ok(NetMessage::SyncRequest(SyncRequest {
                    epoch,
                    wanted,
                    have_through_round,
                }))
            }
            TAG_SYNC_RESPONSE => {
                let vertices: Vec<Vertex> =
                    r.read_vec(MAX_WIRE_SYNC_VERTICES, 64, "sync response")?;
                Ok(NetMessage::SyncResponse(
                    vertices.into_iter().map(Arc::new).collect(),
                ))
            }
            TAG_ENGINE => Ok(NetMessage::Engine(AvalancheMessage::decode_from(r)?)),
            TAG_EVIDENCE => Ok(NetMessage::Evidence(Evidence::decode_from(r)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "consensus message",
                tag,
            }),
        }
    }
}

impl Canonical for NetMessage {
    const NAME: &'static str = "consensus message";
    const MAX_ENCODED_LEN: usize = 64 * 1024 * 1024;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;
    use dualchain_core::Digest;
    use proptest::prelude::*;

    #[test]
    fn messages_round_trip_and_digests_are_recomputed() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let v = b.vertex(1, 2).clone();
        for m in [
            NetMessage::Vertex(v.clone()),
            NetMessage::SyncRequest(SyncRequest {
                epoch: 3,
                wanted: vec![(1, v.digest()), (9, Digest([3; 32]))],
                have_through_round: 7,
            }),
            NetMessage::SyncResponse(b.all().to_vec()),
        ] {
            let bytes = m.to_canonical_bytes();
            assert_eq!(NetMessage::from_canonical_bytes(&bytes).unwrap(), m);
        }
        // Flipping a byte of the content changes the recomputed digest.
        let mut bytes = NetMessage::Vertex(v.clone()).to_canonical_bytes();
        // Byte 11 is the low byte of the round (version, tag, chain, epoch before it).
        bytes[11] ^= 2;
        let NetMessage::Vertex(w) = NetMessage::from_canonical_bytes(&bytes).unwrap() else {
            panic!("still a vertex")
        };
        assert_eq!(w.content().round, 3);
        assert_ne!(w.digest(), v.digest());
        assert!(w.verify(b.validators(), b.network()).is_err());
    }

    #[test]
    fn truncated_messages_are_errors() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..2);
        let bytes = NetMessage::SyncResponse(b.all().to_vec()).to_canonical_bytes();
        for cut in (1..bytes.len()).step_by(97) {
            assert!(NetMessage::from_canonical_bytes(&bytes[..bytes.len() - cut]).is_err());
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(NetMessage::from_canonical_bytes(&trailing).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = NetMessage::from_canonical_bytes(&bytes);
        }

    }
}
