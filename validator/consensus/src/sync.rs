//! Answering a peer's sync request: the vertices it asked for and their ancestors
//! above its `have_through_round`, lowest rounds first, within limits.
//!
//! A pure function of a lookup, so the engine answers from its DAG and store (the
//! simulator), and a node answers from the consensus store alone, off its consensus
//! task (every vertex the engine accepted is in the store before anything that
//! depends on it leaves the engine). The work is bounded whatever the request says:
//! at most [`MAX_SYNC_DIGESTS`] asked digests are read, at most four times
//! `max_vertices` vertices are looked up, and the answer holds at most
//! `max_vertices` vertices and `max_bytes` encoded bytes (one vertex always goes).

use std::collections::HashSet;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::types::Vertex;

use crate::consensus::{Round, SyncRequest};
use crate::dag::encoded_len;
use crate::engine::MAX_SYNC_DIGESTS;
use crate::store::ConsensusStore;

/// The size of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncLimits {
    pub max_vertices: usize,
    pub max_bytes: usize,
}

/// The answer to `request`: the asked vertices first, then their ancestors above the
/// requester's `have_through_round` by (round, author, digest), cut to `limits`.
pub fn answer_sync(
    request: &SyncRequest,
    limits: SyncLimits,
    lookup: impl Fn(Round, &Digest) -> Option<Arc<Vertex>>,
) -> Vec<Arc<Vertex>> {
    let mut asked = Vec::new();
    let mut ancestors = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Round, Digest, bool)> = request
        .wanted
        .iter()
        .take(MAX_SYNC_DIGESTS)
        .map(|(r, d)| (*r, *d, true))
        .collect();
    let budget = limits.max_vertices.saturating_mul(4);
    while let Some((round, d, is_asked)) = stack.pop() {
        if seen.len() >= budget || !seen.insert(d) {
            continue;
        }
        let Some(v) = lookup(round, &d) else {
            continue;
        };
        let c = v.content();
        if c.round > 0 && c.round - 1 > request.have_through_round {
            stack.extend(c.parents.iter().map(|p| (c.round - 1, p.digest, false)));
        }
        if is_asked {
            asked.push(v);
        } else {
            ancestors.push(v);
        }
    }
    ancestors.sort_by_key(|v| (v.content().round, v.content().author, v.digest()));
    let mut vertices = Vec::new();
    let mut bytes = 0usize;
    for v in asked.into_iter().chain(ancestors) {
        let len = encoded_len(&v);
        let full = vertices.len() >= limits.max_vertices || bytes + len > limits.max_bytes;
        if full && !vertices.is_empty() {
            break;
        }
        bytes += len;
        vertices.push(v);
    }
    vertices
}

/// A vertex from a consensus store, if it is there under that round and digest (a
/// store error only means this peer cannot be helped; it asks another).
pub fn stored_vertex<S: ConsensusStore>(
    store: &S,
    round: Round,
    digest: &Digest,
) -> Option<Arc<Vertex>> {
    let v = store.vertex(round, digest).ok().flatten()?;
    (v.digest() == *digest && v.content().round == round).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;

    fn lookup_in(b: &DagBuilder) -> impl Fn(Round, &Digest) -> Option<Arc<Vertex>> + '_ {
        |round, d| {
            b.all()
                .iter()
                .find(|v| v.digest() == *d && v.content().round == round)
                .cloned()
        }
    }

    #[test]
    fn asked_first_then_ancestors_lowest_first_above_what_the_peer_has() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..5);
        let tip = b.vertex(4, 1).clone();
        let request = SyncRequest {
            epoch: 0,
            wanted: vec![(4, tip.digest())],
            have_through_round: 1,
        };
        let limits = SyncLimits {
            max_vertices: 100,
            max_bytes: usize::MAX,
        };
        let got = answer_sync(&request, limits, lookup_in(&b));
        assert_eq!(got[0], tip);
        let rounds: Vec<Round> = got[1..].iter().map(|v| v.content().round).collect();
        assert_eq!(rounds, vec![2, 2, 2, 2, 3, 3, 3, 3]);
    }

    #[test]
    fn answers_are_cut_to_the_limits_but_never_empty_when_something_was_found() {
        let mut b = DagBuilder::new(4);
        b.full_rounds(0..5);
        let request = SyncRequest {
            epoch: 0,
            wanted: vec![(4, b.vertex(4, 0).digest())],
            have_through_round: 0,
        };
        let one = encoded_len(b.vertex(4, 0));
        let by_count = SyncLimits {
            max_vertices: 3,
            max_bytes: usize::MAX,
        };
        assert_eq!(answer_sync(&request, by_count, lookup_in(&b)).len(), 3);
        let by_bytes = SyncLimits {
            max_vertices: 100,
            max_bytes: 2 * one + one / 2,
        };
        assert_eq!(answer_sync(&request, by_bytes, lookup_in(&b)).len(), 2);
        let tiny = SyncLimits {
            max_vertices: 100,
            max_bytes: 1,
        };
        assert_eq!(answer_sync(&request, tiny, lookup_in(&b)).len(), 1);
        let unknown = SyncRequest {
            epoch: 0,
            wanted: vec![(4, Digest([9; 32]))],
            have_through_round: 0,
        };
        assert!(answer_sync(&unknown, tiny, lookup_in(&b)).is_empty());
    }
}
