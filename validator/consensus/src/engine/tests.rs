//! Engine unit tests: intake, sync, equivocation, persistence and restart.

use super::*;
use crate::store::KvConsensusStore;
use crate::testing::DagBuilder;
use crate::verify::DirectVerifier;
use dualchain_storage::MemoryEngine;
use std::collections::HashSet;

type TestEngine = DagBft<KvConsensusStore<Arc<MemoryEngine>>, DirectVerifier>;

fn open(b: &DagBuilder, db: &Arc<MemoryEngine>) -> TestEngine {
    open_with(b, db, DagBftConfig::for_chain(ChainId::Delta))
}

fn open_with(b: &DagBuilder, db: &Arc<MemoryEngine>, config: DagBftConfig) -> TestEngine {
    DagBft::open(
        config,
        0,
        crate::keys::sim_validator_key(0),
        b.validators_arc(),
        KvConsensusStore::new(db.clone(), 0),
        DirectVerifier,
    )
    .unwrap()
}

fn receive(
    e: &mut TestEngine,
    now: TimeMs,
    from: ValidatorIndex,
    v: &Arc<Vertex>,
) -> Vec<Output<AvalancheMessage>> {
    e.handle(
        now,
        Input::VertexReceived {
            from,
            vertex: v.clone(),
        },
    )
}

fn broadcasts(out: &[Output<AvalancheMessage>]) -> Vec<Arc<Vertex>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Broadcast(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn what_we_sign_is_synced_whatever_the_policy_and_what_peers_sent_is_not() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    let out = e.handle(0, Input::Start);
    assert_eq!(broadcasts(&out).len(), 1, "our round-0 vertex");
    assert_eq!(db.required_syncs(), 1, "the step that signed it was synced");

    // Peers' vertices (no proposal of ours yet: the round delay has not passed).
    for author in 1..4 {
        let out = receive(&mut e, 1, author, b.vertex(0, author));
        assert!(broadcasts(&out).is_empty());
    }
    assert_eq!(
        db.required_syncs(),
        1,
        "accepting others' vertices is not synced"
    );
}

#[test]
fn open_refuses_a_foreign_key_or_index() {
    let b = DagBuilder::new(4);
    let db = Arc::new(MemoryEngine::new());
    let wrong_key = DagBft::open(
        DagBftConfig::for_chain(ChainId::Delta),
        1,
        crate::keys::sim_validator_key(0),
        b.validators_arc(),
        KvConsensusStore::new(db.clone(), 0),
        DirectVerifier,
    );
    assert!(matches!(wrong_key, Err(EngineError::KeyMismatch(1))));
    let not_member = DagBft::open(
        DagBftConfig::for_chain(ChainId::Delta),
        9,
        crate::keys::sim_validator_key(0),
        b.validators_arc(),
        KvConsensusStore::new(db, 0),
        DirectVerifier,
    );
    assert!(matches!(not_member, Err(EngineError::NotAValidator(9))));
}

#[test]
fn proposes_round_zero_then_advances_on_quorum_after_the_round_delay() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    let out = e.handle(0, Input::Start);
    let mine = broadcasts(&out);
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].content().round, 0);
    // Two more round-0 vertices make a quorum (3 of 4), but the round delay holds us.
    receive(&mut e, 10, 1, b.vertex(0, 1));
    let out = receive(&mut e, 20, 2, b.vertex(0, 2));
    assert!(broadcasts(&out).is_empty());
    assert!(out.iter().any(|o| matches!(o, Output::SetTimer { .. })));
    // By 1 s both the round delay and any leader timeout have passed.
    let out = e.handle(1_000, Input::TimeoutFired);
    let v1 = broadcasts(&out);
    assert_eq!(v1.len(), 1, "{out:?}");
    assert_eq!(v1[0].content().round, 1);
    assert!(v1[0].content().parents.len() >= 3);
    assert!(v1[0].verify(b.validators(), b.network()).is_ok());
}

