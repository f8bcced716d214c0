//! Key directories, laid out like a mounted Kubernetes Secret.
//!
//! A key lives in a directory with one small file per Secret data key, so the same
//! directory works whether `dualchain keygen` wrote it or the operator's Secret is
//! mounted at that path (kubelet's `..data` symlinks are followed transparently):
//!
//! | file          | content                                          |
//! |---------------|--------------------------------------------------|
//! | `kind`        | `validator` or `account`                         |
//! | `algorithm`   | `ml-dsa-87` (validators) or `ml-dsa-44` (accounts) |
//! | `secret_seed` | the 32-byte FIPS 204 seed ξ, 64 hex digits        |
//! | `public_key`  | the encoded public key, hex (checked on load)    |
//!
//! Files are written with mode 0600 and never overwritten. Errors name the file and
//! what is wrong with it, never its secret content.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{AccountScheme, Keypair, PublicKey, Scheme, ValidatorScheme};
use crate::types::Address;

pub const KIND_FILE: &str = "kind";
pub const ALGORITHM_FILE: &str = "algorithm";
pub const SEED_FILE: &str = "secret_seed";
pub const PUBLIC_KEY_FILE: &str = "public_key";

/// The role of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Validator,
    Account,
}

impl KeyKind {
    pub const fn name(self) -> &'static str {
        match self {
            KeyKind::Validator => "validator",
            KeyKind::Account => "account",
        }
    }

    pub const fn algorithm(self) -> &'static str {
        match self {
            KeyKind::Validator => ValidatorScheme::TAG.name(),
            KeyKind::Account => AccountScheme::TAG.name(),
        }
    }
}

impl std::str::FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "validator" => Ok(KeyKind::Validator),
            "account" => Ok(KeyKind::Account),
            other => Err(format!(
                "unknown key kind {other:?}: expected validator or account"
            )),
        }
    }
}

/// Why a key directory could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path} is missing (is {dir} a dualchain key directory?)", dir = path.parent().map(|p| p.display().to_string()).unwrap_or_default())]
    Missing { path: PathBuf },
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir} already holds a key ({file} exists); refusing to overwrite it")]
    AlreadyExists { dir: PathBuf, file: &'static str },
    #[error("{dir} holds {found:?} key, expected a {expected} key")]
    WrongKind {
        dir: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("{path}: algorithm is {found:?}, a {kind} key must be {expected}")]
    WrongAlgorithm {
        path: PathBuf,
        kind: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error(
        "{path} is truncated or malformed: expected 64 hex digits (32 bytes), found {found_len} characters{detail}"
    )]
    BadSeed {
        path: PathBuf,
        found_len: usize,
        detail: &'static str,
    },
    #[error(
        "{path} does not match the secret seed in the same directory (corrupt or mixed-up key files)"
    )]
    PublicKeyMismatch { path: PathBuf },
    #[error(
        "{path} holds secret key material but other users may access it (mode {mode:04o}); run `chmod o-rwx {path}` (0600, or 0440 with a group such as a pod's fsGroup)"
    )]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("{path}, line {line}: {detail}")]
    BadKeyringLine {
        path: PathBuf,
        line: usize,
        detail: &'static str,
    },
    #[error("cannot gather entropy for a new key: {0}")]
    Entropy(std::io::Error),
}

/// A loaded key of either kind, for commands that accept both.
#[derive(Debug)]
pub enum AnyKeypair {
    Validator(Keypair<ValidatorScheme>),
    Account(Keypair<AccountScheme>),
}

impl AnyKeypair {
    pub fn kind(&self) -> KeyKind {
        match self {
            AnyKeypair::Validator(_) => KeyKind::Validator,
            AnyKeypair::Account(_) => KeyKind::Account,
        }
    }

    pub fn public_key_hex(&self) -> String {
        match self {
            AnyKeypair::Validator(k) => k.public().to_hex(),
            AnyKeypair::Account(k) => k.public().to_hex(),
        }
    }

