//! The wire format: versioned, length-prefixed frames with hard per-kind size limits.
//!
//! Every message on a QUIC stream is one frame:
//!
//! | bytes | field                                                        |
//! |-------|--------------------------------------------------------------|
//! | 1     | wire version ([`WIRE_VERSION`]); any other value is refused   |
//! | 1     | chain tag (`ChainId`: 0 Alpha, 1 Delta)                      |
//! | 1     | message kind tag ([`MessageKind`]); unknown tags are refused |
//! | 4     | payload length, `u32` little-endian                          |
//! | n     | payload: the canonical encoding (`dualchain_core::encoding`)  |
//!
//! The header is fixed-width so the receiver validates version, chain, kind and the
//! declared length against [`MessageKind::max_payload`] *before* reading or
//! allocating any payload byte: an oversized frame costs the sender a stream, never
//! the receiver memory. Payloads are opaque to this layer except the two control
//! messages it owns (the identity hello and heartbeat pings); the consumer decodes
//! them with the canonical decoders, which verify digests and signatures.
//!
//! Each kind belongs to one [`KindClass`] and may only appear where that class is
//! expected: broadcasts on unidirectional streams, requests as the first frame of a
//! bidirectional stream, responses as the answer on a stream we opened, the hello only
//! during the identity handshake. Anything else is an [`WireError::UnexpectedKind`].

use bytes::Bytes;
use dualchain_core::Canonical;
use dualchain_core::types::{BlockCertificate, ChainId, vertex_limits};
use thiserror::Error;

/// Version byte of every frame. Bumped only for incompatible changes.
pub const WIRE_VERSION: u8 = 1;
/// Fixed header size: version, chain, kind and the `u32` payload length.
pub const FRAME_HEADER_LEN: usize = 7;
/// The largest payload any kind allows (a batch of vertices or blocks answering a
/// sync request).
pub const MAX_FRAME_PAYLOAD: usize = 64 * MIB;
// A response frame holds two of the largest vertices, or one of the largest blocks
// with its header and certificate.
const _: () = assert!(MAX_FRAME_PAYLOAD >= 2 * vertex_limits::MAX_VERTEX_BYTES);
const _: () = assert!(
    MAX_FRAME_PAYLOAD
        >= <dualchain_core::types::Block as Canonical>::MAX_ENCODED_LEN
            + <BlockCertificate as Canonical>::MAX_ENCODED_LEN
);

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Where a kind may appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindClass {
    /// Gossip on unidirectional streams, delivered to every peer at most once.
    Broadcast,
    /// First frame of a bidirectional stream; answered by its response kind.
    Request,
    /// The answer on a bidirectional stream the receiver opened.
    Response,
    /// Identity handshake, exchanged once per connection.
    Handshake,
}

/// The message kinds of protocol version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MessageKind {
    /// A signed DAG vertex (broadcast).
    Vertex = 1,
    /// A batch of signed transactions (broadcast).
    Transactions = 2,
    /// A block certificate (broadcast).
    Certificate = 3,
    /// Proof that a validator misbehaved: two signed vertices for one slot
    /// (broadcast once by every validator that learns it).
    Evidence = 4,
    /// Fetch missing vertices by reference (request → [`MessageKind::Vertices`]).
    FetchVertices = 16,
    /// Fetch blocks by height range (request → [`MessageKind::Blocks`]).
    FetchBlocks = 17,
    /// A consensus query (request → [`MessageKind::QueryResponse`]).
    ConsensusQuery = 18,
    /// Heartbeat (request → [`MessageKind::Pong`]), answered by the transport itself.
    Ping = 19,
    /// State sync: epoch links, a snapshot manifest or a snapshot chunk (request →
    /// [`MessageKind::State`]).
    FetchState = 20,
    /// Vertices answering a fetch.
    Vertices = 32,
    /// Blocks answering a fetch.
    Blocks = 33,
    /// A signed consensus query response.
    QueryResponse = 34,
    /// Heartbeat answer.
    Pong = 35,
    /// A state sync answer.
    State = 36,
    /// Identity proof: ML-DSA-87 key and signature over the TLS exporter secret.
    Hello = 48,
}

