//! Vertices waiting for their parents, each author within its own budget.
//!
//! A vertex whose parents we do not hold yet waits here while they are fetched. The
//! buffer is the one place a peer can make us hold memory for it before anything it
//! sent is proven useful, so it is bounded per *author* (the signer of the vertex,
//! whoever relayed it): a count and a byte share of the engine's budget. One
//! validator flooding vertices whose parents never come fills only its own share;
//! honest authors keep theirs. The engine also buffers only a few rounds above its
//! highest quorum round (see `DagBft::receive`).
//!
//! When an author's allowance is full, its oldest vertex that nothing waits for makes
//! room for the newcomer: a flood of vertices whose parents never come displaces
//! the flooder's own earlier vertices, never another author's. (At worst a flooder
//! keeps its own real vertices from waiting long enough, which is what withholding
//! them would do: its leader slots time out, as a silent validator's do.)
//!
//! Parents that never come cost the author: every vertex dropped unreleased (its
//! parent could not be fetched, or it fell below the garbage-collection round) is a
//! strike, and each strike halves the author's allowance; each vertex of the author
//! accepted into the DAG forgives one. An honest author's vertices always attach, so
//! its allowance stays whole. An eviction is not a strike: the evicted vertex may be
//! real and merely early, and shrinking the allowance of a flooding author would
//! only keep its real vertices out (the simulator measured its leader slots timing
//! out: 2.6x slower rounds), while the flood already costs no one else anything.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::types::{ValidatorIndex, Vertex};

use crate::consensus::Round;

/// Halvings of an allowance at most (a penalised author keeps 1/64 of its share).
const MAX_STRIKE_SHIFT: u32 = 6;

/// What one author may hold in the buffer before penalties.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingBudget {
    pub vertices: usize,
    pub bytes: usize,
}

/// Why an author may not buffer another vertex now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "validator {author} already has {held_vertices} vertices ({held_bytes} bytes) waiting for \
     parents; its allowance is {allowed_vertices} vertices and {allowed_bytes} bytes \
     ({strikes} strikes for parents that never came)"
)]
pub struct OverBudget {
    pub author: ValidatorIndex,
    pub held_vertices: usize,
    pub held_bytes: usize,
    pub allowed_vertices: usize,
    pub allowed_bytes: usize,
    pub strikes: u32,
}

struct Waiting {
    vertex: Arc<Vertex>,
    /// Parents still missing.
    missing: usize,
    /// The parents that were missing when it arrived (to unlink it if it leaves
    /// before they come).
    awaited: Vec<Digest>,
    bytes: usize,
}

#[derive(Default)]
struct AuthorUse {
    vertices: usize,
    bytes: usize,
    strikes: u32,
    /// The author's waiting vertices in arrival order (entries of vertices that left
    /// are skipped, and compacted away once they are half the queue).
    arrivals: VecDeque<Digest>,
}

/// The buffer of vertices waiting for parents.
#[derive(Default)]
pub struct Pending {
    waiting: HashMap<Digest, Waiting>,
    /// Missing parent → vertices waiting for it.
    children: HashMap<Digest, Vec<Digest>>,
    authors: BTreeMap<ValidatorIndex, AuthorUse>,
    /// The waiting vertex of each (author, round): a second, different one is an
    /// equivocation found before either reached the DAG.
    slots: HashMap<(ValidatorIndex, Round), Digest>,
    bytes: usize,
}

