use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{PublicKey, Scheme};
use crate::encoding::{Decode, DecodeError, Encode, Reader};
use crate::hash::HashDomain;

/// An account address: BLAKE3 (address domain) of the key's scheme tag and bytes.
///
/// Displayed as `dc` followed by 64 hex digits, so it cannot be mistaken for a digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 32]);

impl Address {
    const PREFIX: &'static str = "dc";

    /// The address controlled by `key`.
    pub fn of<S: Scheme>(key: &PublicKey<S>) -> Self {
        let mut h = HashDomain::AccountAddress.hasher();
        h.update(&[S::TAG as u8]).update(key.as_bytes());
        Address(*h.finalize().as_bytes())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({}{})", Self::PREFIX, hex::encode(&self.0[..4]))
    }
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s
            .strip_prefix(Self::PREFIX)
            .ok_or_else(|| format!("an address starts with {:?}", Self::PREFIX))?;
        let bytes = hex::decode(hex_part).map_err(|e| format!("invalid address hex: {e}"))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("an address is 32 bytes, got {}", b.len()))?;
        Ok(Address(array))
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Encode for Address {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
}

impl Decode for Address {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Address(reader.read_array("address")?))
    }
}

/// An asset on Delta. Asset 0 is the native asset in which fees are paid.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct AssetId(pub u32);

impl AssetId {
    pub const NATIVE: AssetId = AssetId(0);
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "asset#{}", self.0)
    }
}

impl Encode for AssetId {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.0.encode_to(out);
    }
}

impl Decode for AssetId {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AssetId(reader.read_u32("asset id")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::AccountKeypair;

    #[test]
    fn address_text_round_trip_and_errors() {
        let a = Address::of(AccountKeypair::from_seed(&[1; 32]).public());
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
        assert!(a.to_string()[2..].parse::<Address>().is_err());
        assert!("dc00".parse::<Address>().is_err());
        assert_ne!(a, Address::of(AccountKeypair::from_seed(&[2; 32]).public()));
    }
}