impl MessageKind {
    /// Every kind, in tag order (metrics pre-resolve one label per entry).
    pub const ALL: [MessageKind; 15] = [
        MessageKind::Vertex,
        MessageKind::Transactions,
        MessageKind::Certificate,
        MessageKind::Evidence,
        MessageKind::FetchVertices,
        MessageKind::FetchBlocks,
        MessageKind::ConsensusQuery,
        MessageKind::Ping,
        MessageKind::FetchState,
        MessageKind::Vertices,
        MessageKind::Blocks,
        MessageKind::QueryResponse,
        MessageKind::Pong,
        MessageKind::State,
        MessageKind::Hello,
    ];

    pub const fn tag(self) -> u8 {
        self as u8
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.tag() == tag)
    }

    /// Position in [`MessageKind::ALL`] (for per-kind arrays).
    pub fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|k| *k == self)
            .expect("ALL lists every kind")
    }

    /// Stable lowercase name, used as a metrics label.
    pub const fn name(self) -> &'static str {
        match self {
            MessageKind::Vertex => "vertex",
            MessageKind::Transactions => "transactions",
            MessageKind::Certificate => "certificate",
            MessageKind::Evidence => "evidence",
            MessageKind::FetchVertices => "fetch_vertices",
            MessageKind::FetchBlocks => "fetch_blocks",
            MessageKind::ConsensusQuery => "consensus_query",
            MessageKind::Ping => "ping",
            MessageKind::FetchState => "fetch_state",
            MessageKind::Vertices => "vertices",
            MessageKind::Blocks => "blocks",
            MessageKind::QueryResponse => "query_response",
            MessageKind::Pong => "pong",
            MessageKind::State => "state",
            MessageKind::Hello => "hello",
        }
    }

    pub const fn class(self) -> KindClass {
        match self {
            MessageKind::Vertex
            | MessageKind::Transactions
            | MessageKind::Certificate
            | MessageKind::Evidence => KindClass::Broadcast,
            MessageKind::FetchVertices
            | MessageKind::FetchBlocks
            | MessageKind::ConsensusQuery
            | MessageKind::Ping
            | MessageKind::FetchState => KindClass::Request,
            MessageKind::Vertices
            | MessageKind::Blocks
            | MessageKind::QueryResponse
            | MessageKind::Pong
            | MessageKind::State => KindClass::Response,
            MessageKind::Hello => KindClass::Handshake,
        }
    }

    /// The kind that answers a request kind; `None` for every other class.
    pub const fn response_kind(self) -> Option<MessageKind> {
        match self {
            MessageKind::FetchVertices => Some(MessageKind::Vertices),
            MessageKind::FetchBlocks => Some(MessageKind::Blocks),
            MessageKind::ConsensusQuery => Some(MessageKind::QueryResponse),
            MessageKind::Ping => Some(MessageKind::Pong),
            MessageKind::FetchState => Some(MessageKind::State),
            _ => None,
        }
    }

    /// Hard payload limit. Sized from the core types' own limits: a vertex frame
    /// carries one vertex (`MAX_VERTEX_BYTES`), a certificate one full-set
    /// certificate; requests carry references only, so they stay small.
    pub const fn max_payload(self) -> usize {
        match self {
            MessageKind::Vertex => vertex_limits::MAX_VERTEX_BYTES,
            MessageKind::Transactions => 8 * MIB,
            MessageKind::Certificate => <BlockCertificate as Canonical>::MAX_ENCODED_LEN,
            // Two vertices and a tag.
            MessageKind::Evidence => 2 * vertex_limits::MAX_VERTEX_BYTES + 16,
            MessageKind::FetchVertices | MessageKind::FetchBlocks | MessageKind::FetchState => {
                64 * KIB
            }
            MessageKind::ConsensusQuery => MIB,
            MessageKind::Ping | MessageKind::Pong => 8,
            MessageKind::Vertices | MessageKind::Blocks | MessageKind::State => MAX_FRAME_PAYLOAD,
            MessageKind::QueryResponse => 64 * KIB,
            MessageKind::Hello => 8 * KIB,
        }
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a frame was refused. Every variant closes the stream it arrived on and
/// costs the sending peer score (see `score`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    #[error("frame truncated: {needed} more bytes needed")]
    Truncated { needed: usize },
    #[error("unsupported wire version {0} (this build speaks version {WIRE_VERSION})")]
    UnsupportedVersion(u8),
    #[error("unknown chain tag {0}")]
    UnknownChain(u8),
    #[error("unknown message kind tag {0}")]
    UnknownKind(u8),
    #[error("{kind} frame of {len} bytes exceeds its limit of {max} bytes")]
    Oversize {
        kind: MessageKind,
        len: usize,
        max: usize,
    },
    #[error("{kind} frame is not allowed here (expected {expected})")]
    UnexpectedKind {
        kind: MessageKind,
        expected: &'static str,
    },
}

