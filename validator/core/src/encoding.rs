//! The one canonical binary encoding of everything dualchain hashes or signs.
//!
//! Why a hand-written codec rather than bincode or protobuf: a digest or signature is
//! only meaningful if every value has exactly one byte representation, and if a
//! decoder never allocates more than the input can justify. The rules are few and
//! checkable:
//!
//! - integers are fixed-width little-endian (no varints, so no over-long forms);
//! - `bool` is one byte, `0` or `1`; any other byte is rejected;
//! - `Option<T>` is a tag byte `0` (none) or `1` (some) followed by `T`;
//! - enums are a tag byte followed by the variant's fields; unknown tags are rejected;
//! - sequences and byte strings are a `u32` length followed by the elements; every
//!   decode names a maximum length, and no capacity larger than the remaining input
//!   can justify is reserved up front;
//! - where a sequence is semantically a set (certificate signers, parents, multisig
//!   signers) the type requires strictly increasing order, so there is one form only;
//! - a top-level object ([`Canonical`]) starts with a version byte and must consume
//!   its input exactly: trailing bytes are an error, and so is input longer than the
//!   type's [`Canonical::MAX_ENCODED_LEN`], checked before any parsing.
//!
//! `decode(encode(x)) == x` and `encode(decode(b)) == b` for every accepted `b`; the
//! property tests in this crate check both directions.

use thiserror::Error;

/// Why bytes were refused by a decoder.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("input ended early: needed {needed} more bytes for {what}")]
    UnexpectedEnd { what: &'static str, needed: usize },
    #[error("{what} is {len} bytes or elements long, more than the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{count} trailing bytes after the encoded {what}")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("unknown tag {tag} for {what}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("unsupported encoding version {found} of {what} (this build reads version {expected})")]
    UnsupportedVersion {
        what: &'static str,
        found: u8,
        expected: u8,
    },
    #[error("non-canonical {what}: {detail}")]
    NonCanonical {
        what: &'static str,
        detail: &'static str,
    },
    #[error("invalid {what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

/// Types with a canonical encoding into a byte buffer.
pub trait Encode {
    /// Appends the canonical bytes of `self` to `out`.
    fn encode_to(&self, out: &mut Vec<u8>);
}

/// Types decodable from their canonical encoding.
pub trait Decode: Sized {
    /// Reads one value, leaving the reader just past it.
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// A top-level object: versioned, size-limited, and never followed by trailing bytes.
pub trait Canonical: Encode + Decode {
    /// Human name for error messages.
    const NAME: &'static str;
    /// Version byte written before the object.
    const VERSION: u8 = 1;
    /// Inputs longer than this are refused before any parsing.
    const MAX_ENCODED_LEN: usize;

    /// The canonical bytes: version byte followed by the encoding.
    fn to_canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(Self::VERSION);
        self.encode_to(&mut out);
        out
    }

    /// Decodes exactly one object from `bytes`.
    fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > Self::MAX_ENCODED_LEN {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len: bytes.len(),
                max: Self::MAX_ENCODED_LEN,
            });
        }
        let mut reader = Reader::new(bytes);
        let version = reader.read_u8(Self::NAME)?;
        if version != Self::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                what: Self::NAME,
                found: version,
                expected: Self::VERSION,
            });
        }
        let value = Self::decode_from(&mut reader)?;
        reader.finish(Self::NAME)?;
        Ok(value)
    }
}

/// A cursor over input bytes with bounds-checked reads.
#[derive(Debug)]
pub struct Reader<'a> {
    input: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Self { input }
    }

    /// The unconsumed input; with [`Reader::remaining`] after a decode it gives the
    /// exact bytes a value was decoded from (to hash them without re-encoding).
    pub fn rest(&self) -> &'a [u8] {
        self.input
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.input.len()
    }

    /// Errors unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        if self.input.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                what,
                count: self.input.len(),
            })
        }
    }

    pub fn read_bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.input.len() < len {
            return Err(DecodeError::UnexpectedEnd {
                what,
                needed: len - self.input.len(),
            });
        }
        let (head, tail) = self.input.split_at(len);
        self.input = tail;
        Ok(head)
    }

    pub fn read_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let bytes = self.read_bytes(N, what)?;
        Ok(bytes.try_into().expect("read_bytes returned N bytes"))
    }

    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>(what)?[0])
    }

    pub fn read_u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array(what)?))
    }

    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.read_u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::NonCanonical {
                what,
                detail: "boolean byte other than 0 or 1",
            }),
        }
    }

    /// Reads a `u32` length and checks it against `max` and against the input left,
    /// given that each element takes at least `min_element_len` bytes.
    pub fn read_len(
        &mut self,
        max: usize,
        min_element_len: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let len = self.read_u32(what)? as usize;
        if len > max {
            return Err(DecodeError::TooLong { what, len, max });
        }
        let needed = len.saturating_mul(min_element_len);
        if needed > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                what,
                needed: needed - self.remaining(),
            });
        }
        Ok(len)
    }

    /// A length-prefixed byte string of at most `max` bytes.
    pub fn read_var_bytes(
        &mut self,
        max: usize,
        what: &'static str,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.read_len(max, 1, what)?;
        self.read_bytes(len, what)
    }

    /// A length-prefixed sequence of at most `max` elements.
    pub fn read_vec<T: Decode>(
        &mut self,
        max: usize,
        min_element_len: usize,
        what: &'static str,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.read_len(max, min_element_len.max(1), what)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(T::decode_from(self)?);
        }
        Ok(items)
    }

    /// A UTF-8 string of at most `max` bytes.
    pub fn read_string(&mut self, max: usize, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.read_var_bytes(max, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::Invalid {
            what,
            detail: "not UTF-8".into(),
        })
    }

    /// An optional value: tag 0 or 1.
    pub fn read_option<T: Decode>(&mut self, what: &'static str) -> Result<Option<T>, DecodeError> {
        match self.read_u8(what)? {
            0 => Ok(None),
            1 => Ok(Some(T::decode_from(self)?)),
            tag => Err(DecodeError::UnknownTag { what, tag }),
        }
    }
}

