//! Types shared by both custom resources: conditions and per-chain progress.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kubernetes-style status condition (`metav1.Condition` shape), kept as our own
/// type so that every field carries a description in the CRD schema.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type: `Ready`, `Progressing`, `Degraded`, `FaultTolerant`, `Reconfiguring` or `Recovering` for networks;
    /// `Ready`, `Progressing`, `Degraded` and `Complete` for benchmarks.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One CamelCase word saying why the condition has this status (e.g. `ValidatorsUnreachable`).
    pub reason: String,
    /// Human-readable details; never contains key material.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339); unchanged while only the message changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Progress of one chain across the validators that answered the status probe.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainProgress {
    /// Highest sealed block height reported by any reachable validator.
    pub height: u64,
    /// Highest finalized block height reported by any reachable validator.
    pub finalized_height: u64,
    /// Highest epoch reported by any reachable validator.
    pub epoch: u64,
    /// Number of validators whose gRPC status endpoint for this chain answered.
    pub reachable_validators: u32,
}

/// Kubernetes resource quantities (e.g. `500m`, `2`, `1Gi`) for one container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU quantity, e.g. `500m` or `2`.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?m?$')").message("cpu must be a Kubernetes quantity such as 500m or 2"))]
    pub cpu: String,
    /// Memory quantity, e.g. `512Mi` or `2Gi`.
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(\\\\.[0-9]+)?(k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$')").message("memory must be a Kubernetes quantity such as 512Mi or 2Gi"))]
    pub memory: String,
}

/// Requests and limits of one chain's container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainResources {
    /// Resources reserved for the container by the scheduler.
    pub requests: ResourceAmounts,
    /// Hard caps; the container is throttled (CPU) or killed (memory) above them.
    pub limits: ResourceAmounts,
}

/// Largest number of validators a network can have (bounded by genesis validator limits
/// and by what one operator reconciles quickly).
pub const MAX_VALIDATORS: u32 = 200;

/// The number of validators that may fail without losing safety or liveness, `⌊(n-1)/3⌋`.
pub fn fault_tolerance(validators: u32) -> u32 {
    validators.saturating_sub(1) / 3
}

/// Votes (equal stake) needed for a certificate: `n - f`, the same quorum rule as
/// `dualchain_core::types::ValidatorSet`.
pub fn quorum(validators: u32) -> u32 {
    validators - fault_tolerance(validators)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_matches_bft_bounds() {
        assert_eq!((fault_tolerance(1), quorum(1)), (0, 1));
        assert_eq!((fault_tolerance(3), quorum(3)), (0, 3));
        assert_eq!((fault_tolerance(4), quorum(4)), (1, 3));
        assert_eq!((fault_tolerance(7), quorum(7)), (2, 5));
        assert_eq!((fault_tolerance(100), quorum(100)), (33, 67));
        for n in 1..=200 {
            let f = fault_tolerance(n);
            assert!(3 * f < n, "n={n}");
            assert!(2 * quorum(n) > n + f, "quorum intersection n={n}");
        }
    }
}
