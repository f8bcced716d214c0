//! The poller on its own: queries, answers, polls and the peers' standing, driven by
//! hand (the simulator runs it inside whole engines).

use super::*;
use crate::testing::DagBuilder;

const D: Digest = Digest([7; 32]);

/// Four pollers of one committee (k = 3, α = 2), with slot 5 open on each.
fn pollers(b: &DagBuilder, cfg: AvalancheConfig) -> Vec<Poller> {
    (0..4u16)
        .map(|i| {
            let key = b.key_arc(i);
            let mut p = Poller::new(
                cfg.clone(),
                i,
                0,
                Digest([1; 32]),
                b.network(),
                key,
                b.validators_arc(),
            );
            p.open(5, Preference::Commit(D));
            p
        })
        .collect()
}

fn queries(out: &[Output<AvalancheMessage>]) -> Vec<(ValidatorIndex, Query)> {
    out.iter()
        .filter_map(|o| match o {
            Output::SendEngine {
                to: Some(to),
                message: AvalancheMessage::Query(q),
            } => Some((*to, *q)),
            _ => None,
        })
        .collect()
}

fn valid(_: Round, _: &Digest) -> VoteCheck {
    VoteCheck::Valid
}

#[test]
fn a_poll_of_agreeing_peers_decides_after_beta_polls() {
    let b = DagBuilder::new(4);
    let cfg = AvalancheConfig::with_security(Security::Quick);
    let mut ps = pollers(&b, cfg.clone());
    let mut now = 0;
    for poll in 0..cfg.beta {
        let mut out = Vec::new();
        ps[0].tick(now, 5, &mut out);
        let asked = queries(&out);
        assert_eq!(asked.len(), 3, "k = n - 1 on a small committee");
        for (to, q) in asked {
            let r = ps[usize::from(to)]
                .answer(now, 0, &q, valid)
                .expect("answered");
            ps[0].on_response(now, to, r, valid).unwrap();
        }
        let mut out = Vec::new();
        ps[0].tick(now, 5, &mut out);
        let expected = (poll + 1 == cfg.beta).then_some(Preference::Commit(D));
        assert_eq!(ps[0].decision(5), expected, "after poll {poll}");
        now += cfg.min_poll_interval_ms;
    }
    assert_eq!(ps[0].stats().slots_decided, 1);
}

