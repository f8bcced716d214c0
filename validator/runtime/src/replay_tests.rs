//! The replayer against synthetic histories: intact ones reproduce every root in
//! both execution modes; every tampering is refused at its block and leaves the
//! replayer where it was.

use std::sync::Arc;

use dualchain_core::chain_store::{ChainReader, ChainStore};
use dualchain_core::crypto::NetworkId;
use dualchain_core::hash::Digest;
use dualchain_core::types::{Block, BlockCertificate, CertificateError, ChainId};
use dualchain_execution::ExecutionMode;
use dualchain_storage::MemoryEngine;

use crate::replay::{BlockReplayer, ReplayError};
use crate::synthetic::{SyntheticNetwork, SyntheticSpec, write_history};

/// A synthetic history in memory, and ways to read and replay it.
pub(crate) struct History {
    pub(crate) network: SyntheticNetwork,
    pub(crate) reader: ChainReader<Arc<MemoryEngine>>,
    pub(crate) head_root: Digest,
}

impl History {
    pub(crate) fn write(spec: &SyntheticSpec) -> Self {
        let network = spec.network();
        let engine = Arc::new(MemoryEngine::new());
        let info = write_history(spec, &network, engine.clone(), |_| {}).unwrap();
        assert_eq!(info.blocks, spec.blocks);
        let reader = ChainStore::open(engine, spec.chain).unwrap().reader();
        Self {
            network,
            reader,
            head_root: info.state_root,
        }
    }

    pub(crate) fn block(&self, height: u64) -> (Block, Option<BlockCertificate>) {
        (
            self.reader.get_block(height).unwrap().unwrap(),
            self.reader.get_certificate(height).unwrap(),
        )
    }

    pub(crate) fn replayer(
        &self,
        chain: ChainId,
        mode: ExecutionMode,
    ) -> BlockReplayer<Arc<MemoryEngine>> {
        BlockReplayer::open(
            Arc::new(MemoryEngine::new()),
            chain,
            &self.network.genesis,
            mode,
        )
        .unwrap()
    }

    /// Replays blocks `1..=through` into `replayer`, all of which must apply.
    pub(crate) fn replay(&self, replayer: &mut BlockReplayer<Arc<MemoryEngine>>, through: u64) {
        for h in replayer.height() + 1..=through {
            let (block, certificate) = self.block(h);
            replayer.apply(&block, certificate.as_ref()).unwrap();
        }
    }
}

fn delta_spec() -> SyntheticSpec {
    SyntheticSpec {
        blocks: 40,
        txs_per_block: 30,
        accounts: 50,
        certify_every: 10,
        ..SyntheticSpec::default()
    }
}

#[test]
fn an_intact_history_replays_to_the_same_roots_in_both_modes() {
    let spec = delta_spec();
    let history = History::write(&spec);
    for mode in [ExecutionMode::Parallel, ExecutionMode::Sequential] {
        let mut replayer = history.replayer(ChainId::Delta, mode);
        let mut certified = 0;
        for h in 1..=spec.blocks {
            let (block, certificate) = history.block(h);
            let applied = replayer.apply(&block, certificate.as_ref()).unwrap();
            assert_eq!(applied.state_root, block.header.state_root);
            assert_eq!(applied.transactions, 30);
            certified += u64::from(applied.certified);
        }
        assert_eq!(certified, 4, "blocks 10, 20, 30, 40 carry certificates");
        assert_eq!(replayer.certified_through(), 40);
        assert_eq!(replayer.state_root(), history.head_root);
        assert_ne!(history.head_root, replayer_at_genesis_root(&history));
    }
}

fn replayer_at_genesis_root(history: &History) -> Digest {
    history
        .replayer(ChainId::Delta, ExecutionMode::Parallel)
        .state_root()
}

/// `apply` refuses `block` with an error `check` accepts, and the replayer is then
/// unchanged: the intact block still applies.
fn refused(
    history: &History,
    replayer: &mut BlockReplayer<Arc<MemoryEngine>>,
    block: &Block,
    certificate: Option<&BlockCertificate>,
    check: impl FnOnce(&ReplayError) -> bool,
) {
    let (height, root) = (replayer.height(), replayer.state_root());
    let error = replayer.apply(block, certificate).unwrap_err();
    assert!(check(&error), "unexpected error: {error}");
    assert_eq!(error.height(), Some(block.header.height));
    assert_eq!((replayer.height(), replayer.state_root()), (height, root));
    let (intact, certificate) = history.block(height + 1);
    replayer.apply(&intact, certificate.as_ref()).unwrap();
}

#[test]
fn a_tampered_body_is_refused_before_execution() {
    let history = History::write(&delta_spec());
    let mut replayer = history.replayer(ChainId::Delta, ExecutionMode::Parallel);
    history.replay(&mut replayer, 4);
    let (mut block, _) = history.block(5);
    block.body.transactions.swap(0, 1);
    refused(&history, &mut replayer, &block, None, |e| {
        matches!(e, ReplayError::BodyMismatch { height: 5 })
    });
}

