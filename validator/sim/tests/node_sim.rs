//! The whole-node simulator in `make test`: a smaller version of the acceptance run
//! (`dualchain sim --mode node --validators 4 --byzantine 1 --loss 0.05 --crash 1
//! --partition-secs 5`), and a planted bug it must catch.

use dualchain_core::types::{ChainId, ConsensusEngine};
use dualchain_sim::cli::{Mode, RunArgs, SimArgs, run_node_sim};
use dualchain_sim::{NodeSimConfig, Signatures, StoreBug, run};

fn acceptance_args(seeds: u64) -> SimArgs {
    SimArgs {
        mode: Mode::Node,
        run: RunArgs {
            validators: 4,
            byzantine: 1,
            loss: 0.05,
            partition_secs: 5.0,
            crash: 1,
            seeds,
            first_seed: 0,
            no_determinism_check: false,
            json: true,
        },
        rounds: None,
        chain: None,
        retention: None,
        store_retention: None,
        block_ms: None,
        engine: None,
        security: None,
        tps: Some(300),
        load_secs: Some(15),
        accounts: Some(3_000),
        block_times: None,
        parallel: None,
        signatures: None,
        epoch_length: None,
        reconfigure: None,
    }
}

/// One run of seed `seed` (which picks the Byzantine validator's behaviour) with
/// message loss but no partition or crash.
fn one_byzantine_behaviour(seed: u64) -> SimArgs {
    let mut args = acceptance_args(1);
    args.run.first_seed = seed;
    args.run.partition_secs = 0.0;
    args.run.crash = 0;
    args.run.no_determinism_check = true;
    args
}

#[test]
fn every_fault_at_once_keeps_safety_liveness_exactly_once_and_determinism() {
    let summary = run_node_sim(&acceptance_args(2)).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.runs, 2);
    assert_eq!(summary.crashes, 2, "one crash per run");
    assert!(
        summary.transactions_submitted >= 2 * 3_000,
        "the load was offered: {summary:#?}"
    );
    assert_eq!(
        summary.transactions_committed, summary.transactions_submitted,
        "every accepted transaction committed: {summary:#?}"
    );
    assert!(summary.delta_height_min >= 5, "{summary:#?}");
    assert!(summary.alpha_height_min >= 1, "{summary:#?}");
    // Epochs of two Alpha blocks: Alpha fixes the next set at each boundary, and the
    // relays carry it to Delta, on every honest validator (the checks compare both
    // chains' epoch chains).
    assert_eq!(summary.epoch_length_alpha_blocks, 2);
    assert!(summary.epochs >= 2, "{summary:#?}");
    // Alpha executes sAX locks (3 a second here) under the same faults.
    assert!(summary.alpha_locks_submitted >= 2 * 30, "{summary:#?}");
    assert_eq!(
        summary.alpha_locks_committed, summary.alpha_locks_submitted,
        "every accepted lock committed: {summary:#?}"
    );
    // The validators relay every lock to Delta, where it becomes stake, on every
    // honest validator (the checks compare each one's locks and stakes); the
    // governance flow adds its three stakers' locks per run.
    assert_eq!(
        summary.alpha_locks_attested,
        summary.alpha_locks_committed + 3 * summary.runs,
        "every lock attested: {summary:#?}"
    );
    // Lock → stake → proposal → votes → passed result attested to Alpha and executed
    // there → unlock after expiry → release attested back, in every run, while the
    // Byzantine validator relays forged attestations that Delta refuses.
    assert_eq!(
        summary.governance_flows_completed, summary.runs,
        "{summary:#?}"
    );
    assert!(summary.forged_attestations > 0, "{summary:#?}");
    assert!(summary.forged_attestations_refused > 0, "{summary:#?}");
    // Clients were told which transactions failed, as the stores hold them.
    assert!(summary.failed_receipts_checked > 0, "{summary:#?}");
    // Offered through an honest validator's API, a forgery never gets in.
    assert!(
        summary.forged_attestations_offered_to_honest > 0,
        "{summary:#?}"
    );
    assert_eq!(
        summary.forged_attestations_admitted_by_honest, 0,
        "{summary:#?}"
    );
    // Transfers that could only fail and pay nothing are refused at admission.
    assert!(summary.unpayable_offered_to_honest > 0, "{summary:#?}");
    assert_eq!(summary.unpayable_admitted_by_honest, 0, "{summary:#?}");
    // Loss, a partition and a crash never get an honest validator scored down.
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
}