    /// Account address, or validator id (both BLAKE3 of scheme tag and key).
    pub fn address(&self) -> String {
        match self {
            AnyKeypair::Validator(k) => k.public().id().to_hex(),
            AnyKeypair::Account(k) => Address::of(k.public()).to_string(),
        }
    }
}

fn kind_of<S: Scheme>() -> KeyKind {
    if S::TAG == ValidatorScheme::TAG {
        KeyKind::Validator
    } else {
        KeyKind::Account
    }
}

/// Writes `key` into `dir` (created if needed, mode 0700), each file with mode 0600.
/// Refuses to overwrite an existing key.
pub fn write_key<S: Scheme>(dir: &Path, key: &Keypair<S>) -> Result<(), KeyFileError> {
    for file in [KIND_FILE, ALGORITHM_FILE, SEED_FILE, PUBLIC_KEY_FILE] {
        if dir.join(file).exists() {
            return Err(KeyFileError::AlreadyExists {
                dir: dir.to_path_buf(),
                file,
            });
        }
    }
    create_private_dir(dir)?;
    let kind = kind_of::<S>();
    let seed_hex = Zeroizing::new(hex::encode(key.seed()));
    write_private(&dir.join(KIND_FILE), kind.name().as_bytes())?;
    write_private(&dir.join(ALGORITHM_FILE), kind.algorithm().as_bytes())?;
    write_private(&dir.join(PUBLIC_KEY_FILE), key.public().to_hex().as_bytes())?;
    // The seed goes last: a directory with a seed is a complete key.
    write_private(&dir.join(SEED_FILE), seed_hex.as_bytes())?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::Write {
        path: dir.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(err)
    }
    #[cfg(not(unix))]
    {
        fs::create_dir_all(dir).map_err(err)
    }
}

fn write_private(path: &Path, content: &[u8]) -> Result<(), KeyFileError> {
    let err = |source| KeyFileError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(err)?;
    file.write_all(content).map_err(err)?;
    file.write_all(b"\n").map_err(err)?;
    file.sync_all().map_err(err)
}

