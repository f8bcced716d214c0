//! The admission gate in a real validator. With a signature-verification budget of
//! five a second, a batch of signed transfers gets at most five in and the rest
//! `OVERLOADED` — with a retry hint, before their signatures are checked — and the
//! refused ones, sent again after the hint, go in and commit. A paused chain, whose
//! mempool drains nowhere, shuts its door once it holds what it may: whole calls are
//! refused `RESOURCE_EXHAUSTED` with `retry-after-ms`, and it opens again once the
//! chain resumes and drains.

mod common;

use std::time::{Duration, Instant};

use common::{ClusterSpec, LocalCluster, TOKEN, bin, runtime};
use dualchain_client::node::{connect, network_id};
use dualchain_core::encoding::Canonical;
use dualchain_core::keyfile::seeded_account_keys;
use dualchain_core::types::{Address, ChainId};
use dualchain_proto::v1::{
    Chain, PauseChainRequest, ResumeChainRequest, SubmitBatchRequest, TxResult, TxStatus,
};
use dualchain_proto::{AdminClient, AdminToken, TransactionsClient};
use dualchain_testkit::workload::transfer;

const WAIT: Duration = Duration::from_secs(90);
const ACCOUNTS: usize = 30;
const BUDGET: u32 = 5;

async fn try_submit(url: &str, txs: &[Vec<u8>]) -> Result<Vec<TxResult>, tonic::Status> {
    let mut client = TransactionsClient::new(connect(url).await.unwrap());
    let response = client
        .submit_batch(SubmitBatchRequest {
            chain: Chain::Delta as i32,
            transactions: txs.to_vec(),
        })
        .await?
        .into_inner();
    assert_eq!(response.results.len(), txs.len());
    Ok(response.results)
}

async fn submit(url: &str, txs: &[Vec<u8>]) -> Vec<TxResult> {
    try_submit(url, txs).await.unwrap()
}

#[test]
fn a_spent_verification_budget_refuses_overloaded_with_a_hint_and_the_retries_commit() {
    let mut spec = ClusterSpec::new(1)
        .block_times(1_000, 200)
        .accounts(ACCOUNTS);
    spec.allow_unsigned = false;
    spec.extra_run_args = vec![
        "--sync-policy".into(),
        "os-buffered".into(),
        "--verify-budget-per-sec".into(),
        BUDGET.to_string(),
    ];
    spec.dir_prefix = "dualchain-overload-".into();
    let seed = spec.accounts_seed;
    let mut c = LocalCluster::prepare(bin(), spec).expect("preparing the cluster");
    c.start_all().unwrap();
    runtime().block_on(async {
        c.wait_height(0, ChainId::Delta, 2, WAIT).await;
        let url = c.api_url(0, ChainId::Delta);
        let network = network_id(&url).await.unwrap();
        let keys = seeded_account_keys(ACCOUNTS, seed);
        let txs: Vec<Vec<u8>> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let to = Address::of(keys[(i + 1) % ACCOUNTS].public());
                transfer(Address::of(key.public()), to, 0, 1)
                    .sign(key, network)
                    .to_canonical_bytes()
            })
            .collect();

        let results = submit(&url, &txs).await;
        let accepted = results
            .iter()
            .filter(|r| r.status() == TxStatus::Accepted)
            .count();
        assert!(
            (1..=BUDGET as usize).contains(&accepted),
            "{accepted} accepted with a budget of {BUDGET}: {results:?}"
        );
        let mut refused: Vec<usize> = Vec::new();
        for (i, result) in results.iter().enumerate() {
            if result.status() == TxStatus::Accepted {
                continue;
            }
            assert_eq!(result.status(), TxStatus::Overloaded, "{result:?}");
            assert!(result.reason.contains("verification budget"), "{result:?}");
            assert!((50..=10_000).contains(&result.retry_after_ms), "{result:?}");
            assert_eq!(
                result.digest.len(),
                32,
                "a refused transaction keeps its digest"
            );
            refused.push(i);
        }
        assert_eq!(accepted + refused.len(), ACCOUNTS);

        // Honouring the hints, every refused transaction goes in.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !refused.is_empty() {
            assert!(Instant::now() < deadline, "still refused: {refused:?}");
            let batch: Vec<Vec<u8>> = refused.iter().map(|&i| txs[i].clone()).collect();
            let results = submit(&url, &batch).await;
            let mut wait_ms = 0;
            let mut still = Vec::new();
            for (&i, result) in refused.iter().zip(&results) {
                match result.status() {
                    TxStatus::Accepted => {}
                    TxStatus::Overloaded => {
                        wait_ms = wait_ms.max(result.retry_after_ms);
                        still.push(i);
                    }
                    other => panic!("transaction {i} refused {other:?}: {result:?}"),
                }
            }
            refused = still;
            tokio::time::sleep(Duration::from_millis(u64::from(wait_ms))).await;
        }
        // And every one commits (nothing else runs on this chain).
        let h = c.height(0, ChainId::Delta).await.unwrap() + 10;
        c.wait_height(0, ChainId::Delta, h, WAIT).await;
        let mut committed = 0;
        for height in 1..=h {
            let block = c.block(0, ChainId::Delta, height).await.unwrap();
            committed += block.header.map_or(0, |header| header.tx_count);
        }
        assert_eq!(
            committed as usize, ACCOUNTS,
            "every admitted transfer commits"
        );
    });
}

