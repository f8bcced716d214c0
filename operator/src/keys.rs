//! Key material the operator generates: validator keys, the admin token, account keyrings.
//!
//! Secret data uses exactly the file layout of `dualchain keygen` / `dualchain genesis`
//! (`dualchain_core::keyfile`), so a mounted Secret *is* a key directory or keyring.
//! Nothing here logs or formats secret bytes; seeds live in `Zeroizing` buffers.

use std::collections::BTreeMap;

use dualchain_core::crypto::{AccountKeypair, ValidatorKeypair, ValidatorPublicKey};
use dualchain_core::keyfile::{ALGORITHM_FILE, KIND_FILE, KeyKind, PUBLIC_KEY_FILE, SEED_FILE};
use dualchain_core::types::Address;
use k8s_openapi::ByteString;
use rand::TryRngCore;
use zeroize::Zeroizing;

/// Secret data key of the admin token.
pub const ADMIN_TOKEN_KEY: &str = "token";
/// Secret data keys of a validator's admin TLS identity (the `kubernetes.io/tls` layout).
pub const ADMIN_TLS_CERT_KEY: &str = "tls.crt";
pub const ADMIN_TLS_KEY_KEY: &str = "tls.key";
/// Secret data key of the account keyring.
pub const KEYRING_KEY: &str = "accounts.keys";

/// Why key material could not be produced or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot gather entropy: {0}")]
    Entropy(String),
    #[error("Secret {secret} has no `{field}` entry")]
    MissingField { secret: String, field: &'static str },
    #[error("Secret {secret}: `{field}` is {found:?}, expected {expected:?}")]
    WrongValue {
        secret: String,
        field: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("Secret {secret}: `token` is missing or not a usable bearer token")]
    BadAdminToken { secret: String },
    #[error("cannot generate an admin TLS certificate: {0}")]
    Certificate(String),
    #[error("Secret {secret}: `tls.crt` is missing or not a PEM certificate")]
    BadAdminCertificate { secret: String },
    #[error("Secret {secret}: `public_key` is not an ML-DSA-87 public key in hex")]
    BadPublicKey { secret: String },
    #[error("Secret {secret}: line {line} of the keyring is malformed ({detail})")]
    BadKeyring {
        secret: String,
        line: usize,
        detail: &'static str,
    },
}

/// A fresh validator key from the OS entropy source.
pub fn new_validator_key() -> Result<ValidatorKeypair, KeyError> {
    ValidatorKeypair::generate_from_os().map_err(|e| KeyError::Entropy(e.to_string()))
}

/// Secret data of a validator key directory (same bytes `keyfile::write_key` writes,
/// each file ending in a newline).
pub fn validator_key_data(key: &ValidatorKeypair) -> BTreeMap<String, ByteString> {
    let line = |s: &str| ByteString(format!("{s}\n").into_bytes());
    let seed_hex = Zeroizing::new(hex::encode(key.seed()));
    BTreeMap::from([
        (KIND_FILE.to_string(), line(KeyKind::Validator.name())),
        (
            ALGORITHM_FILE.to_string(),
            line(KeyKind::Validator.algorithm()),
        ),
        (PUBLIC_KEY_FILE.to_string(), line(&key.public().to_hex())),
        (SEED_FILE.to_string(), line(&seed_hex)),
    ])
}

fn text_field<'a>(
    secret: &str,
    data: &'a BTreeMap<String, ByteString>,
    field: &'static str,
) -> Result<&'a str, KeyError> {
    let missing = || KeyError::MissingField {
        secret: secret.to_string(),
        field,
    };
    let bytes = data.get(field).ok_or_else(missing)?;
    std::str::from_utf8(&bytes.0)
        .map(str::trim)
        .map_err(|_| missing())
}