#[test]
fn refuses_bad_vertices_with_reasons() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..2);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    // Wrong chain.
    let mut alpha = b.vertex(0, 1).content().clone();
    alpha.chain = ChainId::Alpha;
    let alpha = Arc::new(alpha.sign(b.key(1), b.network()));
    let out = receive(&mut e, 0, 1, &alpha);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::WrongChain(_),
            ..
        }
    )));
    // A vertex claiming author 2, signed by author 1.
    let forged = Arc::new(b.vertex(0, 2).content().clone().sign(b.key(1), b.network()));
    let out = receive(&mut e, 0, 1, &forged);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::Invalid(VertexError::Signature(_)),
            ..
        }
    )));
    assert_eq!(e.stats().rejected_signatures, 1);
    // Far in the future.
    let mut far = b.vertex(1, 1).content().clone();
    far.round = 5_000;
    let far = Arc::new(far.sign(b.key(1), b.network()));
    let out = receive(&mut e, 0, 1, &far);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::TooFarAhead { .. },
            ..
        }
    )));
    assert!(e.dag().is_empty());
}

#[test]
fn missing_parents_are_fetched_then_the_child_is_inserted() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..2);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    let out = receive(&mut e, 0, 2, b.vertex(1, 2));
    let request = out
        .iter()
        .find_map(|o| match o {
            Output::RequestVertices { to, request } => Some((*to, request.clone())),
            _ => None,
        })
        .expect("a sync request");
    assert_eq!(request.0, 2, "the sender is asked first");
    assert_eq!(request.1.wanted.len(), 4);
    assert!(request.1.wanted.iter().all(|(r, _)| *r == 0));
    assert_eq!(e.pending_len(), 1);
    // A peer holding the DAG answers (exercise `serve` on a second engine).
    let db2 = Arc::new(MemoryEngine::new());
    let mut peer = open(&b, &db2);
    for a in 0..4 {
        receive(&mut peer, 0, a, b.vertex(0, a));
    }
    let served = peer.handle(
        0,
        Input::SyncRequest {
            from: 1,
            request: request.1,
        },
    );
    let vertices = served
        .iter()
        .find_map(|o| match o {
            Output::SendVertices { vertices, .. } => Some(vertices.clone()),
            _ => None,
        })
        .expect("an answer");
    assert_eq!(vertices.len(), 4);
    e.handle(1, Input::SyncResponse { from: 2, vertices });
    assert_eq!(e.pending_len(), 0);
    assert!(e.dag().contains(&b.vertex(1, 2).digest()));
}

fn evidence_in(out: &[Output<AvalancheMessage>]) -> Vec<Evidence> {
    out.iter()
        .filter_map(|o| match o {
            Output::Misbehaviour(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn two_vertices_for_one_slot_are_evidence_even_while_both_wait_for_parents() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..3);
    let twin = b.equivocate(2, 1, 7);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    e.handle(0, Input::Start);
    // Validator 1's round-2 vertex before its round-1 parents: it waits.
    let out = receive(&mut e, 1, 1, b.vertex(2, 1));
    assert!(evidence_in(&out).is_empty());
    assert_eq!(e.pending_len(), 1);
    // Its twin for the same slot, also waiting-worthy: evidence, not a second entry.
    let out = receive(&mut e, 2, 1, &twin);
    let evidence = evidence_in(&out);
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].offender(), 1);
    evidence[0]
        .verify(b.validators(), b.network(), &b.leaders())
        .unwrap();
    assert_eq!(e.stats().equivocations, 1);
    assert!(e.equivocators().contains(&1));
    assert_eq!(
        e.pending_len(),
        1,
        "the first keeps waiting, the twin is refused"
    );
    // The same vertex again is a duplicate, not evidence.
    let out = receive(&mut e, 3, 1, b.vertex(2, 1));
    assert!(evidence_in(&out).is_empty());
    assert_eq!(e.stats().equivocations, 1);
}