/// Appends a `u32` length prefix. Lengths beyond `u32::MAX` cannot occur: every
/// encodable sequence is bounded far below it by the types' own limits.
pub fn write_len(out: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).expect("encoded sequence longer than u32::MAX");
    out.extend_from_slice(&len.to_le_bytes());
}

pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

pub fn write_vec<T: Encode>(out: &mut Vec<u8>, items: &[T]) {
    write_len(out, items.len());
    for item in items {
        item.encode_to(out);
    }
}

pub fn write_option<T: Encode>(out: &mut Vec<u8>, value: &Option<T>) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            v.encode_to(out);
        }
    }
}

/// Checks that `keys` are strictly increasing (sorted, no duplicates): the single
/// canonical form of a set.
pub fn check_strictly_increasing<K: PartialOrd>(
    keys: impl IntoIterator<Item = K>,
    what: &'static str,
) -> Result<(), DecodeError> {
    let mut previous: Option<K> = None;
    for key in keys {
        if let Some(prev) = &previous
            && *prev >= key
        {
            return Err(DecodeError::NonCanonical {
                what,
                detail: "set elements must be strictly increasing (sorted, no duplicates)",
            });
        }
        previous = Some(key);
    }
    Ok(())
}

macro_rules! int_codec {
    ($($ty:ty => $read:ident),*) => {$(
        impl Encode for $ty {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
        impl Decode for $ty {
            fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
                reader.$read(stringify!($ty))
            }
        }
    )*};
}
int_codec!(u8 => read_u8, u16 => read_u16, u32 => read_u32, u64 => read_u64);

impl Encode for bool {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Decode for bool {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_bool("bool")
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        reader.read_array("byte array")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_rejects_short_input_and_reports_need() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(
            r.read_u64("height"),
            Err(DecodeError::UnexpectedEnd {
                what: "height",
                needed: 5
            })
        );
    }

    #[test]
    fn bool_accepts_only_zero_and_one() {
        assert_eq!(Reader::new(&[0]).read_bool("b"), Ok(false));
        assert_eq!(Reader::new(&[1]).read_bool("b"), Ok(true));
        assert!(matches!(
            Reader::new(&[2]).read_bool("b"),
            Err(DecodeError::NonCanonical { .. })
        ));
    }

    #[test]
    fn lengths_are_bounded_by_limit_and_by_remaining_input() {
        let mut bytes = Vec::new();
        write_len(&mut bytes, 1_000_000);
        assert!(matches!(
            Reader::new(&bytes).read_len(10, 1, "list"),
            Err(DecodeError::TooLong { .. })
        ));
        // A huge claimed length with a generous limit must not be believed either.
        assert!(matches!(
            Reader::new(&bytes).read_len(usize::MAX, 8, "list"),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
    }

    #[test]
    fn sets_must_be_strictly_increasing() {
        assert!(check_strictly_increasing([1, 2, 3], "set").is_ok());
        assert!(check_strictly_increasing([1, 1], "set").is_err());
        assert!(check_strictly_increasing([2, 1], "set").is_err());
        assert!(check_strictly_increasing(Vec::<u8>::new(), "set").is_ok());
    }

    #[test]
    fn option_tags_are_checked() {
        let mut r = Reader::new(&[2]);
        assert!(matches!(
            r.read_option::<u8>("opt"),
            Err(DecodeError::UnknownTag { tag: 2, .. })
        ));
        let mut out = Vec::new();
        write_option(&mut out, &Some(7u8));
        assert_eq!(Reader::new(&out).read_option::<u8>("opt"), Ok(Some(7)));
    }
}