/// Reads the public key of a validator key Secret, checking its kind and algorithm.
/// The seed is required to be present (a Secret without it is not a usable key) but is
/// not decoded here.
pub fn validator_public_key(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<ValidatorPublicKey, KeyError> {
    for (field, expected) in [
        (KIND_FILE, KeyKind::Validator.name()),
        (ALGORITHM_FILE, KeyKind::Validator.algorithm()),
    ] {
        let found = text_field(secret, data, field)?;
        if found != expected {
            return Err(KeyError::WrongValue {
                secret: secret.to_string(),
                field,
                found: found.chars().take(32).collect(),
                expected,
            });
        }
    }
    text_field(secret, data, SEED_FILE)?;
    let hex_key = text_field(secret, data, PUBLIC_KEY_FILE)?;
    hex::decode(hex_key)
        .ok()
        .and_then(|bytes| ValidatorPublicKey::from_bytes(&bytes).ok())
        .ok_or_else(|| KeyError::BadPublicKey {
            secret: secret.to_string(),
        })
}

/// The key pair of a validator key Secret (to sign the validator's own set-change
/// requests), its public key checked against the Secret's.
pub fn validator_keypair(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<ValidatorKeypair, KeyError> {
    let public = validator_public_key(secret, data)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text_field(secret, data, SEED_FILE)?, seed.as_mut()).map_err(|_| {
        KeyError::WrongValue {
            secret: secret.to_string(),
            field: SEED_FILE,
            found: "(not shown)".into(),
            expected: "64 hex digits",
        }
    })?;
    let key = ValidatorKeypair::from_seed(&seed);
    if *key.public() != public {
        return Err(KeyError::WrongValue {
            secret: secret.to_string(),
            field: SEED_FILE,
            found: "(not shown)".into(),
            expected: "the seed of public_key",
        });
    }
    Ok(key)
}

/// Account `index` of a keyring (the order of its lines), its address checked against
/// its seed.
pub fn keyring_account(secret: &str, text: &str, index: usize) -> Result<AccountKeypair, KeyError> {
    let (number, line) = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .nth(index)
        .ok_or(KeyError::BadKeyring {
            secret: secret.to_string(),
            line: 0,
            detail: "fewer accounts than the genesis lists",
        })?;
    dualchain_core::keyfile::parse_keyring_line(line).map_err(|detail| KeyError::BadKeyring {
        secret: secret.to_string(),
        line: number + 1,
        detail,
    })
}

/// A random admin token: 32 bytes from the OS, hex (64 visible ASCII characters, as
/// `dualchain_proto::AdminToken` requires).
pub fn new_admin_token() -> Result<Zeroizing<String>, KeyError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|e| KeyError::Entropy(e.to_string()))?;
    Ok(Zeroizing::new(hex::encode(bytes.as_ref())))
}

