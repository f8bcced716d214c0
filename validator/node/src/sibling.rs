//! The other chain of this validator when it runs in another process (the pod's other
//! container), reached over its gRPC API on localhost (`--peer-chain-api`):
//! - [`GrpcSibling`]: is it alive (its newest block) and which epoch it runs, for the
//!   health monitor and the epoch transition;
//! - [`SiblingSource`]: its finalized records as attestations, for the relay that
//!   submits them to this process's chain. Everything read is checked before use:
//!   the chain and height of each header, the certificate and every record decode
//!   with their limits, and the target chain verifies each attestation completely,
//!   so a wrong or hostile sibling can delay the flow but never forge a record.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use dualchain_api::{chain_from_proto, chain_to_proto};
use dualchain_core::Digest;
use dualchain_core::encoding::Canonical;
use dualchain_core::types::{Attestation, BlockCertificate, BlockHeader, ChainId, RecordProof};
use dualchain_proto::limits::{DEFAULT_MAX_GRPC_MESSAGE_BYTES, MAX_RECORDS_PER_PAGE};
use dualchain_proto::v1;
use dualchain_proto::{CrossChainClient, NodeClient};
use dualchain_runtime::epoch_transition::ChainEpochs;
use dualchain_runtime::health::{SiblingProbe, SiblingStatus};
use dualchain_runtime::relay::RelaySource;
use futures::future::BoxFuture;
use tonic::transport::{Channel, Endpoint};

/// How long one call to the sibling may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Pages of one block's records read at most (a block changes far fewer records; a
/// sibling that keeps paging is cut off).
const MAX_PAGES_PER_BLOCK: usize = 64;

/// A lazily connected channel to the sibling's API (reconnects on its own after the
/// sibling restarts).
pub fn channel(url: &str) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid --peer-chain-api URL {url:?}"))?
        .connect_timeout(Duration::from_secs(1));
    Ok(endpoint.connect_lazy())
}

/// The sibling's status, bounded in time.
async fn sibling_status(channel: Channel) -> Result<v1::NodeStatus, String> {
    let mut client = NodeClient::new(channel);
    tokio::time::timeout(CALL_TIMEOUT, client.get_status(v1::GetStatusRequest {}))
        .await
        .map_err(|_| "timed out".to_string())?
        .map(tonic::Response::into_inner)
        .map_err(|e| e.message().to_string())
}

/// The other chain's container of this pod, asked over its gRPC status.
pub struct GrpcSibling {
    url: String,
    channel: Channel,
}

impl GrpcSibling {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.to_string(),
            channel: channel(url)?,
        })
    }
}

impl SiblingProbe for GrpcSibling {
    fn status(&mut self) -> BoxFuture<'_, Result<SiblingStatus, String>> {
        Box::pin(async move {
            let status = sibling_status(self.channel.clone()).await?;
            let chain = status.chains.first().ok_or("no chain in its status")?;
            let id = chain_from_proto(chain.chain()).ok_or("unspecified chain in its status")?;
            Ok(SiblingStatus {
                chain: id,
                last_block_unix_ms: chain.last_block_time_unix_ms,
                epochs: sibling_epochs(chain),
            })
        })
    }

    fn describe(&self) -> String {
        self.url.clone()
    }
}

/// What the sibling's status shows the epoch transition: nothing while it is stopped
/// (starting, or it left the set) or when its set digest is not 32 bytes.
fn sibling_epochs(chain: &v1::ChainStatus) -> Option<ChainEpochs> {
    if chain.health() == v1::Health::Stopped {
        return None;
    }
    let set: [u8; 32] = chain.validator_set_digest.as_slice().try_into().ok()?;
    Some(ChainEpochs {
        reached: chain.epoch,
        set: Digest(set),
        head_epoch: chain.head_epoch,
        reachable: None,
    })
}

/// The sibling chain as a relay source.
pub struct SiblingSource {
    /// The chain the sibling must serve (the other chain of this process's).
    chain: ChainId,
    url: String,
    channel: Channel,
}

