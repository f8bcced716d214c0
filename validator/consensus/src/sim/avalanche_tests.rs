//! The Avalanche ordering rule in the simulator: the specification's success criteria
//! that are about the protocol (FS-001, FS-002, FS-004, FS-005, SS-003, RS-001,
//! RS-002), each asserted on simulated runs.

use super::*;
use crate::avalanche::{AvalancheConfig, Security};
use crate::config::Ordering;

fn avalanche(validators: usize, seed: u64) -> SimConfig {
    let mut cfg = SimConfig::new(validators, seed);
    cfg.engine.ordering = Ordering::Avalanche(AvalancheConfig::with_security(Security::Standard));
    cfg
}

fn run(cfg: SimConfig) -> RunResult {
    run_once(cfg, &SharedVerdictCache::new()).unwrap()
}

fn assert_clean(r: &RunResult) {
    assert!(r.safety_violations.is_empty(), "{:?}", r.safety_violations);
    assert!(r.liveness_failure.is_none(), "{:?}", r.liveness_failure);
}

fn stats(r: &RunResult) -> &AvalancheRun {
    r.avalanche
        .as_ref()
        .expect("an avalanche run reports its polls")
}

fn success_rate(r: &RunResult) -> f64 {
    let s = &stats(r).stats;
    s.successful_slot_polls as f64 / (s.successful_slot_polls + s.failed_slot_polls) as f64
}

#[test]
fn fs_001_three_nodes_finalize_every_slot_and_every_poll_succeeds() {
    let mut cfg = avalanche(3, 11);
    cfg.rounds = 20;
    let r = run(cfg);
    assert_clean(&r);
    // Every slot of rounds 0..=20 decided on every node, none skipped: every
    // leader's vertex committed, with the rest of its round in its history.
    assert!(r.commits_min >= 21, "{} commits", r.commits_min);
    assert!(stats(&r).stats.slots_decided >= 3 * 21);
    assert!(success_rate(&r) >= 0.99, "{}", success_rate(&r));
    assert_eq!(stats(&r).stats.peers.byzantine_exclusions, 0);
}

#[test]
fn fs_002_one_malicious_validator_of_four_is_survived_and_excluded_whatever_it_does() {
    for (k, behaviour) in Behaviour::ALL.iter().enumerate() {
        // Seed k gives the single Byzantine validator `Behaviour::ALL[k]`.
        let mut cfg = avalanche(4, k as u64);
        cfg.byzantine = 1;
        cfg.rounds = 15;
        let r = run(cfg);
        assert_clean(&r);
        assert!(
            r.commits_min >= 10,
            "{behaviour:?}: {} commits",
            r.commits_min
        );
        let a = stats(&r);
        match behaviour {
            // Wrong votes, withheld answers, forged signatures, a response posing as
            // another voter: every honest node leaves the attacker out of its samples.
            Behaviour::Equivocate
            | Behaviour::Withhold
            | Behaviour::InvalidSignatures
            | Behaviour::Garbage => assert_eq!(
                a.byzantine_pairs_detected, a.byzantine_pairs,
                "{behaviour:?}: {a:?}"
            ),
            // The query flood is answered at most once per half poll interval.
            Behaviour::OrphanFlood => assert!(a.stats.queries_dropped > 0, "{a:?}"),
            Behaviour::LieToOne => unreachable!("not in the rotation"),
        }
    }
}

#[test]
fn a_validator_that_lies_to_one_node_is_excluded_by_every_node_through_the_proof() {
    // Honest to everyone but validator `liar + 1`, which gets signed wrong votes: only
    // that node can catch it, and every other node must learn it from the evidence.
    let mut cfg = avalanche(7, 5);
    cfg.byzantine = 1;
    cfg.behaviour = Some(Behaviour::LieToOne);
    cfg.rounds = 15;
    let r = run(cfg);
    assert_clean(&r);
    let a = stats(&r);
    assert_eq!(a.byzantine_pairs, 6);
    assert_eq!(a.byzantine_pairs_detected, 6, "{a:?}");
    // One proof per honest node (the victim's own, the others' passed on) and none of
    // equivocation: the liar's vertices were honest.
    assert!(r.wrong_vote_evidence >= 6, "{}", r.wrong_vote_evidence);
    assert_eq!(r.equivocation_evidence, 0);
}

