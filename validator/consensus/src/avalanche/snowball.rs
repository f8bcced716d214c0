//! Snowball on one slot: the preference, its consecutive successes and a confidence.
//!
//! The values of a slot are [`Preference::Skip`] and one [`Preference::Commit`] per
//! vertex of the slot (an equivocating leader makes several). One *poll* samples `k`
//! peers, with two thresholds ([`Alphas`]): a value answered by a majority
//! (`α_preference`) can win the preference, and one answered by `α_confidence` (at
//! least the majority) is a *success* that counts towards deciding. Following
//! Snowball (Team Rocket et al., *Scalable and Probabilistic Leaderless BFT Consensus
//! through Metastability*, 2019, fig. 3) with the two thresholds of avalanchego:
//! - every majority adds to the value's running count, and the preference moves to a
//!   value whose count exceeds the preferred one's;
//! - the streak counts successes of one value in a row (any poll without a success
//!   resets it);
//! - the slot is decided when the preferred value has `β` successes in a row **and**
//!   the confidence is at least [`FINAL_CONFIDENCE_PPM`].
//!
//! Why two thresholds: with one high threshold, preferences move only on polls that
//! already agree. Honest nodes split between a leader's vertex and a skip (some had
//! the vertex when the slot opened, some did not) then never reach it, and when `k`
//! is every other validator each poll sees the same split: the slot stays open for
//! ever (seed 19 of the 10-validator, 2-Byzantine, 5 %-loss Alpha simulation). A
//! majority is enough to move, and moving is what breaks the split.
//!
//! Confidence is the exponential moving average of the poll outcomes (0.9 times the
//! previous value plus 0.1 times this poll's), seeded with the first outcome. A poll's
//! outcome is the share of `α` that voted for the preference, capped at 1: a
//! successful poll scores 1, so the average measures how steadily recent polls
//! succeeded rather than how many peers answered — one Byzantine peer of four
//! withholding or contradicting votes cannot keep honest nodes below the threshold for
//! ever. It is kept in integer parts per million so
//! every replay computes exactly the same numbers.

use std::collections::BTreeMap;

use super::message::Preference;

/// Parts per million: the unit of confidence.
pub const PPM: u32 = 1_000_000;
/// Confidence a slot needs to be decided (0.95).
pub const FINAL_CONFIDENCE_PPM: u32 = 950_000;

/// The votes a poll needs for a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alphas {
    /// To move the preference: more than half of the sample.
    pub preference: u32,
    /// To count as a success towards the decision: at least `preference`.
    pub confidence: u32,
}

impl Alphas {
    /// Both thresholds for a sample of `k` peers: a majority, and the larger of a
    /// majority and 80 % of `k` (rounded down).
    pub fn for_sample(k: usize) -> Self {
        let majority = (k / 2 + 1) as u32;
        Self {
            preference: majority,
            confidence: majority.max((k * 4 / 5) as u32),
        }
    }
}

/// The Snowball state of one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snowball {
    preference: Preference,
    /// Successful polls per value.
    successes: BTreeMap<Preference, u64>,
    /// The value of the latest success and how many successes it has had in a row.
    streak: Option<(Preference, u32)>,
    confidence_ppm: u32,
    polls: u64,
    decided: Option<Preference>,
}

/// What one poll did to a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollOutcome {
    /// Some value reached `α_confidence` votes.
    Success,
    /// A value had a majority but not `α_confidence`: it may have taken the
    /// preference; the streak starts again.
    Majority,
    /// No value had a majority.
    Failure,
    /// The slot was already decided; the poll changed nothing.
    AlreadyDecided,
}

impl Snowball {
    /// A slot whose local preference (what this node saw) is `initial`.
    pub fn new(initial: Preference) -> Self {
        debug_assert!(initial != Preference::Unknown, "a slot opens with a value");
        Self {
            preference: initial,
            successes: BTreeMap::new(),
            streak: None,
            confidence_ppm: 0,
            polls: 0,
            decided: None,
        }
    }

    /// A slot decided before a restart (read back from the store).
    pub fn decided_as(value: Preference) -> Self {
        let mut s = Self::new(value);
        s.decided = Some(value);
        s.confidence_ppm = PPM;
        s
    }

    pub fn preference(&self) -> Preference {
        self.decided.unwrap_or(self.preference)
    }

