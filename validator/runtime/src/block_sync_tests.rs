//! Block sync against peers serving synthetic histories through the block server's
//! own answer: honest, tampering, silent and lying peers. Every run ends with the
//! replayer at the honest tip and its roots, or stopped where safety requires.

use std::collections::BTreeMap;
use std::sync::Arc;

use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{BlockRange, BlockRangeRequest, ChainId};
use dualchain_execution::ExecutionMode;
use dualchain_net::PeerId;
use dualchain_storage::MemoryEngine;

use crate::block_server::answer_range;
use crate::block_sync::{BlockSync, BlockSyncConfig, Diverged, Misbehaviour, Ready};
use crate::replay::BlockReplayer;
use crate::replay::tests::History;
use crate::synthetic::SyntheticSpec;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Honest,
    /// Serves every block with another state root (bodies still match headers).
    Tampering,
    /// Never answers.
    Silent,
    /// Claims a far head and serves nothing.
    Lying,
    /// Honest, but the first time it serves block 10 it has no certificate for it
    /// yet (as a peer near its tip).
    LateCertificate,
}

struct Network<'h> {
    history: &'h History,
    peers: BTreeMap<PeerId, Behaviour>,
    asked: BTreeMap<PeerId, usize>,
    served_block_10: bool,
}

impl<'h> Network<'h> {
    fn new(history: &'h History, behaviours: &[Behaviour]) -> Self {
        let peers = behaviours
            .iter()
            .enumerate()
            .map(|(i, b)| (PeerId::from_bytes([i as u8 + 1; 32]), *b))
            .collect();
        Self {
            history,
            peers,
            asked: BTreeMap::new(),
            served_block_10: false,
        }
    }

    fn peer(&self, behaviour: Behaviour) -> PeerId {
        *self
            .peers
            .iter()
            .find(|(_, b)| **b == behaviour)
            .expect("such a peer")
            .0
    }

    /// What `peer` answers to `request`, with its size on the wire.
    fn answer(&mut self, peer: PeerId, request: BlockRangeRequest) -> Option<(BlockRange, usize)> {
        *self.asked.entry(peer).or_default() += 1;
        let honest = || {
            let bytes = answer_range(&self.history.reader, request);
            (
                BlockRange::from_canonical_bytes(&bytes).unwrap(),
                bytes.len(),
            )
        };
        match self.peers[&peer] {
            Behaviour::Honest => Some(honest()),
            Behaviour::Tampering => {
                let (mut range, bytes) = honest();
                for entry in &mut range.blocks {
                    entry.block.header.state_root = Digest([0xee; 32]);
                }
                Some((range, bytes))
            }
            Behaviour::LateCertificate => {
                let (mut range, bytes) = honest();
                for entry in &mut range.blocks {
                    if entry.block.header.height == 10 && !self.served_block_10 {
                        self.served_block_10 = true;
                        entry.certificate = None;
                    }
                }
                Some((range, bytes))
            }
            Behaviour::Silent => None,
            Behaviour::Lying => Some((
                BlockRange {
                    head: 1_000_000,
                    blocks: Vec::new(),
                },
                16,
            )),
        }
    }
}