#[test]
fn epochs_of_one_alpha_block_switch_at_every_block_and_keep_one_block_per_slot() {
    // Every Alpha block ends an epoch. A switch that made a second block of the last
    // block's slot would end the next epoch at once, and so on, faster than time.
    let mut args = one_byzantine_behaviour(0);
    args.run.byzantine = 0;
    args.run.loss = 0.0;
    args.epoch_length = Some(1);
    // Load across three boundaries (15, 30 and 45 s).
    args.load_secs = Some(60);
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.epoch_length_alpha_blocks, 1);
    let alpha_slots = (summary.virtual_secs_total / 15.0).ceil() as u64;
    assert!(
        summary.alpha_height_min <= alpha_slots,
        "at most one Alpha block per 15 s slot: {summary:#?}"
    );
    assert!(summary.epochs >= 3, "{summary:#?}");
    assert_eq!(
        summary.alpha_locks_committed, summary.alpha_locks_submitted,
        "no lock lost across the switches: {summary:#?}"
    );
    // Without faults no validator's transition is ever late or stuck for good,
    // although Alpha is at a boundary with every block.
    assert_eq!(summary.epoch_transition_stuck_max_s, 0, "{summary:#?}");
    assert_eq!(summary.epoch_transition_deadlocks, 0, "{summary:#?}");
    // The load runs across several boundaries: Delta keeps sealing transactions in
    // every slot of every transition, as in every other slot.
    assert!(summary.delta_slots_in_transitions >= 3, "{summary:#?}");
    assert_eq!(summary.delta_slots_missed_in_transitions, 0, "{summary:#?}");
    assert!(summary.delta_slots_elsewhere >= 3, "{summary:#?}");
    assert_eq!(summary.delta_slots_missed_elsewhere, 0, "{summary:#?}");
}

#[test]
fn validators_leave_under_every_fault_and_the_rest_go_on_without_them() {
    // 7 → 6 → 5 with a Byzantine validator, loss and a crash: each leaver's chains
    // stop at their boundary (checked by the run), everyone else keeps finalizing.
    let mut args = acceptance_args(1);
    args.run.validators = 7;
    args.run.partition_secs = 0.0;
    args.reconfigure = Some(vec![6, 5]);
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.set_changes_applied, 2, "{summary:#?}");
    assert_eq!(summary.validators_final, 5, "{summary:#?}");
    assert!(summary.epochs >= 2, "{summary:#?}");
    assert_eq!(
        summary.transactions_committed, summary.transactions_submitted,
        "{summary:#?}"
    );
    assert_eq!(
        summary.alpha_locks_committed, summary.alpha_locks_submitted,
        "{summary:#?}"
    );
    assert_eq!(summary.governance_flows_completed, 1, "{summary:#?}");
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
    assert_eq!(summary.epoch_transition_deadlocks, 0, "{summary:#?}");
}

#[test]
fn validators_join_then_leave_under_every_fault_and_everyone_agrees() {
    // 4 → 7 → 5 with a Byzantine validator, loss and a crash (the acceptance
    // run, one seed): three joiners follow from the start, join with their sponsors'
    // locks at one boundary, and two validators (one a joiner) leave at a later one.
    let mut args = acceptance_args(1);
    args.run.partition_secs = 0.0;
    args.reconfigure = Some(vec![7, 5]);
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.set_changes_applied, 2, "{summary:#?}");
    assert_eq!(summary.validators_final, 5, "{summary:#?}");
    assert!(summary.epochs >= 3, "{summary:#?}");
    assert_eq!(
        summary.transactions_committed, summary.transactions_submitted,
        "{summary:#?}"
    );
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
    assert_eq!(summary.epoch_transition_deadlocks, 0, "{summary:#?}");
}