    pub fn decided(&self) -> Option<Preference> {
        self.decided
    }

    pub fn confidence_ppm(&self) -> u32 {
        self.confidence_ppm
    }

    pub fn polls(&self) -> u64 {
        self.polls
    }

    /// Applies one poll's votes (`Unknown` votes count for nothing), at most one per
    /// peer of the sample `alpha` was computed for: then at most one value can have a
    /// majority.
    pub fn record(&mut self, votes: &[Preference], alpha: Alphas, beta: u32) -> PollOutcome {
        assert!(
            alpha.preference > 0 && alpha.confidence >= alpha.preference && beta > 0,
            "0 < α_preference ≤ α_confidence and β > 0"
        );
        assert!(
            votes.len() < 2 * alpha.preference as usize,
            "{} votes for a sample whose majority is {}",
            votes.len(),
            alpha.preference
        );
        if self.decided.is_some() {
            return PollOutcome::AlreadyDecided;
        }
        let mut tally: BTreeMap<Preference, u32> = BTreeMap::new();
        for vote in votes.iter().filter(|v| **v != Preference::Unknown) {
            *tally.entry(*vote).or_default() += 1;
        }
        let majority = tally
            .iter()
            .find(|(_, n)| **n >= alpha.preference)
            .map(|(v, n)| (*v, *n));
        self.record_confidence(tally.get(&self.preference).copied().unwrap_or(0), alpha);
        let Some((value, votes_for)) = majority else {
            self.streak = None;
            return PollOutcome::Failure;
        };
        let count = self.successes.entry(value).or_default();
        *count += 1;
        let count = *count;
        let preferred = self.successes.get(&self.preference).copied().unwrap_or(0);
        if value != self.preference && count > preferred {
            self.preference = value;
        }
        if votes_for < alpha.confidence {
            self.streak = None;
            return PollOutcome::Majority;
        }
        let run = match self.streak {
            Some((last, run)) if last == value => run + 1,
            _ => 1,
        };
        self.streak = Some((value, run));
        if value == self.preference && run >= beta && self.confidence_ppm >= FINAL_CONFIDENCE_PPM {
            self.decided = Some(value);
        }
        PollOutcome::Success
    }

