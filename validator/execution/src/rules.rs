//! The transaction rules of Delta — one function, used by every executor.
//!
//! Every transaction gets exactly one receipt. The checks run in this order; the
//! first that fails decides the receipt, and the column "changes" says what a
//! transaction failing there still changes:
//!
//! | # | check | failure | changes |
//! |---|---|---|---|
//! | 1 | `tx.chain` is the executor's chain | `WrongChain` | nothing, fee 0 |
//! | 2 | structure (1–256 outputs, well-formed policy, 1–16 approvals in strictly increasing key order) | `Malformed` | nothing, fee 0 |
//! | 3 | admission verdict: unsigned on a network without the genesis flag | `UnsignedNotAllowed` | nothing, fee 0 |
//! | 4 | admission verdict: a signature is invalid or the key is not the sender's | `InvalidSignature` | nothing, fee 0 |
//! | 5 | `tx.nonce` equals the sender's nonce | `BadNonce { expected, got }` | nothing, fee 0 |
//! | 6 | the nonce can advance (`nonce < u64::MAX`) | `Overflow` | nothing, fee 0 |
//! | 7 | authorisation against the state (below) | `MultisigRequired`, `NotMultisigAccount`, `BadMultisigAuthorization` | nothing, fee 0 |
//! | 8 | native balance ≥ `tx.fee` | `InsufficientFee { available, fee }` | nothing, fee 0 |
//! | — | **commit point**: the fee is charged into the fee pool and the nonce advances | | |
//! | 9 | the payload | `InsufficientBalance`, `Overflow` | fee and nonce only: the payload is undone entirely |
//!
//! Why nothing is charged before step 9: a fee may only be taken from an account that
//! authorised this exact transaction at its current nonce. Charging a transaction that
//! fails its nonce or multisig check would let anyone replay or forge transactions
//! that drain fees from other accounts.
//!
//! Authorisation (step 7): a single-key or unsigned transaction is refused from an
//! account under a multisig policy (`MultisigRequired`), and may not be a
//! `MultisigSpend` (`NotMultisigAccount`). A multisig-authorised transaction needs a
//! policy on the sender (`NotMultisigAccount`) and approvals from at least
//! `threshold` distinct policy signers (`BadMultisigAuthorization`); it may then carry
//! any payload, including a new policy.
//!
//! Payloads (step 9), applied all-or-nothing:
//! - `Transfer` / `MultisigSpend`: the amounts are summed per asset (`Overflow` if a
//!   sum exceeds `u64`); for each asset in order of first appearance the sender's
//!   balance, *after* the fee, must cover the sum (`InsufficientBalance` names the
//!   first asset that does not); then the sender is debited and each output credited
//!   in order (`Overflow` if a recipient's balance would exceed `u64`, undoing every
//!   debit and credit). Outputs to the sender itself and zero amounts are allowed.
//! - `Burn`: the sender's balance of the asset (after the fee) must cover the amount;
//!   it is removed and added to the asset's burned supply.
//! - `MultisigConfigure`: the sender's policy becomes the given one.
//! - `CrossChain`: [`crate::crosschain::apply`] decides over the block's records and
//!   clock; its record writes, the sender's sAX debit (a lock) and an owner's credit
//!   (a release) are applied together or not at all (`CrossChain(..)` failures).
//!
//! Duplicate transactions need no special case: the second copy carries a nonce the
//! first already used and fails at step 5.

use dualchain_core::types::{
    Address, AssetId, Authorization, ChainId, CrossChainFailure, CrossChainOp, FailureReason,
    Receipt, ReceiptStatus, SignedTransaction, TxEvent, TxPayload, tx_limits,
};
use dualchain_storage::KvEngine;
use smallvec::SmallVec;

use crate::crosschain::{self, CrossChainBlock, CrossChainEnv};
use crate::keys::MultisigPolicy;
use crate::state::{StateCache, StateError};
use crate::verify::Verdict;
use crate::workset::{Slot, Slots};

