//! Fuzzes the transport's frame decoder and the identity hello decoder: any input
//! must decode or be refused with an error, never panic, and whatever decodes must
//! re-encode to exactly the bytes consumed.

#![no_main]

use dualchain_core::encoding::Canonical;
use dualchain_net::identity::Hello;
use dualchain_net::wire::{FRAME_HEADER_LEN, FrameHeader, decode_frame, decode_stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((message, used)) = decode_frame(data) {
        let again = message
            .encode_frame()
            .expect("decoded frames are within limits");
        assert_eq!(&again[..], &data[..used]);
    }
    let (messages, _) = decode_stream(data);
    for m in messages {
        assert!(m.payload.len() <= m.kind.max_payload());
    }
    if let Some(header) = data.get(..FRAME_HEADER_LEN) {
        let header: &[u8; FRAME_HEADER_LEN] = header.try_into().unwrap();
        if let Ok(h) = FrameHeader::decode(header) {
            assert_eq!(&h.encode(), header);
        }
    }
    if let Ok(hello) = Hello::from_canonical_bytes(data) {
        assert_eq!(hello.to_canonical_bytes(), data);
    }
});
