//! `Node.StreamFinality`: every finalized height exactly once, in order.
//!
//! How the guarantee is kept:
//! 1. The stream subscribes to [`crate::ChainApi::subscribe_finality`] *before*
//!    reading the finalized height `F`, so no block finalized after that read
//!    can be missed.
//! 2. With `from_height = h`, heights `h..=F` are replayed from
//!    [`crate::ChainApi::block`] (marked `replayed`). The replay window is
//!    bounded by [`crate::ApiOptions::max_replay_blocks`] (10 000 by default):
//!    an older `from_height`, or one whose block is no longer kept, is
//!    OUT_OF_RANGE before the stream opens. Without `from_height` the stream
//!    starts at `F + 1`.
//! 3. Live events below the next expected height are skipped (already sent);
//!    an event above it means events were missed (the broadcast receiver
//!    lagged), and the gap is re-read from the store before the event is sent.
//!    A `Lagged` notice triggers the same catch-up up to the finalized height
//!    at once.
//! 4. If a missing height is no longer stored, the stream ends with
//!    RESOURCE_EXHAUSTED saying how many events were lost and where to
//!    reconnect (`from_height`), as `node.proto` documents for slow readers.
//!
//! Each stream has its own buffer of [`crate::ApiOptions::finality_stream_buffer`]
//! events (at least [`MIN_FINALITY_STREAM_BUFFER`]). A slow client fills it and
//! then holds the stream's task, whose broadcast receiver lags; step 3 recovers
//! from the store, so slowness costs reads, not correctness. Store reads and
//! event building run on blocking threads, in chunks.
//!
//! When the server shuts down or the chain stops publishing, the stream ends
//! with UNAVAILABLE and the height to reconnect from.

use std::ops::ControlFlow;
use std::sync::Arc;

use dualchain_proto::limits::MIN_FINALITY_STREAM_BUFFER;
use dualchain_proto::v1::{FinalityEvent, StreamFinalityRequest};
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::convert::finality_event;
use crate::request_metrics::StreamGauge;
use crate::server::Context;
use crate::status::{api_status, blocking};
use crate::{ApiError, ChainApi, FinalizedBlock};

/// Blocks read from the store per blocking call while replaying or catching up.
const READ_CHUNK: u64 = 64;

/// The response stream of `StreamFinality`.
pub(crate) type FinalityStream = ReceiverStream<Result<FinalityEvent, Status>>;

/// Validates the request, subscribes, and starts the task feeding the stream.
pub(crate) async fn open(
    context: &Arc<Context>,
    request: StreamFinalityRequest,
) -> Result<FinalityStream, Status> {
    let api = Arc::clone(&context.api);
    crate::chain::resolve(request.chain, api.chain())?;
    let live = api.subscribe_finality();
    let finalized = api.finalized_height();
    let (next, replay_to) = match request.from_height {
        None => (finalized.saturating_add(1), None),
        Some(from) => {
            check_replay_start(
                &context.blocking,
                &api,
                from,
                finalized,
                context.max_replay_blocks,
            )
            .await?;
            (from, (from <= finalized).then_some(finalized))
        }
    };
    let buffer = context
        .finality_stream_buffer
        .max(MIN_FINALITY_STREAM_BUFFER);
    let (sender, receiver) = mpsc::channel(buffer);
    let pump = Pump {
        api,
        blocking: Arc::clone(&context.blocking),
        sender,
        shutdown: context.shutdown.clone(),
        include_tx_digests: request.include_tx_digests,
        next,
        _open: context.metrics.finality_stream_open(),
    };
    tokio::spawn(pump.run(live, replay_to));
    Ok(ReceiverStream::new(receiver))
}

/// Refuses a replay start that is outside the window or no longer stored.
async fn check_replay_start(
    threads: &Arc<Semaphore>,
    api: &Arc<dyn ChainApi>,
    from: u64,
    finalized: u64,
    max_replay_blocks: u64,
) -> Result<(), Status> {
    if from > finalized {
        return Ok(());
    }
    let replay_len = finalized - from + 1;
    if replay_len > max_replay_blocks {
        let oldest = finalized + 1 - max_replay_blocks.max(1);
        return Err(Status::out_of_range(format!(
            "from_height {from} is {replay_len} blocks behind the finalized height {finalized}; \
             this server replays at most {max_replay_blocks} blocks (from_height >= {oldest}); \
             read older blocks with GetBlock"
        )));
    }
    let reader = Arc::clone(api);
    let kept = blocking(threads, "finality replay check", move || reader.block(from))
        .await?
        .map_err(api_status)?;
    if kept.is_none() {
        return Err(Status::out_of_range(format!(
            "from_height {from} is below the oldest block kept on this node (pruned)"
        )));
    }
    Ok(())
}

/// What woke the live loop.
enum Wake {
    Shutdown,
    ClientGone,
    Received(Result<FinalizedBlock, broadcast::error::RecvError>),
}