#[test]
fn evidence_from_a_peer_is_checked_kept_across_a_restart_and_passed_on_once() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let evidence = Evidence::Equivocation {
        first: b.vertex(0, 2).clone(),
        second: b.equivocate(0, 2, 11),
    };
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    e.handle(0, Input::Start);

    // A forgery (two different slots) is refused as invalid content.
    let forged = Evidence::Equivocation {
        first: b.vertex(0, 2).clone(),
        second: b.vertex(0, 3).clone(),
    };
    let out = e.handle(
        1,
        Input::EvidenceReceived {
            from: 1,
            evidence: forged,
        },
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            from: 1,
            reason: RejectReason::BadEvidence(_)
        }
    )));
    assert!(e.equivocators().is_empty());

    // Real evidence: recorded and handed out once for the runtime to pass on.
    let received = Input::EvidenceReceived {
        from: 1,
        evidence: evidence.clone(),
    };
    let out = e.handle(2, received.clone());
    assert_eq!(evidence_in(&out), vec![evidence.clone()]);
    assert!(e.equivocators().contains(&2));
    let again = e.handle(3, received);
    assert!(
        evidence_in(&again).is_empty(),
        "known evidence is not passed on again"
    );

    // The proof outlives the process (and the DAG's garbage collection).
    drop(e);
    let reopened = open(&b, &db);
    assert!(reopened.equivocators().contains(&2));
}

#[test]
fn equivocation_yields_verifiable_evidence_and_later_vertices_are_ignored() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let twin = b.equivocate(0, 3, 5);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    e.handle(0, Input::Start);
    for a in 1..4 {
        receive(&mut e, 1, a, b.vertex(0, a));
    }
    let out = receive(&mut e, 2, 3, &twin);
    let evidence = out
        .iter()
        .find_map(|o| match o {
            Output::Misbehaviour(ev) => Some(ev.clone()),
            _ => None,
        })
        .expect("evidence");
    assert_eq!(evidence.offender(), 3);
    assert!(
        evidence
            .verify(b.validators(), b.network(), &b.leaders())
            .is_ok()
    );
    assert!(e.equivocators().contains(&3));
    let out = e.handle(5_000, Input::TimeoutFired);
    let v = broadcasts(&out);
    assert_eq!(v[0].content().round, 1);
    // Its first vertex stays a parent; one arbitrary twin per slot, never both.
    assert_eq!(v[0].content().parents.len(), 4);
    // An unsolicited later vertex of the equivocator is ignored.
    let later = b.custom_vertex(1, 3, &[(0, 0), (0, 1), (0, 2)], 0);
    let out = receive(&mut e, 5_001, 3, &later);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::Equivocator(3),
            ..
        }
    )));
    assert!(!e.dag().contains(&later.digest()));
}

#[test]
fn restart_resumes_from_the_store_without_equivocating() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    let first = broadcasts(&e.handle(0, Input::Start))[0].clone();
    for a in 1..4 {
        receive(&mut e, 1, a, b.vertex(0, a));
    }
    let second = broadcasts(&e.handle(5_000, Input::TimeoutFired))[0].clone();
    assert_eq!(second.content().round, 1);
    drop(e);
    let mut again = open(&b, &db);
    assert_eq!(again.last_proposed_round(), Some(1));
    assert_eq!(again.dag().len(), 5);
    let out = again.handle(6_000, Input::Start);
    // It re-announces its round-1 vertex, identical, and proposes nothing new.
    assert_eq!(broadcasts(&out), vec![second]);
    assert!(again.dag().contains(&first.digest()));
}

#[test]
fn a_failed_store_write_halts_before_anything_leaves() {
    let b = DagBuilder::new(4);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    db.set_fail_writes(true);
    let out = e.handle(0, Input::Start);
    assert!(matches!(out.as_slice(), [Output::Halted { .. }]), "{out:?}");
    assert!(e.is_halted());
    assert!(e.handle(1, Input::TimeoutFired).is_empty());
}

/// A vertex of `author` in `round` whose parents are made up (`salt` keeps them apart).
fn orphan(b: &DagBuilder, round: Round, author: ValidatorIndex, salt: u32) -> Arc<Vertex> {
    let refs = (0..3u16)
        .map(|a| {
            let mut d = [a as u8; 32];
            d[..4].copy_from_slice(&salt.to_le_bytes());
            VertexRef {
                author: a,
                digest: Digest(d),
            }
        })
        .collect();
    b.custom_vertex_refs(round, author, refs)
}

