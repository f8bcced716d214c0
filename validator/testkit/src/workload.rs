//! Delta transfers between funded accounts.

use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Address, AssetId, ChainId, Output, Transaction, TxPayload};

/// Fee of every transfer built here (the minimum a transfer pays).
pub const TRANSFER_FEE: u64 = 1;

/// A Delta native-asset transfer of `amount` from `sender` to `to` at `nonce`, fee
/// [`TRANSFER_FEE`].
pub fn transfer(sender: Address, to: Address, nonce: u64, amount: u64) -> Transaction {
    Transaction {
        chain: ChainId::Delta,
        sender,
        nonce,
        fee: TRANSFER_FEE,
        payload: TxPayload::Transfer {
            outputs: vec![Output {
                to,
                asset: AssetId::NATIVE,
                amount,
            }],
        },
    }
}

/// The addresses of the `count` accounts `dualchain genesis --accounts N
/// --accounts-seed SEED` funds.
pub fn seeded_addresses(count: usize, seed: u64) -> Vec<Address> {
    dualchain_core::keyfile::seeded_account_keys(count, seed)
        .iter()
        .map(|k| Address::of(k.public()))
        .collect()
}

/// Transfers of 1 from every account to the next (the last pays the first),
/// `per_account` consecutive nonces each from `first_nonce`; nonce-major order, so
/// every sender's nonces arrive in order.
pub fn ring_transfers(
    addresses: &[Address],
    first_nonce: u64,
    per_account: u64,
) -> Vec<Transaction> {
    let n = addresses.len();
    let mut out = Vec::with_capacity(n * per_account as usize);
    for nonce in first_nonce..first_nonce + per_account {
        for (i, sender) in addresses.iter().enumerate() {
            out.push(transfer(*sender, addresses[(i + 1) % n], nonce, 1));
        }
    }
    out
}

/// Canonical bytes of `txs` without authorisation (the genesis must allow it).
pub fn unsigned_bytes(txs: &[Transaction]) -> Vec<Vec<u8>> {
    txs.iter()
        .map(|tx| tx.clone().unsigned().to_canonical_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_transfers_cover_every_sender_in_nonce_order() {
        let addresses: Vec<Address> = (0..3u8).map(|i| Address([i; 32])).collect();
        let txs = ring_transfers(&addresses, 5, 2);
        assert_eq!(txs.len(), 6);
        assert_eq!(txs[0].sender, addresses[0]);
        assert_eq!(txs[0].nonce, 5);
        assert_eq!(txs[3].nonce, 6);
        let TxPayload::Transfer { outputs } = &txs[2].payload else {
            panic!("not a transfer")
        };
        assert_eq!(outputs[0].to, addresses[0]);
        let bytes = unsigned_bytes(&txs);
        let back =
            dualchain_core::types::SignedTransaction::from_canonical_bytes(&bytes[1]).unwrap();
        assert_eq!(back.tx(), &txs[1]);
    }
}
