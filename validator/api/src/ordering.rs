//! `Node.StreamOrdering`: every consensus commit on this node, live, in commit order.
//!
//! Unlike finality, ordering is not replayable: commits are not kept as such
//! (their transactions end up in blocks, which `StreamFinality` replays). So the
//! stream is a best-effort live feed with honest accounting: each stream has
//! [`ORDERING_STREAM_BUFFER`] events of buffer; a reader slower than the chain
//! loses commits rather than holding the node, and the next event it receives
//! carries how many it lost (`missed_before`, also counted in
//! `dualchain_api_ordering_commits_missed_total`). The broadcast channel behind it
//! keeps at most its capacity of commits for the slowest subscriber, so a slow
//! reader costs bounded memory.
//!
//! When the server shuts down or the chain stops publishing, the stream ends
//! with UNAVAILABLE.

use std::sync::Arc;

use dualchain_proto::limits::ORDERING_STREAM_BUFFER;
use dualchain_proto::v1::{OrderingEvent, StreamOrderingRequest};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::OrderedCommit;
use crate::convert::ordering_events;
use crate::request_metrics::{RequestMetrics, StreamGauge};
use crate::server::Context;
use dualchain_core::types::ChainId;

/// The response stream of `StreamOrdering`.
pub(crate) type OrderingStream = ReceiverStream<Result<OrderingEvent, Status>>;

/// Validates the request, subscribes, and starts the task feeding the stream.
pub(crate) fn open(
    context: &Arc<Context>,
    request: StreamOrderingRequest,
) -> Result<OrderingStream, Status> {
    crate::chain::resolve(request.chain, context.api.chain())?;
    let live = context.api.subscribe_ordering();
    let (sender, receiver) = mpsc::channel(ORDERING_STREAM_BUFFER);
    let pump = Pump {
        chain: context.api.chain(),
        sender,
        shutdown: context.shutdown.clone(),
        metrics: context.metrics.clone(),
        missed: 0,
        _open: context.metrics.ordering_stream_open(),
    };
    tokio::spawn(pump.run(live));
    Ok(ReceiverStream::new(receiver))
}

/// Feeds one stream from the chain's commit broadcast.
struct Pump {
    chain: ChainId,
    sender: mpsc::Sender<Result<OrderingEvent, Status>>,
    shutdown: watch::Receiver<bool>,
    metrics: RequestMetrics,
    /// Commits lost since the last event the reader was given.
    missed: u64,
    /// Keeps the open-streams gauge up while the task runs.
    _open: StreamGauge,
}

/// What woke the loop.
enum Wake {
    Shutdown,
    ClientGone,
    Received(Result<Arc<OrderedCommit>, broadcast::error::RecvError>),
}

impl Pump {
    async fn run(mut self, mut live: broadcast::Receiver<Arc<OrderedCommit>>) {
        loop {
            let mut shutdown = self.shutdown.clone();
            let wake = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopping| *stopping) => Wake::Shutdown,
                _ = self.sender.closed() => Wake::ClientGone,
                received = live.recv() => Wake::Received(received),
            };
            match wake {
                Wake::Shutdown => return self.end("the server is shutting down"),
                Wake::ClientGone => return,
                Wake::Received(Ok(commit)) => self.offer(&commit),
                Wake::Received(Err(broadcast::error::RecvError::Lagged(lost))) => {
                    self.lost(lost);
                }
                Wake::Received(Err(broadcast::error::RecvError::Closed)) => {
                    return self
                        .end("the chain stopped publishing commits (halted or shutting down)");
                }
            }
        }
    }

    /// Queues the commit's events if the reader has room for all of them;
    /// otherwise counts the commit as lost (never a part of one).
    fn offer(&mut self, commit: &OrderedCommit) {
        let events = ordering_events(self.chain, commit, self.missed);
        let Ok(permits) = self.sender.try_reserve_many(events.len()) else {
            return self.lost(1);
        };
        for (permit, event) in permits.zip(events) {
            permit.send(Ok(event));
        }
        self.missed = 0;
    }

    fn lost(&mut self, commits: u64) {
        self.missed = self.missed.saturating_add(commits);
        self.metrics.ordering_missed(commits);
    }

    /// Ends the stream with UNAVAILABLE if there is room to say so.
    fn end(&self, why: &str) {
        tracing::debug!(why, "ordering stream ended");
        let _ = self.sender.try_send(Err(Status::unavailable(format!(
            "{why}; reconnect to follow new commits (commits are not replayed: \
             StreamFinality replays what blocks hold)"
        ))));
    }
}