/// Runs the sync until it is caught up or `steps` of 100 ms passed; returns whether
/// it caught up.
fn run(
    sync: &mut BlockSync,
    replayer: &mut BlockReplayer<Arc<MemoryEngine>>,
    net: &mut Network<'_>,
    steps: u64,
) -> Result<bool, Diverged> {
    for peer in net.peers.keys() {
        sync.add_peer(*peer);
    }
    for step in 0..steps {
        let now = step * 100;
        for (peer, request) in sync.poll_requests(now) {
            if let Some((range, bytes)) = net.answer(peer, request) {
                sync.on_answer(peer, request.from, range, bytes);
            }
        }
        loop {
            let ready = sync.take_ready(replayer.epoch(), |header, certificate| {
                replayer.check_certificate(header, certificate).is_ok()
            })?;
            let Ready::Blocks(blocks) = ready else {
                break;
            };
            for entry in blocks {
                replayer
                    .apply(&entry.block, entry.certificate.as_ref())
                    .expect("a covered block re-executes to its roots");
            }
        }
        if sync.caught_up() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn delta_history(blocks: u64) -> History {
    History::write(&SyntheticSpec {
        blocks,
        txs_per_block: 4,
        accounts: 40,
        certify_every: 10,
        ..SyntheticSpec::default()
    })
}

fn sync_for(history: &History, chain: ChainId) -> (BlockSync, BlockReplayer<Arc<MemoryEngine>>) {
    let replayer = history.replayer(chain, ExecutionMode::Parallel);
    let cfg = BlockSyncConfig {
        range_len: 16,
        parallel: 3,
        timeout_ms: 1_000,
        refresh_ms: 500,
    };
    let genesis = history.network.genesis.hash();
    (BlockSync::new(cfg, chain, 0, genesis), replayer)
}

#[test]
fn honest_peers_bring_a_node_to_the_tip_in_parallel_ranges() {
    let history = delta_history(300);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Delta);
    let mut net = Network::new(&history, &[Behaviour::Honest; 3]);
    assert!(run(&mut sync, &mut replayer, &mut net, 500).unwrap());
    assert_eq!(replayer.height(), 300);
    assert_eq!(replayer.state_root(), history.head_root);
    assert_eq!(replayer.certified_through(), 300);
    assert!(sync.take_bans().is_empty());
    assert_eq!(
        net.asked.len(),
        3,
        "every peer served ranges: {:?}",
        net.asked
    );
}

#[test]
fn a_tampering_peer_is_banned_and_its_ranges_come_from_another() {
    let history = delta_history(200);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Delta);
    let mut net = Network::new(&history, &[Behaviour::Tampering, Behaviour::Honest]);
    let tamperer = net.peer(Behaviour::Tampering);
    assert!(run(&mut sync, &mut replayer, &mut net, 500).unwrap());
    assert_eq!(replayer.state_root(), history.head_root);
    let bans = sync.take_bans();
    assert_eq!(bans.len(), 1, "{bans:?}");
    assert_eq!(bans[0].0, tamperer);
    assert!(
        matches!(
            bans[0].1,
            Misbehaviour::BadCertificate { .. } | Misbehaviour::NotOnCertifiedChain { .. }
        ),
        "{bans:?}"
    );
}

#[test]
fn silent_and_lying_peers_delay_but_do_not_stop_the_sync() {
    let history = delta_history(120);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Delta);
    let mut net = Network::new(
        &history,
        &[Behaviour::Silent, Behaviour::Lying, Behaviour::Honest],
    );
    assert!(run(&mut sync, &mut replayer, &mut net, 2_000).unwrap());
    assert_eq!(replayer.height(), 120);
    assert_eq!(replayer.state_root(), history.head_root);
    assert!(sync.take_bans().is_empty(), "nobody sent a false block");
    assert_eq!(
        sync.best_claim(),
        Some(120),
        "the liar's claim is disregarded"
    );
    assert!(net.asked[&net.peer(Behaviour::Silent)] >= 1);
}

#[test]
fn without_any_certificate_nothing_is_committed() {
    let history = History::write(&SyntheticSpec {
        blocks: 40,
        certify_every: 1_000,
        ..SyntheticSpec::default()
    });
    // Only the last block (40) is certified; peers that serve only the first 30
    // blocks cannot make any of them committable.
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Delta);
    let mut net = Network::new(&history, &[Behaviour::Honest]);
    let peer = net.peer(Behaviour::Honest);
    sync.add_peer(peer);
    for (peer, request) in sync.poll_requests(0) {
        let (mut range, bytes) = net.answer(peer, request).unwrap();
        range.blocks.truncate(10);
        sync.on_answer(peer, request.from, range, bytes);
    }
    let ready = sync
        .take_ready(0, |h, c| replayer.check_certificate(h, c).is_ok())
        .unwrap();
    assert_eq!(ready, Ready::Waiting);
    // With the rest of the history, up to the certificate, everything commits.
    assert!(run(&mut sync, &mut replayer, &mut net, 500).unwrap());
    assert_eq!(replayer.state_root(), history.head_root);
}

#[test]
fn a_node_whose_head_is_not_on_the_certified_chain_is_told_it_diverged() {
    let history = delta_history(30);
    let replayer_root = history.block(5).0.header.digest();
    let mut replayer = history.replayer(ChainId::Delta, ExecutionMode::Parallel);
    history.replay(&mut replayer, 5);
    // Claim a head digest that is not block 5's.
    assert_ne!(replayer_root, Digest([3; 32]));
    let mut sync = BlockSync::new(
        BlockSyncConfig::default(),
        ChainId::Delta,
        5,
        Digest([3; 32]),
    );
    let mut net = Network::new(&history, &[Behaviour::Honest]);
    let error = run(&mut sync, &mut replayer, &mut net, 100).unwrap_err();
    assert_eq!(error.height, 6);
    assert_eq!(error.certified_parent, replayer_root);
}

