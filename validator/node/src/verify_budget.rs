//! The default signature-verification budget of a chain's API door: measured on this
//! machine at start, because a fixed number would be wrong on every machine but one.
//!
//! The budget (see `dualchain_runtime::admission_gate`) bounds the CPU a client mix
//! can take for verification at the door; by default each chain may use half of the
//! machine's cores for it, the rest staying for consensus, execution and the other
//! chain. `--verify-budget-per-sec` sets it outright.

use std::time::Instant;

use dualchain_core::Digest;
use dualchain_core::crypto::{AccountKeypair, NetworkId};
use dualchain_core::types::{Address, AssetId, ChainId, Output, Transaction, TxPayload};

/// Verifications timed (after one untimed warm-up).
const SAMPLES: u32 = 64;
/// The share of the machine's cores one chain's door may spend verifying.
const CORE_SHARE: f64 = 0.5;
/// Bounds of a measured budget: a machine too slow or a clock too coarse must
/// still give a budget that admits and bounds.
const MIN_BUDGET: u32 = 100;
const MAX_BUDGET: u32 = 1_000_000;

/// The measured cost of one ML-DSA-44 transfer verification, in microseconds.
pub fn verification_cost_us() -> f64 {
    let network = NetworkId(Digest([0x5a; 32]));
    let key = AccountKeypair::from_seed(&[0x5a; 32]);
    let tx = Transaction {
        chain: ChainId::Delta,
        sender: Address::of(key.public()),
        nonce: 0,
        fee: 1,
        payload: TxPayload::Transfer {
            outputs: vec![Output {
                to: Address([1; 32]),
                asset: AssetId::NATIVE,
                amount: 1,
            }],
        },
    }
    .sign(&key, network);
    let verify = || {
        let verdict = tx.verify_signatures(network, false);
        assert!(verdict.is_ok(), "a freshly signed transfer must verify");
    };
    verify();
    let started = Instant::now();
    for _ in 0..SAMPLES {
        verify();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(SAMPLES)
}

/// Verifications per second one chain's door may spend: `CORE_SHARE` of the cores
/// at the measured cost.
pub fn budget_for(cost_us: f64, cores: usize) -> u32 {
    let per_sec = cores as f64 * CORE_SHARE * 1e6 / cost_us.max(1e-3);
    per_sec.clamp(f64::from(MIN_BUDGET), f64::from(MAX_BUDGET)) as u32
}

/// The budget measured now, and the cost it was measured from.
pub fn measured_budget() -> (u32, f64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cost = verification_cost_us();
    (budget_for(cost, cores), cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_half_the_cores_at_the_measured_cost() {
        // 100 µs per verification, 2 cores, half of them: 10,000 a second.
        assert_eq!(budget_for(100.0, 2), 10_000);
        assert_eq!(budget_for(50.0, 8), 80_000);
        // A clock that measured nothing, or a machine far too slow, stays bounded.
        assert_eq!(budget_for(0.0, 2), MAX_BUDGET);
        assert_eq!(budget_for(1e9, 1), MIN_BUDGET);
    }

    #[test]
    fn the_measured_cost_is_a_real_verification() {
        let cost = verification_cost_us();
        assert!(cost > 0.0 && cost.is_finite(), "{cost}");
    }
}
