//! Peer scoring: misbehaviour costs points; below the ban threshold a peer is
//! disconnected and refused for a while.
//!
//! Rules (why these numbers): a score starts at 0 and is capped at `max`. Each frame
//! delivered successfully earns one point, so a long-lived honest peer builds a
//! cushion against the occasional timeout, but a misbehaving peer cannot buy
//! forgiveness cheaply: one malformed frame costs as much as 25 good ones. Offences
//! that only a faulty or malicious peer commits (oversize, garbage, unexpected frames)
//! cost far more than those a slow honest peer can cause (request timeouts, missed
//! heartbeats). A peer whose score reaches `ban_threshold` is banned
//! for `ban_duration`; when the ban ends it starts again from 0. Time is passed in, so
//! the rules are testable without sleeping.
//!
//! Slowness alone never bans: timeouts and missed heartbeats lower a score at most
//! to half the ban threshold. An overloaded node misses heartbeats and answers late to everyone at
//! once; if that banned it, every honest peer would ban it (and it them, as its own
//! timers fire late), and a network under load would cut itself below quorum. A peer
//! that stops answering is disconnected by the heartbeat instead, and reconnects
//! when it recovers. A slow peer that also misbehaves is banned sooner, since it
//! starts from a low score.

use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::identity::PeerId;

/// Scoring parameters.
#[derive(Clone, Debug)]
pub struct ScoreConfig {
    pub max: i32,
    pub ban_threshold: i32,
    pub ban_duration: Duration,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            max: 100,
            ban_threshold: -100,
            ban_duration: Duration::from_secs(60),
        }
    }
}

/// Things a peer can do wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// Undecodable header, unknown version/chain/kind, truncated frame.
    MalformedFrame,
    /// Declared length above the kind's limit.
    OversizeFrame,
    /// A valid frame where its kind is not allowed (e.g. a request on a uni stream).
    UnexpectedFrame,
    /// No answer to our request in time.
    RequestTimeout,
    /// No answer to a heartbeat in time.
    HeartbeatMissed,
    /// A well-formed message the layer above found wrong: a vertex or vote whose
    /// signature does not verify, of the other chain, or with impossible parents.
    /// Reported through [`crate::Network::report`]: a frame that decodes earned a
    /// point, and garbage must not be a way to earn score.
    InvalidContent,
    /// A vertex whose parents the sender never provided (dropped after every fetch
    /// of them failed): an honest node sends only vertices whose parents it holds,
    /// but a slow link can make it look so, hence the mild penalty.
    MissingParents,
}

impl Offence {
    pub const fn penalty(self) -> i32 {
        match self {
            Offence::MalformedFrame => 25,
            Offence::OversizeFrame => 40,
            Offence::UnexpectedFrame => 20,
            Offence::RequestTimeout => 5,
            Offence::HeartbeatMissed => 10,
            Offence::InvalidContent => 25,
            Offence::MissingParents => 5,
        }
    }

    /// Whether an honest peer that is only slow or overloaded commits it. Missing
    /// parents are not: the sender must serve what it referenced, and a peer that
    /// sends vertices on parents nobody has must not be able to do so forever.
    pub const fn is_slowness(self) -> bool {
        matches!(self, Offence::RequestTimeout | Offence::HeartbeatMissed)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Offence::MalformedFrame => "malformed",
            Offence::OversizeFrame => "oversize",
            Offence::UnexpectedFrame => "unexpected",
            Offence::RequestTimeout => "request_timeout",
            Offence::HeartbeatMissed => "heartbeat_missed",
            Offence::InvalidContent => "invalid_content",
            Offence::MissingParents => "missing_parents",
        }
    }
}

/// What the caller must do after a penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// The peer just crossed the threshold: disconnect it.
    Ban,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    score: i32,
    banned_until: Option<Instant>,
}

/// Scores of all peers seen (shared by all connection tasks).
#[derive(Debug)]
pub struct PeerScores {
    config: ScoreConfig,
    entries: DashMap<PeerId, Entry>,
}

impl PeerScores {
    pub fn new(config: ScoreConfig) -> Self {
        Self {
            config,
            entries: DashMap::new(),
        }
    }

    pub fn score(&self, peer: &PeerId) -> i32 {
        self.entries.get(peer).map_or(0, |e| e.score)
    }