#[test]
fn fs_004_queries_succeed_over_ninety_percent_with_loss_and_byzantine_peers() {
    let mut cfg = avalanche(10, 3);
    cfg.byzantine = 2;
    cfg.loss = 0.05;
    cfg.rounds = 15;
    let r = run(cfg);
    assert_clean(&r);
    assert!(success_rate(&r) > 0.9, "{}", success_rate(&r));
}

#[test]
fn fs_005_an_equivocating_leader_is_resolved_alike_on_every_node() {
    // Seeds 0 and 5: the Byzantine validator equivocates (two vertices per round,
    // each shown to half of the peers); the committed sequences must be one.
    for seed in [0, 5] {
        let mut cfg = avalanche(4, seed);
        cfg.byzantine = 1;
        cfg.rounds = 20;
        let r = run(cfg);
        assert_clean(&r);
        assert!(r.equivocation_evidence > 0, "the twins were seen");
    }
}

#[test]
fn safety_holds_with_a_third_of_the_validators_byzantine() {
    for seed in 0..3 {
        let mut cfg = avalanche(10, seed);
        cfg.byzantine = 3;
        cfg.rounds = 10;
        let r = run(cfg);
        assert!(r.safety_violations.is_empty(), "{:?}", r.safety_violations);
        let a = stats(&r);
        assert!(
            a.byzantine_pairs_detected * 2 > a.byzantine_pairs,
            "most attackers are caught by most observers: {a:?}"
        );
    }
}

#[test]
fn rs_001_a_partition_is_detected_and_reconciled_within_five_seconds_of_healing() {
    let mut cfg = avalanche(7, 2);
    cfg.partition_ms = 4_000;
    // Three cut off from four: the three cannot reach a quorum, and all their queries
    // to the other side time out.
    cfg.partition_sides = Some(vec![true, true, true, false, false, false, false]);
    cfg.rounds = 25;
    let r = run(cfg);
    assert_clean(&r);
    assert!(
        stats(&r).stats.peers.partitions_detected >= 3,
        "{:?}",
        stats(&r)
    );
    let recovery = r.recovery_ms.expect("every node committed after the heal");
    assert!(recovery < 5_000, "reconciled {recovery} ms after the heal");
}

#[test]
fn rs_002_a_crashed_node_rejoins_within_ten_seconds() {
    let mut cfg = avalanche(4, 6);
    cfg.crashes = 1;
    cfg.crash_ms = 3_000;
    cfg.rounds = 25;
    let r = run(cfg);
    assert_clean(&r);
    assert_eq!(r.restarts, 1);
    let recovery = r
        .recovery_ms
        .expect("every node committed after the restart");
    assert!(
        recovery < 10_000,
        "rejoined {recovery} ms after the restart"
    );
}

#[test]
fn runs_are_deterministic_per_seed() {
    let mut cfg = avalanche(4, 9);
    cfg.byzantine = 1;
    cfg.loss = 0.05;
    cfg.rounds = 8;
    let a = run(cfg.clone());
    let b = run(cfg.clone());
    assert_eq!(a.trace_digest, b.trace_digest);
    cfg.seed = 10;
    assert_ne!(run(cfg).trace_digest, a.trace_digest);
}

#[test]
fn a_split_no_poll_can_confirm_still_decides_at_alpha_timing() {
    // Seed 19, ten validators, two Byzantine, 5 % loss, Alpha's pacing: honest nodes
    // opened the first slots split between the leader's vertex and a skip, and with a
    // single 0.8k threshold no poll ever moved anyone — nothing was ever committed.
    let mut cfg = avalanche(10, 19);
    let ordering = cfg.engine.ordering.clone();
    cfg.engine = DagBftConfig {
        epoch_seed: cfg.engine.epoch_seed,
        ordering,
        ..DagBftConfig::for_chain(dualchain_core::types::ChainId::Alpha)
    };
    cfg.byzantine = 2;
    cfg.loss = 0.05;
    cfg.rounds = 30;
    let r = run(cfg);
    assert_clean(&r);
    assert!(r.commits_min >= 10, "{} commits", r.commits_min);
}