/// What the rules need besides the transaction and the slots.
pub struct RuleContext<'a, E: KvEngine> {
    pub chain: ChainId,
    pub cache: &'a StateCache<E>,
    /// The block's cross-chain clock and records; `None` refuses cross-chain
    /// operations (`Disabled`).
    pub cross: Option<&'a CrossChainBlock<'a, E>>,
}

/// Fees and burns of a part of a block. Each worker keeps its own and they are
/// summed afterwards: the accumulators need neither locks nor atomics, and addition
/// is commutative, so the block totals cannot depend on scheduling.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accumulators {
    pub fees: u128,
    /// Burned amount per asset, in order of first burn within this part.
    pub burned: SmallVec<[(AssetId, u128); 2]>,
}

impl Accumulators {
    fn burn(&mut self, asset: AssetId, amount: u64) {
        match self.burned.iter_mut().find(|(a, _)| *a == asset) {
            Some((_, total)) => *total += u128::from(amount),
            None => self.burned.push((asset, u128::from(amount))),
        }
    }

    /// Adds another part's accumulators.
    pub fn merge(&mut self, other: &Accumulators) {
        self.fees += other.fees;
        for &(asset, amount) in &other.burned {
            match self.burned.iter_mut().find(|(a, _)| *a == asset) {
                Some((_, total)) => *total += amount,
                None => self.burned.push((asset, amount)),
            }
        }
    }
}

/// Buffers reused across the transactions of one worker (no per-transaction allocation).
#[derive(Default)]
pub struct Scratch {
    needs: SmallVec<[(AssetId, u64); 4]>,
    undo: SmallVec<[(u32, AssetId, u64); 8]>,
}

/// Applies one transaction to the slots. `access` is its declared access set
/// (sender slot, then one slot per output). Storage errors abort the block; every
/// transaction-level outcome is a receipt.
#[inline]
pub fn apply_tx<E: KvEngine, S: Slots>(
    ctx: &RuleContext<'_, E>,
    stx: &SignedTransaction,
    verdict: Verdict,
    access: &[u32],
    slots: &mut S,
    acc: &mut Accumulators,
    scratch: &mut Scratch,
) -> Result<Receipt, StateError> {
    let tx = stx.tx();
    let receipt = |status: ReceiptStatus, fee_charged: u64| Receipt {
        tx_digest: stx.digest(),
        status,
        fee_charged,
    };
    let refuse = |reason: FailureReason| receipt(ReceiptStatus::Failed(reason), 0);

    if tx.chain != ctx.chain {
        return Ok(refuse(FailureReason::WrongChain));
    }
    if !is_well_formed(stx) {
        return Ok(refuse(FailureReason::Malformed));
    }
    match verdict {
        Verdict::Valid => {}
        Verdict::UnsignedNotAllowed => return Ok(refuse(FailureReason::UnsignedNotAllowed)),
        Verdict::Invalid => return Ok(refuse(FailureReason::InvalidSignature)),
    }

    let sender = slots.slot(access[0]);
    sender.ensure_loaded(ctx.cache)?;
    if tx.nonce != sender.nonce {
        return Ok(refuse(FailureReason::BadNonce {
            expected: sender.nonce,
            got: tx.nonce,
        }));
    }
    let Some(next_nonce) = sender.nonce.checked_add(1) else {
        return Ok(refuse(FailureReason::Overflow));
    };
    if let Err(reason) = authorize(stx, sender) {
        return Ok(refuse(reason));
    }
    let native = sender.balance_mut(AssetId::NATIVE, ctx.cache)?;
    if *native < tx.fee {
        return Ok(refuse(FailureReason::InsufficientFee {
            available: *native,
            fee: tx.fee,
        }));
    }

    // Commit point: fee and nonce stick whatever the payload does.
    *native -= tx.fee;
    sender.nonce = next_nonce;
    acc.fees += u128::from(tx.fee);

    let status = match apply_payload(ctx, stx, access, slots, acc, scratch)? {
        Ok(()) => ReceiptStatus::Success,
        Err(reason) => ReceiptStatus::Failed(reason),
    };
    Ok(receipt(status, tx.fee))
}