/// Reads a file of secret key material, refusing one that users other than its owner
/// and group may access: a seed anyone on the machine can read is no longer a secret.
/// Group access stays allowed, since Kubernetes gives mounted secrets to the pod's
/// `fsGroup`.
pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = fs::metadata(path) {
            let mode = metadata.permissions().mode() & 0o7777;
            if mode & 0o007 != 0 {
                return Err(KeyFileError::ReadableByOthers {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
    }
    read_text(path)
}

fn read_text(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KeyFileError::Missing {
            path: path.to_path_buf(),
        }),
        Err(source) => Err(KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Reads the kind recorded in `dir`.
pub fn read_kind(dir: &Path) -> Result<KeyKind, KeyFileError> {
    let path = dir.join(KIND_FILE);
    let text = read_text(&path)?;
    text.trim().parse().map_err(|_| KeyFileError::WrongKind {
        dir: dir.to_path_buf(),
        expected: "validator or account",
        found: text.trim().chars().take(32).collect(),
    })
}

/// Loads a key of scheme `S` from `dir`, checking kind, algorithm, seed and public key.
pub fn read_key<S: Scheme>(dir: &Path) -> Result<Keypair<S>, KeyFileError> {
    let expected = kind_of::<S>();
    let found = read_kind(dir)?;
    if found != expected {
        return Err(KeyFileError::WrongKind {
            dir: dir.to_path_buf(),
            expected: expected.name(),
            found: found.name().to_string(),
        });
    }
    let algorithm_path = dir.join(ALGORITHM_FILE);
    let algorithm = read_text(&algorithm_path)?;
    if algorithm.trim() != expected.algorithm() {
        return Err(KeyFileError::WrongAlgorithm {
            path: algorithm_path,
            kind: expected.name(),
            expected: expected.algorithm(),
            found: algorithm.trim().chars().take(32).collect(),
        });
    }
    let seed_path = dir.join(SEED_FILE);
    let seed_text = read_secret(&seed_path)?;
    let seed_hex = seed_text.trim();
    let bad_seed = |detail| KeyFileError::BadSeed {
        path: seed_path.clone(),
        found_len: seed_hex.len(),
        detail,
    };
    if seed_hex.len() != 64 {
        return Err(bad_seed(""));
    }
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed_hex, seed.as_mut()).map_err(|_| bad_seed(" (not hex)"))?;
    let key = Keypair::<S>::from_seed(&seed);

    let public_path = dir.join(PUBLIC_KEY_FILE);
    let public_text = read_text(&public_path)?;
    let matches = hex::decode(public_text.trim())
        .ok()
        .and_then(|bytes| PublicKey::<S>::from_bytes(&bytes).ok())
        .is_some_and(|public| &public == key.public());
    if !matches {
        return Err(KeyFileError::PublicKeyMismatch { path: public_path });
    }
    Ok(key)
}

/// Loads whichever kind of key `dir` holds.
pub fn read_any_key(dir: &Path) -> Result<AnyKeypair, KeyFileError> {
    Ok(match read_kind(dir)? {
        KeyKind::Validator => AnyKeypair::Validator(read_key(dir)?),
        KeyKind::Account => AnyKeypair::Account(read_key(dir)?),
    })
}

/// Generates a key of `kind` from OS entropy and writes it to `dir`.
pub fn generate_key(dir: &Path, kind: KeyKind) -> Result<AnyKeypair, KeyFileError> {
    let key = match kind {
        KeyKind::Validator => {
            AnyKeypair::Validator(Keypair::generate_from_os().map_err(KeyFileError::Entropy)?)
        }
        KeyKind::Account => {
            AnyKeypair::Account(Keypair::generate_from_os().map_err(KeyFileError::Entropy)?)
        }
    };
    match &key {
        AnyKeypair::Validator(k) => write_key(dir, k)?,
        AnyKeypair::Account(k) => write_key(dir, k)?,
    }
    Ok(key)
}

/// Account keys derived from a public seed (ChaCha20 seeded with `seed`, 32 bytes per
/// key), as `dualchain genesis --accounts-seed` and the operator derive them, so the same
/// seed gives the same accounts on the command line and in a cluster. Benchmark
/// networks only: anyone who knows the seed holds the keys.
pub fn seeded_account_keys(count: usize, seed: u64) -> Vec<crate::crypto::AccountKeypair> {
    use rand::SeedableRng;
    account_keys_from(rand_chacha::ChaCha20Rng::seed_from_u64(seed), count)
}

/// Account keys derived from a secret 256-bit master seed (ChaCha20 seeded with it,
/// 32 bytes per key): what the operator uses when no public seed is configured, so the
/// keys are as hard to guess as the master seed, not 64 bits.
pub fn master_seeded_account_keys(
    count: usize,
    master: &[u8; 32],
) -> Vec<crate::crypto::AccountKeypair> {
    use rand::SeedableRng;
    account_keys_from(rand_chacha::ChaCha20Rng::from_seed(*master), count)
}

fn account_keys_from(
    mut rng: rand_chacha::ChaCha20Rng,
    count: usize,
) -> Vec<crate::crypto::AccountKeypair> {
    use rand::RngCore;
    use rayon::prelude::*;
    let seeds: Vec<Zeroizing<[u8; 32]>> = (0..count)
        .map(|_| {
            let mut s = Zeroizing::new([0u8; 32]);
            rng.fill_bytes(s.as_mut());
            s
        })
        .collect();
    seeds
        .par_iter()
        .map(|s| crate::crypto::AccountKeypair::from_seed(s))
        .collect()
}

/// First line of an account keyring file.
pub const KEYRING_HEADER: &str =
    "# dualchain account keyring v1: <address> <ml-dsa-44 secret seed hex> per line. SECRET.";

/// The text of a keyring (header line, then `<address> <seed hex>` per account), as
/// [`write_keyring`] stores it and the operator puts it into a Secret.
pub fn keyring_text(keys: &[crate::crypto::AccountKeypair]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(keys.len() * 132 + 100));
    text.push_str(KEYRING_HEADER);
    text.push('\n');
    for key in keys {
        text.push_str(&Address::of(key.public()).to_string());
        text.push(' ');
        text.push_str(&hex::encode(key.seed()));
        text.push('\n');
    }
    text
}

/// Writes many account keys into one file (mode 0600, never overwritten): one line per
/// account, `<address> <seed hex>`. Genesis writes the keys of the accounts it funds
/// here, for load generators; one file keeps 100k accounts manageable.
pub fn write_keyring(
    path: &Path,
    keys: &[crate::crypto::AccountKeypair],
) -> Result<(), KeyFileError> {
    let text = keyring_text(keys);
    if path.exists() {
        return Err(KeyFileError::AlreadyExists {
            dir: path.to_path_buf(),
            file: "keyring",
        });
    }
    // write_private appends a final newline; the text already ends with one.
    let body = text.trim_end_matches('\n');
    write_private(path, body.as_bytes())
}

/// Reads a keyring written by [`write_keyring`], checking every address against its key.
pub fn read_keyring(path: &Path) -> Result<Vec<crate::crypto::AccountKeypair>, KeyFileError> {
    use rayon::prelude::*;
    let text = read_secret(path)?;
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    lines
        .par_iter()
        .map(|(number, line)| {
            let bad = |detail| KeyFileError::BadKeyringLine {
                path: path.to_path_buf(),
                line: number + 1,
                detail,
            };
            parse_keyring_line(line).map_err(bad)
        })
        .collect()
}

/// One keyring line, `<address> <seed hex>`: the key, its address checked against the
/// seed; the error says what is wrong without echoing the line.
pub fn parse_keyring_line(line: &str) -> Result<crate::crypto::AccountKeypair, &'static str> {
    let (address, seed_hex) = line
        .trim()
        .split_once(' ')
        .ok_or("expected `<address> <seed hex>`")?;
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(seed_hex.trim(), seed.as_mut())
        .map_err(|_| "seed is not 64 hex digits")?;
    let key = crate::crypto::AccountKeypair::from_seed(&seed);
    if Address::of(key.public()).to_string() != address {
        return Err("address does not match the seed");
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AccountKeypair, ValidatorKeypair};

    #[test]
    fn write_then_read_both_kinds_with_private_modes() {
        let tmp = tempfile::tempdir().unwrap();
        let vdir = tmp.path().join("v");
        let v = ValidatorKeypair::from_seed(&[1; 32]);
        write_key(&vdir, &v).unwrap();
        assert_eq!(
            read_key::<ValidatorScheme>(&vdir).unwrap().public(),
            v.public()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in [KIND_FILE, ALGORITHM_FILE, SEED_FILE, PUBLIC_KEY_FILE] {
                let mode = fs::metadata(vdir.join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let adir = tmp.path().join("a");
        let a = AccountKeypair::from_seed(&[2; 32]);
        write_key(&adir, &a).unwrap();
        assert!(matches!(
            read_any_key(&adir).unwrap(),
            AnyKeypair::Account(_)
        ));
    }

    #[test]
    fn keyring_round_trip_and_tamper_detection() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("accounts.keys");
        let keys: Vec<_> = (0..5u8)
            .map(|i| AccountKeypair::from_seed(&[i; 32]))
            .collect();
        write_keyring(&path, &keys).unwrap();
        let back = read_keyring(&path).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back[3].public(), keys[3].public());
        assert!(write_keyring(&path, &keys).is_err());
        let text = fs::read_to_string(&path).unwrap();
        let seed3 = hex::encode([3u8; 32]);
        fs::write(&path, text.replace(&seed3, &hex::encode([9u8; 32]))).unwrap();
        let err = read_keyring(&path).unwrap_err();
        assert!(err.to_string().contains("line 5"), "{err}");
    }

    #[test]
    fn never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        write_key(tmp.path(), &AccountKeypair::from_seed(&[1; 32])).unwrap();
        assert!(matches!(
            write_key(tmp.path(), &AccountKeypair::from_seed(&[2; 32])),
            Err(KeyFileError::AlreadyExists { .. })
        ));
    }

    #[test]
    fn missing_truncated_and_wrong_kind_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = read_key::<ValidatorScheme>(tmp.path()).unwrap_err();
        assert!(matches!(err, KeyFileError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("kind"));

        let dir = tmp.path().join("acct");
        write_key(&dir, &AccountKeypair::from_seed(&[3; 32])).unwrap();
        let err = read_key::<ValidatorScheme>(&dir).unwrap_err();
        assert!(matches!(err, KeyFileError::WrongKind { .. }), "{err}");
        assert!(err.to_string().contains("expected a validator key"));

        let seed_hex = hex::encode([3u8; 32]);
        fs::write(dir.join(SEED_FILE), &seed_hex[..40]).unwrap();
        let err = read_key::<AccountScheme>(&dir).unwrap_err();
        assert!(
            matches!(err, KeyFileError::BadSeed { found_len: 40, .. }),
            "{err}"
        );
        assert!(
            !err.to_string().contains(&seed_hex[..40]),
            "seed leaked: {err}"
        );

        fs::write(dir.join(SEED_FILE), hex::encode([4u8; 32])).unwrap();
        let err = read_key::<AccountScheme>(&dir).unwrap_err();
        assert!(
            matches!(err, KeyFileError::PublicKeyMismatch { .. }),
            "{err}"
        );

        fs::remove_file(dir.join(PUBLIC_KEY_FILE)).unwrap();
        assert!(matches!(
            read_key::<AccountScheme>(&dir),
            Err(KeyFileError::Missing { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn secrets_others_may_read_are_refused_and_group_access_is_allowed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        write_key(&dir, &ValidatorKeypair::from_seed(&[5; 32])).unwrap();
        let keyring = tmp.path().join("accounts.keys");
        write_keyring(&keyring, &[AccountKeypair::from_seed(&[6; 32])]).unwrap();
        let chmod = |path: &Path, mode: u32| {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
        };
        let seed = dir.join(SEED_FILE);
        for mode in [0o644, 0o604, 0o601] {
            chmod(&seed, mode);
            let err = read_key::<ValidatorScheme>(&dir).unwrap_err();
            assert!(
                matches!(&err, KeyFileError::ReadableByOthers { mode: m, .. } if *m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod o-rwx"), "{err}");
            chmod(&keyring, mode);
            assert!(matches!(
                read_keyring(&keyring),
                Err(KeyFileError::ReadableByOthers { .. })
            ));
        }
        // A pod's fsGroup makes mounted secrets group-readable.
        for mode in [0o600, 0o440, 0o400] {
            chmod(&seed, mode);
            chmod(&keyring, mode);
            read_key::<ValidatorScheme>(&dir).unwrap();
            read_keyring(&keyring).unwrap();
        }
    }

    #[test]
    fn reads_through_kubernetes_secret_symlinks() {
        // kubelet mounts Secrets as DIR/file -> ..data/file -> ..2026_11_21/file.
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("..2026_11_21");
        write_key(&real, &ValidatorKeypair::from_seed(&[7; 32])).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("..2026_11_21", tmp.path().join("..data")).unwrap();
            let mounted = tmp.path().join("mounted");
            fs::create_dir(&mounted).unwrap();
            std::os::unix::fs::symlink(tmp.path().join("..data"), mounted.join("..data")).unwrap();
            for f in [KIND_FILE, ALGORITHM_FILE, SEED_FILE, PUBLIC_KEY_FILE] {
                std::os::unix::fs::symlink(format!("..data/{f}"), mounted.join(f)).unwrap();
            }
            read_key::<ValidatorScheme>(&mounted).unwrap();
        }
    }
}
