//! Post-quantum signatures: ML-DSA (FIPS 204).
//!
//! Behind this module's types, two implementations, each the fastest measured here for
//! its job (`cargo bench -p dualchain-benches --bench crypto` runs all candidates side
//! by side): AWS-LC verifies ([`verify_aws_lc`]) and `libcrux-ml-dsa` generates keys
//! and signs deterministically ([`sign_libcrux`]). RustCrypto's `ml-dsa`, an
//! independent implementation, checks both in this module's tests: the same seeds give
//! the same keys and signatures, and every signature, intact or tampered with, gets
//! the same verdict from it as from AWS-LC.
//!
//! Two parameter sets, chosen per role:
//!
//! - **Validators: ML-DSA-87** (NIST category 5). Validator keys sign vertices, block
//!   certificates, attestations and peer handshakes for as long as the validator
//!   serves; a forged validator signature can rewrite history, so they get the
//!   strongest set. Public key 2,592 bytes, signature 4,627 bytes.
//! - **Accounts: ML-DSA-44** (NIST category 2). Every transaction carries a public key
//!   and a signature, so their size bounds throughput: ML-DSA-44 has 1,312-byte keys
//!   and 2,420-byte signatures (about half of ML-DSA-87) and verifies roughly twice as
//!   fast, while category 2 still matches the security of SHA-256 collision search.
//!   Accounts can move funds to a key of another set later: the scheme is recorded in
//!   every address derivation ([`SchemeTag`]), so a stronger account set can be added
//!   without ambiguity.
//!
//! Domain separation of signatures uses FIPS 204's context string ([`SigningContext`]):
//! its purpose ([`SigningDomain`]) and its network ([`NetworkId`], the genesis hash).
//! A vertex signature can never verify as a transaction or certificate signature, even
//! over the same 32 bytes, and nothing signed for one network verifies on another, even
//! when networks share keys (benchmark networks reuse account seeds). Signing is
//! deterministic (FIPS 204's deterministic variant): the same key and message always
//! give the same bytes, which keeps replays and test vectors reproducible.
//!
//! Secret material is a 32-byte seed (FIPS 204 ξ); the expanded key is derived from it
//! and zeroised on drop. Neither is ever printed: `Debug` shows only the public key.
//!
//! With the `simulated-signatures` feature (the whole-node simulator only), a key pair
//! can also be made by [`Keypair::simulated`]: it signs with a keyed BLAKE3 hash of the
//! same length as an ML-DSA signature, so a simulation spends its time on the protocol
//! instead of on lattice arithmetic. Such a key exists only in the process that made it:
//! a public key decoded from bytes is always ML-DSA, so a simulated signature never
//! verifies anywhere else, and no production code path can construct one.

use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use rand::{CryptoRng, TryRngCore};
use zeroize::Zeroizing;

use crate::encoding::{Decode, DecodeError, Encode, Reader};
use crate::hash::{Digest, HashDomain};

mod sign_libcrux;
#[allow(unsafe_code)]
mod verify_aws_lc;

/// What a signature is for. Each domain is a distinct FIPS 204 context string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SigningDomain {
    /// An account authorising a transaction (message: the transaction digest).
    Transaction,
    /// A validator's vertex (message: the vertex digest).
    Vertex,
    /// A validator's vote for an executed block header (message: the header digest).
    BlockVote,
    /// A validator proving its identity on a transport connection (message: the TLS
    /// exporter secret).
    PeerIdentity,
    /// Cross-chain attestations between Alpha and Delta.
    Attestation,
    /// Signed responses to consensus queries (the Avalanche engine).
    QueryResponse,
    /// A validator asking to join or leave the set (message:
    /// `types::set_change_message`).
    ValidatorSetChange,
}

impl SigningDomain {
    /// This domain's signatures for `network`.
    pub const fn on(self, network: NetworkId) -> SigningContext {
        SigningContext {
            domain: self,
            network,
        }
    }