#[test]
fn an_equivocation_reaches_every_honest_validator_as_checked_evidence() {
    // Seed 5: the Byzantine validator sends half of its peers a twin of every
    // vertex; no single honest validator need see both twins itself.
    let mut args = one_byzantine_behaviour(5);
    args.load_secs = Some(5);
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    // Each epoch's engine proves the equivocation of that epoch's vertices anew: one
    // proof per epoch at most, at least one on Delta (where the twins are sent).
    let [alpha, delta] = summary.evidence_at_honest_min;
    let engines = summary.epochs + 1;
    assert!(
        (1..=engines).contains(&delta),
        "every honest validator holds the proof, once per epoch: {summary:#?}"
    );
    assert!(
        alpha <= engines,
        "a proof is recorded at most once per epoch: {summary:#?}"
    );
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
}

#[test]
fn invalid_signatures_cost_the_byzantine_validator_score_and_no_honest_one() {
    // Seed 2: the Byzantine validator sends every vertex first with a corrupt
    // signature.
    let mut args = one_byzantine_behaviour(2);
    args.load_secs = Some(5);
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert!(summary.reports_against_byzantine > 0, "{summary:#?}");
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
}

#[test]
fn real_ml_dsa_signatures_run_the_same_protocol() {
    // The default runs use keyed-hash stand-ins; this one signs and verifies every
    // vertex, vote and certificate with ML-DSA-87, as validators do.
    let mut args = acceptance_args(1);
    args.run.no_determinism_check = true;
    args.tps = Some(100);
    args.load_secs = Some(8);
    args.accounts = Some(800);
    args.signatures = Some(Signatures::MlDsa);
    let summary = run_node_sim(&args).unwrap();
    assert_eq!(summary.signatures, Signatures::MlDsa);
    assert!(summary.passed(), "{summary:#?}");
    assert!(summary.transactions_submitted >= 600, "{summary:#?}");
    assert_eq!(
        summary.transactions_committed, summary.transactions_submitted,
        "{summary:#?}"
    );
    assert!(summary.delta_height_min >= 3, "{summary:#?}");
}

fn journal_run(bug: Option<StoreBug>, seed: u64) -> dualchain_sim::RunResult {
    let mut cfg = NodeSimConfig::new(4, seed);
    cfg.crash_nodes = Some(vec![1]);
    cfg.bug = bug.map(|b| (1, b));
    cfg.tps = 200;
    cfg.load_ms = 12_000;
    cfg.accounts = 2_000;
    run(&cfg).unwrap()
}

#[test]
fn a_validator_that_drops_its_commit_journal_is_caught() {
    // Control: the same crash without the bug passes every check.
    let control = journal_run(None, 11);
    assert!(control.safety_violations.is_empty(), "{control:#?}");
    assert!(control.liveness_failures.is_empty(), "{control:#?}");
    assert!(control.exactly_once_violations.is_empty(), "{control:#?}");
    assert!(control.certificate_failures.is_empty(), "{control:#?}");

    // Validator 1 silently loses the consensus commit records (the journal that makes
    // a crash between "decided" and "block written" harmless), then crashes.
    let buggy = journal_run(Some(StoreBug::DropCommitRecords), 11);
    let failures: Vec<&String> = buggy
        .liveness_failures
        .iter()
        .chain(&buggy.safety_violations)
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("validator 1") && f.contains("neither executed nor kept")),
        "the lost commits must be found: {buggy:#?}"
    );
}

#[test]
fn a_panicking_chain_restarts_alone_and_the_network_goes_on() {
    // Validator 1's Delta consensus driver panics mid-run (a planted store bug); its
    // supervisor must restart that chain from its store while its Alpha goes on.
    let mut cfg = NodeSimConfig::new(4, 12);
    cfg.bug = Some((
        1,
        StoreBug::PanicOnCommitRecord {
            chain: ChainId::Delta,
            nth: 20,
        },
    ));
    cfg.tps = 200;
    cfg.load_ms = 12_000;
    cfg.accounts = 2_000;
    let result = run(&cfg).unwrap();
    assert!(result.safety_violations.is_empty(), "{result:#?}");
    assert!(result.exactly_once_violations.is_empty(), "{result:#?}");
    assert!(result.certificate_failures.is_empty(), "{result:#?}");
    // The restart itself is the one runtime failure the run reports.
    assert_eq!(result.liveness_failures.len(), 1, "{result:#?}");
    let failure = &result.liveness_failures[0];
    assert!(
        failure.contains("validator 1 delta: its task group failed 1 times")
            && failure.contains("consensus driver panicked: planted bug"),
        "{failure}"
    );
}