#[test]
fn alpha_sync_crosses_certified_epoch_boundaries() {
    let spec = SyntheticSpec {
        chain: ChainId::Alpha,
        blocks: 47,
        epoch_length_alpha_blocks: 10,
        certify_every: 5,
        ..SyntheticSpec::default()
    };
    let history = History::write(&spec);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Alpha);
    let mut net = Network::new(&history, &[Behaviour::Honest, Behaviour::Honest]);
    assert!(run(&mut sync, &mut replayer, &mut net, 500).unwrap());
    assert_eq!(replayer.epoch(), 4, "boundaries at 10, 20, 30, 40");
    assert_eq!(replayer.state_root(), history.head_root);
}

#[test]
fn an_uncertified_boundary_block_is_not_committed_on_a_later_epoch_s_word() {
    // Boundary 10 has no certificate; block 12 (epoch 1) has one, which cannot be
    // checked before epoch 1's set is known, i.e. before block 10 is committed.
    let spec = SyntheticSpec {
        chain: ChainId::Alpha,
        blocks: 30,
        epoch_length_alpha_blocks: 10,
        certify_every: 3,
        ..SyntheticSpec::default()
    };
    let history = History::write(&spec);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Alpha);
    let mut net = Network::new(&history, &[Behaviour::Honest]);
    assert!(!run(&mut sync, &mut replayer, &mut net, 200).unwrap());
    assert_eq!(
        replayer.height(),
        9,
        "block 9 is the last one certified in epoch 0"
    );
    assert_eq!(sync.next_height(), 10);
}

/// An Alpha history of `blocks` in epochs of 10, synced from one peer that serves
/// block 10 (the end of the first epoch) without its certificate the first time.
fn sync_with_a_late_boundary_certificate(
    blocks: u64,
) -> (History, BlockReplayer<Arc<MemoryEngine>>) {
    let spec = SyntheticSpec {
        chain: ChainId::Alpha,
        blocks,
        epoch_length_alpha_blocks: 10,
        certify_every: 5,
        ..SyntheticSpec::default()
    };
    let history = History::write(&spec);
    let (mut sync, mut replayer) = sync_for(&history, ChainId::Alpha);
    let mut net = Network::new(&history, &[Behaviour::LateCertificate]);
    assert!(run(&mut sync, &mut replayer, &mut net, 500).unwrap());
    assert!(
        net.served_block_10,
        "block 10 was first served without its certificate"
    );
    assert_eq!(replayer.state_root(), history.head_root);
    (history, replayer)
}

#[test]
fn a_boundary_block_served_before_its_certificate_existed_is_asked_again() {
    let (_, replayer) = sync_with_a_late_boundary_certificate(30);
    assert_eq!(replayer.epoch(), 3);
}

#[test]
fn a_tip_block_served_before_its_certificate_existed_is_asked_again_though_nothing_follows_it() {
    // Block 10 ends the history and its epoch, and nothing comes after it (a chain
    // whose next epoch waits for the joiner that is syncing): its late certificate
    // is fetched by asking again once a refresh interval passed.
    let (_, replayer) = sync_with_a_late_boundary_certificate(10);
    assert_eq!(replayer.height(), 10);
}

#[test]
fn a_range_a_peer_could_not_be_asked_for_goes_elsewhere_at_once_and_the_peer_rests_briefly() {
    let history = delta_history(20);
    let (mut sync, _) = sync_for(&history, ChainId::Delta);
    let (a, b) = (PeerId::from_bytes([1; 32]), PeerId::from_bytes([2; 32]));
    sync.add_peer(a);
    let first = sync.poll_requests(0);
    assert_eq!(first.len(), 1, "one peer, one range: {first:?}");
    let (asked, request) = &first[0];
    assert_eq!(*asked, a);
    sync.add_peer(b);
    // `a` is not connected (yet): its range is free again at once, for `b`.
    sync.on_unreachable(a, request.from, 10);
    let again = sync.poll_requests(10);
    assert!(
        again.iter().any(|(p, r)| *p == b && r.from == request.from),
        "{again:?}"
    );
    assert!(again.iter().all(|(p, _)| *p != a), "a rests: {again:?}");
    // After one refresh interval (500 ms here), not a timeout (1 s), `a` is asked again.
    let later = sync.poll_requests(10 + 500);
    assert!(later.iter().any(|(p, _)| *p == a), "{later:?}");
    // A late report for a range `a` no longer holds changes nothing.
    let held_by_b = again
        .iter()
        .find(|(p, _)| *p == b)
        .map(|(_, r)| r.from)
        .expect("asked of b");
    sync.on_unreachable(a, held_by_b, 600);
    assert!(
        sync.poll_requests(600)
            .iter()
            .all(|(_, r)| r.from != held_by_b),
        "b's range stays b's"
    );
}
