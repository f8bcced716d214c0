//! The cross-chain flow with real `dualchain run` processes over QUIC on 127.0.0.1:
//! lock sAX on Alpha → stake on Delta → proposal, vote, finalize → result executed on
//! Alpha → a governance re-weighting of a validator, run by both chains from the next
//! epoch boundary → unlock on Delta → release on Alpha → release attested back; every
//! validator's records are read through its own `CrossChain` API with their proofs.
//! Once with both chains in one process (in-process relay), once with one chain per
//! process (the relay reads the sibling's records over the localhost gRPC API), where
//! every Delta process is killed right after the lock and restarted later: the
//! attestation is delayed, never lost.

mod common;

use std::time::Duration;

use common::{chain_clients, cluster_with, runtime};
use dualchain_client::crosschain::{ChainClient, Sender};
use dualchain_core::Digest;
use dualchain_core::types::{
    ChainId, CrossChainOp, GovernanceChange, GovernanceExecution, LockRecord, LockStatus,
    ParameterChange, ParameterName, ParameterRecord, ProposalRecord, ProposalStatus, RecordKind,
    StakeRecord, StakeStatus,
};
use dualchain_proto::v1;
use dualchain_testkit::LocalCluster;
use dualchain_testkit::sleep_until_unix_ms;
use dualchain_testkit::workload::seeded_addresses;

const ALPHA_MS: u64 = 1_000;
const DELTA_MS: u64 = 200;
const ACCOUNTS: usize = 4;
const VALIDATORS: usize = 4;
const WAIT: Duration = Duration::from_secs(90);
const LOCKED: u64 = 400_000;
/// From the lock's submission to its time lock's end: long enough for the stake and the
/// governance round to finish first.
const LOCK_FOR_MS: u64 = 30_000;
const VOTING_PERIOD_MS: u64 = 3_000;
const PARAMETER: &str = "test.flow";
const PARAMETER_VALUE: u64 = 7;

/// Waits until every client's record `kind`/`id` satisfies `done`; returns validator
/// 0's record.
async fn on_every_validator<T: dualchain_core::encoding::Canonical>(
    clients: &[ChainClient],
    kind: RecordKind,
    id: Digest,
    done: impl Fn(&T) -> bool + Copy,
) -> T {
    let mut first = None;
    for (i, client) in clients.iter().enumerate() {
        let record = client
            .wait_for::<T>(kind, id, WAIT, done)
            .await
            .unwrap_or_else(|e| panic!("validator {i}: {e:#}"));
        first.get_or_insert(record);
    }
    first.expect("at least one validator")
}