#[test]
fn forged_misaddressed_and_repeated_responses_are_not_counted() {
    let b = DagBuilder::new(4);
    let mut ps = pollers(&b, AvalancheConfig::default());
    let mut out = Vec::new();
    ps[0].tick(0, 5, &mut out);
    let (_, q) = queries(&out)[0];
    let r1 = ps[1].answer(0, 0, &q, valid).unwrap();
    // Sent by peer 2 but signed by peer 1: a sampling-bias attempt.
    assert_eq!(
        ps[0].on_response(0, 2, r1.clone(), valid),
        Err(ResponseRefused::Misbehaviour(Offence::BadSignature))
    );
    assert_eq!(ps[0].byzantine(), vec![2]);
    ps[0].on_response(0, 1, r1.clone(), valid).unwrap();
    assert_eq!(
        ps[0].on_response(0, 1, r1, valid),
        Err(ResponseRefused::Unexpected),
        "one answer per peer and poll"
    );
    // A vote for a vertex of another slot is signed proof of a wrong vote: the
    // refusal hands the response back, to become evidence.
    let r3 = ps[3].answer(0, 0, &q, valid).unwrap();
    assert_eq!(
        ps[0].on_response(0, 3, r3.clone(), |_, _| VoteCheck::Invalid),
        Err(ResponseRefused::WrongVote {
            response: Box::new(r3),
            digest: D
        })
    );
    assert_eq!(ps[0].byzantine(), vec![2, 3]);
    // Later samples leave both out.
    let mut out = Vec::new();
    ps[0].tick(2_000, 5, &mut out);
    assert_eq!(
        queries(&out).iter().map(|(to, _)| *to).collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn a_repeated_query_gets_the_same_signed_answer_and_a_flood_only_its_burst() {
    let b = DagBuilder::new(4);
    let mut ps = pollers(&b, AvalancheConfig::default());
    let q = Query {
        epoch: 0,
        id: 3,
        first_slot: 5,
        count: 2,
    };
    let first = ps[1].answer(0, 0, &q, valid).unwrap();
    assert_eq!(
        first.votes.preferences,
        vec![Preference::Commit(D), Preference::Unknown]
    );
    let again = ps[1].answer(1, 0, &q, valid).unwrap();
    assert_eq!(again, first, "the retry gets the cached response");
    assert_eq!(ps[1].stats().queries_answered, 1, "signed once");
    // New queries: a burst of four is answered (a poll that ended late is followed at
    // once by the next), then one per half poll interval; faster ones are dropped.
    let spacing = AvalancheConfig::default().min_poll_interval_ms / 2;
    let new_query = |id| Query { id, ..q };
    for id in 4..7 {
        assert!(
            ps[1].answer(2, 0, &new_query(id), valid).is_some(),
            "query {id}"
        );
    }
    assert!(
        ps[1].answer(2, 0, &new_query(7), valid).is_none(),
        "past the burst"
    );
    // Four answered by t = 2 (the first at 0): the next fits at 4 × spacing − 3 × spacing.
    assert!(ps[1].answer(spacing - 1, 0, &new_query(7), valid).is_none());
    assert!(ps[1].answer(spacing, 0, &new_query(7), valid).is_some());
    assert!(ps[1].answer(spacing, 0, &new_query(8), valid).is_none());
    assert_eq!(ps[1].stats().queries_answered, 5);
    assert_eq!(ps[1].stats().queries_dropped, 3);
    // Another peer has its own allowance.
    assert!(ps[1].answer(spacing, 2, &new_query(8), valid).is_some());
    assert!(
        ps[1]
            .answer(500, 0, &Query { epoch: 1, ..q }, valid)
            .is_none()
    );
    assert!(
        ps[1].answer(500, 1, &q, valid).is_none(),
        "its own queries are not answered"
    );
}

#[test]
fn silent_peers_are_asked_again_then_charged_and_a_cut_off_node_sees_a_partition() {
    let b = DagBuilder::new(4);
    let cfg = AvalancheConfig::default();
    let mut ps = pollers(&b, cfg.clone());
    let mut now = 0;
    for _ in 0..4 {
        let mut out = Vec::new();
        ps[0].tick(now, 5, &mut out);
        assert_eq!(queries(&out).len(), 3);
        let mut out = Vec::new();
        ps[0].tick(now + cfg.query_timeout_ms / 4, 5, &mut out);
        assert_eq!(
            queries(&out).len(),
            3,
            "the silent peers are asked once more"
        );
        now += cfg.query_timeout_ms;
    }
    let mut out = Vec::new();
    ps[0].tick(now, 5, &mut out);
    let s = ps[0].stats();
    assert_eq!(s.peers.timeouts, 12);
    assert_eq!(s.queries_retried, 12);
    assert!(ps[0].is_partitioned());
    assert_eq!(s.peers.partitions_detected, 1);
    assert_eq!(ps[0].decision(5), None);
}

#[test]
fn an_idle_node_still_polls_once_per_timeout() {
    let b = DagBuilder::new(4);
    let cfg = AvalancheConfig::default();
    let mut p = pollers(&b, cfg.clone()).remove(0);
    let mut out = Vec::new();
    // Slot 5 is open: first undecided 6 has nothing open, so the poll is a heartbeat.
    let wake = p.tick(0, 6, &mut out);
    assert_eq!(queries(&out).len(), 3);
    assert_eq!(queries(&out)[0].1.first_slot, 6);
    assert_eq!(p.stats().idle_polls, 1);
    assert_eq!(wake, Some(cfg.query_timeout_ms / 4));
}

#[test]
fn an_undecided_preference_for_a_vertex_not_held_or_not_of_the_slot_is_answered_unknown() {
    let b = DagBuilder::new(4);
    let mut ps = pollers(&b, AvalancheConfig::default());
    let q = Query {
        epoch: 0,
        id: 3,
        first_slot: 5,
        count: 1,
    };
    let vote = |check: fn(Round, &Digest) -> VoteCheck, p: &mut Poller, id| {
        p.answer(0, 0, &Query { id, ..q }, check)
            .unwrap()
            .votes
            .preferences[0]
    };
    let unknown = |_: Round, _: &Digest| VoteCheck::Unknown;
    let invalid = |_: Round, _: &Digest| VoteCheck::Invalid;
    // Slot 5 prefers Commit(D): held and of the slot, it is voted for; otherwise the
    // vote would be a claim the voter cannot back (or signed evidence against it).
    assert_eq!(vote(valid, &mut ps[1], 1), Preference::Commit(D));
    assert_eq!(vote(unknown, &mut ps[1], 2), Preference::Unknown);
    assert_eq!(vote(invalid, &mut ps[1], 3), Preference::Unknown);
    // A decided slot is answered with its decision whatever the DAG holds now.
    ps[2].restore(&[(5, Preference::Commit(D))]);
    assert_eq!(vote(unknown, &mut ps[2], 1), Preference::Commit(D));
    // A skip names no vertex.
    ps[3].restore(&[(5, Preference::Skip)]);
    assert_eq!(vote(invalid, &mut ps[3], 1), Preference::Skip);
}
