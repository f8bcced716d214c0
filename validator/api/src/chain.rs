//! Which chain a request names, checked against the chain this port serves.
//!
//! Rules (package conventions in `common.proto`): every API port serves exactly
//! one chain ([`crate::ChainApi::chain`]); `CHAIN_UNSPECIFIED` means that chain;
//! the other known chain is FAILED_PRECONDITION (a client reached the wrong port);
//! a value outside the enum is INVALID_ARGUMENT (a malformed request).

use dualchain_core::types::ChainId;
use dualchain_proto::v1::Chain;
use tonic::Status;

/// The proto value of a core chain id.
pub fn to_proto(chain: ChainId) -> Chain {
    match chain {
        ChainId::Alpha => Chain::Alpha,
        ChainId::Delta => Chain::Delta,
    }
}

/// The core chain id of a proto value (`None` for `CHAIN_UNSPECIFIED`).
pub fn from_proto(chain: Chain) -> Option<ChainId> {
    match chain {
        Chain::Alpha => Some(ChainId::Alpha),
        Chain::Delta => Some(ChainId::Delta),
        Chain::Unspecified => None,
    }
}

/// Resolves the raw `chain` field of a request against the served chain.
pub(crate) fn resolve(requested: i32, served: ChainId) -> Result<Chain, Status> {
    let served = to_proto(served);
    match Chain::try_from(requested) {
        Ok(Chain::Unspecified) => Ok(served),
        Ok(chain) if chain == served => Ok(served),
        Ok(other) => Err(Status::failed_precondition(format!(
            "this endpoint serves {} only, not {}; use that chain's API port",
            served.as_str_name(),
            other.as_str_name()
        ))),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown chain value {requested}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn unspecified_means_the_served_chain() {
        assert_eq!(resolve(0, ChainId::Delta).unwrap(), Chain::Delta);
        assert_eq!(resolve(0, ChainId::Alpha).unwrap(), Chain::Alpha);
    }

    #[test]
    fn the_served_chain_is_accepted_by_name() {
        assert_eq!(
            resolve(Chain::Alpha as i32, ChainId::Alpha).unwrap(),
            Chain::Alpha
        );
    }

    #[test]
    fn the_other_chain_is_a_failed_precondition() {
        let status = resolve(Chain::Alpha as i32, ChainId::Delta).unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.message().contains("CHAIN_DELTA"));
    }

    #[test]
    fn unknown_values_are_invalid() {
        for value in [3, -1, 99] {
            let status = resolve(value, ChainId::Delta).unwrap_err();
            assert_eq!(status.code(), Code::InvalidArgument);
        }
    }
}