#[test]
fn an_orphan_flooding_validator_costs_the_honest_ones_nothing() {
    // Seed 4 gives the Byzantine validator the orphan flood: 24 signed vertices per
    // peer per round whose parents do not exist. Measured against the same seed with
    // every validator honest.
    let mut args = one_byzantine_behaviour(4);
    let attacked = run_node_sim(&args).unwrap();
    args.run.byzantine = 0;
    let clean = run_node_sim(&args).unwrap();
    assert!(attacked.passed(), "{attacked:#?}");
    assert!(clean.passed(), "{clean:#?}");
    assert_eq!(attacked.reports_against_honest, 0, "{attacked:#?}");
    assert_eq!(
        attacked.transactions_committed, attacked.transactions_submitted,
        "{attacked:#?}"
    );
    // While evicted orphans' made-up parents stayed being fetched, they were asked
    // of every peer until the peers' sync limits refused honest requests too: this
    // run stalled Delta at height 1 with 8,000 transactions uncommitted.
    // Once proven an equivocator (below), the flooder's own vertices are taken only
    // as needed parents, so the three honest validators carry every round alone:
    // the median pays that (2,640 ms against 2,040 ms in this run), not the flood.
    let p50 = |s: &dualchain_sim::cli::NodeSimSummary| s.commit_latency_ms_p50.expect("commits");
    assert!(
        p50(&attacked) * 2 <= p50(&clean) * 3,
        "p50 {} ms under the flood, {} ms without",
        p50(&attacked),
        p50(&clean)
    );
    // Orphans in one round are equivocations: every honest validator holds the
    // proof on both chains. (From then on the flooder's vertices are taken only as
    // needed parents, so the transactions it took in wait for their clients to
    // resubmit elsewhere: the tail, not the median, pays for that.)
    // One proof per epoch at most: each epoch's engine proves it of its own vertices.
    let engines = attacked.epochs + 1;
    assert!(
        attacked
            .evidence_at_honest_min
            .iter()
            .all(|n| (1..=engines).contains(n)),
        "{attacked:#?}"
    );
}

#[test]
fn a_network_started_after_alphas_reach_starts_at_once_instead_of_waiting_out_its_probe() {
    // Pods that came up slowly: the genesis is older than Alpha's reach (five 3 s
    // blocks), so every validator probes its peers' heads before opening its engine,
    // all at once. Each must answer the others while it probes (all at genesis, so
    // nobody catches up); a validator that reads no request waits out the whole
    // 30 s probe, and its silence costs the prober's score of it.
    let mut cfg = NodeSimConfig::new(4, 21);
    cfg.alpha_block_ms = 3_000;
    cfg.delta_block_ms = 1_000;
    cfg.epoch_length_alpha_blocks = 5;
    cfg.genesis_age_ms = 20_000;
    cfg.tps = 100;
    cfg.load_ms = 10_000;
    cfg.accounts = 1_000;
    let result = run(&cfg).unwrap();
    assert!(result.safety_violations.is_empty(), "{result:#?}");
    assert!(result.liveness_failures.is_empty(), "{result:#?}");
    assert!(result.exactly_once_violations.is_empty(), "{result:#?}");
    let [alpha, delta] = result.first_block_ms;
    // Delta's reach is the ten-minute window: it never probed, and is the baseline.
    let delta = delta.expect("Delta sealed a block");
    let alpha = alpha.expect("Alpha sealed a block");
    assert!(
        alpha <= delta + 2 * cfg.alpha_block_ms,
        "Alpha's first block came at {alpha} ms, Delta's at {delta} ms: {result:#?}"
    );
}