/// Mempool capacity of the door test: the gate's floor (what a chain takes while
/// nothing drains) is the smaller of 4,096 and the capacity.
const SMALL_POOL: usize = 600;

#[test]
fn a_chain_that_drains_nothing_shuts_its_door_and_opens_it_when_it_drains() {
    let mut spec = ClusterSpec::new(1).block_times(1_000, 200).accounts(300);
    spec.admin_token = Some(TOKEN.into());
    spec.extra_run_args = vec![
        "--sync-policy".into(),
        "os-buffered".into(),
        "--mempool-capacity".into(),
        SMALL_POOL.to_string(),
    ];
    spec.dir_prefix = "dualchain-door-".into();
    let mut c = LocalCluster::prepare(bin(), spec).expect("preparing the cluster");
    c.start_all().unwrap();
    runtime().block_on(async {
        c.wait_height(0, ChainId::Delta, 2, WAIT).await;
        let url = c.api_url(0, ChainId::Delta);
        let mut admin = AdminClient::with_interceptor(
            connect(&c.admin_url(0, ChainId::Delta)).await.unwrap(),
            AdminToken::new(TOKEN).unwrap(),
        );
        admin
            .pause_chain(PauseChainRequest {
                chain: Chain::Delta as i32,
                reason: "door test".into(),
            })
            .await
            .unwrap();
        // 300 accounts, two nonces each: exactly what the pool may hold.
        let txs = c.transfers(0, 2);
        assert_eq!(txs.len(), SMALL_POOL);
        let results = submit(&url, &txs).await;
        assert!(
            results.iter().all(|r| r.status() == TxStatus::Accepted),
            "{results:?}"
        );
        // Now the door is shut: the next call is refused whole, with a hint.
        let more = c.transfers(2, 1);
        let refused = try_submit(&url, &more[..10]).await.unwrap_err();
        assert_eq!(
            refused.code(),
            tonic::Code::ResourceExhausted,
            "{refused:?}"
        );
        let hint: u32 = refused
            .metadata()
            .get("retry-after-ms")
            .expect("a shut door gives a retry hint")
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((50..=10_000).contains(&hint), "{hint}");
        assert!(refused.message().contains("overloaded"), "{refused:?}");

        // Resumed, the chain drains its pool and takes transactions again.
        admin
            .resume_chain(ResumeChainRequest {
                chain: Chain::Delta as i32,
            })
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match try_submit(&url, &more[..10]).await {
                Ok(results) => {
                    assert!(
                        results.iter().all(|r| r.status() == TxStatus::Accepted),
                        "{results:?}"
                    );
                    break;
                }
                Err(status) => {
                    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
                    assert!(Instant::now() < deadline, "the door never opened again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
}
