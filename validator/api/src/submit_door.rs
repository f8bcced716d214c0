//! The transaction door: `Transactions` calls are refused as a whole, before their
//! messages are decoded, while the chain says it takes no ordinary transaction now.
//!
//! Why: under a flood, refusing transaction by transaction still costs the node the
//! protobuf decode, the transaction decode and a hash of every one — megabytes per
//! call, on the same cores consensus needs. A shut door costs one status with a retry
//! hint: `RESOURCE_EXHAUSTED` carrying the `retry-after-ms` metadata key, which a
//! client must honour before calling this node again. The chain decides
//! ([`ChainApi::door_shut`]); with the door open, admission goes on per transaction,
//! where the same limits refuse the excess of a batch as `TX_STATUS_OVERLOADED`.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use dualchain_proto::RETRY_AFTER_MS_KEY;

use crate::ChainApi;

/// The interceptor in front of the `Transactions` service.
#[derive(Clone)]
pub(crate) struct SubmitDoor {
    api: Arc<dyn ChainApi>,
}

impl SubmitDoor {
    pub(crate) fn new(api: Arc<dyn ChainApi>) -> Self {
        Self { api }
    }
}

/// The status of a call refused at a shut door.
pub(crate) fn shut_status(retry_after_ms: u32, reason: &str) -> Status {
    let mut status = Status::resource_exhausted(format!(
        "overloaded, no transactions taken now (retry after {retry_after_ms} ms): {reason}"
    ));
    status
        .metadata_mut()
        .insert(RETRY_AFTER_MS_KEY, retry_after_ms.into());
    status
}

impl Interceptor for SubmitDoor {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match self.api.door_shut() {
            None => Ok(request),
            Some(shut) => Err(shut_status(shut.retry_after_ms, &shut.reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shut_door_answers_resource_exhausted_with_the_hint() {
        let status = shut_status(750, "the node holds 9000 transactions");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get(RETRY_AFTER_MS_KEY)
                .unwrap()
                .to_str()
                .unwrap(),
            "750"
        );
        assert!(status.message().contains("9000 transactions"));
    }
}