/// Step 2: the structural rules the decoder enforces, re-checked because executor
/// callers can build transactions in memory.
fn is_well_formed(stx: &SignedTransaction) -> bool {
    let payload_ok = match &stx.tx().payload {
        TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => {
            !outputs.is_empty() && outputs.len() <= tx_limits::MAX_OUTPUTS
        }
        TxPayload::Burn { .. } => true,
        TxPayload::MultisigConfigure { threshold, signers } => {
            MultisigPolicy::new(*threshold, signers).is_some()
        }
        // Every field of an operation is checked when it is decoded or built.
        TxPayload::CrossChain(_) => true,
    };
    let auth_ok = match stx.auth() {
        Authorization::Multisig { approvals } => {
            !approvals.is_empty()
                && approvals.len() <= tx_limits::MAX_MULTISIG_SIGNERS
                && approvals
                    .windows(2)
                    .all(|w| w[0].public_key < w[1].public_key)
        }
        Authorization::Single { .. } | Authorization::Unsigned => true,
    };
    payload_ok && auth_ok
}

/// Step 7: the authorisation against the sender's policy.
fn authorize(stx: &SignedTransaction, sender: &Slot) -> Result<(), FailureReason> {
    match stx.auth() {
        Authorization::Single { .. } | Authorization::Unsigned => {
            if sender.policy.is_some() {
                return Err(FailureReason::MultisigRequired);
            }
            if matches!(stx.tx().payload, TxPayload::MultisigSpend { .. }) {
                return Err(FailureReason::NotMultisigAccount);
            }
            Ok(())
        }
        Authorization::Multisig { approvals } => {
            let Some(policy) = &sender.policy else {
                return Err(FailureReason::NotMultisigAccount);
            };
            let mut matched: u32 = 0;
            for approval in approvals {
                let signer = Address::of(&approval.public_key);
                if let Ok(i) = policy.signers.binary_search(&signer) {
                    matched |= 1 << i;
                }
            }
            if matched.count_ones() < u32::from(policy.threshold) {
                return Err(FailureReason::BadMultisigAuthorization);
            }
            Ok(())
        }
    }
}

/// Step 9. The outer `Result` is a storage error, the inner one the receipt's reason.
fn apply_payload<E: KvEngine, S: Slots>(
    ctx: &RuleContext<'_, E>,
    stx: &SignedTransaction,
    access: &[u32],
    slots: &mut S,
    acc: &mut Accumulators,
    scratch: &mut Scratch,
) -> Result<Result<(), FailureReason>, StateError> {
    match &stx.tx().payload {
        TxPayload::Transfer { outputs } | TxPayload::MultisigSpend { outputs } => {
            transfer(ctx, outputs, access, slots, scratch)
        }
        TxPayload::Burn { asset, amount } => {
            let balance = slots.slot(access[0]).balance_mut(*asset, ctx.cache)?;
            if *balance < *amount {
                return Ok(Err(FailureReason::InsufficientBalance {
                    asset: *asset,
                    available: *balance,
                    needed: *amount,
                }));
            }
            *balance -= amount;
            acc.burn(*asset, *amount);
            Ok(Ok(()))
        }
        TxPayload::MultisigConfigure { threshold, signers } => {
            // Well-formedness was checked at step 2.
            if let Some(policy) = MultisigPolicy::new(*threshold, signers) {
                slots.slot(access[0]).set_policy(policy);
            }
            Ok(Ok(()))
        }
        TxPayload::CrossChain(op) => {
            Ok(cross_chain(ctx, stx, op, access, slots)?.map_err(FailureReason::CrossChain))
        }
    }
}

