//! Validation of `Admin.SetFaultInjection` requests against the limits that
//! `admin.proto` documents, before anything reaches the chain.
//!
//! Rules:
//! - `drop_probability` is a number in [0, 1] (NaN refused);
//! - `added_delay_ms` and `jitter_ms` are at most [`MAX_FAULT_DELAY_MS`];
//! - at most [`MAX_PARTITION_GROUPS`] groups of at most [`MAX_PEERS_PER_GROUP`]
//!   peer ids each;
//! - with `clear`, every other fault field (and `expires_after_ms`, since there
//!   is nothing left to expire) must keep its default;
//! - `active` is output only and ignored.

use dualchain_proto::limits::{MAX_FAULT_DELAY_MS, MAX_PARTITION_GROUPS, MAX_PEERS_PER_GROUP};
use dualchain_proto::v1::FaultInjection;

/// A `FaultInjection` outside the documented limits.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultValidationError {
    #[error("drop_probability must be a number in [0, 1], got {0}")]
    DropProbability(f64),
    #[error("{field} must be at most {max} ms, got {value}")]
    DelayTooLong {
        field: &'static str,
        value: u32,
        max: u32,
    },
    #[error("at most {max} partition groups are allowed, got {count}")]
    TooManyGroups { count: usize, max: usize },
    #[error("partition group {group} lists {count} peers, at most {max} are allowed")]
    GroupTooLarge {
        group: usize,
        count: usize,
        max: usize,
    },
    #[error("clear=true turns every fault off; leave the other fields at their defaults")]
    ClearWithSettings,
}

/// Checks `faults` against the limits of `admin.proto`.
pub fn validate_fault_injection(faults: &FaultInjection) -> Result<(), FaultValidationError> {
    let probability = faults.drop_probability;
    if !(0.0..=1.0).contains(&probability) {
        return Err(FaultValidationError::DropProbability(probability));
    }
    for (field, value) in [
        ("added_delay_ms", faults.added_delay_ms),
        ("jitter_ms", faults.jitter_ms),
    ] {
        if value > MAX_FAULT_DELAY_MS {
            return Err(FaultValidationError::DelayTooLong {
                field,
                value,
                max: MAX_FAULT_DELAY_MS,
            });
        }
    }
    if faults.partitions.len() > MAX_PARTITION_GROUPS {
        return Err(FaultValidationError::TooManyGroups {
            count: faults.partitions.len(),
            max: MAX_PARTITION_GROUPS,
        });
    }
    if let Some((group, peers)) = faults
        .partitions
        .iter()
        .enumerate()
        .find(|(_, group)| group.peer_ids.len() > MAX_PEERS_PER_GROUP)
    {
        return Err(FaultValidationError::GroupTooLarge {
            group,
            count: peers.peer_ids.len(),
            max: MAX_PEERS_PER_GROUP,
        });
    }
    let has_settings = probability != 0.0
        || faults.added_delay_ms != 0
        || faults.jitter_ms != 0
        || !faults.partitions.is_empty()
        || faults.expires_after_ms != 0;
    if faults.clear && has_settings {
        return Err(FaultValidationError::ClearWithSettings);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use dualchain_proto::v1::PeerGroup;

    use super::*;

    fn group(peers: usize) -> PeerGroup {
        PeerGroup {
            peer_ids: (0..peers).map(|i| format!("peer-{i}")).collect(),
        }
    }

    #[test]
    fn limits_themselves_are_accepted() {
        let faults = FaultInjection {
            drop_probability: 1.0,
            added_delay_ms: MAX_FAULT_DELAY_MS,
            jitter_ms: MAX_FAULT_DELAY_MS,
            partitions: vec![group(MAX_PEERS_PER_GROUP); MAX_PARTITION_GROUPS],
            expires_after_ms: 5_000,
            active: true,
            ..Default::default()
        };
        assert_eq!(validate_fault_injection(&faults), Ok(()));
        assert_eq!(validate_fault_injection(&FaultInjection::default()), Ok(()));
        let clear = FaultInjection {
            clear: true,
            ..Default::default()
        };
        assert_eq!(validate_fault_injection(&clear), Ok(()));
    }

    #[test]
    fn probability_outside_the_unit_interval_is_refused() {
        for p in [f64::NAN, -0.1, 1.0001, f64::INFINITY] {
            let faults = FaultInjection {
                drop_probability: p,
                ..Default::default()
            };
            assert!(matches!(
                validate_fault_injection(&faults),
                Err(FaultValidationError::DropProbability(_))
            ));
        }
    }

    #[test]
    fn delays_groups_and_clear_are_bounded() {
        let jitter = FaultInjection {
            jitter_ms: MAX_FAULT_DELAY_MS + 1,
            ..Default::default()
        };
        assert!(matches!(
            validate_fault_injection(&jitter),
            Err(FaultValidationError::DelayTooLong {
                field: "jitter_ms",
                ..
            })
        ));
        let groups = FaultInjection {
            partitions: vec![group(1); MAX_PARTITION_GROUPS + 1],
            ..Default::default()
        };
        assert!(matches!(
            validate_fault_injection(&groups),
            Err(FaultValidationError::TooManyGroups { .. })
        ));
        let big = FaultInjection {
            partitions: vec![group(1), group(MAX_PEERS_PER_GROUP + 1)],
            ..Default::default()
        };
        assert_eq!(
            validate_fault_injection(&big),
            Err(FaultValidationError::GroupTooLarge {
                group: 1,
                count: MAX_PEERS_PER_GROUP + 1,
                max: MAX_PEERS_PER_GROUP
            })
        );
        let clear = FaultInjection {
            clear: true,
            added_delay_ms: 10,
            ..Default::default()
        };
        assert_eq!(
            validate_fault_injection(&clear),
            Err(FaultValidationError::ClearWithSettings)
        );
    }
}
