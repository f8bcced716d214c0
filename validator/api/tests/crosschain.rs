//! Service `CrossChain` on 127.0.0.1:0 with the generated client, against a fake chain.

mod support;

use std::sync::atomic::Ordering;

use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Attestation, BlockCertificate, BlockHeader, ChainId, RecordProof};
use dualchain_merkle::{Proof, SparseMerkleTree, hash_key, hash_value};
use dualchain_proto::CrossChainClient;
use dualchain_proto::v1::{Chain, GetAttestationRequest, GetBlockRecordsRequest, GetRecordRequest};
use tonic::Code;

use support::{FakeChain, Running, bounded, options_with_token};

async fn alpha_server() -> Running {
    Running::start(FakeChain::new(ChainId::Alpha, 64), options_with_token()).await
}

/// `count` record proofs (against a tree of just them) for the fake's height `height`.
fn record_proofs(count: u8) -> Vec<RecordProof> {
    let records: Vec<(Vec<u8>, Vec<u8>)> =
        (0..count).map(|i| (vec![i; 40], vec![i, 1, 2])).collect();
    let tree =
        SparseMerkleTree::from_leaves(records.iter().map(|(k, v)| (hash_key(k), hash_value(v))));
    records
        .into_iter()
        .map(|(key, value)| RecordProof {
            proof: tree.prove(&hash_key(&key)),
            key,
            value,
        })
        .collect()
}

/// A server whose heights 1 (not certified) and 2 (certified) both changed the same
/// `count` records.
async fn two_blocks_with_records(count: u8) -> (Running, Vec<RecordProof>) {
    let server = alpha_server().await;
    server.fake.commit(0);
    server.fake.certify.store(true, Ordering::SeqCst);
    server.fake.commit(0);
    let proofs = record_proofs(count);
    for height in [1, 2] {
        server
            .fake
            .record_proofs
            .lock()
            .unwrap()
            .insert(height, proofs.clone());
    }
    (server, proofs)
}

#[tokio::test]
async fn a_record_comes_with_a_proof_of_inclusion_or_absence() {
    bounded(async {
        let server = alpha_server().await;
        server.fake.commit(0);
        {
            let mut records = server.fake.records.lock().unwrap();
            records.insert(b"lock/1".to_vec(), b"value one".to_vec());
            records.insert(b"lock/2".to_vec(), b"value two".to_vec());
        }
        let mut client = CrossChainClient::new(server.channel().await);
        let present = client
            .get_record(GetRecordRequest {
                chain: Chain::Alpha as i32,
                key: b"lock/2".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(present.height, 1);
        assert_eq!(present.chain(), Chain::Alpha);
        assert_eq!(present.value.as_deref(), Some(&b"value two"[..]));
        let root: [u8; 32] = present.state_root.clone().try_into().unwrap();
        let proof = Proof::from_bytes(&present.proof).unwrap();
        proof
            .verify(&root, &hash_key(b"lock/2"), Some(&hash_value(b"value two")))
            .unwrap();
        // The same proof does not vouch for another value.
        assert!(
            proof
                .verify(&root, &hash_key(b"lock/2"), Some(&hash_value(b"forged")))
                .is_err()
        );

        let absent = client
            .get_record(GetRecordRequest {
                chain: 0,
                key: b"lock/3".to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(absent.value, None);
        Proof::from_bytes(&absent.proof)
            .unwrap()
            .verify(&root, &hash_key(b"lock/3"), None)
            .unwrap();
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn bad_keys_limits_and_chains_are_refused() {
    bounded(async {
        let server = alpha_server().await;
        let mut client = CrossChainClient::new(server.channel().await);
        for key in [Vec::new(), vec![1; 257]] {
            let status = client
                .get_record(GetRecordRequest { chain: 0, key })
                .await
                .unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        }
        let status = client
            .get_attestation(GetAttestationRequest {
                chain: 0,
                height: 0,
                key: vec![1; 65],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .get_block_records(GetBlockRecordsRequest {
                chain: 0,
                height: 0,
                start: 0,
                limit: 1_025,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = client
            .get_record(GetRecordRequest {
                chain: Chain::Delta as i32,
                key: vec![1],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        let status = client
            .get_block_records(GetBlockRecordsRequest {
                chain: 0,
                height: 9,
                start: 0,
                limit: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn block_records_page_and_carry_the_certificate_once_held() {
    bounded(async {
        let (server, proofs) = two_blocks_with_records(5).await;
        let mut client = CrossChainClient::new(server.channel().await);
        let page = |height, start, limit| GetBlockRecordsRequest {
            chain: 0,
            height,
            start,
            limit,
        };

        let uncertified = client
            .get_block_records(page(1, 0, 0))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(uncertified.certificate_bytes, None);
        assert_eq!(uncertified.records.len(), 5);
        assert_eq!(uncertified.next_start, None);

        let mut seen = Vec::new();
        let mut start = 0;
        loop {
            let answer = client
                .get_block_records(page(2, start, 2))
                .await
                .unwrap()
                .into_inner();
            let header = BlockHeader::from_canonical_bytes(&answer.header_bytes).unwrap();
            assert_eq!(header, server.fake.stored_block(2).unwrap().block.header);
            let certificate = BlockCertificate::from_canonical_bytes(
                answer.certificate_bytes.as_deref().unwrap(),
            )
            .unwrap();
            assert_eq!(
                Some(certificate),
                server.fake.stored_block(2).unwrap().certificate
            );
            assert!(answer.records.len() <= 2);
            for bytes in &answer.records {
                seen.push(RecordProof::from_canonical_bytes(bytes).unwrap());
            }
            match answer.next_start {
                Some(next) => start = next,
                None => break,
            }
        }
        assert_eq!(seen, proofs);
        drop(server.stop().await);
    })
    .await;
}

#[tokio::test]
async fn an_attestation_is_served_once_certified_and_only_for_changed_records() {
    bounded(async {
        let (server, proofs) = two_blocks_with_records(2).await;
        let mut client = CrossChainClient::new(server.channel().await);
        let ask = |height, key: &[u8]| GetAttestationRequest {
            chain: Chain::Alpha as i32,
            height,
            key: key.to_vec(),
        };
        let status = client
            .get_attestation(ask(1, &proofs[0].key))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        let status = client.get_attestation(ask(2, &[9; 40])).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");

        let answer = client
            .get_attestation(ask(2, &proofs[1].key))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.height, 2);
        let attestation = Attestation::from_canonical_bytes(&answer.attestation).unwrap();
        let stored = server.fake.stored_block(2).unwrap();
        assert_eq!(attestation.header, stored.block.header);
        assert_eq!(Some(attestation.certificate), stored.certificate);
        assert_eq!(attestation.key, proofs[1].key);
        assert_eq!(attestation.value, proofs[1].value);
        drop(server.stop().await);
    })
    .await;
}