    pub fn penalise(&self, peer: PeerId, offence: Offence, now: Instant) -> Verdict {
        let mut entry = self.entries.entry(peer).or_insert(Entry {
            score: 0,
            banned_until: None,
        });
        let lowered = entry.score.saturating_sub(offence.penalty());
        entry.score = if offence.is_slowness() {
            lowered.max(self.slowness_floor()).min(entry.score)
        } else {
            lowered
        };
        if entry.score <= self.config.ban_threshold && entry.banned_until.is_none() {
            entry.banned_until = Some(now + self.config.ban_duration);
            Verdict::Ban
        } else if entry.banned_until.is_some() {
            Verdict::Ban
        } else {
            Verdict::Keep
        }
    }

    /// The lowest score slowness alone can bring a peer to.
    fn slowness_floor(&self) -> i32 {
        self.config.ban_threshold / 2
    }

    pub fn reward(&self, peer: PeerId) {
        self.reward_by(peer, 1);
    }

    /// Credits `frames` good frames at once (one table update per batch read).
    pub fn reward_by(&self, peer: PeerId, frames: usize) {
        let mut entry = self.entries.entry(peer).or_insert(Entry {
            score: 0,
            banned_until: None,
        });
        if entry.banned_until.is_none() {
            let gain = i32::try_from(frames).unwrap_or(i32::MAX);
            entry.score = entry.score.saturating_add(gain).min(self.config.max);
        }
    }

    /// Whether the peer is banned at `now`; an expired ban is lifted (score reset).
    pub fn is_banned(&self, peer: &PeerId, now: Instant) -> bool {
        let Some(mut entry) = self.entries.get_mut(peer) else {
            return false;
        };
        match entry.banned_until {
            Some(until) if now < until => true,
            Some(_) => {
                entry.banned_until = None;
                entry.score = 0;
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(b: u8) -> PeerId {
        PeerId::from_bytes([b; 32])
    }

    #[test]
    fn garbage_leads_to_ban_and_ban_expires() {
        let scores = PeerScores::new(ScoreConfig {
            ban_duration: Duration::from_secs(10),
            ..ScoreConfig::default()
        });
        let t0 = Instant::now();
        let p = peer(1);
        for _ in 0..3 {
            assert_eq!(
                scores.penalise(p, Offence::MalformedFrame, t0),
                Verdict::Keep
            );
        }
        assert_eq!(
            scores.penalise(p, Offence::MalformedFrame, t0),
            Verdict::Ban
        );
        assert!(scores.is_banned(&p, t0 + Duration::from_secs(9)));
        assert!(!scores.is_banned(&p, t0 + Duration::from_secs(10)));
        assert_eq!(scores.score(&p), 0);
        assert!(!scores.is_banned(&peer(2), t0));
    }

    #[test]
    fn rewards_are_capped_and_cushion_timeouts() {
        let scores = PeerScores::new(ScoreConfig::default());
        let p = peer(1);
        for _ in 0..500 {
            scores.reward(p);
        }
        assert_eq!(scores.score(&p), 100);
        let t0 = Instant::now();
        for _ in 0..20 {
            assert_eq!(
                scores.penalise(p, Offence::RequestTimeout, t0),
                Verdict::Keep
            );
        }
        assert_eq!(scores.score(&p), 0);
    }

    #[test]
    fn slowness_alone_never_bans_but_lowers_the_bar_for_misbehaviour() {
        let scores = PeerScores::new(ScoreConfig::default());
        let (slow, fresh) = (peer(1), peer(2));
        let t0 = Instant::now();
        for offence in [Offence::HeartbeatMissed, Offence::RequestTimeout] {
            for _ in 0..1_000 {
                assert_eq!(scores.penalise(slow, offence, t0), Verdict::Keep);
            }
        }
        assert_eq!(scores.score(&slow), -50);
        // Two malformed frames ban the slow peer; a fresh one survives three.
        assert_eq!(
            scores.penalise(slow, Offence::MalformedFrame, t0),
            Verdict::Keep
        );
        assert_eq!(
            scores.penalise(slow, Offence::MalformedFrame, t0),
            Verdict::Ban
        );
        for _ in 0..3 {
            assert_eq!(
                scores.penalise(fresh, Offence::MalformedFrame, t0),
                Verdict::Keep
            );
        }
        // Below the floor already, slowness takes nothing more (and never raises).
        assert_eq!(
            scores.penalise(fresh, Offence::HeartbeatMissed, t0),
            Verdict::Keep
        );
        assert_eq!(scores.score(&fresh), -75);
    }
}
