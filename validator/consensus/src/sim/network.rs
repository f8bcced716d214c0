//! The simulator's virtual time and network: an event queue ordered by (time,
//! insertion sequence), a latency model, message loss and partitions — all drawn from
//! the run's seeded RNG, so a seed fixes the whole run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Arc;

use dualchain_core::types::ValidatorIndex;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::consensus::TimeMs;

/// Message delay: `base + uniform(0..=jitter)`, plus `tail_ms` with `tail_probability`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LatencyModel {
    pub base_ms: TimeMs,
    pub jitter_ms: TimeMs,
    pub tail_probability: f64,
    pub tail_ms: TimeMs,
}

impl Default for LatencyModel {
    /// A regional network: 10–50 ms, 2% of messages 150 ms slower.
    fn default() -> Self {
        Self {
            base_ms: 10,
            jitter_ms: 40,
            tail_probability: 0.02,
            tail_ms: 150,
        }
    }
}

impl LatencyModel {
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> TimeMs {
        let mut d = self.base_ms + rng.random_range(0..=self.jitter_ms);
        if self.tail_probability > 0.0 && rng.random_bool(self.tail_probability) {
            d += self.tail_ms;
        }
        d
    }
}

/// Something scheduled in virtual time.
#[derive(Clone, Debug)]
pub enum Event {
    Deliver {
        to: ValidatorIndex,
        from: ValidatorIndex,
        bytes: Arc<[u8]>,
    },
    Timer {
        node: ValidatorIndex,
        incarnation: u64,
        at: TimeMs,
    },
    Batch {
        node: ValidatorIndex,
    },
    Start {
        node: ValidatorIndex,
    },
    Crash {
        node: ValidatorIndex,
    },
    Restart {
        node: ValidatorIndex,
    },
    PartitionStart,
    PartitionHeal,
}

struct Scheduled {
    at: TimeMs,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed: the heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The event queue.
#[derive(Default)]
pub struct EventQueue {
    heap: BinaryHeap<Scheduled>,
    seq: u64,
}

impl EventQueue {
    pub fn push(&mut self, at: TimeMs, event: Event) {
        self.seq += 1;
        self.heap.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    pub fn pop(&mut self) -> Option<(TimeMs, Event)> {
        self.heap.pop().map(|s| (s.at, s.event))
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// Link state: loss probability and an optional partition into two sides.
pub struct Links {
    pub loss: f64,
    pub latency: LatencyModel,
    /// `side[i]` of each node while partitioned.
    pub side: Vec<bool>,
    pub partitioned: bool,
}

impl Links {
    /// The delivery delay of one message from `from` to `to`, or `None` if dropped.
    pub fn transmit(
        &self,
        rng: &mut ChaCha8Rng,
        from: ValidatorIndex,
        to: ValidatorIndex,
    ) -> Option<TimeMs> {
        if self.partitioned && self.side[usize::from(from)] != self.side[usize::from(to)] {
            return None;
        }
        if self.loss > 0.0 && rng.random_bool(self.loss) {
            return None;
        }
        Some(self.latency.sample(rng))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn queue_pops_in_time_then_insertion_order() {
        let mut q = EventQueue::default();
        q.push(5, Event::PartitionHeal);
        q.push(1, Event::Batch { node: 1 });
        q.push(1, Event::Batch { node: 2 });
        let order: Vec<_> = std::iter::from_fn(|| q.pop())
            .map(|(t, e)| (t, format!("{e:?}")))
            .collect();
        assert_eq!(order[0], (1, "Batch { node: 1 }".to_string()));
        assert_eq!(order[1], (1, "Batch { node: 2 }".to_string()));
        assert_eq!(order[2].0, 5);
    }

    #[test]
    fn partitions_drop_cross_traffic_and_loss_is_roughly_as_configured() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut links = Links {
            loss: 0.05,
            latency: LatencyModel::default(),
            side: vec![true, true, false],
            partitioned: true,
        };
        assert_eq!(links.transmit(&mut rng, 0, 2), None);
        links.partitioned = false;
        let delivered = (0..10_000)
            .filter(|_| links.transmit(&mut rng, 0, 2).is_some())
            .count();
        assert!((9_350..9_650).contains(&delivered), "{delivered}");
        for _ in 0..1000 {
            let d = LatencyModel::default().sample(&mut rng);
            assert!((10..=200).contains(&d));
        }
    }
}
