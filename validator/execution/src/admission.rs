//! Admission against committed state: does a transaction stand a chance of paying for
//! itself? The rules ([`crate::rules`]) charge nothing to a transaction that fails
//! before its commit point (wrong nonce, no fee), and they must not: only the owner
//! of an account at its current nonce may be charged. So a validly signed transaction
//! from an account that does not exist, cannot pay its fee, or reuses a spent nonce
//! would take block space for free. The mempool takes only those that pass here,
//! and proposers check again before a batch goes into a vertex (the state may have
//! moved since admission).
//!
//! The check reads the *committed* state, not the pending one, so it is a filter and
//! never a rule: a transaction it passes may still fail (the sender's earlier pending
//! transactions spend the balance first), and one it refuses could, rarely, have
//! succeeded (an incoming transfer ordered before it). The executor's rules decide.
//!
//! What is checked, at admission and at proposal:
//!
//! | check | refusal |
//! |---|---|
//! | `nonce` ≥ the sender's next nonce: a spent nonce can only fail, for as long as the state remembers it (forever), so replays are refused however old | `NonceTooOld` |
//! | `nonce` < next nonce + the mempool's window (admission only) | `NonceTooNew` |
//! | the sender exists: a nonce, a native balance or a multisig policy (admission only; not for `Attest`, whose relay account needs no funds, nor for `ValidatorLeave`, sent from the validator's unfunded set-change account; the caller checks both completely first: `check_attest_admission`, `check_leave_admission`) | `UnknownSender` |
//! | native balance ≥ fee | `CannotPayFee` |
//! | for a transfer or multisig spend, the balance of each asset (after the fee, for the native one) covers its outputs; for a burn, its amount | `InsufficientBalance` |
//!
//! Cross-chain operations other than `Attest` and `ValidatorLeave` are checked for
//! nonce, existence and fee; their own amounts (a lock's sAX) are left to the
//! executor.

use dualchain_core::types::{
    Address, AssetId, CrossChainOp, Output, Transaction, TxPayload, tx_limits,
};
use dualchain_storage::KvEngine;
use smallvec::SmallVec;

use crate::keys::AccountRecord;
use crate::state::{StateCache, StateError};

/// Read access to committed accounts and balances.
pub trait AccountRead {
    /// The account record (the default one if it never existed).
    fn account(&self, address: &Address) -> Result<AccountRecord, StateError>;
    /// The balance of a non-native asset (zero if absent).
    fn balance(&self, address: &Address, asset: AssetId) -> Result<u64, StateError>;
}

impl<E: KvEngine> AccountRead for StateCache<E> {
    fn account(&self, address: &Address) -> Result<AccountRecord, StateError> {
        StateCache::account(self, address)
    }
    fn balance(&self, address: &Address, asset: AssetId) -> Result<u64, StateError> {
        StateCache::balance(self, address, asset)
    }
}

/// Where the check runs: admission applies every row of the table, a proposer only
/// those that can change after admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A new transaction at the API; `nonce_window` nonces ahead of the sender's next
    /// one are accepted.
    Admission { nonce_window: u64 },
    /// A pending transaction about to go into a vertex.
    Proposal,
}

/// Why a transaction could only fail against the committed state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SenderRefusal {
    #[error("nonce {got} is already spent: the sender's next nonce is {next}")]
    NonceTooOld { next: u64, got: u64 },
    #[error(
        "nonce {got} is {window} or more ahead of the sender's next nonce {next}: send the nonces in between first"
    )]
    NonceTooNew { next: u64, got: u64, window: u64 },
    #[error(
        "the sender account does not exist on this chain (no balance, no transaction yet): fund it first"
    )]
    UnknownSender,
    #[error("the sender holds {available} of the native asset and cannot pay the fee {fee}")]
    CannotPayFee { available: u64, fee: u64 },
    #[error(
        "the sender holds {available} of asset {asset:?} (after the fee) and the transaction moves {needed}"
    )]
    InsufficientBalance {
        asset: AssetId,
        available: u64,
        needed: u128,
    },
}

