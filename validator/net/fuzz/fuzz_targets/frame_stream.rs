//! Fuzzes the incremental stream decoder the transport runs on every broadcast
//! stream: arbitrary bytes, cut into arbitrary pieces, must yield exactly the frames
//! the one-shot decoder finds (up to the first frame a broadcast stream refuses),
//! whatever the cuts, and never panic.

#![no_main]

use dualchain_net::wire::{FrameAccumulator, KindClass, decode_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cuts, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(cuts % 8);
    if rest.len() < 2 * cuts {
        return;
    }
    let (cut_bytes, stream) = rest.split_at(2 * cuts);
    let mut points: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    points.sort_unstable();

    let (all, _) = decode_stream(stream);
    let want: Vec<_> = all
        .into_iter()
        .take_while(|m| m.kind.class() == KindClass::Broadcast)
        .collect();

    let mut acc = FrameAccumulator::new();
    let mut got = Vec::new();
    let mut start = 0;
    'feed: for end in points.into_iter().chain([stream.len()]) {
        acc.push(&stream[start..end]);
        start = end;
        loop {
            match acc.next_frame(KindClass::Broadcast) {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(_) => break 'feed,
            }
        }
    }
    assert_eq!(got, want);
});