fn rejections(out: &[Output<AvalancheMessage>]) -> Vec<RejectReason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Rejected { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

fn requests(out: &[Output<AvalancheMessage>]) -> Vec<(ValidatorIndex, SyncRequest)> {
    out.iter()
        .filter_map(|o| match o {
            Output::RequestVertices { to, request } => Some((*to, request.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_orphan_flood_fills_only_its_authors_share_and_honest_vertices_still_wait() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..4);
    let db = Arc::new(MemoryEngine::new());
    // An allowance below the rounds a vertex may wait in, so one author can reach
    // it with one vertex per round (two in a round are evidence, not a flood).
    let mut config = DagBftConfig::for_chain(ChainId::Delta);
    config.max_pending_per_author = 6;
    let mut e = open_with(&b, &db, config);
    for a in 0..4 {
        for r in 0..2 {
            receive(&mut e, 0, a, b.vertex(r, a));
        }
    }
    let budget = e.pending_budget();
    assert_eq!(budget.vertices, 6);
    assert!(2 * budget.vertices as Round <= e.config().max_pending_rounds_ahead);
    // Validator 3 sends twice its allowance of vertices whose parents do not exist,
    // one per round within the rounds a vertex may wait in: the newer displace the
    // older.
    let mut refused = 0;
    for k in 0..2 * budget.vertices as u32 {
        let round = 2 + Round::from(k);
        let out = receive(&mut e, 1, 3, &orphan(&b, round, 3, k));
        refused += rejections(&out)
            .iter()
            .filter(|r| matches!(r, RejectReason::OverBudget(o) if o.author == 3))
            .count();
    }
    assert_eq!(e.pending_len(), budget.vertices);
    assert_eq!(refused, 0);
    assert_eq!(e.stats().evicted_pending, budget.vertices as u64);
    assert!(e.pending_bytes() <= budget.bytes);
    // An honest vertex whose parents are late still waits, and attaches when they come.
    let honest = b.vertex(3, 1).clone();
    receive(&mut e, 2, 1, &honest);
    assert!(e.pending.contains(&honest.digest()));
    for a in 0..4 {
        receive(&mut e, 3, a, b.vertex(2, a));
    }
    assert!(e.dag().contains(&honest.digest()));
}

#[test]
fn vertices_far_above_the_quorum_round_are_chased_not_buffered() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..40);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    for a in 0..4 {
        receive(&mut e, 0, a, b.vertex(0, a));
    }
    // A peer 39 rounds ahead: its vertex is not held, it is fetched with its ancestors.
    let ahead = b.vertex(39, 2).clone();
    let out = receive(&mut e, 1, 2, &ahead);
    assert_eq!(e.pending_len(), 0);
    assert_eq!(e.stats().deferred_ahead, 1);
    let asked = requests(&out);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].0, 2);
    assert_eq!(asked[0].1.wanted, vec![(39, ahead.digest())]);
    // A second one of the same author does not start a second chase.
    let out = receive(&mut e, 2, 2, b.vertex(38, 2));
    assert!(requests(&out).is_empty());

    // A peer holding the whole DAG answers each request; we catch up.
    let db2 = Arc::new(MemoryEngine::new());
    let mut peer = open(&b, &db2);
    let mut all = b.all().to_vec();
    all.sort_by_key(|v| v.content().round);
    for v in &all {
        receive(&mut peer, 0, v.content().author, v);
    }
    let mut now = 10;
    let mut pending_requests = asked;
    for _ in 0..20 {
        for (_, request) in std::mem::take(&mut pending_requests) {
            let served = peer.handle(now, Input::SyncRequest { from: 1, request });
            for o in served {
                if let Output::SendVertices { vertices, .. } = o {
                    let out = e.handle(now, Input::SyncResponse { from: 2, vertices });
                    pending_requests.extend(requests(&out));
                }
            }
        }
        now += e.config().sync_retry_ms;
        pending_requests.extend(requests(&e.handle(now, Input::TimeoutFired)));
        if e.dag().contains(&ahead.digest()) {
            break;
        }
    }
    assert!(e.dag().contains(&ahead.digest()), "caught up to round 39");
    assert!(e.stats().max_pending <= 4 * e.config().max_pending_rounds_ahead as usize);
}

