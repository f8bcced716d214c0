//! Reading and writing frames on QUIC streams, with the wire checks applied before
//! any payload byte is read.

use bytes::{Bytes, BytesMut};

use crate::wire::{FRAME_HEADER_LEN, FrameAccumulator, FrameHeader, KindClass, Message, WireError};

/// Memory reserved up front for a payload; the rest grows only as bytes arrive, so a
/// peer that declares a large frame and sends nothing costs us at most this much.
const INITIAL_PAYLOAD_CAPACITY: usize = 1024 * 1024;

/// Why reading a frame stopped.
#[derive(Debug)]
pub(crate) enum ReadFrameError {
    /// The peer broke the protocol: penalise it and stop the stream.
    Wire(WireError),
    /// The stream or connection failed underneath (reset, closed, lost).
    Stream(String),
}

/// Reads one frame of class `expected`; `Ok(None)` on a clean end of stream before
/// a header.
pub(crate) async fn read_frame(
    recv: &mut quinn::RecvStream,
    expected: KindClass,
) -> Result<Option<(FrameHeader, Bytes)>, ReadFrameError> {
    let mut header_bytes = [0u8; FRAME_HEADER_LEN];
    match recv.read_exact(&mut header_bytes).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(n)) => {
            return Err(ReadFrameError::Wire(WireError::Truncated {
                needed: FRAME_HEADER_LEN - n,
            }));
        }
        Err(quinn::ReadExactError::ReadError(e)) => {
            return Err(ReadFrameError::Stream(e.to_string()));
        }
    }
    let header = FrameHeader::decode(&header_bytes).map_err(ReadFrameError::Wire)?;
    header
        .expect_class(expected)
        .map_err(ReadFrameError::Wire)?;
    let payload = read_payload(recv, header.len).await?;
    Ok(Some((header, payload)))
}

async fn read_payload(recv: &mut quinn::RecvStream, len: usize) -> Result<Bytes, ReadFrameError> {
    let truncated = |got: usize| ReadFrameError::Wire(WireError::Truncated { needed: len - got });
    if len == 0 {
        return Ok(Bytes::new());
    }
    // Common case: the whole payload arrives as one chunk, handed over without a copy.
    let first = match recv.read_chunk(len, true).await {
        Ok(Some(chunk)) => chunk.bytes,
        Ok(None) => return Err(truncated(0)),
        Err(e) => return Err(ReadFrameError::Stream(e.to_string())),
    };
    if first.len() == len {
        return Ok(first);
    }
    let mut buf = BytesMut::with_capacity(len.min(INITIAL_PAYLOAD_CAPACITY));
    buf.extend_from_slice(&first);
    while buf.len() < len {
        match recv.read_chunk(len - buf.len(), true).await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk.bytes),
            Ok(None) => return Err(truncated(buf.len())),
            Err(e) => return Err(ReadFrameError::Stream(e.to_string())),
        }
    }
    Ok(buf.freeze())
}

/// Chunks taken from quinn per read call.
const READ_CHUNKS: usize = 32;

/// Reads a long-lived stream of frames in batches: every call takes all the data
/// quinn has buffered (up to [`READ_CHUNKS`] chunks) and returns every complete
/// frame in it, so a burst of small frames costs one read and one delivery instead
/// of two reads and one delivery each. Parsing is [`FrameAccumulator`]'s (headers
/// checked before their payload is awaited); memory grows only with data that
/// actually arrived, which QUIC flow control bounds.
pub(crate) struct FrameStreamReader {
    frames: FrameAccumulator,
    /// An error found after some good frames of the same read; reported next call.
    failed: Option<WireError>,
}

impl FrameStreamReader {
    pub(crate) fn new() -> Self {
        Self {
            frames: FrameAccumulator::new(),
            failed: None,
        }
    }

    /// Appends at least one frame to `out` (at most `max`), or reports the clean end
    /// of the stream (`Ok(false)`) or why the stream must be abandoned.
    pub(crate) async fn read_batch(
        &mut self,
        recv: &mut quinn::RecvStream,
        expected: KindClass,
        out: &mut Vec<Message>,
        max: usize,
    ) -> Result<bool, ReadFrameError> {
        if let Some(e) = self.failed.take() {
            return Err(ReadFrameError::Wire(e));
        }
        let mut chunks: [Bytes; READ_CHUNKS] = Default::default();
        loop {
            while out.len() < max.max(1) {
                match self.frames.next_frame(expected) {
                    Ok(Some(frame)) => out.push(frame),
                    Ok(None) => break,
                    Err(e) if out.is_empty() => return Err(ReadFrameError::Wire(e)),
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                }
            }
            if !out.is_empty() {
                return Ok(true);
            }
            match recv.read_chunks(&mut chunks).await {
                Ok(Some(n)) => {
                    for chunk in &mut chunks[..n] {
                        self.frames.push(chunk);
                        *chunk = Bytes::new();
                    }
                }
                Ok(None) if self.frames.is_idle() => return Ok(false),
                Ok(None) => {
                    return Err(ReadFrameError::Wire(WireError::Truncated {
                        needed: self.frames.missing(),
                    }));
                }
                Err(e) => return Err(ReadFrameError::Stream(e.to_string())),
            }
        }
    }
}