/// Checks `tx`'s sender against committed `state` (see the module documentation).
/// The outer error is a storage failure; the inner one the refusal.
pub fn check_sender(
    tx: &Transaction,
    state: &impl AccountRead,
    stage: Stage,
) -> Result<Result<(), SenderRefusal>, StateError> {
    let account = state.account(&tx.sender)?;
    if tx.nonce < account.nonce {
        return Ok(Err(SenderRefusal::NonceTooOld {
            next: account.nonce,
            got: tx.nonce,
        }));
    }
    if let Stage::Admission { nonce_window } = stage {
        if tx.nonce - account.nonce >= nonce_window {
            return Ok(Err(SenderRefusal::NonceTooNew {
                next: account.nonce,
                got: tx.nonce,
                window: nonce_window,
            }));
        }
        let unfunded_kind = matches!(
            tx.payload,
            TxPayload::CrossChain(CrossChainOp::Attest(_) | CrossChainOp::ValidatorLeave { .. })
        );
        if account.is_default() && !unfunded_kind {
            return Ok(Err(SenderRefusal::UnknownSender));
        }
    }
    let Some(native_left) = account.native.checked_sub(tx.fee) else {
        return Ok(Err(SenderRefusal::CannotPayFee {
            available: account.native,
            fee: tx.fee,
        }));
    };
    check_amounts(tx, native_left, state)
}

/// The payload's spending against the sender's balances (native: after the fee).
fn check_amounts(
    tx: &Transaction,
    native_left: u64,
    state: &impl AccountRead,
) -> Result<Result<(), SenderRefusal>, StateError> {
    for (asset, needed) in spending(&tx.payload) {
        let available = if asset == AssetId::NATIVE {
            native_left
        } else {
            state.balance(&tx.sender, asset)?
        };
        if u128::from(available) < needed {
            return Ok(Err(SenderRefusal::InsufficientBalance {
                asset,
                available,
                needed,
            }));
        }
    }
    Ok(Ok(()))
}

