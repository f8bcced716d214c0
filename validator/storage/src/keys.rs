//! Key layouts shared by every engine. Integers are big-endian so that the bytewise
//! order of keys is the numeric order of heights and rounds.

/// Key of a block or certificate: the height, 8 bytes big-endian.
pub fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

/// Decodes a [`height_key`]; `None` if the key is not exactly 8 bytes.
pub fn parse_height_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Key of a receipt: height (8 bytes BE) ‖ index of the transaction in the block (4 bytes BE).
pub fn receipt_key(height: u64, index: u32) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..8].copy_from_slice(&height.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

/// Key of a vertex: epoch (8 bytes BE) ‖ round (8 bytes BE) ‖ digest (32 bytes). The
/// epoch comes first because every epoch's consensus starts again at round 0: the
/// vertices of one epoch are one key range, read and dropped together.
pub fn vertex_key(epoch: u64, round: u64, digest: &[u8; 32]) -> [u8; 48] {
    let mut key = [0u8; 48];
    key[..8].copy_from_slice(&epoch.to_be_bytes());
    key[8..16].copy_from_slice(&round.to_be_bytes());
    key[16..].copy_from_slice(digest);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn height_keys_sort_numerically() {
        assert!(height_key(9) < height_key(10));
        assert!(height_key(255) < height_key(256));
        assert_eq!(parse_height_key(&height_key(1234)), Some(1234));
        assert_eq!(parse_height_key(b"short"), None);
    }

    #[test]
    fn receipt_keys_sort_by_height_then_index() {
        assert!(receipt_key(1, u32::MAX) < receipt_key(2, 0));
        assert!(receipt_key(2, 1) < receipt_key(2, 2));
        assert!(receipt_key(3, 0).starts_with(&height_key(3)));
    }
}
