//! Small `dualchain.v1` client helpers with bounded waits, for the tools, the tests and the devnet.

use std::time::Duration;

use anyhow::Context;
use dualchain_core::Digest;
use dualchain_core::crypto::NetworkId;
use dualchain_core::types::ChainId;
use dualchain_proto::v1::{self, Chain};
use dualchain_proto::{NodeClient, TransactionsClient};
use tonic::transport::{Channel, Endpoint};

/// Bound of every unary call made here.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The protocol's name of a chain.
pub fn proto_chain(chain: ChainId) -> Chain {
    match chain {
        ChainId::Alpha => Chain::Alpha,
        ChainId::Delta => Chain::Delta,
    }
}

/// `alpha` / `delta` for a protocol chain.
pub fn chain_name(chain: Chain) -> String {
    chain
        .as_str_name()
        .trim_start_matches("CHAIN_")
        .to_ascii_lowercase()
}

/// A channel to `url` (`http://host:port`), connected within a second or two. No
/// per-request timeout, so it also carries streams; unary helpers bound their calls.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{url:?} is not a valid endpoint URL"))?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))
}

async fn bounded<T>(
    url: &str,
    what: &str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .with_context(|| format!("{what} on {url} timed out"))?
        .with_context(|| format!("{what} on {url}"))?
        .into_inner())
}

/// `Node/GetStatus` of the node at `url`.
pub async fn node_status(url: &str) -> anyhow::Result<v1::NodeStatus> {
    let mut node = NodeClient::new(connect(url).await?);
    bounded(url, "GetStatus", node.get_status(v1::GetStatusRequest {})).await
}

/// The network id the node at `url` reports (`NodeStatus.network_id`): what every
/// transaction sent to it must be signed for. A missing or malformed id (a node that
/// predates network-bound signatures) is an error rather than a guess.
pub async fn network_id(url: &str) -> anyhow::Result<NetworkId> {
    let reported = node_status(url).await?.network_id;
    let bytes: [u8; 32] = reported.as_slice().try_into().map_err(|_| {
        anyhow::anyhow!(
            "{url} reports a network id of {} bytes, not 32: it cannot be signed for",
            reported.len()
        )
    })?;
    Ok(NetworkId(Digest(bytes)))
}

/// The status of `chain` on the node at `url`.
pub async fn chain_status(url: &str, chain: Chain) -> anyhow::Result<v1::ChainStatus> {
    node_status(url)
        .await?
        .chains
        .into_iter()
        .find(|c| c.chain() == chain)
        .with_context(|| format!("{url} does not report chain {}", chain.as_str_name()))
}

/// (head height, finalized height) of `chain` on the node at `url`.
pub async fn chain_heights(url: &str, chain: Chain) -> anyhow::Result<(u64, u64)> {
    let c = chain_status(url, chain).await?;
    Ok((c.height, c.finalized_height))
}

/// Block `height` of `chain` (header, and the certificate if asked for).
pub async fn block(
    url: &str,
    chain: Chain,
    height: u64,
    include_certificate: bool,
) -> anyhow::Result<v1::Block> {
    let mut node = NodeClient::new(connect(url).await?);
    let request = v1::GetBlockRequest {
        chain: chain as i32,
        height,
        include_body: false,
        include_certificate,
    };
    bounded(url, "GetBlock", node.get_block(request)).await
}

/// (state root, block digest) of `chain` at `height`, hex.
pub async fn block_id(url: &str, chain: Chain, height: u64) -> anyhow::Result<(String, String)> {
    let header = block(url, chain, height, false)
        .await?
        .header
        .context("block without header")?;
    Ok((hex::encode(header.state_root), hex::encode(header.digest)))
}

/// Whether `url` reports `dualchain.v1.Node` as serving: `grpc.health.v1` if the
/// server offers it, else a successful `GetStatus`.
pub async fn is_ready(url: &str) -> bool {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Ok(channel) = connect(url).await else {
        return false;
    };
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let check = health.check(tonic_health::pb::HealthCheckRequest {
        service: "dualchain.v1.Node".into(),
    });
    match tokio::time::timeout(Duration::from_secs(2), check).await {
        Ok(Ok(r)) => return r.into_inner().status() == ServingStatus::Serving,
        Ok(Err(status)) if status.code() != tonic::Code::Unimplemented => return false,
        _ => {}
    }
    let mut node = NodeClient::new(channel);
    matches!(
        tokio::time::timeout(
            Duration::from_secs(2),
            node.get_status(v1::GetStatusRequest {})
        )
        .await,
        Ok(Ok(_))
    )
}

/// Submits `txs` (canonical bytes) to `chain` at `url` in batches of at most 5,000;
/// returns how many were accepted. A failed call counts as none accepted.
pub async fn submit(url: &str, chain: Chain, txs: &[Vec<u8>]) -> anyhow::Result<u32> {
    let mut client = TransactionsClient::new(connect(url).await?)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut accepted = 0;
    for chunk in txs.chunks(5_000) {
        let request = v1::SubmitBatchRequest {
            chain: chain as i32,
            transactions: chunk.to_vec(),
        };
        if let Ok(r) = bounded(url, "SubmitBatch", client.submit_batch(request)).await {
            accepted += r.accepted;
        }
    }
    Ok(accepted)
}