/// A cross-chain operation: [`crosschain::apply`] decides, then its record writes,
/// the sender's debit and an owner's credit are applied together. `access` is
/// `[sender, RECORDS_SLOT, credited account?]`.
fn cross_chain<E: KvEngine, S: Slots>(
    ctx: &RuleContext<'_, E>,
    stx: &SignedTransaction,
    op: &CrossChainOp,
    access: &[u32],
    slots: &mut S,
) -> Result<Result<(), CrossChainFailure>, StateError> {
    let Some(cross) = ctx.cross else {
        return Ok(Err(CrossChainFailure::Disabled));
    };
    let sender_balance = *slots
        .slot(access[0])
        .balance_mut(AssetId::NATIVE, ctx.cache)?;
    let sets = |epoch: u64| cross.setup.source_sets.get(&epoch);
    let env = CrossChainEnv {
        chain: ctx.chain,
        now_ms: cross.now_ms,
        tx_digest: stx.digest(),
        sender: stx.tx().sender,
        sender_balance,
        params: &cross.setup.params,
        source_sets: &sets,
        certificates: Some(&cross.setup.certificates),
        network: cross.setup.network,
        epochs: cross.setup.epochs,
        accept_joins: cross.setup.accept_joins,
    };
    let mut records = cross.records();
    let effects = match crosschain::apply(&env, op, &*records)? {
        Ok(effects) => effects,
        Err(failure) => return Ok(Err(failure)),
    };
    // Everything that can fail is checked before anything is written.
    let credit = match effects.credit {
        Some((owner, amount)) => {
            let slot_index = *access
                .get(2)
                .expect("BlockAccess declares the credited account of an attested unlock");
            let slot = slots.slot(slot_index);
            assert_eq!(
                slot.address, owner,
                "the declared account is the one credited"
            );
            let balance = *slot.balance_mut(AssetId::NATIVE, ctx.cache)?;
            match balance.checked_add(amount) {
                Some(credited) => Some((slot_index, credited)),
                None => return Ok(Err(CrossChainFailure::Overflow)),
            }
        }
        None => None,
    };
    if records.write_all(effects.writes).is_err() {
        // The machine writes canonical records far below the size limit.
        return Ok(Err(CrossChainFailure::CorruptRecord));
    }
    records.push_event(TxEvent {
        tx: stx.digest(),
        event: effects.event,
    });
    assert!(
        effects.debit_sender <= sender_balance,
        "apply checked the sender's balance"
    );
    *slots
        .slot(access[0])
        .balance_mut(AssetId::NATIVE, ctx.cache)? -= effects.debit_sender;
    if let Some((slot_index, credited)) = credit {
        *slots
            .slot(slot_index)
            .balance_mut(AssetId::NATIVE, ctx.cache)? = credited;
    }
    Ok(Ok(()))
}

fn transfer<E: KvEngine, S: Slots>(
    ctx: &RuleContext<'_, E>,
    outputs: &[dualchain_core::types::Output],
    access: &[u32],
    slots: &mut S,
    scratch: &mut Scratch,
) -> Result<Result<(), FailureReason>, StateError> {
    let needs = &mut scratch.needs;
    needs.clear();
    for output in outputs {
        match needs.iter_mut().find(|(asset, _)| *asset == output.asset) {
            Some((_, total)) => match total.checked_add(output.amount) {
                Some(sum) => *total = sum,
                None => return Ok(Err(FailureReason::Overflow)),
            },
            None => needs.push((output.asset, output.amount)),
        }
    }
    let sender = slots.slot(access[0]);
    for &(asset, needed) in needs.iter() {
        let available = *sender.balance_mut(asset, ctx.cache)?;
        if available < needed {
            return Ok(Err(FailureReason::InsufficientBalance {
                asset,
                available,
                needed,
            }));
        }
    }
    for &(asset, needed) in needs.iter() {
        *sender.balance_mut(asset, ctx.cache)? -= needed;
    }

    let undo = &mut scratch.undo;
    undo.clear();
    for (output, &slot) in outputs.iter().zip(&access[1..]) {
        let balance = slots.slot(slot).balance_mut(output.asset, ctx.cache)?;
        match balance.checked_add(output.amount) {
            Some(credited) => {
                undo.push((slot, output.asset, *balance));
                *balance = credited;
            }
            None => {
                for &(slot, asset, previous) in undo.iter().rev() {
                    *slots.slot(slot).balance_mut(asset, ctx.cache)? = previous;
                }
                let sender = slots.slot(access[0]);
                for &(asset, needed) in needs.iter() {
                    *sender.balance_mut(asset, ctx.cache)? += needed;
                }
                return Ok(Err(FailureReason::Overflow));
            }
        }
    }
    Ok(Ok(()))
}