#[test]
fn parents_that_never_come_cost_the_author_strikes_and_halve_its_allowance() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..2);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    for a in 0..4 {
        receive(&mut e, 0, a, b.vertex(0, a));
    }
    let fake = orphan(&b, 1, 3, 7);
    receive(&mut e, 1, 3, &fake);
    assert_eq!(e.pending_len(), 1);
    // Every fetch attempt of the made-up parents goes unanswered.
    let mut now = 1;
    let mut never = Vec::new();
    for _ in 0..=e.config().max_fetch_attempts {
        now += e.config().sync_retry_ms;
        never.extend(rejections(&e.handle(now, Input::TimeoutFired)));
    }
    assert_eq!(
        never,
        vec![RejectReason::ParentsNeverArrived { round: 1 }],
        "one drop, blamed on the author"
    );
    assert_eq!(e.pending_len(), 0);
    assert_eq!(e.stats().abandoned, 1);
    assert_eq!(e.pending.strikes(3), 1);
    let budget = e.pending_budget();
    let halved = e.pending.make_room(3, usize::MAX / 2, budget).unwrap_err();
    assert_eq!(
        halved.allowed_vertices,
        e.config().max_pending_per_author / 2
    );
    // Its next vertex that attaches forgives the strike.
    receive(&mut e, now, 3, b.vertex(1, 3));
    assert_eq!(e.pending.strikes(3), 0);
}

#[test]
fn a_vertex_of_a_later_epoch_asks_its_sender_for_the_tips_of_ours() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let db = Arc::new(MemoryEngine::new());
    let mut e = open(&b, &db);
    e.handle(0, Input::Start);
    let later = Arc::new(
        UnsignedVertex {
            chain: ChainId::Delta,
            epoch: 1,
            round: 0,
            author: 2,
            parents: vec![],
            transactions: vec![],
            timestamp_ms: 5_000,
        }
        .sign(b.key(2), b.network()),
    );
    let tips_asked = |out: &[Output<AvalancheMessage>]| -> Vec<(ValidatorIndex, u64)> {
        out.iter()
            .filter_map(|o| match o {
                Output::RequestVertices { to, request } if request.wanted.is_empty() => {
                    Some((*to, request.epoch))
                }
                _ => None,
            })
            .collect()
    };
    let out = receive(&mut e, 10, 2, &later);
    assert_eq!(tips_asked(&out), vec![(2, 0)]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Rejected {
            reason: RejectReason::Invalid(VertexError::WrongEpoch { vertex: 1, set: 0 }),
            ..
        }
    )));
    // At most once per retry interval.
    let retry = DagBftConfig::for_chain(ChainId::Delta).sync_retry_ms;
    assert!(tips_asked(&receive(&mut e, 11, 3, &later)).is_empty());
    assert_eq!(
        tips_asked(&receive(&mut e, 10 + retry, 3, &later)),
        vec![(3, 0)]
    );

    // Our DAG answers sync requests of our epoch only, and never a tips request.
    for author in 1..4 {
        receive(&mut e, 20 + retry, author, b.vertex(0, author));
    }
    let request = |epoch, wanted| SyncRequest {
        epoch,
        wanted,
        have_through_round: 0,
    };
    let serves = |e: &mut TestEngine, now, request| {
        e.handle(now, Input::SyncRequest { from: 1, request })
            .iter()
            .any(|o| matches!(o, Output::SendVertices { .. }))
    };
    let wanted = vec![(0, b.vertex(0, 1).digest())];
    assert!(!serves(&mut e, 30 + retry, request(1, wanted.clone())));
    assert!(!serves(&mut e, 31 + retry, request(0, vec![])));
    assert!(serves(&mut e, 32 + retry, request(0, wanted)));
    let tips = e.tips();
    let top = e.dag().highest_round().unwrap();
    assert!(!tips.is_empty() && tips.iter().all(|(round, _)| *round + TIP_ROUNDS > top));
    assert_eq!(tips[0].0, top, "the top round first");

    // Gossip delivers each vertex once: the engine keeps asking, every retry
    // interval, going round the committee (never itself), until it is replaced.
    let mut asked = Vec::new();
    for k in 2..5 {
        let out = e.handle(10 + k * retry, Input::TimeoutFired);
        asked.extend(tips_asked(&out));
    }
    assert_eq!(asked, vec![(2, 0), (3, 0), (1, 0)]);
}