impl Pending {
    pub fn contains(&self, d: &Digest) -> bool {
        self.waiting.contains_key(d)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Encoded bytes of every waiting vertex.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The waiting vertex `author` signed for `round`, if any.
    pub fn in_slot(&self, author: ValidatorIndex, round: Round) -> Option<Arc<Vertex>> {
        let d = self.slots.get(&(author, round))?;
        let waiting = self.waiting.get(d).expect("a slot names a waiting vertex");
        Some(Arc::clone(&waiting.vertex))
    }

    /// Whether a buffered vertex waits for `d`.
    pub fn is_wanted(&self, d: &Digest) -> bool {
        self.children.contains_key(d)
    }

    /// Strikes of `author` (vertices of its dropped unreleased, less those forgiven).
    pub fn strikes(&self, author: ValidatorIndex) -> u32 {
        self.authors.get(&author).map_or(0, |u| u.strikes)
    }

    /// Makes room for one more vertex of `author` of `bytes` encoded bytes, evicting
    /// the author's oldest vertices that nothing waits for if its allowance is full;
    /// returns the evicted ones, or why there is no room.
    pub fn make_room(
        &mut self,
        author: ValidatorIndex,
        bytes: usize,
        budget: PendingBudget,
    ) -> Result<Vec<Arc<Vertex>>, OverBudget> {
        let strikes = self.strikes(author);
        let shift = strikes.min(MAX_STRIKE_SHIFT);
        let (allowed_vertices, allowed_bytes) = (budget.vertices >> shift, budget.bytes >> shift);
        let mut evicted = Vec::new();
        loop {
            let (held_vertices, held_bytes) = self
                .authors
                .get(&author)
                .map_or((0, 0), |u| (u.vertices, u.bytes));
            if held_vertices < allowed_vertices && held_bytes.saturating_add(bytes) <= allowed_bytes
            {
                return Ok(evicted);
            }
            let victim = (allowed_vertices > 0 && bytes <= allowed_bytes)
                .then(|| self.oldest_unwanted(author))
                .flatten();
            let Some(victim) = victim else {
                // Nothing evictable: the caller refuses the newcomer; what was
                // evicted for it stays evicted (it was the author's oldest).
                return Err(OverBudget {
                    author,
                    held_vertices,
                    held_bytes,
                    allowed_vertices,
                    allowed_bytes,
                    strikes,
                });
            };
            evicted.push(self.remove(&victim).expect("a waiting vertex").vertex);
        }
    }

    /// The author's longest-waiting vertex that no buffered vertex waits for.
    fn oldest_unwanted(&self, author: ValidatorIndex) -> Option<Digest> {
        let u = self.authors.get(&author)?;
        u.arrivals
            .iter()
            .find(|d| self.waiting.contains_key(d) && !self.children.contains_key(d))
            .copied()
    }

    /// Buffers `vertex` (of `bytes` encoded bytes) until every digest of `missing`
    /// was released. The caller made room ([`Pending::make_room`]).
    pub fn add(&mut self, vertex: Arc<Vertex>, missing: &[Digest], bytes: usize) {
        assert!(
            !missing.is_empty(),
            "a vertex with every parent held is not pending"
        );
        let d = vertex.digest();
        if self.waiting.contains_key(&d) {
            return;
        }
        for m in missing {
            self.children.entry(*m).or_default().push(d);
        }
        let slot = (vertex.content().author, vertex.content().round);
        let previous = self.slots.insert(slot, d);
        assert!(
            previous.is_none(),
            "a second vertex for a waiting one's slot is evidence, never buffered"
        );
        let author = self.authors.entry(vertex.content().author).or_default();
        author.vertices += 1;
        author.bytes += bytes;
        author.arrivals.push_back(d);
        self.bytes += bytes;
        let waiting = Waiting {
            vertex,
            missing: missing.len(),
            awaited: missing.to_vec(),
            bytes,
        };
        self.waiting.insert(d, waiting);
    }

    /// `parent` arrived: the vertices whose last missing parent it was, lowest
    /// round first.
    pub fn release(&mut self, parent: &Digest) -> Vec<Arc<Vertex>> {
        let mut ready = Vec::new();
        for child in self.children.remove(parent).unwrap_or_default() {
            let Some(w) = self.waiting.get_mut(&child) else {
                continue;
            };
            w.missing -= 1;
            if w.missing == 0 {
                ready.push(self.remove(&child).expect("present").vertex);
            }
        }
        ready.sort_by_key(|v| (v.content().round, v.digest()));
        ready
    }

    /// `parent` will not come (its fetch gave up): drops every vertex waiting for
    /// it, and every vertex waiting for those, and returns them.
    pub fn abandon(&mut self, parent: &Digest) -> Vec<Arc<Vertex>> {
        let mut dropped = Vec::new();
        let mut work = vec![*parent];
        while let Some(p) = work.pop() {
            for child in self.children.remove(&p).unwrap_or_default() {
                if let Some(w) = self.remove(&child) {
                    work.push(child);
                    dropped.push(w.vertex);
                }
            }
        }
        dropped
    }

    /// Drops the waiting vertex `d` and every vertex waiting for it; returns them.
    pub fn drop_waiting(&mut self, d: &Digest) -> Vec<Arc<Vertex>> {
        let Some(w) = self.remove(d) else {
            return Vec::new();
        };
        let mut dropped = vec![w.vertex];
        dropped.extend(self.abandon(d));
        dropped
    }

    /// Drops the vertices below `round` (and those waiting for them) and returns them.
    pub fn gc_below(&mut self, round: Round) -> Vec<Arc<Vertex>> {
        let mut old: Vec<(Round, Digest)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.vertex.content().round < round)
            .map(|(d, w)| (w.vertex.content().round, *d))
            .collect();
        // In a fixed order: what is dropped becomes outputs, and outputs are
        // deterministic.
        old.sort_unstable();
        let mut dropped = Vec::new();
        for (_, d) in old {
            if let Some(w) = self.remove(&d) {
                dropped.push(w.vertex);
                dropped.extend(self.abandon(&d));
            }
        }
        dropped
    }