/// Whether validator 0's `chain` finality stream (replayed from height 1) carries an
/// event `name` about `id`, within [`WAIT`].
async fn streamed(c: &LocalCluster, chain: ChainId, name: &str, id: Digest) -> bool {
    let channel = c.channel(0, chain).await.expect("validator 0's API");
    let mut client = dualchain_proto::NodeClient::new(channel);
    let request = v1::StreamFinalityRequest {
        chain: 0,
        from_height: Some(1),
        include_tx_digests: false,
    };
    let mut stream = client.stream_finality(request).await.unwrap().into_inner();
    let found = async {
        while let Some(event) = stream.message().await.unwrap() {
            if event
                .cross_chain_events
                .iter()
                .any(|e| e.name == name && e.id == id.as_bytes().to_vec())
            {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(WAIT, found).await.unwrap_or(false)
}

/// Passes `change` on Delta (the staker holds all the stake) and waits until every
/// Alpha executed it.
async fn pass(
    staker: &Sender,
    (alpha, delta): (&[ChainClient], &[ChainClient]),
    change: GovernanceChange,
) -> Digest {
    let propose = CrossChainOp::Propose {
        change,
        voting_period_ms: VOTING_PERIOD_MS,
    };
    let proposal = delta[1].send(staker, propose).await.unwrap();
    let opened =
        on_every_validator::<ProposalRecord>(delta, RecordKind::Proposal, proposal, |_| true).await;
    let vote = CrossChainOp::Vote {
        proposal,
        approve: true,
    };
    delta[2].send(staker, vote).await.unwrap();
    on_every_validator::<ProposalRecord>(delta, RecordKind::Proposal, proposal, |p| {
        p.votes_for == LOCKED
    })
    .await;
    sleep_until_unix_ms(opened.voting_deadline_ms + 2 * DELTA_MS).await;
    let finalize = CrossChainOp::FinalizeProposal { proposal };
    delta[3].send(staker, finalize).await.unwrap();
    on_every_validator::<GovernanceExecution>(alpha, RecordKind::Governance, proposal, |_| true)
        .await;
    proposal
}

/// Governance re-weights validator 3: from the next boundary on, both chains of
/// every validator run the set with its new stake.
async fn reweigh_by_governance(
    c: &LocalCluster,
    staker: &Sender,
    (alpha, delta): (&[ChainClient], &[ChainClient]),
) {
    let (epoch, set) = alpha[0].current_set().await.unwrap();
    let member = set.validators()[3].public_key.id();
    let stake = set.validators()[3].stake + 2;
    let change = GovernanceChange::ValidatorStake { member, stake };
    let proposal = pass(staker, (alpha, delta), change).await;
    assert!(streamed(c, ChainId::Alpha, "governance_executed", proposal).await);
    for (i, client) in alpha.iter().chain(delta).enumerate() {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let (now, set) = client.current_set().await.unwrap();
            if set
                .validators()
                .iter()
                .any(|v| v.public_key.id() == member && v.stake == stake)
            {
                assert!(
                    now > epoch,
                    "client {i}: re-weighted in epoch {now}, from {epoch}"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "client {i}: the new stake did not reach epoch {now}'s set"
            );
            tokio::time::sleep(Duration::from_millis(ALPHA_MS)).await;
        }
    }
}

/// The whole flow; with `restart_delta`, every validator's Delta process (one chain
/// per process) is killed right after the lock is sent and restarted seconds later.
async fn run_flow(c: &mut LocalCluster, restart_delta: bool) {
    for i in 0..VALIDATORS {
        c.wait_height(i, ChainId::Delta, 5, WAIT).await;
        c.wait_height(i, ChainId::Alpha, 2, WAIT).await;
    }
    let staker_address = seeded_addresses(ACCOUNTS, c.spec().accounts_seed)[0];
    let staker = Sender::Unsigned(staker_address);
    let alpha = chain_clients(c, VALIDATORS, ChainId::Alpha).await;

    // Lock on Alpha.
    let unlock_at_ms = dualchain_testkit::unix_ms() + LOCK_FOR_MS;
    let lock = alpha[0]
        .send(
            &staker,
            CrossChainOp::SaxLock {
                amount: LOCKED,
                unlock_at_ms,
            },
        )
        .await
        .unwrap();
    if restart_delta {
        for i in 0..VALIDATORS {
            c.kill_chain(i, ChainId::Delta);
        }
    }
    let locked = on_every_validator::<LockRecord>(&alpha, RecordKind::Lock, lock, |l| {
        l.status == LockStatus::Locked
    })
    .await;
    assert_eq!((locked.owner, locked.amount), (staker_address, LOCKED));
    if restart_delta {
        // Alpha finalizes and certifies the lock while no Delta process runs.
        tokio::time::sleep(Duration::from_millis(3 * ALPHA_MS)).await;
        for i in 0..VALIDATORS {
            c.start_chain(i, ChainId::Delta).unwrap();
        }
        for i in 0..VALIDATORS {
            c.wait_height(i, ChainId::Delta, 1, WAIT).await;
        }
    }

    // The attested lock is a stake on Delta, on every validator.
    let delta = chain_clients(c, VALIDATORS, ChainId::Delta).await;
    let stake = on_every_validator::<StakeRecord>(&delta, RecordKind::Stake, lock, |s| {
        s.status == StakeStatus::Active
    })
    .await;
    assert_eq!(
        (stake.owner, stake.amount, stake.unlock_at_ms),
        (staker_address, LOCKED, unlock_at_ms)
    );
    assert!(streamed(c, ChainId::Alpha, "sax_locked", lock).await);
    assert!(streamed(c, ChainId::Delta, "sax_lock_attested", lock).await);

    // Governance on Delta, executed on Alpha.
    let change = ParameterChange {
        name: ParameterName::new(PARAMETER).unwrap(),
        value: PARAMETER_VALUE,
    };
    let proposal = delta[1]
        .send(
            &staker,
            CrossChainOp::Propose {
                change: change.clone().into(),
                voting_period_ms: VOTING_PERIOD_MS,
            },
        )
        .await
        .unwrap();
    let opened =
        on_every_validator::<ProposalRecord>(&delta, RecordKind::Proposal, proposal, |_| true)
            .await;
    assert_eq!(opened.total_stake, LOCKED);
    delta[2]
        .send(
            &staker,
            CrossChainOp::Vote {
                proposal,
                approve: true,
            },
        )
        .await
        .unwrap();
    on_every_validator::<ProposalRecord>(&delta, RecordKind::Proposal, proposal, |p| {
        p.votes_for == LOCKED
    })
    .await;
    // Delta's clock is its block timestamps: a little past the deadline.
    sleep_until_unix_ms(opened.voting_deadline_ms + 2 * DELTA_MS).await;
    delta[3]
        .send(&staker, CrossChainOp::FinalizeProposal { proposal })
        .await
        .unwrap();
    on_every_validator::<ProposalRecord>(&delta, RecordKind::Proposal, proposal, |p| {
        p.status == ProposalStatus::Passed
    })
    .await;
    let parameter = on_every_validator::<ParameterRecord>(
        &alpha,
        RecordKind::Parameter,
        Digest(change.name.record_id()),
        |p| p.proposal == proposal,
    )
    .await;
    assert_eq!(parameter.value, PARAMETER_VALUE);
    assert!(streamed(c, ChainId::Alpha, "governance_executed", proposal).await);
    reweigh_by_governance(c, &staker, (&alpha, &delta)).await;

    // Unlock after the time lock: released on Alpha, the release attested back.
    sleep_until_unix_ms(unlock_at_ms + ALPHA_MS).await;
    delta[0]
        .send(&staker, CrossChainOp::SaxUnlock { lock })
        .await
        .unwrap();
    on_every_validator::<LockRecord>(&alpha, RecordKind::Lock, lock, |l| {
        matches!(l.status, LockStatus::Released { .. })
    })
    .await;
    on_every_validator::<StakeRecord>(&delta, RecordKind::Stake, lock, |s| {
        matches!(s.status, StakeStatus::Released { .. })
    })
    .await;
}

/// Epochs of ten Alpha blocks: the governance re-weighting applies within seconds,
/// and the flow's operations meet boundaries.
fn flow_cluster() -> LocalCluster {
    cluster_with(VALIDATORS, ALPHA_MS, DELTA_MS, ACCOUNTS, |spec| {
        spec.epoch_length = Some(10)
    })
}

#[test]
fn the_flow_runs_with_both_chains_in_one_process() {
    let mut c = flow_cluster();
    c.start_all().unwrap();
    runtime().block_on(run_flow(&mut c, false));
}

#[test]
fn the_flow_runs_with_one_chain_per_process_and_survives_delta_restarts() {
    let mut c = flow_cluster();
    for i in 0..VALIDATORS {
        c.start_chain(i, ChainId::Alpha).unwrap();
        c.start_chain(i, ChainId::Delta).unwrap();
    }
    runtime().block_on(run_flow(&mut c, true));
}
