//! Service `Transactions`: admission of canonical transaction bytes.
//!
//! Rules (from `transactions.proto`):
//! - a message with more than [`MAX_TXS_PER_MESSAGE`] transactions fails the call
//!   with INVALID_ARGUMENT and admits nothing from that message;
//! - a transaction over its kind's limit (`MAX_TX_BYTES`, or `MAX_ATTEST_TX_BYTES`
//!   for an attestation; [`SignedTransaction::max_len_of_encoding`] reads the kind
//!   tag) gets `TX_STATUS_TOO_LARGE` here and never reaches the chain (it is not
//!   decoded);
//! - every other transaction goes to [`crate::ChainApi::submit`], on a blocking
//!   thread (decoding and ML-DSA verification are CPU-bound), and its result
//!   keeps the transaction's position: the request index for `SubmitBatch`, the
//!   index across the whole stream for `SubmitTransactions`;
//! - the first message of a stream fixes its chain (FAILED_PRECONDITION if this
//!   port does not serve it); a later message naming another chain fails the
//!   call with INVALID_ARGUMENT, and what was admitted before stays admitted;
//! - the stream summary lists only rejected results, the first
//!   [`MAX_SUMMARY_REJECTED_RESULTS`] of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dualchain_core::types::SignedTransaction;
use dualchain_proto::limits::{MAX_SUMMARY_REJECTED_RESULTS, MAX_TXS_PER_MESSAGE};
use dualchain_proto::v1::{
    Chain, StatusCount, SubmitBatchRequest, SubmitBatchResponse, SubmitRequest, SubmitSummary,
    TxResult, TxStatus,
};
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use crate::chain;
use crate::convert::admission_to_proto;
use crate::server::Context;
use crate::status::blocking;

/// The `Transactions` service of one chain.
pub(crate) struct TransactionsService {
    context: Arc<Context>,
}

impl TransactionsService {
    pub(crate) fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn submit_batch_inner(
        &self,
        request: SubmitBatchRequest,
    ) -> Result<SubmitBatchResponse, Status> {
        let api = &self.context.api;
        let chain = chain::resolve(request.chain, api.chain())?;
        check_count(request.transactions.len(), "the batch")?;
        let results = admit(&self.context.blocking, api, request.transactions, 0).await?;
        let accepted = results
            .iter()
            .filter(|result| result.status() == TxStatus::Accepted)
            .count();
        Ok(SubmitBatchResponse {
            chain: chain as i32,
            // Both counts are bounded by MAX_TXS_PER_MESSAGE.
            accepted: accepted as u32,
            rejected: (results.len() - accepted) as u32,
            results,
            mempool_depth: api.mempool_depth(),
        })
    }

    async fn submit_stream_inner(
        &self,
        mut stream: Streaming<SubmitRequest>,
    ) -> Result<SubmitSummary, Status> {
        let api = &self.context.api;
        let mut shutdown = self.context.shutdown.clone();
        let mut summary = SummaryBuilder::default();
        let mut stream_chain: Option<Chain> = None;
        let mut first_message_at: Option<Instant> = None;
        let mut message_number: u64 = 0;
        let idle_limit = self.context.submission_idle_timeout;
        loop {
            let message = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopping| *stopping) => {
                    return Err(Status::unavailable(
                        "the server is shutting down; transactions admitted so far stay admitted",
                    ));
                }
                message = tokio::time::timeout(idle_limit, stream.message()) => match message {
                    Ok(message) => message.map_err(crate::oversize::remap)?,
                    Err(_) => {
                        return Err(Status::deadline_exceeded(format!(
                            "no message on the stream for {idle_limit:?}; transactions admitted \
                             so far stay admitted"
                        )));
                    }
                },
            };
            let Some(message) = message else { break };
            first_message_at.get_or_insert_with(Instant::now);
            match stream_chain {
                None => stream_chain = Some(chain::resolve(message.chain, api.chain())?),
                Some(fixed) => {
                    let named = chain::resolve(message.chain, api.chain()).ok();
                    if named != Some(fixed) {
                        return Err(Status::invalid_argument(format!(
                            "message {message_number} of the stream names chain value {}, but the \
                             stream's first message fixed {}; transactions admitted before stay \
                             admitted",
                            message.chain,
                            fixed.as_str_name()
                        )));
                    }
                }
            }
            check_count(
                message.transactions.len(),
                &format!("stream message {message_number}"),
            )?;
            let results = admit(
                &self.context.blocking,
                api,
                message.transactions,
                summary.received,
            )
            .await?;
            summary.add(results);
            message_number += 1;
        }
        let chain = stream_chain.unwrap_or_else(|| chain::to_proto(api.chain()));
        let elapsed_ms = first_message_at.map_or(0, |at| at.elapsed().as_millis() as u64);
        Ok(summary.finish(chain, elapsed_ms, api.mempool_depth()))
    }
}