    /// The label of the domain, the first part of every context string made with it.
    pub const fn label(self) -> &'static [u8] {
        match self {
            SigningDomain::Transaction => b"dualchain/v1/transaction",
            SigningDomain::Vertex => b"dualchain/v1/vertex",
            SigningDomain::BlockVote => b"dualchain/v1/block-vote",
            SigningDomain::PeerIdentity => b"dualchain/v1/peer-identity",
            SigningDomain::Attestation => b"dualchain/v1/attestation",
            SigningDomain::QueryResponse => b"dualchain/v1/query-response",
            SigningDomain::ValidatorSetChange => b"dualchain/v1/set-change",
        }
    }
}

/// The network a signature belongs to: the hash of the network's genesis (both chains
/// share it). Every node knows it from its genesis; clients learn it from
/// `NodeStatus.network_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetworkId(pub Digest);

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Longest context string: the longest label, a separator and the network id.
const MAX_CONTEXT_LEN: usize = 64;

/// What a signature covers besides its message: what it is for and on which network.
/// Its FIPS 204 context string is `<domain label>/<32 bytes of network id>`, so a
/// signature made under one context never verifies under another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SigningContext {
    pub domain: SigningDomain,
    pub network: NetworkId,
}

/// A FIPS 204 context string, on the stack (signing must not allocate per call).
pub struct ContextString {
    bytes: [u8; MAX_CONTEXT_LEN],
    len: usize,
}

impl ContextString {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl SigningContext {
    /// The FIPS 204 context string, for any other implementation that must produce or
    /// check our signatures.
    pub fn context_string(&self) -> ContextString {
        let label = self.domain.label();
        let network = &self.network.0.0;
        let len = label.len() + 1 + network.len();
        assert!(
            len <= MAX_CONTEXT_LEN,
            "context strings fit FIPS 204's 255 bytes"
        );
        let mut bytes = [0u8; MAX_CONTEXT_LEN];
        bytes[..label.len()].copy_from_slice(label);
        bytes[label.len()] = b'/';
        bytes[label.len() + 1..len].copy_from_slice(network);
        ContextString { bytes, len }
    }
}

/// The signature scheme of a key, recorded in addresses and key files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemeTag {
    MlDsa44 = 1,
    MlDsa87 = 3,
}

impl SchemeTag {
    pub const fn name(self) -> &'static str {
        match self {
            SchemeTag::MlDsa44 => "ml-dsa-44",
            SchemeTag::MlDsa87 => "ml-dsa-87",
        }
    }
}

/// An ML-DSA parameter set, as the implementations behind this module name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParameterSet {
    MlDsa44,
    MlDsa87,
}

/// A role's signature scheme: which ML-DSA parameter set, and its sizes.
pub trait Scheme: Send + Sync + 'static {
    const PARAMETER_SET: ParameterSet;
    const TAG: SchemeTag;
    const PUBLIC_KEY_LEN: usize;
    const SIGNATURE_LEN: usize;
    /// Name for error messages ("validator", "account").
    const ROLE: &'static str;
}

/// Validators: ML-DSA-87.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValidatorScheme;

impl Scheme for ValidatorScheme {
    const PARAMETER_SET: ParameterSet = ParameterSet::MlDsa87;
    const TAG: SchemeTag = SchemeTag::MlDsa87;
    const PUBLIC_KEY_LEN: usize = 2592;
    const SIGNATURE_LEN: usize = 4627;
    const ROLE: &'static str = "validator";
}

/// Accounts: ML-DSA-44.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AccountScheme;

impl Scheme for AccountScheme {
    const PARAMETER_SET: ParameterSet = ParameterSet::MlDsa44;
    const TAG: SchemeTag = SchemeTag::MlDsa44;
    const PUBLIC_KEY_LEN: usize = 1312;
    const SIGNATURE_LEN: usize = 2420;
    const ROLE: &'static str = "account";
}

