//! Service `CrossChain`: state records with proofs and attestations of the records
//! the other chain acts on (read only, no token: everything served is public state
//! with its proof, and the target chain verifies every attestation itself).

use std::sync::Arc;
use std::time::Instant;

use dualchain_core::encoding::Canonical;
use dualchain_proto::limits::{
    DEFAULT_RECORDS_PER_PAGE, MAX_ATTESTED_KEY_BYTES, MAX_RECORD_KEY_BYTES, MAX_RECORDS_PER_PAGE,
};
use dualchain_proto::v1::{
    AttestationBytes, BlockRecords, GetAttestationRequest, GetBlockRecordsRequest,
    GetRecordRequest, Record,
};
use tonic::{Request, Response, Status};

use crate::chain::to_proto;
use crate::server::Context;
use crate::status::{api_status, blocking};

/// The `CrossChain` service of one chain.
pub(crate) struct CrossChainService {
    context: Arc<Context>,
}

/// Checks a record key's length against `max`.
fn check_key(key: &[u8], max: usize) -> Result<(), Status> {
    if key.is_empty() || key.len() > max {
        return Err(Status::invalid_argument(format!(
            "a record key has 1 to {max} bytes, not {}",
            key.len()
        )));
    }
    Ok(())
}

/// The page size a request asks for (0: the default).
fn page_limit(limit: u32) -> Result<usize, Status> {
    match limit as usize {
        0 => Ok(DEFAULT_RECORDS_PER_PAGE),
        n if n > MAX_RECORDS_PER_PAGE => Err(Status::invalid_argument(format!(
            "limit {n} is above the maximum of {MAX_RECORDS_PER_PAGE} records per page"
        ))),
        n => Ok(n),
    }
}

impl CrossChainService {
    pub(crate) fn new(context: Arc<Context>) -> Self {
        Self { context }
    }

    async fn get_record_inner(&self, request: GetRecordRequest) -> Result<Record, Status> {
        let api = Arc::clone(&self.context.api);
        let chain = crate::chain::resolve(request.chain, api.chain())?;
        check_key(&request.key, MAX_RECORD_KEY_BYTES)?;
        let record = blocking(&self.context.blocking, "record read", move || {
            api.record(&request.key).map_err(api_status)
        })
        .await??;
        Ok(Record {
            chain: chain as i32,
            height: record.height,
            state_root: record.state_root.as_bytes().to_vec(),
            key: record.key,
            value: record.value,
            proof: record.proof.to_bytes(),
        })
    }

    async fn get_attestation_inner(
        &self,
        request: GetAttestationRequest,
    ) -> Result<AttestationBytes, Status> {
        let api = Arc::clone(&self.context.api);
        crate::chain::resolve(request.chain, api.chain())?;
        check_key(&request.key, MAX_ATTESTED_KEY_BYTES)?;
        let height = request.height;
        let attestation = blocking(&self.context.blocking, "attestation read", move || {
            api.attestation(height, &request.key).map_err(api_status)
        })
        .await??;
        Ok(AttestationBytes {
            attestation: attestation.to_canonical_bytes(),
            height,
        })
    }

    async fn get_block_records_inner(
        &self,
        request: GetBlockRecordsRequest,
    ) -> Result<BlockRecords, Status> {
        let api = Arc::clone(&self.context.api);
        let chain = crate::chain::resolve(request.chain, api.chain())?;
        let limit = page_limit(request.limit)?;
        let height = request.height;
        let start = request.start as usize;
        let page = blocking(&self.context.blocking, "block records read", move || {
            api.block_records(height, start, limit).map_err(api_status)
        })
        .await??;
        let Some(page) = page else {
            return Err(Status::not_found(format!(
                "no {} block at height {height} on this node",
                chain.as_str_name()
            )));
        };
        debug_assert!(page.records.len() <= limit, "a page above its limit");
        Ok(BlockRecords {
            chain: to_proto(page.header.chain) as i32,
            height: page.header.height,
            header_bytes: page.header.to_canonical_bytes(),
            certificate_bytes: page.certificate.map(|c| c.to_canonical_bytes()),
            records: page
                .records
                .iter()
                .map(Canonical::to_canonical_bytes)
                .collect(),
            next_start: page.next_start,
        })
    }
}

#[tonic::async_trait]
impl dualchain_proto::CrossChain for CrossChainService {
    async fn get_record(
        &self,
        request: Request<GetRecordRequest>,
    ) -> Result<Response<Record>, Status> {
        let started = Instant::now();
        let result = self.get_record_inner(request.into_inner()).await;
        self.context.metrics.observe("GetRecord", started, &result);
        result.map(Response::new)
    }

    async fn get_attestation(
        &self,
        request: Request<GetAttestationRequest>,
    ) -> Result<Response<AttestationBytes>, Status> {
        let started = Instant::now();
        let result = self.get_attestation_inner(request.into_inner()).await;
        self.context
            .metrics
            .observe("GetAttestation", started, &result);
        result.map(Response::new)
    }

    async fn get_block_records(
        &self,
        request: Request<GetBlockRecordsRequest>,
    ) -> Result<Response<BlockRecords>, Status> {
        let started = Instant::now();
        let result = self.get_block_records_inner(request.into_inner()).await;
        self.context
            .metrics
            .observe("GetBlockRecords", started, &result);
        result.map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn keys_outside_their_bounds_are_invalid() {
        for key in [vec![], vec![7; 65]] {
            let status = check_key(&key, MAX_ATTESTED_KEY_BYTES).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
        assert!(check_key(&[7; 64], MAX_ATTESTED_KEY_BYTES).is_ok());
        assert!(check_key(&[7; 256], MAX_RECORD_KEY_BYTES).is_ok());
        assert!(check_key(&[7; 257], MAX_RECORD_KEY_BYTES).is_err());
    }

    #[test]
    fn a_page_is_the_default_or_at_most_the_maximum() {
        assert_eq!(page_limit(0).unwrap(), DEFAULT_RECORDS_PER_PAGE);
        assert_eq!(page_limit(3).unwrap(), 3);
        assert_eq!(page_limit(1_024).unwrap(), 1_024);
        assert_eq!(page_limit(1_025).unwrap_err().code(), Code::InvalidArgument);
    }
}
