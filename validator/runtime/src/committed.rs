//! A chain's committed state as the admission checks read it: through the store's
//! reader, never through the executor's state cache, which only the executor may
//! fill (a concurrent fill could put an older value over a newer one).

use dualchain_core::chain_store::{ChainReader, ChainStoreError};
use dualchain_core::encoding::DecodeError;
use dualchain_core::types::{Address, AssetId, RecordKey};
use dualchain_execution::admission::AccountRead;
use dualchain_execution::crosschain::RecordRead;
use dualchain_execution::keys::{AccountRecord, account_key, balance_key, decode_balance};
use dualchain_execution::state::StateError;
use dualchain_storage::KvEngine;

/// Records, accounts and balances of the chain's latest committed block.
pub(crate) struct CommittedState<E: KvEngine>(pub ChainReader<E>);

impl<E: KvEngine> CommittedState<E> {
    fn get(&self, key: &[u8], what: &'static str) -> Result<Option<Vec<u8>>, StateError> {
        match self.0.get_state(key) {
            Ok(value) => Ok(value),
            Err(ChainStoreError::Storage(e)) => Err(e.into()),
            Err(other) => Err(StateError::Decode {
                what,
                source: DecodeError::Invalid {
                    what,
                    detail: other.to_string(),
                },
            }),
        }
    }
}

impl<E: KvEngine> RecordRead for CommittedState<E> {
    fn record(&self, key: &RecordKey) -> Result<Option<Vec<u8>>, StateError> {
        self.get(&key.state_key(), "committed record")
    }
}

impl<E: KvEngine> AccountRead for CommittedState<E> {
    fn account(&self, address: &Address) -> Result<AccountRecord, StateError> {
        let Some(bytes) = self.get(&account_key(address), "account record")? else {
            return Ok(AccountRecord::default());
        };
        AccountRecord::decode_value(&bytes).map_err(|source| StateError::Decode {
            what: "account record",
            source,
        })
    }

    fn balance(&self, address: &Address, asset: AssetId) -> Result<u64, StateError> {
        if asset == AssetId::NATIVE {
            return Ok(self.account(address)?.native);
        }
        let Some(bytes) = self.get(&balance_key(address, asset), "balance")? else {
            return Ok(0);
        };
        decode_balance(&bytes).map_err(|source| StateError::Decode {
            what: "balance",
            source,
        })
    }
}