/// Why a signature was not accepted.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SignatureError {
    #[error("{role} signature does not verify under the given public key and domain")]
    Invalid { role: &'static str },
    #[error("{role} public key is malformed")]
    MalformedKey { role: &'static str },
    #[error("{role} signature is malformed")]
    MalformedSignature { role: &'static str },
}

/// A public key of scheme `S`. Equality and hashing use the encoded bytes; the
/// parsed verifying key is made once, on first use, and shared by clones.
pub struct PublicKey<S: Scheme> {
    bytes: Arc<[u8]>,
    verifier: Verifier<S>,
}

/// How a public key checks signatures.
enum Verifier<S: Scheme> {
    /// FIPS 204 verification with the parsed key (made on first use).
    MlDsa(
        Arc<OnceLock<Option<verify_aws_lc::VerifyingKey>>>,
        PhantomData<S>,
    ),
    /// The in-process simulation scheme: the BLAKE3 key that made the signatures.
    #[cfg(feature = "simulated-signatures")]
    Simulated(Arc<Zeroizing<[u8; 32]>>),
}

impl<S: Scheme> Clone for Verifier<S> {
    fn clone(&self) -> Self {
        match self {
            Verifier::MlDsa(key, _) => Verifier::MlDsa(key.clone(), PhantomData),
            #[cfg(feature = "simulated-signatures")]
            Verifier::Simulated(key) => Verifier::Simulated(key.clone()),
        }
    }
}

impl<S: Scheme> PublicKey<S> {
    /// Wraps encoded key bytes; only the length is checked here (any byte string of
    /// the right length decodes to some ML-DSA key).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        if bytes.len() != S::PUBLIC_KEY_LEN {
            return Err(SignatureError::MalformedKey { role: S::ROLE });
        }
        Ok(Self {
            bytes: Arc::from(bytes),
            verifier: Verifier::MlDsa(Arc::new(OnceLock::new()), PhantomData),
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// Verifies `signature` over `message` in `context`.
    pub fn verify(
        &self,
        context: SigningContext,
        message: &[u8],
        signature: &Signature<S>,
    ) -> Result<(), SignatureError> {
        match &self.verifier {
            Verifier::MlDsa(parsed, _) => {
                Self::verify_ml_dsa(&self.bytes, parsed, context, message, signature)
            }
            #[cfg(feature = "simulated-signatures")]
            Verifier::Simulated(key) => {
                if simulated::sign::<S>(key, context, message) == *signature {
                    Ok(())
                } else {
                    Err(SignatureError::Invalid { role: S::ROLE })
                }
            }
        }
    }

    fn verify_ml_dsa(
        bytes: &[u8],
        parsed: &OnceLock<Option<verify_aws_lc::VerifyingKey>>,
        context: SigningContext,
        message: &[u8],
        signature: &Signature<S>,
    ) -> Result<(), SignatureError> {
        let key = parsed
            .get_or_init(|| verify_aws_lc::VerifyingKey::parse(S::PARAMETER_SET, bytes))
            .as_ref()
            .ok_or(SignatureError::MalformedKey { role: S::ROLE })?;
        if key.verify(
            message,
            context.context_string().as_bytes(),
            signature.as_bytes(),
        ) {
            Ok(())
        } else {
            Err(SignatureError::Invalid { role: S::ROLE })
        }
    }

    /// A short, stable identifier: BLAKE3 of the scheme tag and key bytes.
    pub fn id(&self) -> Digest {
        let mut h = HashDomain::ValidatorId.hasher();
        h.update(&[S::TAG as u8]).update(&self.bytes);
        Digest(*h.finalize().as_bytes())
    }
}

impl<S: Scheme> Clone for PublicKey<S> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            verifier: self.verifier.clone(),
        }
    }
}

impl<S: Scheme> PartialEq for PublicKey<S> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<S: Scheme> Eq for PublicKey<S> {}

impl<S: Scheme> std::hash::Hash for PublicKey<S> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.bytes.hash(state)
    }
}

impl<S: Scheme> PartialOrd for PublicKey<S> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<S: Scheme> Ord for PublicKey<S> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.bytes.cmp(&other.bytes)
    }
}

impl<S: Scheme> fmt::Debug for PublicKey<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}PublicKey({})", S::ROLE, self.id().short())
    }
}