/// The BLAKE3 digest of an admin token, 64 hex digits: what a validator started with
/// `--admin-token-digest-file` checks presented tokens against. A digest reveals
/// nothing usable about the token (it is 256 random bits), so it may be shared.
pub fn admin_token_digest(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

/// A validator's admin TLS identity, PEM: what its admin listener presents, and the
/// certificate the operator trusts for that validator alone.
pub struct AdminTlsPem {
    pub certificate: String,
    pub private_key: Zeroizing<String>,
}

/// A fresh self-signed admin TLS identity for the validator whose pod is `pod` (the
/// name in the certificate, which the operator's client checks).
pub fn new_admin_tls(pod: &str) -> Result<AdminTlsPem, KeyError> {
    let certified = rcgen::generate_simple_self_signed(vec![pod.to_string()])
        .map_err(|e| KeyError::Certificate(e.to_string()))?;
    Ok(AdminTlsPem {
        certificate: certified.cert.pem(),
        private_key: Zeroizing::new(certified.signing_key.serialize_pem()),
    })
}

/// The certificate of an admin TLS Secret (only the certificate: the operator never
/// needs a validator's key).
pub fn admin_tls_certificate(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<Vec<u8>, KeyError> {
    let pem = data
        .get(ADMIN_TLS_CERT_KEY)
        .map(|b| b.0.clone())
        .unwrap_or_default();
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(KeyError::BadAdminCertificate {
            secret: secret.to_string(),
        });
    }
    Ok(pem)
}

pub use dualchain_core::keyfile::{master_seeded_account_keys, seeded_account_keys};

/// Where a network's funded account keys come from.
pub enum AccountSeed {
    /// `genesis.accountsSeed`: reproducible, and public (benchmarks only).
    Public(u64),
    /// No seed in the spec: 256 random bits from the OS (a 64-bit seed could be
    /// searched), never stored; the keys live only in the accounts Secret.
    Secret(Zeroizing<[u8; 32]>),
}

impl AccountSeed {
    /// A fresh secret seed.
    pub fn secret() -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(seed.as_mut())
            .map_err(|e| KeyError::Entropy(e.to_string()))?;
        Ok(Self::Secret(seed))
    }

    /// The first `count` account keys of this seed.
    pub fn keys(&self, count: usize) -> Vec<AccountKeypair> {
        match self {
            AccountSeed::Public(seed) => seeded_account_keys(count, *seed),
            AccountSeed::Secret(master) => master_seeded_account_keys(count, master),
        }
    }
}

/// Keyring text in the `keyfile::write_keyring` format.
pub fn keyring_text(keys: &[AccountKeypair]) -> Zeroizing<String> {
    dualchain_core::keyfile::keyring_text(keys)
}

/// The keyring text an accounts Secret holds (empty when it holds none).
pub fn keyring_of(secret: &k8s_openapi::api::core::v1::Secret) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEYRING_KEY))
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        .unwrap_or_default()
}