impl WireError {
    /// Whether the error is an oversize (penalised harder than other malformations).
    pub fn is_oversize(&self) -> bool {
        matches!(self, WireError::Oversize { .. })
    }
}

/// A validated frame header: known version, chain and kind, length within limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub chain: ChainId,
    pub kind: MessageKind,
    pub len: usize,
}

impl FrameHeader {
    /// Validates a header before any payload is read or allocated.
    pub fn decode(bytes: &[u8; FRAME_HEADER_LEN]) -> Result<Self, WireError> {
        if bytes[0] != WIRE_VERSION {
            return Err(WireError::UnsupportedVersion(bytes[0]));
        }
        let chain = ChainId::from_tag(bytes[1]).ok_or(WireError::UnknownChain(bytes[1]))?;
        let kind = MessageKind::from_tag(bytes[2]).ok_or(WireError::UnknownKind(bytes[2]))?;
        let len = u32::from_le_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]) as usize;
        if len > kind.max_payload() {
            return Err(WireError::Oversize {
                kind,
                len,
                max: kind.max_payload(),
            });
        }
        Ok(Self { chain, kind, len })
    }

    pub fn encode(&self) -> [u8; FRAME_HEADER_LEN] {
        let len = (self.len as u32).to_le_bytes();
        [
            WIRE_VERSION,
            self.chain.tag(),
            self.kind.tag(),
            len[0],
            len[1],
            len[2],
            len[3],
        ]
    }

    /// Refuses a kind outside the class expected at this point of the protocol.
    pub fn expect_class(&self, class: KindClass) -> Result<(), WireError> {
        if self.kind.class() == class {
            Ok(())
        } else {
            Err(WireError::UnexpectedKind {
                kind: self.kind,
                expected: class_name(class),
            })
        }
    }
}

fn class_name(class: KindClass) -> &'static str {
    match class {
        KindClass::Broadcast => "a broadcast",
        KindClass::Request => "a request",
        KindClass::Response => "a response",
        KindClass::Handshake => "the identity hello",
    }
}

/// One protocol message: which chain, what kind, and its canonical payload bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub chain: ChainId,
    pub kind: MessageKind,
    pub payload: Bytes,
}

impl Message {
    pub fn new(chain: ChainId, kind: MessageKind, payload: impl Into<Bytes>) -> Self {
        Self {
            chain,
            kind,
            payload: payload.into(),
        }
    }

    /// Checks the payload against the kind's limit (senders refuse what receivers
    /// would refuse, so a local bug never costs us our score at a peer).
    pub fn check_size(&self) -> Result<(), WireError> {
        let max = self.kind.max_payload();
        if self.payload.len() > max {
            return Err(WireError::Oversize {
                kind: self.kind,
                len: self.payload.len(),
                max,
            });
        }
        Ok(())
    }

    /// The frame bytes: header followed by the payload.
    pub fn encode_frame(&self) -> Result<Bytes, WireError> {
        self.check_size()?;
        let header = FrameHeader {
            chain: self.chain,
            kind: self.kind,
            len: self.payload.len(),
        };
        let mut out = Vec::with_capacity(FRAME_HEADER_LEN + self.payload.len());
        out.extend_from_slice(&header.encode());
        out.extend_from_slice(&self.payload);
        Ok(out.into())
    }
}

/// Decodes the first frame of `input`, returning it and the number of bytes used.
///
/// The stream reader in the transport applies the same checks incrementally; this
/// slice form is what the fuzz target and the unit tests drive.
pub fn decode_frame(input: &[u8]) -> Result<(Message, usize), WireError> {
    let header_bytes: &[u8; FRAME_HEADER_LEN] = input
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| WireError::Truncated {
            needed: FRAME_HEADER_LEN - input.len().min(FRAME_HEADER_LEN),
        })?;
    let header = FrameHeader::decode(header_bytes)?;
    let end = FRAME_HEADER_LEN + header.len;
    let payload = input
        .get(FRAME_HEADER_LEN..end)
        .ok_or_else(|| WireError::Truncated {
            needed: end - input.len(),
        })?;
    Ok((
        Message {
            chain: header.chain,
            kind: header.kind,
            payload: Bytes::copy_from_slice(payload),
        },
        end,
    ))
}