impl SiblingSource {
    pub fn new(chain: ChainId, url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            chain,
            url: url.to_string(),
            channel: channel(url)?,
        })
    }

    fn client(&self) -> CrossChainClient<Channel> {
        CrossChainClient::new(self.channel.clone())
            .max_decoding_message_size(DEFAULT_MAX_GRPC_MESSAGE_BYTES)
    }

    async fn head(&self) -> anyhow::Result<u64> {
        let status = sibling_status(self.channel.clone())
            .await
            .map_err(|e| anyhow!("asking the sibling at {} for its status: {e}", self.url))?;
        let chain = status
            .chains
            .iter()
            .find(|c| chain_from_proto(c.chain()) == Some(self.chain))
            .ok_or_else(|| {
                anyhow!(
                    "the sibling at {} does not serve the {} chain",
                    self.url,
                    self.chain
                )
            })?;
        Ok(chain.height)
    }

    /// One page of the block's records, checked to be of the asked block.
    async fn page(&self, height: u64, start: u32) -> anyhow::Result<Option<v1::BlockRecords>> {
        let request = v1::GetBlockRecordsRequest {
            chain: chain_to_proto(self.chain) as i32,
            height,
            start,
            limit: MAX_RECORDS_PER_PAGE as u32,
        };
        let answer = tokio::time::timeout(CALL_TIMEOUT, self.client().get_block_records(request))
            .await
            .map_err(|_| anyhow!("the sibling at {} timed out", self.url))?;
        match answer {
            Ok(page) => Ok(Some(page.into_inner())),
            // Not there yet (the sibling restarted from an older state): wait.
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(anyhow!(
                "reading {} block {height} records from {}: {}",
                self.chain,
                self.url,
                status.message()
            )),
        }
    }

    async fn attestations(&self, height: u64) -> anyhow::Result<Option<Vec<Attestation>>> {
        let mut records = Vec::new();
        let mut certified: Option<(BlockHeader, BlockCertificate)> = None;
        let mut start = 0;
        let mut complete = false;
        for _ in 0..MAX_PAGES_PER_BLOCK {
            let Some(page) = self.page(height, start).await? else {
                return Ok(None);
            };
            let header = BlockHeader::from_canonical_bytes(&page.header_bytes)
                .context("the sibling sent a malformed header")?;
            if header.chain != self.chain || header.height != height {
                bail!(
                    "the sibling answered {} block {} for {} block {height}",
                    header.chain,
                    header.height,
                    self.chain
                );
            }
            for bytes in &page.records {
                records.push(
                    RecordProof::from_canonical_bytes(bytes)
                        .context("the sibling sent a malformed record proof")?,
                );
            }
            if records.is_empty() && page.next_start.is_none() {
                return Ok(Some(Vec::new()));
            }
            let Some(certificate) = page.certificate_bytes else {
                // Records, but no certificate on the sibling yet: wait for it.
                return Ok(None);
            };
            let certificate = BlockCertificate::from_canonical_bytes(&certificate)
                .context("the sibling sent a malformed certificate")?;
            certified = Some((header, certificate));
            match page.next_start {
                Some(next) if next > start => start = next,
                Some(_) => bail!("the sibling's record pages do not advance"),
                None => {
                    complete = true;
                    break;
                }
            }
        }
        let (Some((header, certificate)), true) = (certified, complete) else {
            bail!("the sibling sent more than {MAX_PAGES_PER_BLOCK} pages for one block");
        };
        Ok(Some(
            records
                .into_iter()
                .map(|record| record.attest(header.clone(), certificate.clone()))
                .collect(),
        ))
    }
}

impl RelaySource for SiblingSource {
    fn head_height(&self) -> BoxFuture<'_, anyhow::Result<u64>> {
        Box::pin(self.head())
    }

    fn attestations_at(
        &self,
        height: u64,
    ) -> BoxFuture<'_, anyhow::Result<Option<Vec<Attestation>>>> {
        Box::pin(self.attestations(height))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(health: v1::Health, digest: Vec<u8>) -> v1::ChainStatus {
        v1::ChainStatus {
            chain: v1::Chain::Delta as i32,
            epoch: 4,
            head_epoch: 3,
            health: health as i32,
            validator_set_digest: digest,
            ..Default::default()
        }
    }

    #[test]
    fn the_sibling_shows_its_epochs_only_while_it_runs_a_committee() {
        let running = status(v1::Health::Degraded, vec![9; 32]);
        assert_eq!(
            sibling_epochs(&running),
            Some(ChainEpochs {
                reached: 4,
                set: Digest([9; 32]),
                head_epoch: 3,
                reachable: None,
            })
        );
        // Starting, or it left the set: nothing to compare.
        assert_eq!(
            sibling_epochs(&status(v1::Health::Stopped, vec![9; 32])),
            None
        );
        // An older node without the field, or garbage: not a set digest.
        for digest in [Vec::new(), vec![9; 31], vec![9; 33]] {
            assert_eq!(sibling_epochs(&status(v1::Health::Healthy, digest)), None);
        }
    }
}