/// The addresses listed in a keyring (the genesis only needs addresses; seeds are not
/// decoded).
pub fn keyring_addresses(secret: &str, text: &str) -> Result<Vec<Address>, KeyError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(i, line)| {
            let bad = |detail| KeyError::BadKeyring {
                secret: secret.to_string(),
                line: i + 1,
                detail,
            };
            let (address, seed) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `<address> <seed>`"))?;
            if seed.trim().len() != 64 {
                return Err(bad("seed is not 64 hex digits"));
            }
            address
                .parse::<Address>()
                .map_err(|_| bad("invalid address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `bytes` as a pod sees a key Secret: mode 0400 (the volumes'
    /// `defaultMode`; keyfile refuses secrets other users may read).
    fn write_as_mounted(path: &std::path::Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o400)).unwrap();
        }
    }

    #[test]
    fn validator_secret_matches_keyfile_layout_and_round_trips() {
        let key = ValidatorKeypair::from_seed(&[7u8; 32]);
        let data = validator_key_data(&key);
        // Same directory layout as `dualchain keygen`: mount it and keyfile reads it.
        let dir = tempfile::tempdir().unwrap();
        for (file, bytes) in &data {
            write_as_mounted(&dir.path().join(file), &bytes.0);
        }
        let loaded = dualchain_core::keyfile::read_key::<dualchain_core::crypto::ValidatorScheme>(
            dir.path(),
        )
        .unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(validator_public_key("s", &data).unwrap(), *key.public());
    }

    #[test]
    fn bad_validator_secrets_are_refused_without_echoing_secrets() {
        let key = ValidatorKeypair::from_seed(&[9u8; 32]);
        let mut data = validator_key_data(&key);
        data.insert(KIND_FILE.into(), ByteString(b"account\n".to_vec()));
        let err = validator_public_key("net-validator-0", &data).unwrap_err();
        assert!(err.to_string().contains("net-validator-0"), "{err}");
        let mut data = validator_key_data(&key);
        data.remove(SEED_FILE);
        assert!(matches!(
            validator_public_key("s", &data),
            Err(KeyError::MissingField {
                field: "secret_seed",
                ..
            })
        ));
        let mut data = validator_key_data(&key);
        data.insert(PUBLIC_KEY_FILE.into(), ByteString(b"abcd\n".to_vec()));
        let err = validator_public_key("s", &data).unwrap_err();
        assert!(matches!(err, KeyError::BadPublicKey { .. }));
        assert!(!err.to_string().contains(&hex::encode(key.seed())));
    }

    #[test]
    fn unseeded_networks_get_unrelated_keys_and_seeded_ones_reproducible_keys() {
        let address = |seed: &AccountSeed| Address::of(seed.keys(1)[0].public());
        let (a, b) = (
            AccountSeed::secret().unwrap(),
            AccountSeed::secret().unwrap(),
        );
        assert_ne!(address(&a), address(&b));
        assert_eq!(address(&a), address(&a), "one seed, one set of keys");
        assert_eq!(
            address(&AccountSeed::Public(42)),
            Address::of(seeded_account_keys(1, 42)[0].public())
        );
    }

    #[test]
    fn keyring_matches_core_format() {
        let keys = seeded_account_keys(3, 42);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_as_mounted(&path, keyring_text(&keys).as_bytes());
        let read = dualchain_core::keyfile::read_keyring(&path).unwrap();
        assert_eq!(read.len(), 3);
        let addresses = keyring_addresses("s", &keyring_text(&keys)).unwrap();
        for (k, a) in keys.iter().zip(&addresses) {
            assert_eq!(Address::of(k.public()), *a);
        }
        // Deterministic: same seed, same accounts; different seed, different accounts.
        assert_eq!(
            Address::of(seeded_account_keys(1, 42)[0].public()),
            Address::of(keys[0].public())
        );
        assert_ne!(
            Address::of(seeded_account_keys(1, 43)[0].public()),
            Address::of(keys[0].public())
        );
        assert!(keyring_addresses("s", "dc1zz 00").is_err());
    }

    #[test]
    fn set_change_keys_are_read_back_and_mismatches_refused_without_echoing_seeds() {
        let key = ValidatorKeypair::from_seed(&[5u8; 32]);
        let data = validator_key_data(&key);
        assert_eq!(
            validator_keypair("s", &data).unwrap().public(),
            key.public()
        );
        let mut swapped = data.clone();
        swapped.insert(
            SEED_FILE.into(),
            ByteString(format!("{}\n", hex::encode([6u8; 32])).into_bytes()),
        );
        let err = validator_keypair("s", &swapped).unwrap_err().to_string();
        assert!(err.contains("the seed of public_key"), "{err}");
        assert!(!err.contains(&hex::encode([6u8; 32])), "{err}");

        let accounts = seeded_account_keys(3, 9);
        let text = keyring_text(&accounts);
        let last = keyring_account("s", &text, 2).unwrap();
        assert_eq!(last.public(), accounts[2].public());
        assert!(keyring_account("s", &text, 3).is_err());
        let broken = format!("dc{} {}\n", "00".repeat(32), hex::encode([1u8; 32]));
        let err = keyring_account("s", &broken, 0).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
    }

    #[test]
    fn admin_tokens_are_random_and_header_safe() {
        let a = new_admin_token().unwrap();
        let b = new_admin_token().unwrap();
        assert_ne!(*a, *b);
        assert!(dualchain_proto::AdminToken::new(&a).is_ok());
    }

    #[test]
    fn admin_token_digests_are_the_nodes_blake3_of_the_token() {
        let token = new_admin_token().unwrap();
        let digest = admin_token_digest(&token);
        assert_eq!(digest.len(), 64);
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit()));
        // The node decodes the hex and compares BLAKE3(presented token) with it.
        assert_eq!(
            hex::decode(&digest).unwrap(),
            blake3::hash(token.as_bytes()).as_bytes()
        );
        assert_ne!(digest, admin_token_digest(&new_admin_token().unwrap()));
        assert!(!digest.contains(token.as_str()));
    }
}