/// Decodes a whole stream's worth of frames; stops at the first error, as the
/// transport does (the rest of a stream after a bad frame is never trusted).
pub fn decode_stream(mut input: &[u8]) -> (Vec<Message>, Option<WireError>) {
    let mut messages = Vec::new();
    while !input.is_empty() {
        match decode_frame(input) {
            Ok((message, used)) => {
                messages.push(message);
                input = &input[used..];
            }
            Err(e) => return (messages, Some(e)),
        }
    }
    (messages, None)
}

/// Incremental decoder of a stream of frames: bytes go in as they arrive (in any
/// split), complete frames come out. A header is validated as soon as its seven
/// bytes are in, before any of its payload is awaited; payloads are handed out as
/// zero-copy slices of the buffer. The transport's stream reader feeds it from
/// quinn; the fuzz target feeds it arbitrary splits of arbitrary bytes.
#[derive(Debug, Default)]
pub struct FrameAccumulator {
    buf: bytes::BytesMut,
    pending: Option<FrameHeader>,
}

impl FrameAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, `None` if more bytes are needed. After an error the
    /// stream must be abandoned (the accumulator's state is unspecified).
    pub fn next_frame(&mut self, expected: KindClass) -> Result<Option<Message>, WireError> {
        use bytes::Buf;
        let header = match self.pending {
            Some(h) => h,
            None => {
                let Some(bytes) = self.buf.get(..FRAME_HEADER_LEN) else {
                    return Ok(None);
                };
                let bytes: &[u8; FRAME_HEADER_LEN] =
                    bytes.try_into().expect("slice of header length");
                let h = FrameHeader::decode(bytes)?;
                h.expect_class(expected)?;
                self.buf.advance(FRAME_HEADER_LEN);
                self.pending = Some(h);
                h
            }
        };
        if self.buf.len() < header.len {
            return Ok(None);
        }
        self.pending = None;
        Ok(Some(Message {
            chain: header.chain,
            kind: header.kind,
            payload: self.buf.split_to(header.len).freeze(),
        }))
    }

    /// True if no partial frame is buffered (a stream may end cleanly here).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.pending.is_none()
    }

    /// Bytes still missing for the buffered partial frame (at least its header).
    pub fn missing(&self) -> usize {
        match self.pending {
            Some(h) => h.len.saturating_sub(self.buf.len()),
            None => FRAME_HEADER_LEN.saturating_sub(self.buf.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(kind: MessageKind, payload: &[u8]) -> Message {
        Message::new(ChainId::Delta, kind, payload.to_vec())
    }

    #[test]
    fn frame_round_trips() {
        let m = msg(MessageKind::Vertex, b"vertex bytes");
        let frame = m.encode_frame().unwrap();
        assert_eq!(frame.len(), FRAME_HEADER_LEN + 12);
        assert_eq!(decode_frame(&frame).unwrap(), (m, frame.len()));
    }

    #[test]
    fn every_tag_round_trips_and_requests_have_responses() {
        for kind in MessageKind::ALL {
            assert_eq!(MessageKind::from_tag(kind.tag()), Some(kind));
            assert_eq!(MessageKind::ALL[kind.index()], kind);
            let answered = kind.response_kind().is_some();
            assert_eq!(answered, kind.class() == KindClass::Request, "{kind}");
            if let Some(r) = kind.response_kind() {
                assert_eq!(r.class(), KindClass::Response);
            }
        }
    }

    #[test]
    fn oversize_is_refused_from_the_header_alone() {
        let header = FrameHeader {
            chain: ChainId::Alpha,
            kind: MessageKind::Ping,
            len: 9,
        }
        .encode();
        // Only the header is present: the limit is checked before the payload.
        assert_eq!(
            decode_frame(&header),
            Err(WireError::Oversize {
                kind: MessageKind::Ping,
                len: 9,
                max: 8
            })
        );
        let mut huge = header;
        huge[2] = MessageKind::Vertex.tag();
        huge[3..7].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_frame(&huge).unwrap_err().is_oversize());
    }

    #[test]
    fn senders_refuse_oversize_payloads() {
        let m = msg(MessageKind::Pong, &[0; 9]);
        assert!(m.encode_frame().unwrap_err().is_oversize());
    }

    #[test]
    fn bad_version_chain_kind_and_truncation_are_errors() {
        let good = msg(MessageKind::Transactions, b"tx")
            .encode_frame()
            .unwrap();
        let mut bad = good.to_vec();
        bad[0] = 2;
        assert_eq!(decode_frame(&bad), Err(WireError::UnsupportedVersion(2)));
        let mut bad = good.to_vec();
        bad[1] = 7;
        assert_eq!(decode_frame(&bad), Err(WireError::UnknownChain(7)));
        let mut bad = good.to_vec();
        bad[2] = 99;
        assert_eq!(decode_frame(&bad), Err(WireError::UnknownKind(99)));
        assert_eq!(
            decode_frame(&good[..good.len() - 1]),
            Err(WireError::Truncated { needed: 1 })
        );
        assert_eq!(decode_frame(&[1]), Err(WireError::Truncated { needed: 6 }));
    }

    #[test]
    fn class_checks() {
        let h = FrameHeader {
            chain: ChainId::Alpha,
            kind: MessageKind::Vertex,
            len: 0,
        };
        assert!(h.expect_class(KindClass::Broadcast).is_ok());
        assert!(matches!(
            h.expect_class(KindClass::Request),
            Err(WireError::UnexpectedKind { .. })
        ));
    }

    #[test]
    fn stream_of_frames_decodes_in_order() {
        let a = msg(MessageKind::Vertex, b"a");
        let b = msg(MessageKind::Certificate, b"bb");
        let mut bytes = a.encode_frame().unwrap().to_vec();
        bytes.extend_from_slice(&b.encode_frame().unwrap());
        assert_eq!(decode_stream(&bytes), (vec![a, b], None));
    }

    #[test]
    fn accumulator_handles_any_split_and_checks_headers_early() {
        let a = msg(MessageKind::Vertex, b"first");
        let b = msg(MessageKind::Transactions, &[7; 300]);
        let mut bytes = a.encode_frame().unwrap().to_vec();
        bytes.extend_from_slice(&b.encode_frame().unwrap());
        for split in 0..bytes.len() {
            let mut acc = FrameAccumulator::new();
            let mut out = Vec::new();
            for part in [&bytes[..split], &bytes[split..]] {
                acc.push(part);
                while let Some(m) = acc.next_frame(KindClass::Broadcast).unwrap() {
                    out.push(m);
                }
            }
            assert_eq!(out, vec![a.clone(), b.clone()], "split at {split}");
            assert!(acc.is_idle());
        }
        // A request kind on a broadcast stream is refused from the header alone.
        let mut acc = FrameAccumulator::new();
        acc.push(&msg(MessageKind::FetchBlocks, b"x").encode_frame().unwrap()[..FRAME_HEADER_LEN]);
        assert!(matches!(
            acc.next_frame(KindClass::Broadcast),
            Err(WireError::UnexpectedKind { .. })
        ));
        let mut acc = FrameAccumulator::new();
        acc.push(&[WIRE_VERSION, 0, MessageKind::Vertex.tag(), 10, 0]);
        assert_eq!(acc.next_frame(KindClass::Broadcast), Ok(None));
        assert_eq!(acc.missing(), 2);
    }

    proptest! {
        /// Garbage never panics, and whatever is accepted re-encodes to the same bytes.
        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok((m, used)) = decode_frame(&input) {
                prop_assert_eq!(&m.encode_frame().unwrap()[..], &input[..used]);
            }
            let _ = decode_stream(&input);
        }

        /// A valid header followed by arbitrary bytes never panics either.
        #[test]
        fn valid_header_with_garbage(kind_ix in 0usize..12, len in 0u32..64, tail in proptest::collection::vec(any::<u8>(), 0..80)) {
            let kind = MessageKind::ALL[kind_ix];
            let mut input = FrameHeader { chain: ChainId::Alpha, kind, len: 0 }.encode().to_vec();
            input[3..7].copy_from_slice(&len.to_le_bytes());
            input.extend_from_slice(&tail);
            let result = decode_frame(&input);
            if (len as usize) > kind.max_payload() {
                prop_assert!(result.unwrap_err().is_oversize());
            } else if tail.len() < len as usize {
                let is_truncated = matches!(result, Err(WireError::Truncated { .. }));
                prop_assert!(is_truncated);
            } else {
                prop_assert_eq!(result.unwrap().1, FRAME_HEADER_LEN + len as usize);
            }
        }
    }
}
