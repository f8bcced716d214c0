//! Unit tests of the commit rule on hand-built DAGs.

use super::*;
use crate::testing::DagBuilder;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn schedule(b: &DagBuilder) -> LeaderSchedule {
    LeaderSchedule::new(Digest::ZERO, b.validators())
}

fn committer() -> Committer {
    Committer::new(50, 0, CommitterState::default())
}

fn committed_leaders(decided: &[Decided]) -> Vec<(Round, Digest)> {
    decided
        .iter()
        .filter_map(|d| match d {
            Decided::Commit(s) => Some((s.leader_round, s.leader.digest)),
            Decided::Skip { .. } => None,
        })
        .collect()
}

fn others(n: usize, but: &[ValidatorIndex]) -> Vec<ValidatorIndex> {
    (0..n as ValidatorIndex)
        .filter(|a| !but.contains(a))
        .collect()
}

#[test]
fn full_dag_commits_every_leader_two_rounds_later() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..6);
    let leaders = schedule(&b);
    let mut dag = b.dag();
    let decided = committer().try_decide(&mut dag, &leaders);
    // Highest round 5: slots 0..=3 are decided, all committed directly.
    let got = committed_leaders(&decided);
    let want: Vec<_> = (0..4)
        .map(|r| (r, b.vertex(r, leaders.leader(r)).digest()))
        .collect();
    assert_eq!(got, want);
    // Each sub-DAG ends with its leader, sequences count up, and nothing repeats.
    let mut seen = HashSet::new();
    for (i, d) in decided.iter().enumerate() {
        let Decided::Commit(s) = d else { panic!() };
        assert_eq!(s.sequence, i as u64);
        assert_eq!(s.vertices.last().unwrap().digest(), s.leader.digest);
        for v in &s.vertices {
            assert!(seen.insert(v.digest()), "vertex committed twice");
        }
    }
    // Leader of round 3 commits every vertex of rounds 0..=2 not committed before.
    assert_eq!(seen.len(), 4 * 3 + 1);
}

#[test]
fn nothing_is_decided_without_two_rounds_of_support() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..2);
    let leaders = schedule(&b);
    let mut dag = b.dag();
    assert!(committer().try_decide(&mut dag, &leaders).is_empty());
}

#[test]
fn absent_leader_is_skipped_directly_and_later_leaders_commit() {
    let mut b = DagBuilder::new(4);
    let leaders = schedule(&b);
    b.full_rounds(0..1);
    let l1 = leaders.leader(1);
    let rest = others(4, &[l1]);
    for &a in &rest {
        b.add(1, a, &[0, 1, 2, 3]);
    }
    for r in 2..6 {
        let parents: Vec<_> = if r == 2 {
            rest.clone()
        } else {
            vec![0, 1, 2, 3]
        };
        for a in 0..4 {
            b.add(r, a, &parents);
        }
    }
    let mut dag = b.dag();
    let decided = committer().try_decide(&mut dag, &leaders);
    assert!(decided.contains(&Decided::Skip {
        round: 1,
        leader: l1
    }));
    let rounds: Vec<_> = committed_leaders(&decided)
        .iter()
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(rounds, vec![0, 2, 3]);
}

/// Builds: leader of round 1 voted by three authors, but only one round-3 vertex is a
/// certificate; round 4 onwards full. Returns the builder and the leader vertex.
fn weakly_supported_leader(certified: bool) -> (DagBuilder, LeaderSchedule, Digest) {
    let mut b = DagBuilder::new(4);
    let leaders = schedule(&b);
    b.full_rounds(0..2);
    let l1 = leaders.leader(1);
    let non_voter = (l1 + 1) % 4;
    let voters = others(4, &[non_voter]);
    let without_leader = others(4, &[l1]);
    // Round 2: three authors vote for the leader; `non_voter` does not.
    for a in 0..4 {
        if a == non_voter {
            b.add(2, a, &without_leader);
        } else {
            b.add(2, a, &[0, 1, 2, 3]);
        }
    }
    // Round 3: one vertex (author `non_voter`) sees three votes iff `certified`;
    // the others see only two votes (two voters plus the non-voter).
    for a in 0..4u16 {
        let parents: Vec<ValidatorIndex> = if a == non_voter && certified {
            voters.clone()
        } else {
            let mut p = vec![non_voter, voters[0], voters[1]];
            p.sort();
            p
        };
        b.add(3, a, &parents);
    }
    for r in 4..8 {
        for a in 0..4 {
            b.add(r, a, &[0, 1, 2, 3]);
        }
    }
    let leader = b.vertex(1, l1).digest();
    (b, leaders, leader)
}