/// Safety, liveness and exactly-once held in `result`, and every submitted
/// transaction committed; `what` names the run in a failure.
fn assert_clean_run(result: &dualchain_sim::RunResult, what: &str) {
    assert!(result.safety_violations.is_empty(), "{what}: {result:#?}");
    assert!(result.liveness_failures.is_empty(), "{what}: {result:#?}");
    assert!(
        result.exactly_once_violations.is_empty(),
        "{what}: {result:#?}"
    );
    assert_eq!(
        result.clients.committed, result.clients.submitted,
        "{what}: {result:#?}"
    );
}

#[test]
fn a_validator_whose_clock_is_off_by_a_minute_either_way_harms_neither_safety_nor_time() {
    for skew_ms in [60_000, -60_000] {
        // Validator 1's clock a minute ahead, then behind: its vertices carry that
        // time. Commit times are medians of several validators' stamps, so one wrong
        // clock moves neither the blocks' times nor the slots.
        let mut cfg = NodeSimConfig::new(4, 31);
        cfg.clock_skew = Some((1, skew_ms));
        cfg.tps = 100;
        cfg.load_ms = 10_000;
        cfg.accounts = 1_000;
        let result = run(&cfg).unwrap();
        assert_clean_run(&result, &format!("{skew_ms}"));
        // Heights follow the honest time: no more Delta blocks than slots elapsed.
        let slots = result.virtual_ms / cfg.delta_block_ms + 1;
        assert!(
            result.min_heights[1] <= slots,
            "{skew_ms}: Delta at {} after {slots} slots: {result:#?}",
            result.min_heights[1]
        );
        assert_eq!(result.reports_against_honest, 0, "{skew_ms}: {result:#?}");
    }
}

#[test]
fn avalanche_on_either_chain_or_both_keeps_safety_liveness_and_exactly_once() {
    use ConsensusEngine::{Avalanche, DagBft};
    for (seed, engines) in [
        (41, (Avalanche, Avalanche)),
        (42, (DagBft, Avalanche)),
        (43, (Avalanche, DagBft)),
    ] {
        // Loss and a Byzantine validator (seed 41 % 5: it withholds; 42: it signs
        // invalid vertices and responses; 43: garbage): each chain's Snowball polls
        // must still decide every slot, and both chains must agree on the relays.
        let mut cfg = NodeSimConfig::new(4, seed);
        cfg.engines = engines;
        cfg.byzantine = 1;
        cfg.loss = 0.05;
        cfg.tps = 200;
        cfg.load_ms = 12_000;
        cfg.accounts = 2_000;
        let result = run(&cfg).unwrap();
        assert_clean_run(&result, &format!("{engines:?}"));
        assert!(
            result.min_heights[0] >= 1 && result.min_heights[1] >= 5,
            "{engines:?}: {result:#?}"
        );
        assert_eq!(result.reports_against_honest, 0, "{engines:?}: {result:#?}");
    }
}

#[test]
fn avalanche_with_a_byzantine_validator_and_a_crash_keeps_safety_liveness_and_exactly_once() {
    // Seed 0: the Byzantine validator equivocates (it is excluded from every sample,
    // and its leader slots are decided without it), and an honest one crashes: with
    // one of four excluded and one down, each poll needs every other node's answer,
    // so the restarted node must still answer for the slots it decided before its
    // crash (they are persisted) or a lagging peer never reaches alpha.
    let mut args = acceptance_args(1);
    args.engine = Some(dualchain_consensus::cli::EngineArg::Avalanche);
    args.run.loss = 0.0;
    args.run.partition_secs = 0.0;
    args.run.no_determinism_check = true;
    let summary = run_node_sim(&args).unwrap();
    assert!(summary.passed(), "{summary:#?}");
    assert_eq!(summary.crashes, 1, "{summary:#?}");
    assert_eq!(
        summary.transactions_committed, summary.transactions_submitted,
        "{summary:#?}"
    );
    assert!(summary.alpha_height_min >= 2, "{summary:#?}");
    assert_eq!(summary.reports_against_honest, 0, "{summary:#?}");
}
