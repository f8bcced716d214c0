//! The Avalanche engine over real `dualchain run` processes (QUIC on 127.0.0.1):
//! three validators whose chains decide their leader slots by Snowball sampling,
//! signed queries and responses crossing the transport.

mod common;

use std::time::Duration;

use common::{cluster_with, runtime};
use dualchain_core::types::{ChainId, ConsensusEngine};
use dualchain_testkit::metrics;

const ALPHA_MS: u64 = 1_000;
const DELTA_MS: u64 = 200;
const WAIT: Duration = Duration::from_secs(90);

/// The value of the first sample of `name` with label `chain="<chain>"`.
fn metric(port: u16, name: &str, chain: ChainId) -> f64 {
    labelled(port, name, chain, "")
}

/// The value of the first sample of `name` with label `chain="<chain>"` and `extra`.
fn labelled(port: u16, name: &str, chain: ChainId, extra: &str) -> f64 {
    let text = metrics::scrape(port).expect("the metrics listener answers");
    metrics::sample(&text, name, chain, extra)
        .unwrap_or_else(|| panic!("no {name} for {chain} in:\n{text}"))
}

#[test]
fn three_validators_on_avalanche_agree_certify_and_take_a_restarted_peer_back() {
    let mut c = cluster_with(3, ALPHA_MS, DELTA_MS, 300, |spec| {
        spec.engines = (ConsensusEngine::Avalanche, ConsensusEngine::Avalanche);
    });
    c.start_all().unwrap();
    runtime().block_on(async {
        let all = [0, 1, 2];
        for i in all {
            c.wait_height(i, ChainId::Delta, 5, WAIT).await;
            c.wait_height(i, ChainId::Alpha, 2, WAIT).await;
        }
        let txs = c.transfers(0, 1);
        let accepted = c.submit_spread(&all, &txs).await;
        assert_eq!(accepted as usize, txs.len());

        // A validator killed and restarted catches up and decides with the others
        // (three validators tolerate no fault: the others wait for it meanwhile).
        c.kill(2);
        tokio::time::sleep(Duration::from_secs(3)).await;
        c.start(2).unwrap();
        let h = c.min_height(&[0, 1], ChainId::Delta).await + 10;
        for i in all {
            c.wait_height(i, ChainId::Delta, h, WAIT).await;
        }
        c.assert_same_chain(&all, ChainId::Delta, h).await;
        let ha = c.min_height(&all, ChainId::Alpha).await;
        c.assert_same_chain(&all, ChainId::Alpha, ha).await;
        let certified = c
            .block(0, ChainId::Delta, h)
            .await
            .and_then(|b| b.certificate)
            .expect("the block is certified");
        assert!(certified.signer_count >= 2, "{certified:?}");

        // The slots were decided by polls, over the transport, on both chains.
        for i in [0, 1] {
            let port = c.peers()[i].metrics_port;
            for chain in [ChainId::Alpha, ChainId::Delta] {
                let decided = metric(port, "dualchain_avalanche_slots_decided_total", chain);
                let polls = metric(port, "dualchain_avalanche_polls_total", chain);
                // Metrics are refreshed on the driver's tick, and Alpha's slots are
                // few: at least one decided by polls is what this shows.
                assert!(
                    decided >= 1.0 && polls >= decided,
                    "{chain}: {decided} slots, {polls} polls"
                );
                assert_eq!(metric(port, "dualchain_avalanche_partitioned", chain), 0.0);
                let byzantine = labelled(
                    port,
                    "dualchain_avalanche_exclusions_total",
                    chain,
                    "reason=\"byzantine\"",
                );
                assert_eq!(
                    byzantine, 0.0,
                    "{chain}: honest peers excluded as Byzantine"
                );
            }
        }
    });
}