#[tonic::async_trait]
impl dualchain_proto::Transactions for TransactionsService {
    async fn submit_transactions(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<SubmitSummary>, Status> {
        let started = Instant::now();
        let result = self.submit_stream_inner(request.into_inner()).await;
        self.context
            .metrics
            .observe("SubmitTransactions", started, &result);
        result.map(Response::new)
    }

    async fn submit_batch(
        &self,
        request: Request<SubmitBatchRequest>,
    ) -> Result<Response<SubmitBatchResponse>, Status> {
        let started = Instant::now();
        let result = self.submit_batch_inner(request.into_inner()).await;
        self.context
            .metrics
            .observe("SubmitBatch", started, &result);
        result.map(Response::new)
    }
}

/// Refuses a message carrying more transactions than the documented maximum.
fn check_count(count: usize, what: &str) -> Result<(), Status> {
    if count > MAX_TXS_PER_MESSAGE {
        return Err(Status::invalid_argument(format!(
            "{what} carries {count} transactions, at most {MAX_TXS_PER_MESSAGE} are allowed per \
             message; nothing from it was admitted"
        )));
    }
    Ok(())
}

/// Admits one message's transactions and answers one result per transaction,
/// in order, indexed from `first_index`.
async fn admit(
    threads: &Arc<Semaphore>,
    api: &Arc<dyn crate::ChainApi>,
    transactions: Vec<Vec<u8>>,
    first_index: u64,
) -> Result<Vec<TxResult>, Status> {
    let count = transactions.len();
    let mut results: Vec<Option<TxResult>> = vec![None; count];
    let mut candidates = Vec::with_capacity(count);
    let mut positions = Vec::with_capacity(count);
    for (position, tx) in transactions.into_iter().enumerate() {
        let limit = SignedTransaction::max_len_of_encoding(&tx);
        if tx.len() > limit {
            results[position] = Some(TxResult {
                index: first_index + position as u64,
                digest: Vec::new(),
                status: TxStatus::TooLarge as i32,
                reason: format!(
                    "transaction is {} bytes, above the limit of {limit} bytes of its kind",
                    tx.len()
                ),
                retry_after_ms: 0,
            });
        } else {
            positions.push(position);
            // Takes ownership of the buffer: no copy.
            candidates.push(Bytes::from(tx));
        }
    }
    if !candidates.is_empty() {
        let chain_api = Arc::clone(api);
        let submitted = candidates.len();
        let answers = blocking(threads, "transaction admission", move || {
            chain_api.submit(&candidates)
        })
        .await?;
        if answers.len() != submitted {
            tracing::error!(
                submitted,
                answered = answers.len(),
                "chain answered a different number of admission results"
            );
            return Err(Status::internal(format!(
                "internal error: the chain answered {} results for {submitted} transactions",
                answers.len()
            )));
        }
        for (position, answer) in positions.into_iter().zip(answers) {
            let mut result = admission_to_proto(answer);
            result.index = first_index + position as u64;
            results[position] = Some(result);
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// Accumulates the summary of a `SubmitTransactions` stream.
#[derive(Default)]
struct SummaryBuilder {
    received: u64,
    accepted: u64,
    counts: BTreeMap<i32, u64>,
    rejected_results: Vec<TxResult>,
    truncated: bool,
}

impl SummaryBuilder {
    fn add(&mut self, results: Vec<TxResult>) {
        for result in results {
            self.received += 1;
            *self.counts.entry(result.status).or_default() += 1;
            if result.status() == TxStatus::Accepted {
                self.accepted += 1;
            } else if self.rejected_results.len() < MAX_SUMMARY_REJECTED_RESULTS {
                self.rejected_results.push(result);
            } else {
                self.truncated = true;
            }
        }
    }

    fn finish(self, chain: Chain, elapsed_ms: u64, mempool_depth: u64) -> SubmitSummary {
        SubmitSummary {
            chain: chain as i32,
            received: self.received,
            accepted: self.accepted,
            rejected: self.received - self.accepted,
            status_counts: self
                .counts
                .into_iter()
                .map(|(status, count)| StatusCount { status, count })
                .collect(),
            rejected_results: self.rejected_results,
            results_truncated: self.truncated,
            elapsed_ms,
            mempool_depth,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(index: u64, status: TxStatus) -> TxResult {
        TxResult {
            index,
            digest: vec![1; 32],
            status: status as i32,
            reason: String::new(),
            retry_after_ms: 0,
        }
    }

    #[test]
    fn summary_counts_by_status_in_status_order_and_truncates() {
        let mut builder = SummaryBuilder::default();
        let mut results = vec![
            result(0, TxStatus::MempoolFull),
            result(1, TxStatus::Accepted),
            result(2, TxStatus::Duplicate),
        ];
        results.extend(
            (3..3 + MAX_SUMMARY_REJECTED_RESULTS as u64)
                .map(|i| result(i, TxStatus::InvalidSignature)),
        );
        builder.add(results);
        let summary = builder.finish(Chain::Delta, 7, 42);
        let total = 3 + MAX_SUMMARY_REJECTED_RESULTS as u64;
        assert_eq!(summary.received, total);
        assert_eq!(summary.accepted, 1);
        assert_eq!(summary.rejected, total - 1);
        let statuses: Vec<_> = summary
            .status_counts
            .iter()
            .map(|c| (c.status(), c.count))
            .collect();
        assert_eq!(
            statuses,
            vec![
                (TxStatus::Accepted, 1),
                (TxStatus::Duplicate, 1),
                (TxStatus::MempoolFull, 1),
                (
                    TxStatus::InvalidSignature,
                    MAX_SUMMARY_REJECTED_RESULTS as u64
                ),
            ]
        );
        assert_eq!(summary.rejected_results.len(), MAX_SUMMARY_REJECTED_RESULTS);
        assert_eq!(summary.rejected_results[0].index, 0);
        assert_eq!(summary.rejected_results[1].index, 2);
        assert!(summary.results_truncated);
        assert_eq!(summary.elapsed_ms, 7);
        assert_eq!(summary.mempool_depth, 42);
    }

    #[test]
    fn exactly_the_cap_is_not_truncated() {
        let mut builder = SummaryBuilder::default();
        builder.add(
            (0..MAX_SUMMARY_REJECTED_RESULTS as u64)
                .map(|i| result(i, TxStatus::FeeTooLow))
                .collect(),
        );
        assert!(!builder.finish(Chain::Alpha, 0, 0).results_truncated);
    }
}
