//! Service `Node`: status, blocks, the finality and ordering streams (read only, no
//! token).

use std::sync::Arc;
use std::time::Instant;

use dualchain_proto::v1::{
    Block, GetBlockRequest, GetStatusRequest, NodeStatus, StreamFinalityRequest,
    StreamOrderingRequest,
};
use tonic::{Request, Response, Status};

use crate::convert::{block_to_proto, node_status_to_proto};
use crate::finality::{self, FinalityStream};
use crate::ordering::{self, OrderingStream};
use crate::server::Context;
use crate::status::{api_status, blocking};

/// The `Node` service of one chain.
pub(crate) struct NodeService {
    context: Arc<Context>,
}

impl NodeService {
    pub(crate) fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn get_block_inner(&self, request: GetBlockRequest) -> Result<Block, Status> {
        let api = Arc::clone(&self.context.api);
        let chain = crate::chain::resolve(request.chain, api.chain())?;
        // A block can be large (body encoding, store read): off the async workers.
        blocking(&self.context.blocking, "block read", move || {
            let height = request.height;
            let Some(block) = api.block(height).map_err(api_status)? else {
                let finalized = api.finalized_height();
                let why = if height > finalized {
                    format!("above the finalized height {finalized}")
                } else {
                    "no longer kept on this node (pruned)".to_owned()
                };
                return Err(Status::not_found(format!(
                    "no {} block at height {height}: {why}",
                    chain.as_str_name()
                )));
            };
            let stored = block.block.header.height;
            if stored != height {
                return Err(Status::internal(format!(
                    "internal error: the store answered height {stored} for height {height}"
                )));
            }
            let validator_count = match (&block.certificate, request.include_certificate) {
                (Some(_), true) => api.validator_count(block.block.header.epoch),
                _ => None,
            };
            let finalized = height <= api.finalized_height();
            Ok(block_to_proto(
                &block,
                request.include_body,
                request.include_certificate,
                finalized,
                validator_count,
            ))
        })
        .await?
    }
}

#[tonic::async_trait]
impl dualchain_proto::Node for NodeService {
    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<NodeStatus>, Status> {
        let started = Instant::now();
        let result = Ok(node_status_to_proto(self.context.api.node_status()));
        self.context.metrics.observe("GetStatus", started, &result);
        result.map(Response::new)
    }

    async fn get_block(
        &self,
        request: Request<GetBlockRequest>,
    ) -> Result<Response<Block>, Status> {
        let started = Instant::now();
        let result = self.get_block_inner(request.into_inner()).await;
        self.context.metrics.observe("GetBlock", started, &result);
        result.map(Response::new)
    }

    type StreamFinalityStream = FinalityStream;

    async fn stream_finality(
        &self,
        request: Request<StreamFinalityRequest>,
    ) -> Result<Response<Self::StreamFinalityStream>, Status> {
        let started = Instant::now();
        let result = finality::open(&self.context, request.into_inner()).await;
        self.context
            .metrics
            .observe("StreamFinality", started, &result);
        result.map(Response::new)
    }

    type StreamOrderingStream = OrderingStream;

    async fn stream_ordering(
        &self,
        request: Request<StreamOrderingRequest>,
    ) -> Result<Response<Self::StreamOrderingStream>, Status> {
        let started = Instant::now();
        let result = ordering::open(&self.context, request.into_inner());
        self.context
            .metrics
            .observe("StreamOrdering", started, &result);
        result.map(Response::new)
    }
}