impl<S: Scheme> Encode for PublicKey<S> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }
}

impl<S: Scheme> Decode for PublicKey<S> {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = reader.read_bytes(S::PUBLIC_KEY_LEN, "public key")?;
        Self::from_bytes(bytes).map_err(|e| DecodeError::Invalid {
            what: "public key",
            detail: e.to_string(),
        })
    }
}

/// An encoded signature of scheme `S` (fixed length).
pub struct Signature<S: Scheme> {
    bytes: Box<[u8]>,
    _scheme: PhantomData<S>,
}

impl<S: Scheme> Signature<S> {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SignatureError> {
        if bytes.len() != S::SIGNATURE_LEN {
            return Err(SignatureError::MalformedSignature { role: S::ROLE });
        }
        Ok(Self {
            bytes: bytes.into(),
            _scheme: PhantomData,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl<S: Scheme> Clone for Signature<S> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            _scheme: PhantomData,
        }
    }
}

impl<S: Scheme> PartialEq for Signature<S> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}
impl<S: Scheme> Eq for Signature<S> {}

impl<S: Scheme> fmt::Debug for Signature<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}Signature({}…)",
            S::ROLE,
            hex::encode(&self.bytes[..6])
        )
    }
}

impl<S: Scheme> Encode for Signature<S> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }
}

impl<S: Scheme> Decode for Signature<S> {
    fn decode_from(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let bytes = reader.read_bytes(S::SIGNATURE_LEN, "signature")?;
        Self::from_bytes(bytes).map_err(|e| DecodeError::Invalid {
            what: "signature",
            detail: e.to_string(),
        })
    }
}

/// A secret signing key of scheme `S`, held as its 32-byte seed plus the derived key.
pub struct Keypair<S: Scheme> {
    seed: Zeroizing<[u8; 32]>,
    signing: Signer,
    public: PublicKey<S>,
}

/// How a key pair signs.
enum Signer {
    MlDsa(sign_libcrux::SigningKey),
    /// The simulation scheme's MAC key (shared with the public key, which verifies with it).
    #[cfg(feature = "simulated-signatures")]
    Simulated(Arc<Zeroizing<[u8; 32]>>),
}

impl<S: Scheme> Keypair<S> {
    /// Derives the key pair from a 32-byte seed (FIPS 204 `KeyGen_internal(ξ)`).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let (signing, encoded) = sign_libcrux::SigningKey::from_seed(S::PARAMETER_SET, seed);
        let public = PublicKey::from_bytes(&encoded)
            .expect("ML-DSA key generation made a public key of the scheme's length");
        Self {
            seed: Zeroizing::new(*seed),
            signing: Signer::MlDsa(signing),
            public,
        }
    }

    /// A key pair of the in-process simulation scheme, derived from `seed` (see the
    /// module documentation): signatures are keyed BLAKE3 hashes of ML-DSA's length.
    /// Its public key verifies only through this process's copy of it; the same bytes
    /// decoded anywhere are an ML-DSA key that rejects every simulated signature.
    #[cfg(feature = "simulated-signatures")]
    pub fn simulated(seed: &[u8; 32]) -> Self {
        let (bytes, key) = simulated::derive::<S>(seed);
        let key = Arc::new(key);
        Self {
            seed: Zeroizing::new(*seed),
            signing: Signer::Simulated(key.clone()),
            public: PublicKey {
                bytes: Arc::from(bytes),
                verifier: Verifier::Simulated(key),
            },
        }
    }

    /// A fresh key pair from `rng` (use a CSPRNG; seeded only in tests and simulations).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// A fresh key pair from the operating system's entropy source.
    pub fn generate_from_os() -> Result<Self, std::io::Error> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(std::io::Error::other)?;
        Ok(Self::from_seed(&seed))
    }

    pub fn public(&self) -> &PublicKey<S> {
        &self.public
    }

    /// An ML-DSA key pair of scheme `T` derived from this one's seed under `context`
    /// (a BLAKE3 derive-key context naming the purpose). A validator uses it for the
    /// account it relays attestations from, so that account's key lives exactly where
    /// the validator key lives and needs no file of its own. Always ML-DSA, also from a
    /// simulated key: transactions carry their public key as bytes, and bytes decode
    /// only to ML-DSA keys.
    pub fn derive<T: Scheme>(&self, context: &str) -> Keypair<T> {
        let seed = Zeroizing::new(blake3::derive_key(context, self.seed.as_ref()));
        Keypair::from_seed(&seed)
    }

    /// The secret seed. Only key files may call this; never log it.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// Signs `message` in `context` (deterministic FIPS 204 signing).
    pub fn sign(&self, context: SigningContext, message: &[u8]) -> Signature<S> {
        match &self.signing {
            Signer::MlDsa(signing) => {
                let context = context.context_string();
                Signature::from_bytes(&signing.sign(message, context.as_bytes()))
                    .expect("ML-DSA signing made a signature of the scheme's length")
            }
            #[cfg(feature = "simulated-signatures")]
            Signer::Simulated(key) => simulated::sign::<S>(key, context, message),
        }
    }
}