#[test]
fn a_wrong_vote_proven_by_a_peer_excludes_the_voter_here_too_and_forgeries_cost_the_relayer() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..4);
    let leaders = b.leaders();
    let config = DagBftConfig {
        ordering: crate::config::Ordering::Avalanche(Default::default()),
        ..DagBftConfig::for_chain(ChainId::Delta)
    };
    let db = Arc::new(MemoryEngine::new());
    let mut e = open_with(&b, &db, config.clone());
    e.handle(0, Input::Start);
    let received = |evidence: &Evidence| Input::EvidenceReceived {
        from: 1,
        evidence: evidence.clone(),
    };
    let refused = |out: &[Output<AvalancheMessage>]| {
        out.iter().any(|o| {
            matches!(
                o,
                Output::Rejected {
                    from: 1,
                    reason: RejectReason::BadEvidence(_)
                }
            )
        })
    };

    // Validator 1 relays a "proof" that 3 voted wrongly, but the vote was right: it
    // is the relayer's lie, refused and charged to it; 3 stays in the samples.
    let right = b.vote_evidence(3, 2, b.vertex(2, leaders.leader(2)));
    assert!(refused(&e.handle(1, received(&right))));
    assert!(e.avalanche().unwrap().byzantine().is_empty());

    // Of another epoch: not checkable here (no leader schedule), ignored, not charged.
    let Evidence::WrongVote { mut response, .. } = b.vote_evidence(3, 1, b.vertex(3, 0)) else {
        unreachable!()
    };
    response.votes.epoch = 5;
    let later = Evidence::WrongVote {
        response,
        vertex: b.vertex(3, 0).clone(),
    };
    let out = e.handle(2, received(&later));
    assert!(!refused(&out));
    assert!(evidence_in(&out).is_empty());

    // A real proof: 3 voted to commit a round-3 vertex for slot 1. This node never
    // polled 3, yet checks the proof itself, leaves 3 out of its samples, ignores its
    // vertices, and passes the proof on once.
    let wrong = b.vote_evidence(3, 1, b.vertex(3, 0));
    let out = e.handle(3, received(&wrong));
    assert_eq!(evidence_in(&out), vec![wrong.clone()]);
    assert_eq!(e.avalanche().unwrap().byzantine(), vec![3]);
    assert!(e.equivocators().contains(&3));
    assert!(evidence_in(&e.handle(4, received(&wrong))).is_empty());

    // The proof outlives a restart.
    drop(e);
    let reopened = open_with(&b, &db, config);
    assert!(reopened.equivocators().contains(&3));
    assert_eq!(reopened.avalanche().unwrap().byzantine(), vec![3]);
}

#[test]
fn our_vertices_no_one_referenced_are_given_back_when_collected_never_once_committed() {
    // Validators 1–3 build rounds that never reference ours (ours always arrive too
    // late for them), so no commit can reach our vertices; once garbage-collected
    // they are reported as orphaned, so their transactions can be given back.
    let mut b = DagBuilder::new(4);
    for round in 0..24 {
        for author in 1..4 {
            let parents: Vec<ValidatorIndex> = if round == 0 { vec![] } else { vec![1, 2, 3] };
            b.add(round, author, &parents);
        }
    }
    let mut config = DagBftConfig::for_chain(ChainId::Delta);
    config.retention_rounds = 4;
    config.store_retention_rounds = 8;
    let db = Arc::new(MemoryEngine::new());
    let mut e = open_with(&b, &db, config);
    let mut outputs = e.handle(0, Input::Start);
    let mut now = 0;
    for round in 0..24 {
        for author in 1..4 {
            now += 1_000;
            outputs.extend(receive(&mut e, now, author, b.vertex(round, author)));
        }
        outputs.extend(e.handle(now + 500, Input::TimeoutFired));
    }
    let ours: Vec<Arc<Vertex>> = broadcasts(&outputs);
    let committed: HashSet<Digest> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Committed(c) => Some(c.subdag.vertices.iter().map(|v| v.digest())),
            _ => None,
        })
        .flatten()
        .collect();
    let orphaned: Vec<Arc<Vertex>> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Orphaned(vs) => Some(vs.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!committed.is_empty(), "validators 1–3 commit without us");
    assert!(
        orphaned.iter().any(|v| v.digest() == ours[0].digest()),
        "our round-0 vertex is given back ({} orphaned)",
        orphaned.len()
    );
    for v in &orphaned {
        assert_eq!(
            v.content().author,
            0,
            "only our own vertices are given back"
        );
        assert!(
            !committed.contains(&v.digest()),
            "a committed vertex is not given back"
        );
        assert!(v.content().round < e.dag().gc_round());
    }
    assert_eq!(e.stats().orphaned, orphaned.len() as u64);
    let unique: HashSet<Digest> = orphaned.iter().map(|v| v.digest()).collect();
    assert_eq!(unique.len(), orphaned.len(), "each is given back once");
}