/// What the payload takes from the sender, summed per asset in order of first
/// appearance (at most one entry per output: bounded by the output limit).
fn spending(payload: &TxPayload) -> SmallVec<[(AssetId, u128); 4]> {
    let mut sums: SmallVec<[(AssetId, u128); 4]> = SmallVec::new();
    let outputs: &[Output] = match payload {
        TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => outputs,
        TxPayload::Burn { asset, amount } => {
            sums.push((*asset, u128::from(*amount)));
            return sums;
        }
        TxPayload::MultisigConfigure { .. } | TxPayload::CrossChain(_) => return sums,
    };
    debug_assert!(outputs.len() <= tx_limits::MAX_OUTPUTS);
    for output in outputs {
        match sums.iter_mut().find(|(asset, _)| *asset == output.asset) {
            Some((_, sum)) => *sum += u128::from(output.amount),
            None => sums.push((output.asset, u128::from(output.amount))),
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use dualchain_core::types::ChainId;

    use super::*;

    const ALICE: Address = Address([1; 32]);
    const BOB: Address = Address([2; 32]);
    const TOKEN: AssetId = AssetId(7);
    const WINDOW: Stage = Stage::Admission { nonce_window: 10 };

    #[derive(Default)]
    struct Accounts {
        records: HashMap<Address, AccountRecord>,
        balances: HashMap<(Address, AssetId), u64>,
    }

    impl AccountRead for Accounts {
        fn account(&self, address: &Address) -> Result<AccountRecord, StateError> {
            Ok(self.records.get(address).cloned().unwrap_or_default())
        }
        fn balance(&self, address: &Address, asset: AssetId) -> Result<u64, StateError> {
            Ok(self.balances.get(&(*address, asset)).copied().unwrap_or(0))
        }
    }

    /// Alice at nonce 5 with 100 native and 50 TOKEN.
    fn state() -> Accounts {
        let mut accounts = Accounts::default();
        let alice = AccountRecord {
            nonce: 5,
            native: 100,
            policy: None,
        };
        accounts.records.insert(ALICE, alice);
        accounts.balances.insert((ALICE, TOKEN), 50);
        accounts
    }

    fn transfer(sender: Address, nonce: u64, fee: u64, outputs: &[(AssetId, u64)]) -> Transaction {
        Transaction {
            chain: ChainId::Delta,
            sender,
            nonce,
            fee,
            payload: TxPayload::Transfer {
                outputs: outputs
                    .iter()
                    .map(|&(asset, amount)| Output {
                        to: BOB,
                        asset,
                        amount,
                    })
                    .collect(),
            },
        }
    }

    fn check(tx: &Transaction, stage: Stage) -> Result<(), SenderRefusal> {
        check_sender(tx, &state(), stage).unwrap()
    }

    #[test]
    fn a_payable_transaction_at_or_ahead_of_the_next_nonce_passes() {
        for nonce in [5, 6, 14] {
            assert_eq!(
                check(
                    &transfer(ALICE, nonce, 10, &[(AssetId::NATIVE, 90)]),
                    WINDOW
                ),
                Ok(())
            );
        }
    }

    #[test]
    fn spent_nonces_are_refused_however_old_and_far_nonces_at_admission_only() {
        let old = transfer(ALICE, 4, 1, &[(AssetId::NATIVE, 1)]);
        let refusal = Err(SenderRefusal::NonceTooOld { next: 5, got: 4 });
        assert_eq!(check(&old, WINDOW), refusal);
        assert_eq!(check(&old, Stage::Proposal), refusal);
        assert_eq!(
            check(&transfer(ALICE, 0, 1, &[]), Stage::Proposal),
            Err(SenderRefusal::NonceTooOld { next: 5, got: 0 })
        );
        let far = transfer(ALICE, 15, 1, &[(AssetId::NATIVE, 1)]);
        assert_eq!(
            check(&far, WINDOW),
            Err(SenderRefusal::NonceTooNew {
                next: 5,
                got: 15,
                window: 10
            })
        );
        assert_eq!(check(&far, Stage::Proposal), Ok(()));
        let extreme = transfer(ALICE, u64::MAX, 1, &[]);
        assert!(matches!(
            check(&extreme, WINDOW),
            Err(SenderRefusal::NonceTooNew { .. })
        ));
    }

    #[test]
    fn an_account_that_does_not_exist_is_refused_even_with_no_fee() {
        assert_eq!(
            check(&transfer(BOB, 0, 0, &[(TOKEN, 0)]), WINDOW),
            Err(SenderRefusal::UnknownSender)
        );
        // At proposal, a fee it cannot pay is what refuses it.
        assert_eq!(
            check(&transfer(BOB, 0, 1, &[]), Stage::Proposal),
            Err(SenderRefusal::CannotPayFee {
                available: 0,
                fee: 1
            })
        );
    }

    #[test]
    fn a_leave_needs_no_funded_sender_but_pays_any_fee_it_names() {
        use dualchain_core::crypto::{NetworkId, SigningDomain, ValidatorKeypair};
        use dualchain_core::hash::Digest;
        let key = ValidatorKeypair::from_seed(&[4; 32]);
        let leave = |fee| Transaction {
            chain: ChainId::Alpha,
            sender: BOB,
            nonce: 0,
            fee,
            payload: TxPayload::CrossChain(CrossChainOp::ValidatorLeave {
                key: key.public().clone(),
                proof: key.sign(
                    SigningDomain::ValidatorSetChange.on(NetworkId(Digest::ZERO)),
                    b"checked by check_leave_admission",
                ),
            }),
        };
        assert_eq!(check(&leave(0), WINDOW), Ok(()));
        assert_eq!(
            check(&leave(1), WINDOW),
            Err(SenderRefusal::CannotPayFee {
                available: 0,
                fee: 1
            })
        );
    }

    #[test]
    fn the_fee_and_each_assets_outputs_must_be_covered() {
        assert_eq!(
            check(&transfer(ALICE, 5, 101, &[]), WINDOW),
            Err(SenderRefusal::CannotPayFee {
                available: 100,
                fee: 101
            })
        );
        // Native outputs count after the fee; split outputs of one asset are summed.
        assert_eq!(
            check(
                &transfer(
                    ALICE,
                    5,
                    10,
                    &[(AssetId::NATIVE, 60), (TOKEN, 50), (AssetId::NATIVE, 31)]
                ),
                WINDOW
            ),
            Err(SenderRefusal::InsufficientBalance {
                asset: AssetId::NATIVE,
                available: 90,
                needed: 91
            })
        );
        assert_eq!(
            check(&transfer(ALICE, 5, 10, &[(TOKEN, 30), (TOKEN, 21)]), WINDOW),
            Err(SenderRefusal::InsufficientBalance {
                asset: TOKEN,
                available: 50,
                needed: 51
            })
        );
        // Sums beyond u64 do not wrap into something payable.
        assert_eq!(
            check(
                &transfer(ALICE, 5, 0, &[(TOKEN, u64::MAX), (TOKEN, 2)]),
                WINDOW
            ),
            Err(SenderRefusal::InsufficientBalance {
                asset: TOKEN,
                available: 50,
                needed: u128::from(u64::MAX) + 2
            })
        );
        let burn = Transaction {
            payload: TxPayload::Burn {
                asset: TOKEN,
                amount: 51,
            },
            ..transfer(ALICE, 5, 0, &[])
        };
        assert!(matches!(
            check(&burn, WINDOW),
            Err(SenderRefusal::InsufficientBalance { .. })
        ));
    }
}