/// The simulation scheme: a keyed BLAKE3 MAC stretched to the scheme's signature length.
/// Fast, deterministic and domain-separated like the real one; secure only in the sense
/// that a node of a simulation cannot sign for another without its key.
#[cfg(feature = "simulated-signatures")]
mod simulated {
    use super::*;

    const PUBLIC_CONTEXT: &str = "dualchain 2026-12 simulated signature public key";
    const SECRET_CONTEXT: &str = "dualchain 2026-12 simulated signature secret key";

    /// The public key bytes and the MAC key of `seed`.
    pub(super) fn derive<S: Scheme>(seed: &[u8; 32]) -> (Vec<u8>, Zeroizing<[u8; 32]>) {
        let mut hasher = blake3::Hasher::new_derive_key(PUBLIC_CONTEXT);
        hasher.update(&[S::TAG as u8]).update(seed);
        let mut public = vec![0u8; S::PUBLIC_KEY_LEN];
        hasher.finalize_xof().fill(&mut public);
        let mut secret = blake3::Hasher::new_derive_key(SECRET_CONTEXT);
        secret.update(&[S::TAG as u8]).update(seed);
        (public, Zeroizing::new(*secret.finalize().as_bytes()))
    }

    pub(super) fn sign<S: Scheme>(
        key: &[u8; 32],
        context: SigningContext,
        message: &[u8],
    ) -> Signature<S> {
        let context = context.context_string();
        let context = context.as_bytes();
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher
            .update(&(context.len() as u64).to_le_bytes())
            .update(context)
            .update(message);
        let mut bytes = vec![0u8; S::SIGNATURE_LEN];
        hasher.finalize_xof().fill(&mut bytes);
        Signature::from_bytes(&bytes).expect("filled to the scheme's signature length")
    }
}

impl<S: Scheme> fmt::Debug for Keypair<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}Keypair({:?}, secret: <redacted>)",
            S::ROLE,
            self.public
        )
    }
}

