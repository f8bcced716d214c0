//! The funded accounts a load generator spends from.
//!
//! Two sources give the same keys `dualchain genesis` funded: its keyring file (the
//! `<net>-accounts` Secret in a cluster), or — for benchmark networks only — the public
//! seed passed as `--accounts-seed`, re-derived with
//! [`dualchain_core::keyfile::seeded_account_keys`]. Keys are never printed.

use std::path::Path;

use dualchain_core::crypto::AccountKeypair;
use dualchain_core::keyfile;
use dualchain_core::types::Address;

/// One funded account: its address and signing key.
pub struct Account {
    pub address: Address,
    pub key: AccountKeypair,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key's own Debug shows only the public part, but the address is enough.
        f.debug_struct("Account")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Why the accounts could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    #[error("reading the account keyring: {0}")]
    Keyring(#[from] keyfile::KeyFileError),
    #[error("the keyring {path} holds {found} accounts, fewer than the 2 a transfer load needs")]
    TooFew { path: String, found: usize },
    #[error("--accounts must be at least 2 (a transfer needs a sender and a recipient)")]
    CountTooSmall,
    #[error("give the accounts with --accounts-keyring FILE or --accounts-seed SEED")]
    NoSource,
}

/// Where the account keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountSource {
    /// A keyring written by `dualchain genesis`; at most `limit` accounts are used.
    Keyring {
        path: std::path::PathBuf,
        limit: Option<usize>,
    },
    /// `count` keys derived from the public benchmark seed.
    Seed { seed: u64, count: usize },
}

/// Loads the accounts of `source`.
pub fn load_accounts(source: &AccountSource) -> Result<Vec<Account>, AccountsError> {
    let keys = match source {
        AccountSource::Keyring { path, limit } => {
            let mut keys = read_keyring(path)?;
            if let Some(limit) = limit {
                if *limit < 2 {
                    return Err(AccountsError::CountTooSmall);
                }
                keys.truncate(*limit);
            }
            if keys.len() < 2 {
                return Err(AccountsError::TooFew {
                    path: path.display().to_string(),
                    found: keys.len(),
                });
            }
            keys
        }
        AccountSource::Seed { seed, count } => {
            if *count < 2 {
                return Err(AccountsError::CountTooSmall);
            }
            keyfile::seeded_account_keys(*count, *seed)
        }
    };
    Ok(keys
        .into_iter()
        .map(|key| Account {
            address: Address::of(key.public()),
            key,
        })
        .collect())
}

fn read_keyring(path: &Path) -> Result<Vec<AccountKeypair>, AccountsError> {
    Ok(keyfile::read_keyring(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_keyring_give_the_same_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.keys");
        let keys = keyfile::seeded_account_keys(5, 7);
        keyfile::write_keyring(&path, &keys).unwrap();
        let from_seed = load_accounts(&AccountSource::Seed { seed: 7, count: 5 }).unwrap();
        let from_file = load_accounts(&AccountSource::Keyring {
            path: path.clone(),
            limit: Some(4),
        })
        .unwrap();
        assert_eq!(from_file.len(), 4);
        for (a, b) in from_seed.iter().zip(&from_file) {
            assert_eq!(a.address, b.address);
        }
    }

    #[test]
    fn too_few_accounts_is_an_error() {
        assert!(matches!(
            load_accounts(&AccountSource::Seed { seed: 1, count: 1 }),
            Err(AccountsError::CountTooSmall)
        ));
    }
}