    /// A vertex of `author` was dropped with parents that never came.
    pub fn strike(&mut self, author: ValidatorIndex) {
        let u = self.authors.entry(author).or_default();
        u.strikes = u.strikes.saturating_add(1);
    }

    /// A vertex of `author` attached to the DAG.
    pub fn forgive(&mut self, author: ValidatorIndex) {
        if let Some(u) = self.authors.get_mut(&author) {
            u.strikes = u.strikes.saturating_sub(1);
        }
    }

    /// Takes a vertex out, keeping the per-author accounting and the parent links
    /// exact (a parent nothing waits for any more is no longer wanted).
    fn remove(&mut self, d: &Digest) -> Option<Waiting> {
        let w = self.waiting.remove(d)?;
        for parent in &w.awaited {
            if let Some(children) = self.children.get_mut(parent) {
                children.retain(|c| c != d);
                if children.is_empty() {
                    self.children.remove(parent);
                }
            }
        }
        let author = w.vertex.content().author;
        self.slots.remove(&(author, w.vertex.content().round));
        let u = self
            .authors
            .get_mut(&author)
            .expect("every waiting vertex is accounted to its author");
        assert!(u.vertices >= 1 && u.bytes >= w.bytes && self.bytes >= w.bytes);
        u.vertices -= 1;
        u.bytes -= w.bytes;
        self.bytes -= w.bytes;
        if u.arrivals.front() == Some(d) {
            u.arrivals.pop_front();
        }
        if u.arrivals.len() > 2 * u.vertices + 16 {
            let waiting = &self.waiting;
            u.arrivals.retain(|a| waiting.contains_key(a));
        }
        if u.vertices == 0 && u.strikes == 0 {
            self.authors.remove(&author);
        }
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::DagBuilder;
    use dualchain_core::types::VertexRef;

    const BUDGET: PendingBudget = PendingBudget {
        vertices: 4,
        bytes: 40_000,
    };

    /// A vertex of `author` in `round` whose single parent is the made-up `parent`.
    fn orphan(b: &DagBuilder, round: Round, author: ValidatorIndex, parent: u8) -> Arc<Vertex> {
        let refs = (0..3)
            .map(|a| VertexRef {
                author: a,
                digest: Digest([parent.wrapping_add(a as u8); 32]),
            })
            .collect();
        b.custom_vertex_refs(round, author, refs)
    }

    #[test]
    fn a_full_allowance_evicts_the_authors_oldest_unwanted_vertex_and_no_one_elses() {
        let b = DagBuilder::new(4);
        let mut p = Pending::default();
        let mut held = Vec::new();
        for k in 0..4 {
            let v = orphan(&b, 5 + k, 1, 10 + k as u8);
            assert_eq!(p.make_room(1, 5_000, BUDGET), Ok(vec![]));
            p.add(v.clone(), &[Digest([10 + k as u8; 32])], 5_000);
            held.push(v);
        }
        // Validator 2's vertex waits for validator 1's first one: that one stays.
        let dependent = orphan(&b, 6, 2, 50);
        assert_eq!(p.make_room(2, 5_000, BUDGET), Ok(vec![]));
        p.add(dependent.clone(), &[held[0].digest()], 5_000);
        assert_eq!(p.make_room(1, 5_000, BUDGET), Ok(vec![held[1].clone()]));
        assert_eq!((p.len(), p.bytes()), (4, 20_000));
        // Bytes bind too: room for 35,000 bytes takes two more of validator 1's.
        assert_eq!(
            p.make_room(1, 35_000, BUDGET),
            Ok(vec![held[2].clone(), held[3].clone()])
        );
        assert!(p.contains(&held[0].digest()) && p.contains(&dependent.digest()));
        // Nothing of its own left to evict, and a vertex above the whole allowance.
        let full = p.make_room(1, 40_000, BUDGET).unwrap_err();
        assert_eq!((full.held_vertices, full.held_bytes), (1, 5_000));
        assert!(p.make_room(2, 40_001, BUDGET).is_err());
        assert_eq!((p.len(), p.bytes()), (2, 10_000));
        // The evicted vertices' missing parents are no longer wanted.
        assert!(!p.is_wanted(&Digest([11; 32])) && !p.is_wanted(&Digest([13; 32])));
        assert!(p.is_wanted(&Digest([10; 32])));
    }

    #[test]
    fn release_abandon_and_gc_keep_the_accounting_exact() {
        let b = DagBuilder::new(4);
        let mut p = Pending::default();
        let x = Digest([1; 32]);
        let y = Digest([2; 32]);
        let a = orphan(&b, 3, 0, 1);
        let child_of_a = orphan(&b, 4, 1, 2);
        p.add(a.clone(), &[x], 100);
        p.add(child_of_a.clone(), &[a.digest()], 200);
        let c = orphan(&b, 3, 2, 3);
        p.add(c.clone(), &[x, y], 300);
        let d = orphan(&b, 1, 3, 4);
        p.add(d.clone(), &[y], 400);
        assert_eq!((p.len(), p.bytes()), (4, 1_000));

        // x arrives: a is ready; c still waits for y.
        assert_eq!(p.release(&x), vec![a.clone()]);
        assert!(p.contains(&c.digest()) && p.contains(&child_of_a.digest()));
        // y never comes: c and d are dropped.
        let mut gone: Vec<_> = p.abandon(&y).iter().map(|v| v.digest()).collect();
        gone.sort();
        let mut want = vec![c.digest(), d.digest()];
        want.sort();
        assert_eq!(gone, want);
        assert_eq!((p.len(), p.bytes()), (1, 200));
        // The GC round passes a's child's round only at 5.
        assert!(p.gc_below(4).is_empty());
        assert_eq!(p.gc_below(5), vec![child_of_a]);
        assert_eq!((p.len(), p.bytes()), (0, 0));
        assert!(p.authors.is_empty(), "nothing left to account");
    }

    #[test]
    fn abandoning_a_parent_drops_its_waiting_descendants() {
        let b = DagBuilder::new(4);
        let mut p = Pending::default();
        let root = Digest([7; 32]);
        let a = orphan(&b, 2, 0, 1);
        let child = orphan(&b, 3, 1, 2);
        let grandchild = orphan(&b, 4, 2, 3);
        p.add(a.clone(), &[root], 1);
        p.add(child.clone(), &[a.digest()], 1);
        p.add(grandchild.clone(), &[child.digest()], 1);
        assert_eq!(p.abandon(&root).len(), 3);
        assert_eq!((p.len(), p.bytes()), (0, 0));
        assert!(!p.is_wanted(&a.digest()) && !p.is_wanted(&child.digest()));
    }

    #[test]
    fn strikes_halve_the_allowance_and_accepted_vertices_forgive_them() {
        let mut p = Pending::default();
        for _ in 0..2 {
            p.strike(3);
        }
        assert_eq!(p.make_room(3, 1, BUDGET), Ok(vec![]));
        assert_eq!(
            p.make_room(3, 10_001, BUDGET).unwrap_err().allowed_bytes,
            10_000
        );
        for _ in 0..20 {
            p.strike(3);
        }
        let e = p.make_room(3, 1_000, BUDGET).unwrap_err();
        assert_eq!((e.allowed_vertices, e.allowed_bytes), (0, 625));
        assert_eq!(e.strikes, 22);
        for _ in 0..22 {
            p.forgive(3);
        }
        assert_eq!(p.strikes(3), 0);
        assert_eq!(p.make_room(3, 40_000, BUDGET), Ok(vec![]));
    }
}