pub type ValidatorKeypair = Keypair<ValidatorScheme>;
pub type ValidatorPublicKey = PublicKey<ValidatorScheme>;
pub type ValidatorSignature = Signature<ValidatorScheme>;
pub type AccountKeypair = Keypair<AccountScheme>;
pub type AccountPublicKey = PublicKey<AccountScheme>;
pub type AccountSignature = Signature<AccountScheme>;

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const NET: NetworkId = NetworkId(Digest([0x11; 32]));

    fn validator(seed: u64) -> ValidatorKeypair {
        ValidatorKeypair::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    #[test]
    fn sizes_match_fips_204() {
        let v = validator(1);
        assert_eq!(v.public().as_bytes().len(), 2592);
        assert_eq!(
            v.sign(SigningDomain::Vertex.on(NET), b"m").as_bytes().len(),
            4627
        );
        let a = AccountKeypair::from_seed(&[3; 32]);
        assert_eq!(a.public().as_bytes().len(), 1312);
        assert_eq!(
            a.sign(SigningDomain::Transaction.on(NET), b"m")
                .as_bytes()
                .len(),
            2420
        );
    }

    #[test]
    fn derived_keys_are_deterministic_per_context_and_sign() {
        let v = validator(7);
        let relay: AccountKeypair = v.derive("dualchain test relay");
        assert_eq!(
            relay.public(),
            v.derive::<AccountScheme>("dualchain test relay").public()
        );
        assert_ne!(
            relay.public(),
            v.derive::<AccountScheme>("dualchain test other").public()
        );
        assert_ne!(
            relay.public(),
            validator(8)
                .derive::<AccountScheme>("dualchain test relay")
                .public()
        );
        assert_ne!(relay.seed(), v.seed());
        let sig = relay.sign(SigningDomain::Transaction.on(NET), b"tx");
        relay
            .public()
            .verify(SigningDomain::Transaction.on(NET), b"tx", &sig)
            .unwrap();
    }

    #[test]
    fn signature_verifies_and_is_deterministic() {
        let v = validator(2);
        let sig = v.sign(SigningDomain::Vertex.on(NET), b"vertex digest");
        assert_eq!(sig, v.sign(SigningDomain::Vertex.on(NET), b"vertex digest"));
        v.public()
            .verify(SigningDomain::Vertex.on(NET), b"vertex digest", &sig)
            .unwrap();
    }

    #[test]
    fn tampered_message_wrong_key_and_wrong_domain_fail() {
        let v = validator(3);
        let other = validator(4);
        let sig = v.sign(SigningDomain::Vertex.on(NET), b"message");
        let invalid = Err(SignatureError::Invalid { role: "validator" });
        assert_eq!(
            v.public()
                .verify(SigningDomain::Vertex.on(NET), b"messagE", &sig),
            invalid
        );
        assert_eq!(
            other
                .public()
                .verify(SigningDomain::Vertex.on(NET), b"message", &sig),
            invalid
        );
        assert_eq!(
            v.public()
                .verify(SigningDomain::BlockVote.on(NET), b"message", &sig),
            invalid
        );
        let mut bytes = sig.as_bytes().to_vec();
        bytes[100] ^= 1;
        let flipped = ValidatorSignature::from_bytes(&bytes).unwrap();
        assert!(
            v.public()
                .verify(SigningDomain::Vertex.on(NET), b"message", &flipped)
                .is_err()
        );
    }

    #[test]
    fn a_signature_verifies_only_on_its_network() {
        let v = validator(3);
        let elsewhere = NetworkId(Digest([0x12; 32]));
        let sig = v.sign(SigningDomain::Vertex.on(NET), b"message");
        assert_eq!(
            v.public()
                .verify(SigningDomain::Vertex.on(elsewhere), b"message", &sig),
            Err(SignatureError::Invalid { role: "validator" })
        );
        assert_ne!(sig, v.sign(SigningDomain::Vertex.on(elsewhere), b"message"));
        let context = SigningDomain::QueryResponse.on(NET).context_string();
        assert_eq!(context.as_bytes().len(), 27 + 1 + 32);
        assert!(
            context
                .as_bytes()
                .starts_with(b"dualchain/v1/query-response/")
        );
        assert!(context.as_bytes().ends_with(&[0x11; 32]));
    }

    #[test]
    fn wrong_lengths_are_malformed() {
        assert!(ValidatorPublicKey::from_bytes(&[0; 10]).is_err());
        assert!(AccountSignature::from_bytes(&[0; 4627]).is_err());
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let kp = AccountKeypair::from_seed(&[0xAB; 32]);
        let shown = format!("{kp:?}");
        assert!(!shown.contains(&hex::encode([0xAB; 32])));
        assert!(!shown.to_lowercase().contains("abababab"));
        assert!(shown.contains("redacted"));
    }

    #[cfg(feature = "simulated-signatures")]
    #[test]
    fn simulated_signatures_verify_only_in_process_and_only_their_own() {
        let key = ValidatorKeypair::simulated(&[5; 32]);
        let sig = key.sign(SigningDomain::Vertex.on(NET), b"digest");
        assert_eq!(sig.as_bytes().len(), ValidatorScheme::SIGNATURE_LEN);
        assert_eq!(
            key.public().as_bytes().len(),
            ValidatorScheme::PUBLIC_KEY_LEN
        );
        assert_eq!(
            sig,
            ValidatorKeypair::simulated(&[5; 32]).sign(SigningDomain::Vertex.on(NET), b"digest")
        );
        key.public()
            .verify(SigningDomain::Vertex.on(NET), b"digest", &sig)
            .unwrap();
        let invalid = Err(SignatureError::Invalid { role: "validator" });
        assert_eq!(
            key.public()
                .verify(SigningDomain::Vertex.on(NET), b"digesT", &sig),
            invalid
        );
        assert_eq!(
            key.public()
                .verify(SigningDomain::BlockVote.on(NET), b"digest", &sig),
            invalid
        );
        let other = ValidatorKeypair::simulated(&[6; 32]);
        assert_eq!(
            other
                .public()
                .verify(SigningDomain::Vertex.on(NET), b"digest", &sig),
            invalid
        );
        // The same public key bytes, decoded, are an ML-DSA key: a simulated signature
        // never verifies outside the process that made the key.
        let decoded = ValidatorPublicKey::from_bytes(key.public().as_bytes()).unwrap();
        assert_eq!(decoded, *key.public());
        assert!(
            decoded
                .verify(SigningDomain::Vertex.on(NET), b"digest", &sig)
                .is_err()
        );
        // And a real key never accepts one either.
        let real = validator(5);
        assert!(
            real.public()
                .verify(SigningDomain::Vertex.on(NET), b"digest", &sig)
                .is_err()
        );
    }

    /// RustCrypto `ml-dsa`'s verdict on a signature, as the independent reference.
    fn reference_verifies<P: ml_dsa::MlDsaParams>(
        public: &[u8],
        domain: SigningContext,
        message: &[u8],
        signature: &[u8],
    ) -> bool {
        let key = ml_dsa::EncodedVerifyingKey::<P>::try_from(public).unwrap();
        let key = ml_dsa::VerifyingKey::<P>::decode(&key);
        let Ok(encoded) = ml_dsa::EncodedSignature::<P>::try_from(signature) else {
            return false;
        };
        ml_dsa::Signature::<P>::decode(&encoded).is_some_and(|sig| {
            key.verify_with_context(message, domain.context_string().as_bytes(), &sig)
        })
    }

    /// Asserts our key pair of scheme `S` from `seed` has the reference's public key
    /// and deterministic signature of a message in `domain`.
    fn assert_matches_reference<S: Scheme, P: ml_dsa::MlDsaParams>(
        seed: &[u8; 32],
        domain: SigningContext,
    ) {
        let reference = ml_dsa::SigningKey::<P>::from_seed(&(*seed).into());
        let public = ml_dsa::signature::Keypair::verifying_key(&reference).encode();
        let sig = reference
            .expanded_key()
            .sign_deterministic(b"a message", domain.context_string().as_bytes())
            .unwrap();
        let ours = Keypair::<S>::from_seed(seed);
        assert_eq!(ours.public().as_bytes(), public.as_slice());
        assert_eq!(
            ours.sign(domain, b"a message").as_bytes(),
            sig.encode().as_slice()
        );
    }

    #[test]
    fn keys_and_signatures_are_those_of_the_reference_implementation() {
        for seed in [[0u8; 32], [7; 32], [0xff; 32]] {
            for domain in [
                SigningDomain::Vertex.on(NET),
                SigningDomain::Attestation.on(NET),
            ] {
                assert_matches_reference::<ValidatorScheme, ml_dsa::MlDsa87>(&seed, domain);
                assert_matches_reference::<AccountScheme, ml_dsa::MlDsa44>(&seed, domain);
            }
        }
    }

    /// What tampering a case applies before both implementations judge it.
    #[derive(Debug, Clone)]
    enum Tamper {
        None,
        SignatureByte { at: usize, xor: u8 },
        MessageByte { at: usize, xor: u8 },
        Domain,
        Network,
        PublicKeyByte { at: usize, xor: u8 },
    }

    fn tamper() -> impl proptest::strategy::Strategy<Value = Tamper> {
        use proptest::prelude::*;
        prop_oneof![
            Just(Tamper::None),
            (any::<usize>(), 1u8..).prop_map(|(at, xor)| Tamper::SignatureByte { at, xor }),
            (any::<usize>(), 1u8..).prop_map(|(at, xor)| Tamper::MessageByte { at, xor }),
            Just(Tamper::Domain),
            Just(Tamper::Network),
            (any::<usize>(), 1u8..).prop_map(|(at, xor)| Tamper::PublicKeyByte { at, xor }),
        ]
    }

    /// Applies `tamper` to one signed case and returns (our verdict, reference verdict).
    fn judge<S: Scheme, P: ml_dsa::MlDsaParams>(
        seed: [u8; 32],
        mut message: Vec<u8>,
        tamper: &Tamper,
    ) -> (bool, bool) {
        let key = Keypair::<S>::from_seed(&seed);
        let sig = key.sign(SigningDomain::Transaction.on(NET), &message);
        let mut sig = sig.as_bytes().to_vec();
        let mut public = key.public().as_bytes().to_vec();
        let mut domain = SigningDomain::Transaction.on(NET);
        match *tamper {
            Tamper::None => {}
            Tamper::SignatureByte { at, xor } => {
                let len = sig.len();
                sig[at % len] ^= xor
            }
            Tamper::MessageByte { at, xor } => {
                let len = message.len();
                message[at % len] ^= xor
            }
            Tamper::Domain => domain = SigningDomain::Vertex.on(NET),
            Tamper::Network => {
                domain = SigningDomain::Transaction.on(NetworkId(Digest([0x12; 32])))
            }
            Tamper::PublicKeyByte { at, xor } => {
                let len = public.len();
                public[at % len] ^= xor
            }
        }
        let ours = PublicKey::<S>::from_bytes(&public)
            .unwrap()
            .verify(domain, &message, &Signature::from_bytes(&sig).unwrap())
            .is_ok();
        (
            ours,
            reference_verifies::<P>(&public, domain, &message, &sig),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// AWS-LC and the reference agree on every verdict: a consensus rule must not
        /// depend on which FIPS 204 implementation a node links.
        #[test]
        fn verification_agrees_with_the_reference_implementation(
            seed in proptest::prelude::any::<[u8; 32]>(),
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..200),
            tamper in tamper(),
        ) {
            let untouched = matches!(tamper, Tamper::None);
            let (ours, reference) =
                judge::<ValidatorScheme, ml_dsa::MlDsa87>(seed, message.clone(), &tamper);
            proptest::prop_assert_eq!(ours, reference);
            proptest::prop_assert_eq!(ours, untouched);
            let (ours, reference) =
                judge::<AccountScheme, ml_dsa::MlDsa44>(seed, message, &tamper);
            proptest::prop_assert_eq!(ours, reference);
            proptest::prop_assert_eq!(ours, untouched);
        }
    }

    #[test]
    fn verification_is_shared_across_threads() {
        let key = ValidatorKeypair::from_seed(&[1; 32]);
        let sig = key.sign(SigningDomain::BlockVote.on(NET), b"header");
        let public = key.public().clone();
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..8 {
                        public
                            .verify(SigningDomain::BlockVote.on(NET), b"header", &sig)
                            .unwrap();
                        assert!(
                            public
                                .verify(SigningDomain::BlockVote.on(NET), b"headeR", &sig)
                                .is_err()
                        );
                    }
                });
            }
        });
    }

    #[test]
    fn same_seed_same_key() {
        assert_eq!(
            AccountKeypair::from_seed(&[9; 32]).public(),
            AccountKeypair::from_seed(&[9; 32]).public()
        );
        assert_ne!(
            AccountKeypair::from_seed(&[9; 32]).public(),
            AccountKeypair::from_seed(&[8; 32]).public()
        );
    }
}
