//! A builder of hand-made DAGs for unit tests of the DAG store and the commit rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::crypto::{NetworkId, ValidatorKeypair};
use dualchain_core::types::{
    ChainId, UnsignedVertex, ValidatorIndex, ValidatorSet, Vertex, VertexRef,
};

use crate::DagBftConfig;
use crate::avalanche::{Preference, Query, Response};
use crate::consensus::Round;
use crate::dag::Dag;
use crate::evidence::Evidence;
use crate::keys::sim_validators;
use crate::leader::LeaderSchedule;

/// Builds signed vertices round by round; `(round, author)` names the canonical
/// vertex of a slot.
pub struct DagBuilder {
    keys: Vec<Arc<ValidatorKeypair>>,
    validators: Arc<ValidatorSet>,
    /// The network vertices are signed for: the engine configuration's default, so
    /// an engine built with `DagBftConfig::for_chain` verifies them.
    network: NetworkId,
    slots: BTreeMap<(Round, ValidatorIndex), Arc<Vertex>>,
    /// Every vertex built, in creation order (equivocations included if added).
    order: Vec<Arc<Vertex>>,
}

impl DagBuilder {
    pub fn new(n: usize) -> Self {
        let (keys, set) = sim_validators(n, 0).expect("simulation validator set");
        Self {
            keys,
            validators: Arc::new(set),
            network: DagBftConfig::for_chain(ChainId::Alpha).network,
            slots: BTreeMap::new(),
            order: Vec::new(),
        }
    }

    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
    }

    pub fn validators_arc(&self) -> Arc<ValidatorSet> {
        self.validators.clone()
    }

    pub fn key(&self, author: ValidatorIndex) -> &ValidatorKeypair {
        &self.keys[usize::from(author)]
    }

    pub fn key_arc(&self, author: ValidatorIndex) -> Arc<ValidatorKeypair> {
        self.keys[usize::from(author)].clone()
    }

    /// The network every vertex of this builder is signed for.
    pub fn network(&self) -> NetworkId {
        self.network
    }

    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// The leader schedule of an engine built with `DagBftConfig::for_chain` (its
    /// default epoch seed) over this builder's validators.
    pub fn leaders(&self) -> LeaderSchedule {
        LeaderSchedule::new(
            DagBftConfig::for_chain(ChainId::Delta).epoch_seed,
            &self.validators,
        )
    }

    /// `voter`'s signed Avalanche response (epoch 0) voting to commit `vertex` for
    /// `slot`, as evidence: a wrong vote unless `vertex` is the slot's leader vertex.
    pub fn vote_evidence(
        &self,
        voter: ValidatorIndex,
        slot: Round,
        vertex: &Arc<Vertex>,
    ) -> Evidence {
        let query = Query {
            epoch: 0,
            id: 1,
            first_slot: slot,
            count: 1,
        };
        let vote = vec![Preference::Commit(vertex.digest())];
        let response = Response::sign(&query, 0, voter, vote, self.key(voter), self.network);
        Evidence::WrongVote {
            response: Box::new(response),
            vertex: vertex.clone(),
        }
    }

    /// Every author proposes in each round, referencing every vertex of the round before.
    pub fn full_rounds(&mut self, rounds: std::ops::Range<Round>) -> &mut Self {
        let all: Vec<ValidatorIndex> = (0..self.n() as ValidatorIndex).collect();
        for r in rounds {
            for &a in &all {
                let parents: Vec<ValidatorIndex> = if r == 0 {
                    vec![]
                } else {
                    all.iter()
                        .copied()
                        .filter(|p| self.slots.contains_key(&(r - 1, *p)))
                        .collect()
                };
                self.add(r, a, &parents);
            }
        }
        self
    }

    /// Adds `author`'s vertex of `round` whose parents are the canonical vertices of
    /// `parents` (authors) in `round - 1`.
    pub fn add(
        &mut self,
        round: Round,
        author: ValidatorIndex,
        parents: &[ValidatorIndex],
    ) -> Arc<Vertex> {
        let refs = parents
            .iter()
            .map(|p| self.vertex(round - 1, *p).reference())
            .collect();
        let v = self.custom_vertex_refs(round, author, refs);
        self.slots.insert((round, author), v.clone());
        self.order.push(v.clone());
        v
    }

    /// The canonical vertex of a slot.
    pub fn vertex(&self, round: Round, author: ValidatorIndex) -> &Arc<Vertex> {
        self.slots
            .get(&(round, author))
            .unwrap_or_else(|| panic!("test DAG has no vertex ({round}, {author})"))
    }

    /// A second vertex for an existing slot, with the same parents and another timestamp.
    pub fn equivocate(&mut self, round: Round, author: ValidatorIndex, salt: u64) -> Arc<Vertex> {
        let original = self.vertex(round, author).content().clone();
        let twin = UnsignedVertex {
            timestamp_ms: original.timestamp_ms + 1 + salt,
            ..original
        };
        let v = Arc::new(twin.sign(self.key(author), self.network));
        self.order.push(v.clone());
        v
    }

    /// A signed vertex with parents given as (round, author) canonical slots (not
    /// registered in the builder).
    pub fn custom_vertex(
        &self,
        round: Round,
        author: ValidatorIndex,
        parents: &[(Round, ValidatorIndex)],
        salt: u64,
    ) -> Arc<Vertex> {
        let refs = parents
            .iter()
            .map(|(r, a)| self.vertex(*r, *a).reference())
            .collect();
        let mut v = self.unsigned(round, author, refs);
        v.timestamp_ms += salt;
        Arc::new(v.sign(self.key(author), self.network))
    }

    /// A signed vertex with explicit parent references (not registered).
    pub fn custom_vertex_refs(
        &self,
        round: Round,
        author: ValidatorIndex,
        parents: Vec<VertexRef>,
    ) -> Arc<Vertex> {
        Arc::new(
            self.unsigned(round, author, parents)
                .sign(self.key(author), self.network),
        )
    }

    fn unsigned(
        &self,
        round: Round,
        author: ValidatorIndex,
        parents: Vec<VertexRef>,
    ) -> UnsignedVertex {
        UnsignedVertex {
            chain: ChainId::Delta,
            epoch: 0,
            round,
            author,
            parents,
            transactions: vec![],
            timestamp_ms: 1_000 + round * 100 + u64::from(author),
        }
    }

    /// Every vertex built so far, in creation order (a valid insertion order).
    pub fn all(&self) -> &[Arc<Vertex>] {
        &self.order
    }

    /// A DAG holding every vertex built so far.
    pub fn dag(&self) -> Dag {
        let mut dag = Dag::new(self.validators.clone());
        let mut sorted = self.order.clone();
        sorted.sort_by_key(|v| v.content().round);
        for v in sorted {
            dag.insert(v);
        }
        dag
    }
}
