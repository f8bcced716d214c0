//! Validator identity on a transport connection, and the membership view.
//!
//! TLS certificates are ephemeral and self-signed: they authenticate nothing. What
//! binds a connection to a validator is the identity hello each side sends after the
//! QUIC handshake: its ML-DSA-87 public key and a signature, in the
//! [`SigningDomain::PeerIdentity`] domain of the network (so a validator of two networks
//! sharing its key cannot be impersonated on one with a hello of the other), over
//!
//! ```text
//! role byte (0 = dialer, 1 = acceptor) ‖ TLS exporter secret of this connection
//! ```
//!
//! The exporter secret ([`EXPORTER_LABEL`], 32 bytes) is derived from the TLS master
//! secret, so it is unique to this connection and known only to its two endpoints; a
//! relay in the middle holds two different TLS sessions with two different secrets
//! and cannot forward a signature from one to the other (channel binding). The role
//! byte stops a peer from reflecting our own hello back at us.
//!
//! A hello is accepted only if the key belongs to the current [`Membership`] view and
//! the signature verifies. The view is shared and updated at runtime (epoch changes);
//! the transport closes connections of validators that leave it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::crypto::{
    NetworkId, Scheme, SigningDomain, ValidatorKeypair, ValidatorPublicKey, ValidatorScheme,
    ValidatorSignature,
};
use dualchain_core::encoding::{Canonical, Decode, DecodeError, Encode, Reader};
use dualchain_core::types::ValidatorSet;
use thiserror::Error;
use tokio::sync::watch;

/// TLS exporter label of the identity proof (RFC 5705 / RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-dualchain-peer-identity-v1";
/// Length of the exported secret that is signed.
pub const EXPORTER_LEN: usize = 32;

/// A validator's identity on the network: the id of its ML-DSA-87 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub Digest);

impl PeerId {
    pub fn of(key: &ValidatorPublicKey) -> Self {
        PeerId(key.id())
    }

    /// An arbitrary id (simulations of the in-memory network need no keys).
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        PeerId(Digest(bytes))
    }

    pub fn short(&self) -> String {
        self.0.short()
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId({})", self.short())
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

/// Which end of the connection sent a hello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dialer = 0,
    Acceptor = 1,
}

impl Role {
    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(Role::Dialer),
            1 => Some(Role::Acceptor),
            _ => None,
        }
    }
}

/// The identity proof sent once per connection by each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hello {
    pub role: Role,
    pub public_key: ValidatorPublicKey,
    pub signature: ValidatorSignature,
}

/// Why a peer's identity was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IdentityError {
    #[error("malformed identity hello: {0}")]
    Malformed(#[from] DecodeError),
    #[error("identity hello has role {found:?}, expected {expected:?} (reflected hello?)")]
    WrongRole { found: Role, expected: Role },
    #[error("validator {0} is not a member of the current validator set")]
    UnknownValidator(PeerId),
    #[error(
        "identity signature of validator {0} does not verify over this connection's exporter secret"
    )]
    BadSignature(PeerId),
}

impl IdentityError {
    /// Metrics label of the failure.
    pub fn reason(&self) -> &'static str {
        match self {
            IdentityError::Malformed(_) => "identity_malformed",
            IdentityError::WrongRole { .. } => "identity_wrong_role",
            IdentityError::UnknownValidator(_) => "identity_unknown_validator",
            IdentityError::BadSignature(_) => "identity_bad_signature",
        }
    }
}

fn signed_message(role: Role, exporter: &[u8; EXPORTER_LEN]) -> [u8; 1 + EXPORTER_LEN] {
    let mut message = [0u8; 1 + EXPORTER_LEN];
    message[0] = role as u8;
    message[1..].copy_from_slice(exporter);
    message
}

impl Hello {
    /// Signs this connection's exporter secret as `role`, on `network`.
    pub fn sign(
        keypair: &ValidatorKeypair,
        role: Role,
        exporter: &[u8; EXPORTER_LEN],
        network: NetworkId,
    ) -> Self {
        let context = SigningDomain::PeerIdentity.on(network);
        let signature = keypair.sign(context, &signed_message(role, exporter));
        Self {
            role,
            public_key: keypair.public().clone(),
            signature,
        }
    }

    /// Accepts the hello if it comes from the expected role, from a current member,
    /// and signs this connection's exporter secret on `network`. Returns the member's
    /// id.
    pub fn verify(
        &self,
        expected: Role,
        exporter: &[u8; EXPORTER_LEN],
        membership: &MemberSet,
        network: NetworkId,
    ) -> Result<PeerId, IdentityError> {
        if self.role != expected {
            return Err(IdentityError::WrongRole {
                found: self.role,
                expected,
            });
        }
        let peer = PeerId::of(&self.public_key);
        if !membership.contains_key(&self.public_key) {
            return Err(IdentityError::UnknownValidator(peer));
        }
        self.public_key
            .verify(
                SigningDomain::PeerIdentity.on(network),
                &signed_message(self.role, exporter),
                &self.signature,
            )
            .map_err(|_| IdentityError::BadSignature(peer))?;
        Ok(peer)
    }
}

impl Encode for Hello {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(self.role as u8);
        self.public_key.encode_to(out);
        self.signature.encode_to(out);
    }
}

impl Decode for Hello {
    fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.read_u8("hello role")?;
        let role = Role::from_tag(tag).ok_or(DecodeError::UnknownTag {
            what: "hello role",
            tag,
        })?;
        Ok(Self {
            role,
            public_key: Decode::decode_from(r)?,
            signature: Decode::decode_from(r)?,
        })
    }
}

impl Canonical for Hello {
    const NAME: &'static str = "identity hello";
    const MAX_ENCODED_LEN: usize =
        1 + 1 + ValidatorScheme::PUBLIC_KEY_LEN + ValidatorScheme::SIGNATURE_LEN;
}