#[test]
fn leader_with_one_certificate_commits_indirectly_through_the_anchor() {
    let (b, leaders, leader) = weakly_supported_leader(true);
    let mut dag = b.dag();
    let mut c = committer();
    // The direct rule cannot decide slot 1.
    assert_eq!(
        c.direct(&dag, 1, leaders.leader(1)),
        SlotDecision::Undecided
    );
    let decided = c.try_decide(&mut dag, &leaders);
    assert!(committed_leaders(&decided).contains(&(1, leader)));
}

#[test]
fn leader_without_certificate_in_the_anchor_history_is_skipped_indirectly() {
    let (b, leaders, leader) = weakly_supported_leader(false);
    let mut dag = b.dag();
    let mut c = committer();
    assert_eq!(
        c.direct(&dag, 1, leaders.leader(1)),
        SlotDecision::Undecided
    );
    let decided = c.try_decide(&mut dag, &leaders);
    assert!(
        !committed_leaders(&decided)
            .iter()
            .any(|(_, d)| *d == leader)
    );
    assert!(decided.contains(&Decided::Skip {
        round: 1,
        leader: leaders.leader(1)
    }));
    // The leader vertex is still ordered, inside a later leader's history.
    assert!(dag.is_committed(&leader));
}

#[test]
fn decisions_are_incremental_and_never_repeat() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..8);
    let leaders = schedule(&b);
    let mut whole = b.dag();
    let expected = committer().try_decide(&mut whole, &leaders);
    // The same DAG revealed round by round yields the same sequence.
    let mut dag = Dag::new(b.validators_arc());
    let mut c = committer();
    let mut got = Vec::new();
    for v in b.all() {
        dag.insert(v.clone());
        got.extend(c.try_decide(&mut dag, &leaders));
    }
    assert_eq!(got, expected);
}

#[test]
fn retention_bounds_the_history_of_a_late_leader() {
    // Round-0 vertices of authors 2 and 3 are referenced only by round-1 vertices
    // that no committed leader reaches until round 4; with retention 2 a leader of
    // round ≥ 3 never orders round-0 vertices.
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..9);
    let leaders = schedule(&b);
    let mut dag = b.dag();
    let mut c = Committer::new(2, 0, CommitterState::default());
    for d in c.try_decide(&mut dag, &leaders) {
        if let Decided::Commit(s) = d {
            let lowest = s.vertices.iter().map(|v| v.content().round).min().unwrap();
            assert!(lowest + 2 >= s.leader_round);
        }
    }
}

#[test]
fn commit_timestamps_are_parent_medians_and_never_decrease() {
    let mut b = DagBuilder::new(4);
    b.full_rounds(0..7);
    let leaders = schedule(&b);
    let mut dag = b.dag();
    let mut last = 0;
    for d in committer().try_decide(&mut dag, &leaders) {
        if let Decided::Commit(s) = d {
            assert!(s.timestamp_ms >= last);
            last = s.timestamp_ms;
            if s.leader_round > 0 {
                // Builder timestamps: 1000 + 100·round + author; median of 4 parents
                // is the third smallest: author 2 of the previous round.
                assert_eq!(s.timestamp_ms, 1_000 + 100 * (s.leader_round - 1) + 2);
            }
        }
    }
}