/// Feeds one stream: replay, then live events with gap repair.
struct Pump {
    api: Arc<dyn ChainApi>,
    /// The server's permits for blocking chain reads.
    blocking: Arc<Semaphore>,
    sender: mpsc::Sender<Result<FinalityEvent, Status>>,
    shutdown: watch::Receiver<bool>,
    include_tx_digests: bool,
    /// The next height the client must receive.
    next: u64,
    /// Keeps the open-streams gauge up while the task runs.
    _open: StreamGauge,
}

impl Pump {
    async fn run(mut self, mut live: broadcast::Receiver<FinalizedBlock>, replay_to: Option<u64>) {
        if let Some(to) = replay_to
            && self.catch_up(to, true).await.is_break()
        {
            return;
        }
        loop {
            let mut shutdown = self.shutdown.clone();
            let wake = tokio::select! {
                biased;
                _ = shutdown.wait_for(|stopping| *stopping) => Wake::Shutdown,
                _ = self.sender.closed() => Wake::ClientGone,
                received = live.recv() => Wake::Received(received),
            };
            let flow = match wake {
                Wake::Shutdown => {
                    self.end(Status::unavailable(format!(
                        "the server is shutting down; reconnect with from_height {}",
                        self.next
                    )));
                    ControlFlow::Break(())
                }
                Wake::ClientGone => ControlFlow::Break(()),
                Wake::Received(Ok(block)) => self.on_live(block).await,
                Wake::Received(Err(broadcast::error::RecvError::Lagged(missed))) => {
                    tracing::debug!(missed, "finality stream lagged; re-reading from the store");
                    let head = self.api.finalized_height();
                    self.catch_up(head, false).await
                }
                Wake::Received(Err(broadcast::error::RecvError::Closed)) => {
                    self.end(Status::unavailable(format!(
                        "the chain stopped publishing finality events (halted or shutting \
                         down); reconnect with from_height {}",
                        self.next
                    )));
                    ControlFlow::Break(())
                }
            };
            if flow.is_break() {
                return;
            }
        }
    }

    /// Sends a live block, first repairing any gap before it.
    async fn on_live(&mut self, block: FinalizedBlock) -> ControlFlow<()> {
        let height = block.block.header.height;
        if height < self.next {
            return ControlFlow::Continue(());
        }
        if height > self.next {
            self.catch_up(height - 1, false).await?;
        }
        let event = finality_event(&block, self.include_tx_digests, false);
        self.deliver(event).await
    }

    /// Sends heights `next..=to` read from the store.
    async fn catch_up(&mut self, to: u64, replayed: bool) -> ControlFlow<()> {
        while self.next <= to {
            let from = self.next;
            let chunk_end = to.min(from.saturating_add(READ_CHUNK - 1));
            let api = Arc::clone(&self.api);
            let include = self.include_tx_digests;
            let read = blocking(&self.blocking, "finality store read", move || {
                read_events(api.as_ref(), from, chunk_end, include, replayed)
            })
            .await;
            let events = match read {
                Ok(events) => events,
                Err(status) => {
                    self.end(status);
                    return ControlFlow::Break(());
                }
            };
            for (height, event) in (from..=chunk_end).zip(events) {
                match event {
                    Ok(Some(event)) => self.deliver(event).await?,
                    Ok(None) => {
                        let lost = to - height + 1;
                        self.end(Status::resource_exhausted(format!(
                            "finality stream fell behind: {lost} events (heights {height}..={to}) \
                             are no longer stored on this node; reconnect with from_height set \
                             to a height still kept"
                        )));
                        return ControlFlow::Break(());
                    }
                    Err(error) => {
                        self.end(api_status(error));
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Queues one event for the client; stops on shutdown or when the client
    /// has gone.
    async fn deliver(&mut self, event: FinalityEvent) -> ControlFlow<()> {
        let height = event.height;
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => {
                self.end(Status::unavailable(format!(
                    "the server is shutting down; reconnect with from_height {}",
                    self.next
                )));
                ControlFlow::Break(())
            }
            sent = self.sender.send(Ok(event)) => match sent {
                Ok(()) => {
                    self.next = height + 1;
                    ControlFlow::Continue(())
                }
                Err(_) => ControlFlow::Break(()),
            },
        }
    }

    /// Ends the stream with `status` if there is room to say so; a client whose
    /// buffer is full sees the stream end when this task drops its sender.
    fn end(&self, status: Status) {
        tracing::debug!(code = ?status.code(), message = status.message(), "finality stream ended");
        let _ = self.sender.try_send(Err(status));
    }
}

/// Reads heights `from..=to` and builds their events (one entry per height:
/// `None` when the block is not stored).
fn read_events(
    api: &dyn ChainApi,
    from: u64,
    to: u64,
    include_tx_digests: bool,
    replayed: bool,
) -> Vec<Result<Option<FinalityEvent>, ApiError>> {
    (from..=to)
        .map(|height| {
            let Some(block) = api.block(height)? else {
                return Ok(None);
            };
            let stored = block.block.header.height;
            if stored != height {
                return Err(ApiError::Internal(format!(
                    "the store answered height {stored} for height {height}"
                )));
            }
            Ok(Some(finality_event(&block, include_tx_digests, replayed)))
        })
        .collect()
}
