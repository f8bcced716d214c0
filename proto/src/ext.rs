//! Small conveniences on the generated enums.

use std::time::Duration;

use crate::v1::{Chain, FinalityEventKind, TxStatus};

impl Chain {
    /// Default gRPC API port of the chain's container (Alpha 3030, Delta
    /// 4030); `None` for [`Chain::Unspecified`].
    pub const fn default_api_port(self) -> Option<u16> {
        match self {
            Chain::Alpha => Some(3030),
            Chain::Delta => Some(4030),
            Chain::Unspecified => None,
        }
    }

    /// Default block time of the chain (Alpha 15 s, Delta 3 s); `None` for
    /// [`Chain::Unspecified`].
    pub const fn default_block_time(self) -> Option<Duration> {
        match self {
            Chain::Alpha => Some(Duration::from_secs(15)),
            Chain::Delta => Some(Duration::from_secs(3)),
            Chain::Unspecified => None,
        }
    }

    /// The finality event kind emitted for blocks of this chain.
    pub const fn finality_event_kind(self) -> FinalityEventKind {
        match self {
            Chain::Alpha => FinalityEventKind::AlphaBlockFinalized,
            Chain::Delta => FinalityEventKind::DeltaBlockFinalized,
            Chain::Unspecified => FinalityEventKind::Unspecified,
        }
    }
}

impl FinalityEventKind {
    /// The specification's event name: `alpha_block_finalized` or
    /// `delta_block_finalized` (`None` for [`FinalityEventKind::Unspecified`]).
    pub const fn spec_name(self) -> Option<&'static str> {
        match self {
            FinalityEventKind::AlphaBlockFinalized => Some("alpha_block_finalized"),
            FinalityEventKind::DeltaBlockFinalized => Some("delta_block_finalized"),
            FinalityEventKind::Unspecified => None,
        }
    }

    /// The chain whose blocks this kind reports.
    pub const fn chain(self) -> Chain {
        match self {
            FinalityEventKind::AlphaBlockFinalized => Chain::Alpha,
            FinalityEventKind::DeltaBlockFinalized => Chain::Delta,
            FinalityEventKind::Unspecified => Chain::Unspecified,
        }
    }
}

impl TxStatus {
    /// True for statuses where resubmitting the same bytes later may succeed
    /// (overloaded, mempool full, rate limited, internal error).
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            TxStatus::Overloaded
                | TxStatus::MempoolFull
                | TxStatus::RateLimited
                | TxStatus::InternalError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_defaults_match_the_spec() {
        assert_eq!(Chain::Alpha.default_api_port(), Some(3030));
        assert_eq!(Chain::Delta.default_api_port(), Some(4030));
        assert_eq!(Chain::Unspecified.default_api_port(), None);
        assert_eq!(
            Chain::Alpha.default_block_time(),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            Chain::Delta.default_block_time(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn finality_kinds_map_to_spec_event_names_and_chains() {
        for chain in [Chain::Alpha, Chain::Delta] {
            let kind = chain.finality_event_kind();
            assert_eq!(kind.chain(), chain);
        }
        assert_eq!(
            FinalityEventKind::AlphaBlockFinalized.spec_name(),
            Some("alpha_block_finalized")
        );
        assert_eq!(
            FinalityEventKind::DeltaBlockFinalized.spec_name(),
            Some("delta_block_finalized")
        );
        assert_eq!(FinalityEventKind::Unspecified.spec_name(), None);
    }

    #[test]
    fn proto_enum_names_keep_their_wire_spelling() {
        assert_eq!(Chain::Alpha.as_str_name(), "CHAIN_ALPHA");
        assert_eq!(TxStatus::Accepted.as_str_name(), "TX_STATUS_ACCEPTED");
        assert_eq!(
            TxStatus::from_str_name("TX_STATUS_UNSIGNED_NOT_ALLOWED"),
            Some(TxStatus::UnsignedNotAllowed)
        );
        assert!(TxStatus::MempoolFull.is_transient());
        assert!(TxStatus::Overloaded.is_transient());
        assert!(!TxStatus::InvalidSignature.is_transient());
    }
}