/// A random DAG with an equivocating author and random partial parent sets, revealed
/// to several observers in different orders and to different extents: every
/// observer's committed sequence must be a prefix of the longest one.
/// Returns the length of the longest committed sequence (0 if the schedule stalled).
fn random_views_agree(seed: u64) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = 4usize;
    let b = DagBuilder::new(n);
    let byzantine: ValidatorIndex = rng.random_range(0..n as ValidatorIndex);
    let rounds = 12;
    // all[r] = every vertex of round r (equivocations included).
    let mut all: Vec<Vec<Arc<Vertex>>> = Vec::new();
    for r in 0..rounds {
        let mut this = Vec::new();
        for a in 0..n as ValidatorIndex {
            if r > 0 && a != byzantine && rng.random_bool(0.04) {
                continue; // a slow honest author misses the round
            }
            let refs = if r == 0 {
                vec![]
            } else {
                // One vertex per author of the previous round; at least a quorum.
                let mut by_author: BTreeMap<ValidatorIndex, Vec<&Arc<Vertex>>> = BTreeMap::new();
                for v in &all[r as usize - 1] {
                    by_author.entry(v.content().author).or_default().push(v);
                }
                let mut authors: Vec<_> = by_author.keys().copied().collect();
                authors.shuffle(&mut rng);
                let take = rng.random_range(3.min(authors.len())..=authors.len());
                let mut chosen: Vec<_> = authors[..take].to_vec();
                chosen.sort();
                chosen
                    .iter()
                    .map(|x| by_author[x].choose(&mut rng).unwrap().reference())
                    .collect::<Vec<_>>()
            };
            if refs.len() < 3 && r > 0 {
                continue;
            }
            let v = b.custom_vertex_refs(r, a, refs.clone());
            this.push(v);
            if a == byzantine && r > 0 && rng.random_bool(0.6) {
                // An equivocation: same parents, other timestamp.
                let mut u = this.last().unwrap().content().clone();
                u.timestamp_ms += 7;
                this.push(Arc::new(u.sign(b.key(a), b.network())));
            }
        }
        if this.len() < 3 {
            return 0; // the random schedule lost liveness; nothing to check
        }
        all.push(this);
    }
    let leaders = schedule(&b);
    let mut sequences: Vec<Vec<(Round, Digest, Vec<Digest>)>> = Vec::new();
    for _observer in 0..4 {
        // What one observer received by some time: a random delivery order (rounds
        // overlap by one), cut at a random point, with a few messages lost for good;
        // whatever lost an ancestor stays out, so the view is closed under ancestry.
        let mut dag = Dag::new(b.validators_arc());
        let mut order: Vec<(f64, Arc<Vertex>)> = all
            .iter()
            .flatten()
            .map(|v| {
                (
                    v.content().round as f64 + rng.random_range(0.0..1.5),
                    v.clone(),
                )
            })
            .collect();
        order.sort_by(|a, b| a.0.total_cmp(&b.0));
        let cut = rng.random_range(order.len() * 6 / 10..=order.len());
        let kept: Vec<_> = order
            .into_iter()
            .take(cut)
            .map(|(_, v)| v)
            .filter(|_| rng.random_bool(0.97))
            .collect();
        let mut c = committer();
        let mut seq = Vec::new();
        let mut pending = kept;
        loop {
            let before = pending.len();
            pending.retain(|v| {
                if dag
                    .missing_parents(v)
                    .map(|m| m.is_empty())
                    .unwrap_or(false)
                {
                    dag.insert(v.clone());
                    for d in c.try_decide(&mut dag, &leaders) {
                        if let Decided::Commit(s) = d {
                            seq.push((
                                s.leader_round,
                                s.leader.digest,
                                s.vertices.iter().map(|v| v.digest()).collect(),
                            ));
                        }
                    }
                    false
                } else {
                    true
                }
            });
            if pending.len() == before {
                break;
            }
        }
        sequences.push(seq);
    }
    let longest = sequences.iter().max_by_key(|s| s.len()).unwrap().clone();
    for s in &sequences {
        assert_eq!(s[..], longest[..s.len()], "seed {seed}: views disagree");
    }
    longest.len()
}

#[test]
fn random_partial_views_with_equivocation_commit_consistent_prefixes() {
    let committed: Vec<usize> = (0..24).map(random_views_agree).collect();
    // The check must have something to compare: most schedules commit several leaders.
    assert!(
        committed.iter().filter(|c| **c >= 3).count() >= 16,
        "{committed:?}"
    );
}