#[test]
fn a_straggler_of_the_round_before_is_waited_for_up_to_the_grace_and_an_absent_one_is_not() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..1);
    let db = Arc::new(MemoryEngine::new());
    let config = DagBftConfig {
        min_round_delay_ms: 50,
        leader_timeout_ms: 0,
        straggler_grace_ms: 100,
        ..DagBftConfig::for_chain(ChainId::Delta)
    };
    let mut e = open_with(&b, &db, config);
    let own0 = broadcasts(&e.handle(0, Input::Start)).pop().unwrap();
    for author in 1..4 {
        receive(&mut e, 1, author, b.vertex(0, author));
    }
    let own1 = broadcasts(&e.handle(50, Input::TimeoutFired))
        .pop()
        .expect("round 1 on all of round 0");
    assert_eq!(own1.content().round, 1);
    let peers_of = |round: Round, parents: Vec<VertexRef>| -> Vec<Arc<Vertex>> {
        (1..4)
            .map(|a| b.custom_vertex_refs(round, a, parents.clone()))
            .collect()
    };
    let round0 = std::iter::once(own0.reference())
        .chain((1..4).map(|a| b.vertex(0, a).reference()))
        .collect();
    let round1 = peers_of(1, round0);
    receive(&mut e, 60, 1, &round1[0]);
    receive(&mut e, 60, 2, &round1[1]);
    // A quorum of round 1 since 60 and our round delay passed at 100, but validator 3,
    // in round 0, has no round-1 vertex yet: it is waited for until 160.
    assert!(broadcasts(&e.handle(120, Input::TimeoutFired)).is_empty());
    let own2 = broadcasts(&receive(&mut e, 130, 3, &round1[2]));
    assert_eq!(own2.len(), 1, "proposed as soon as the straggler came");
    assert_eq!(own2[0].content().round, 2);
    assert_eq!(
        own2[0].content().parents.len(),
        4,
        "the straggler referenced"
    );

    // Validator 3 stops after round 1: round 2 waits the grace for it once ...
    let round1_refs = std::iter::once(own1.reference())
        .chain(round1.iter().map(|v| v.reference()))
        .collect();
    let round2 = peers_of(2, round1_refs);
    receive(&mut e, 140, 1, &round2[0]);
    receive(&mut e, 140, 2, &round2[1]);
    assert!(broadcasts(&e.handle(230, Input::TimeoutFired)).is_empty());
    let own3 = broadcasts(&e.handle(240, Input::TimeoutFired));
    assert_eq!(own3.len(), 1, "the grace ran out");
    assert_eq!(own3[0].content().round, 3);
    assert_eq!(own3[0].content().parents.len(), 3);
    // ... and round 3 does not wait for it: it was absent from round 2.
    let round2_refs = std::iter::once(own2[0].reference())
        .chain(round2[..2].iter().map(|v| v.reference()))
        .collect();
    let round3 = peers_of(3, round2_refs);
    receive(&mut e, 250, 1, &round3[0]);
    receive(&mut e, 250, 2, &round3[1]);
    let own4 = broadcasts(&e.handle(290, Input::TimeoutFired));
    assert_eq!(own4.len(), 1, "only the round delay held it");
    assert_eq!(own4[0].content().round, 4);
}