/// One version of the validator set, as the transport needs it: keys by id.
#[derive(Clone, Debug, Default)]
pub struct MemberSet {
    pub epoch: u64,
    members: HashMap<PeerId, ValidatorPublicKey>,
}

impl MemberSet {
    pub fn new(epoch: u64, keys: impl IntoIterator<Item = ValidatorPublicKey>) -> Self {
        Self {
            epoch,
            members: keys.into_iter().map(|k| (PeerId::of(&k), k)).collect(),
        }
    }

    pub fn from_validator_set(set: &ValidatorSet) -> Self {
        Self::new(
            set.epoch(),
            set.validators().iter().map(|v| v.public_key.clone()),
        )
    }

    pub fn contains(&self, peer: &PeerId) -> bool {
        self.members.contains_key(peer)
    }

    /// Membership by full key (the id alone could be claimed with another key).
    pub fn contains_key(&self, key: &ValidatorPublicKey) -> bool {
        self.members.get(&PeerId::of(key)) == Some(key)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.members.keys()
    }
}

/// The shared, runtime-updatable view of who may connect. Clones share one view.
#[derive(Clone)]
pub struct Membership {
    sender: Arc<watch::Sender<Arc<MemberSet>>>,
}

impl Membership {
    pub fn new(set: MemberSet) -> Self {
        Self {
            sender: Arc::new(watch::Sender::new(Arc::new(set))),
        }
    }

    pub fn from_validator_set(set: &ValidatorSet) -> Self {
        Self::new(MemberSet::from_validator_set(set))
    }

    /// Replaces the view (a new epoch); connected non-members are disconnected.
    pub fn update(&self, set: MemberSet) {
        self.sender.send_replace(Arc::new(set));
    }

    pub fn update_from_validator_set(&self, set: &ValidatorSet) {
        self.update(MemberSet::from_validator_set(set));
    }

    pub fn current(&self) -> Arc<MemberSet> {
        self.sender.borrow().clone()
    }

    /// Notified on every update.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MemberSet>> {
        self.sender.subscribe()
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current();
        write!(
            f,
            "Membership(epoch {}, {} validators)",
            current.epoch,
            current.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NET: NetworkId = NetworkId(Digest([0x11; 32]));

    fn key(seed: u64) -> ValidatorKeypair {
        ValidatorKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn hello_verifies_and_round_trips() {
        let a = key(1);
        let members = MemberSet::new(0, [a.public().clone()]);
        let exporter = [7u8; EXPORTER_LEN];
        let hello = Hello::sign(&a, Role::Dialer, &exporter, NET);
        let decoded = Hello::from_canonical_bytes(&hello.to_canonical_bytes()).unwrap();
        assert_eq!(decoded, hello);
        assert_eq!(
            decoded.verify(Role::Dialer, &exporter, &members, NET),
            Ok(PeerId::of(a.public()))
        );
    }

    #[test]
    fn other_connection_role_or_membership_is_refused() {
        let a = key(1);
        let outsider = key(2);
        let members = MemberSet::new(0, [a.public().clone()]);
        let hello = Hello::sign(&a, Role::Dialer, &[7; EXPORTER_LEN], NET);
        // Another connection's exporter secret: the relayed signature fails.
        assert!(matches!(
            hello.verify(Role::Dialer, &[8; EXPORTER_LEN], &members, NET),
            Err(IdentityError::BadSignature(_))
        ));
        // The same key's hello on another network (a validator of a testnet and
        // the mainnet with one key): refused here.
        let other_network = Hello::sign(
            &a,
            Role::Dialer,
            &[7; EXPORTER_LEN],
            NetworkId(Digest([0x12; 32])),
        );
        assert!(matches!(
            other_network.verify(Role::Dialer, &[7; EXPORTER_LEN], &members, NET),
            Err(IdentityError::BadSignature(_))
        ));
        // Reflected back at its sender.
        assert!(matches!(
            hello.verify(Role::Acceptor, &[7; EXPORTER_LEN], &members, NET),
            Err(IdentityError::WrongRole { .. })
        ));
        let stranger = Hello::sign(&outsider, Role::Dialer, &[7; EXPORTER_LEN], NET);
        assert!(matches!(
            stranger.verify(Role::Dialer, &[7; EXPORTER_LEN], &members, NET),
            Err(IdentityError::UnknownValidator(_))
        ));
        // A member's key with the impostor's signature.
        let impostor = Hello {
            public_key: a.public().clone(),
            ..stranger
        };
        assert!(matches!(
            impostor.verify(Role::Dialer, &[7; EXPORTER_LEN], &members, NET),
            Err(IdentityError::BadSignature(_))
        ));
    }

    #[test]
    fn membership_updates_are_seen_by_subscribers() {
        let a = key(1);
        let b = key(2);
        let view = Membership::new(MemberSet::new(0, [a.public().clone()]));
        let mut rx = view.subscribe();
        assert!(!view.current().contains_key(b.public()));
        view.update(MemberSet::new(1, [b.public().clone()]));
        assert!(rx.has_changed().unwrap());
        let now = rx.borrow_and_update().clone();
        assert_eq!(now.epoch, 1);
        assert!(now.contains(&PeerId::of(b.public())));
        assert!(!now.contains(&PeerId::of(a.public())));
    }

    #[test]
    fn truncated_or_garbage_hello_is_malformed() {
        let hello = Hello::sign(&key(1), Role::Acceptor, &[0; EXPORTER_LEN], NET);
        let bytes = hello.to_canonical_bytes();
        assert!(Hello::from_canonical_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert!(Hello::from_canonical_bytes(&bad).is_err());
    }
}