    /// Folds this poll's outcome, the share of `α_confidence` that voted for the
    /// preference (capped at 1), into the moving average.
    fn record_confidence(&mut self, for_preference: u32, alpha: Alphas) {
        let needed = u64::from(alpha.confidence);
        let outcome_ppm =
            (u64::from(for_preference.min(alpha.confidence)) * u64::from(PPM) / needed) as u32;
        self.polls += 1;
        self.confidence_ppm = if self.polls == 1 {
            outcome_ppm
        } else {
            ((u64::from(self.confidence_ppm) * 9 + u64::from(outcome_ppm)) / 10) as u32
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualchain_core::Digest;

    const A: Preference = Preference::Commit(Digest([1; 32]));
    const B: Preference = Preference::Commit(Digest([2; 32]));
    /// One threshold for both, as in a sample of three.
    const TWO: Alphas = Alphas {
        preference: 2,
        confidence: 2,
    };

    #[test]
    fn beta_unanimous_polls_decide_the_preference() {
        let mut s = Snowball::new(A);
        for _ in 0..4 {
            assert_eq!(s.record(&[A, A, A], TWO, 5), PollOutcome::Success);
            assert_eq!(s.decided(), None);
        }
        assert_eq!(s.record(&[A, A, A], TWO, 5), PollOutcome::Success);
        assert_eq!(s.decided(), Some(A));
        assert_eq!(s.confidence_ppm(), PPM);
        assert_eq!(
            s.record(&[Preference::Skip; 3], TWO, 5),
            PollOutcome::AlreadyDecided
        );
        assert_eq!(s.preference(), A);
    }

    #[test]
    fn a_failed_poll_resets_the_streak() {
        let mut s = Snowball::new(A);
        for _ in 0..4 {
            s.record(&[A, A, A], TWO, 5);
        }
        assert_eq!(
            s.record(&[A, Preference::Skip, Preference::Unknown], TWO, 5),
            PollOutcome::Failure
        );
        for _ in 0..4 {
            s.record(&[A, A, A], TWO, 5);
        }
        assert_eq!(s.decided(), None, "four in a row after the reset");
        s.record(&[A, A, A], TWO, 5);
        assert_eq!(s.decided(), Some(A));
    }

    #[test]
    fn the_preference_follows_the_value_with_more_successes() {
        let mut s = Snowball::new(Preference::Skip);
        assert_eq!(
            s.record(&[A, A, Preference::Skip], TWO, 3),
            PollOutcome::Success
        );
        assert_eq!(s.preference(), A, "A's one success beats Skip's none");
        s.record(&[Preference::Skip; 3], TWO, 3);
        assert_eq!(s.preference(), A, "a tie keeps the preference");
        s.record(&[Preference::Skip; 3], TWO, 3);
        assert_eq!(s.preference(), Preference::Skip);
        // Three Skip successes in a row, but the two polls that went against the
        // preference keep the confidence below 0.95: not decided yet.
        assert!(s.confidence_ppm() < FINAL_CONFIDENCE_PPM);
        assert_eq!(s.decided(), None);
        while s.decided().is_none() {
            s.record(&[Preference::Skip; 3], TWO, 3);
            assert!(s.polls() < 100);
        }
        assert_eq!(s.decided(), Some(Preference::Skip));
    }

    #[test]
    fn confidence_is_an_average_of_poll_outcomes_and_gates_the_decision() {
        let mut s = Snowball::new(A);
        // First poll: one vote of the two needed → 0.5.
        s.record(&[A, Preference::Unknown], TWO, 1);
        assert_eq!(s.confidence_ppm(), 500_000);
        // A success with β = 1 is not enough while confidence is below 0.95.
        s.record(&[A, A], TWO, 1);
        assert_eq!(s.confidence_ppm(), 550_000);
        assert_eq!(s.decided(), None);
        let mut polls = 2;
        while s.decided().is_none() {
            s.record(&[A, A], TWO, 1);
            polls += 1;
            assert!(polls < 100, "confidence converges to 1");
        }
        assert!(s.confidence_ppm() >= FINAL_CONFIDENCE_PPM);
        // 0.5 · 0.9ⁿ ≤ 0.05 first at n = 22 successes after the first poll.
        assert_eq!(polls, 23);
    }

    #[test]
    fn thresholds_are_a_majority_and_eighty_percent() {
        let a = |k| {
            let x = Alphas::for_sample(k);
            (x.preference, x.confidence)
        };
        assert_eq!(a(1), (1, 1));
        assert_eq!(a(3), (2, 2));
        assert_eq!(a(7), (4, 5));
        assert_eq!(a(9), (5, 7));
        assert_eq!(a(10), (6, 8));
    }

    #[test]
    fn a_majority_moves_a_split_preference_that_no_poll_could_confirm() {
        // Nine peers: five back A, three Skip, one B (an equivocating leader). No
        // value reaches α_confidence = 7, but A's majority wins the Skip node over.
        let nine = Alphas::for_sample(9);
        let split = [
            A,
            A,
            A,
            A,
            A,
            Preference::Skip,
            Preference::Skip,
            Preference::Skip,
            B,
        ];
        let mut s = Snowball::new(Preference::Skip);
        assert_eq!(s.record(&split, nine, 3), PollOutcome::Majority);
        assert_eq!(s.preference(), A);
        // Once everyone moved, polls succeed and decide as usual.
        while s.decided().is_none() {
            assert_eq!(s.record(&[A; 9], nine, 3), PollOutcome::Success);
            assert!(s.polls() < 100);
        }
        assert_eq!(s.decided(), Some(A));
        // A majority resets the streak: β successes must be in a row.
        let mut s = Snowball::new(A);
        s.record(&[A; 9], nine, 3);
        s.record(&[A; 9], nine, 3);
        assert_eq!(s.record(&split, nine, 3), PollOutcome::Majority);
        s.record(&[A; 9], nine, 3);
        s.record(&[A; 9], nine, 3);
        assert_eq!(
            s.decided(),
            None,
            "two in a row after the majority-only poll"
        );
        // Without a majority nothing moves.
        let mut s = Snowball::new(Preference::Skip);
        let even = [
            A,
            A,
            A,
            A,
            Preference::Skip,
            Preference::Skip,
            B,
            B,
            Preference::Unknown,
        ];
        assert_eq!(s.record(&even, nine, 3), PollOutcome::Failure);
        assert_eq!(s.preference(), Preference::Skip);
    }
}
