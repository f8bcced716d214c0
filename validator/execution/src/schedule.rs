//! Conflict-free scheduling from declared access sets.
//!
//! Two transactions conflict when their access sets share an account. The
//! scheduler takes the connected components of that graph (union-find over slots):
//! transactions of different components touch disjoint accounts, so components
//! can run on different workers in any interleaving, while the transactions of one
//! component run on one worker in block order. That is exactly the ordering the
//! sequential executor imposes on every account, which is why the results are
//! identical.
//!
//! Components are packed, in order of first appearance, into chunks of roughly
//! `txs / chunks` transactions, and the slots are permuted so that each chunk's
//! accounts are one contiguous range: each worker then gets a plain `&mut [Slot]`
//! (via `split_at_mut`), with no locks and no shared writes.
//!
//! Upgrade path (DESIGN §5): transactions with dynamic access need an optimistic
//! Block-STM scheduler; the account kinds of today all declare their access.

use crate::workset::BlockAccess;

/// The parallel plan of a block.
#[derive(Debug)]
pub struct Schedule {
    /// Transactions of each chunk, in block order.
    pub chunk_txs: Vec<Vec<u32>>,
    /// Number of slots of each chunk (chunks are contiguous in slot position order).
    pub chunk_slot_counts: Vec<u32>,
    /// Position of each slot in the permuted working set.
    pub position: Vec<u32>,
    /// Slot number at each position (inverse of `position`).
    pub slot_at: Vec<u32>,
    /// Chunk of each transaction.
    pub chunk_of_tx: Vec<u32>,
    pub components: usize,
    pub largest_component: usize,
}

/// Union-find with path halving and union by size.
struct DisjointSets {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    #[inline]
    fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grandparent = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grandparent;
            x = grandparent;
        }
        x
    }

    #[inline]
    fn union(&mut self, a: u32, b: u32) {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
    }
}

/// Groups the block into independent chunks. Returns `None` when parallelism cannot
/// pay: the largest component holds more than `max_serial_share` of the block.
pub fn plan(access: &BlockAccess, chunks_wanted: usize, max_serial_share: f64) -> Option<Schedule> {
    let n = access.tx_count();
    let slots = access.slot_count();
    let mut sets = DisjointSets::new(slots);
    for i in 0..n {
        let declared = access.of(i);
        for &other in &declared[1..] {
            sets.union(declared[0], other);
        }
    }

    // Components numbered by first appearance; count transactions per component.
    const NONE: u32 = u32::MAX;
    let mut component_of_root = vec![NONE; slots];
    let mut component_txs: Vec<u32> = Vec::new();
    let mut component_of_tx = Vec::with_capacity(n);
    for i in 0..n {
        let root = sets.find(access.of(i)[0]) as usize;
        if component_of_root[root] == NONE {
            component_of_root[root] = component_txs.len() as u32;
            component_txs.push(0);
        }
        let c = component_of_root[root];
        component_txs[c as usize] += 1;
        component_of_tx.push(c);
    }
    let largest = component_txs.iter().copied().max().unwrap_or(0) as usize;
    if n == 0 || largest as f64 > max_serial_share * n as f64 {
        return None;
    }

    // Pack components into chunks greedily, in order of first appearance.
    let target = n.div_ceil(chunks_wanted.max(1)).max(1);
    let mut chunk_of_component = Vec::with_capacity(component_txs.len());
    let (mut chunk, mut filled) = (0u32, 0usize);
    for &count in &component_txs {
        if filled >= target {
            chunk += 1;
            filled = 0;
        }
        chunk_of_component.push(chunk);
        filled += count as usize;
    }
    let chunks = chunk as usize + 1;

    // Transactions per chunk, in block order.
    let mut chunk_txs: Vec<Vec<u32>> = vec![Vec::new(); chunks];
    let mut chunk_of_tx = Vec::with_capacity(n);
    for (i, &c) in component_of_tx.iter().enumerate() {
        let k = chunk_of_component[c as usize];
        chunk_txs[k as usize].push(i as u32);
        chunk_of_tx.push(k);
    }

    // Slots grouped by chunk (counting sort, stable in slot order).
    let chunk_of_slot: Vec<u32> = (0..slots as u32)
        .map(|s| {
            let root = sets.find(s) as usize;
            chunk_of_component[component_of_root[root] as usize]
        })
        .collect();
    let mut chunk_slot_counts = vec![0u32; chunks];
    for &k in &chunk_of_slot {
        chunk_slot_counts[k as usize] += 1;
    }
    let mut next = Vec::with_capacity(chunks);
    let mut start = 0u32;
    for &count in &chunk_slot_counts {
        next.push(start);
        start += count;
    }
    let mut position = vec![0u32; slots];
    let mut slot_at = vec![0u32; slots];
    for (s, &k) in chunk_of_slot.iter().enumerate() {
        let p = next[k as usize];
        next[k as usize] += 1;
        position[s] = p;
        slot_at[p as usize] = s as u32;
    }

    Some(Schedule {
        chunk_txs,
        chunk_slot_counts,
        position,
        slot_at,
        chunk_of_tx,
        components: component_txs.len(),
        largest_component: largest,
    })
}