#[test]
fn a_header_with_another_state_root_diverges_or_fails_its_certificate() {
    let history = History::write(&delta_spec());
    let mut replayer = history.replayer(ChainId::Delta, ExecutionMode::Parallel);
    history.replay(&mut replayer, 8);
    // Without a certificate: re-execution gives another root.
    let (mut block, _) = history.block(9);
    block.header.state_root = Digest([7; 32]);
    refused(&history, &mut replayer, &block, None, |e| {
        matches!(e, ReplayError::Diverged { height: 9, .. })
    });
    // With the real certificate: it signs the real header, not this one.
    let (mut block, certificate) = history.block(10);
    block.header.state_root = Digest([7; 32]);
    refused(&history, &mut replayer, &block, certificate.as_ref(), |e| {
        matches!(
            e,
            ReplayError::Certificate {
                source: CertificateError::WrongHeader { .. },
                ..
            }
        )
    });
}

#[test]
fn certificates_without_quorum_or_from_another_network_are_refused() {
    let history = History::write(&delta_spec());
    let mut replayer = history.replayer(ChainId::Delta, ExecutionMode::Parallel);
    history.replay(&mut replayer, 9);
    let (block, certificate) = history.block(10);
    let mut short = certificate.clone().unwrap();
    short.signatures.truncate(2);
    refused(&history, &mut replayer, &block, Some(&short), |e| {
        matches!(
            e,
            ReplayError::Certificate {
                source: CertificateError::NoQuorum { .. },
                ..
            }
        )
    });

    history.replay(&mut replayer, 19);
    let (block, _) = history.block(20);
    let elsewhere = NetworkId(Digest([1; 32]));
    let votes = history.network.keys[..3]
        .iter()
        .enumerate()
        .map(|(i, key)| {
            (
                i as u16,
                BlockCertificate::vote(key, &block.header, elsewhere),
            )
        });
    let foreign = BlockCertificate::from_votes(&block.header, votes);
    refused(&history, &mut replayer, &block, Some(&foreign), |e| {
        matches!(
            e,
            ReplayError::Certificate {
                source: CertificateError::BadSignature { .. },
                ..
            }
        )
    });
}

#[test]
fn blocks_out_of_order_or_of_another_network_do_not_extend_the_head() {
    let history = History::write(&delta_spec());
    let mut replayer = history.replayer(ChainId::Delta, ExecutionMode::Parallel);
    let (skipped, _) = history.block(2);
    refused(&history, &mut replayer, &skipped, None, |e| {
        matches!(e, ReplayError::NotNext { height: 2, .. })
    });
    let other = History::write(&SyntheticSpec {
        seed: 2,
        ..delta_spec()
    });
    let (foreign, _) = other.block(2);
    refused(&history, &mut replayer, &foreign, None, |e| {
        matches!(e, ReplayError::NotNext { height: 2, .. })
    });
}

#[test]
fn an_alpha_history_crosses_epochs_and_checks_each_block_s_epoch() {
    let spec = SyntheticSpec {
        chain: ChainId::Alpha,
        blocks: 35,
        epoch_length_alpha_blocks: 10,
        certify_every: 3,
        ..SyntheticSpec::default()
    };
    let history = History::write(&spec);
    let mut replayer = history.replayer(ChainId::Alpha, ExecutionMode::Parallel);
    history.replay(&mut replayer, 11);
    assert_eq!(replayer.epoch(), 1, "block 10 ended epoch 0");
    let (block, certificate) = history.block(12);
    assert_eq!(block.header.epoch, 1);
    assert!(certificate.is_some(), "every third block is certified");
    let mut stale = block.clone();
    stale.header.epoch = 0;
    refused(&history, &mut replayer, &stale, None, |e| {
        matches!(
            e,
            ReplayError::WrongEpoch {
                height: 12,
                expected: 1,
                got: 0
            }
        )
    });
    history.replay(&mut replayer, spec.blocks);
    assert_eq!(replayer.epoch(), 3);
    assert_eq!(replayer.state_root(), history.head_root);
}

#[test]
fn a_replay_resumes_after_its_head_in_the_right_epoch() {
    let spec = SyntheticSpec {
        chain: ChainId::Alpha,
        blocks: 25,
        epoch_length_alpha_blocks: 10,
        ..SyntheticSpec::default()
    };
    let history = History::write(&spec);
    let engine = Arc::new(MemoryEngine::new());
    let open = |engine: &Arc<MemoryEngine>| {
        BlockReplayer::open(
            engine.clone(),
            ChainId::Alpha,
            &history.network.genesis,
            ExecutionMode::Parallel,
        )
        .unwrap()
    };
    let mut first = open(&engine);
    history.replay(&mut first, 10);
    drop(first);
    let mut resumed = open(&engine);
    assert_eq!((resumed.height(), resumed.epoch()), (10, 1));
    history.replay(&mut resumed, spec.blocks);
    assert_eq!(resumed.state_root(), history.head_root);

    let other = SyntheticSpec {
        seed: 9,
        ..spec.clone()
    }
    .network();
    let refused = BlockReplayer::open(
        engine,
        ChainId::Alpha,
        &other.genesis,
        ExecutionMode::Parallel,
    );
    let message = format!("{:#}", refused.err().expect("another genesis"));
    assert!(message.contains("another genesis"), "{message}");
}

#[test]
fn synthetic_specs_that_cannot_be_generated_are_refused() {
    let cases = [
        SyntheticSpec {
            blocks: 0,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            chain: ChainId::Alpha,
            txs_per_block: 1,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            certify_every: 0,
            ..SyntheticSpec::default()
        },
        SyntheticSpec {
            validators: 0,
            ..SyntheticSpec::default()
        },
    ];
    for spec in cases {
        assert!(spec.check().is_err(), "{spec:?}");
    }
}
