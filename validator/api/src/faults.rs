//! Validation of `Admin.SetFaultInjection` requests against the limits that
//! `admin.proto` documents, before anything reaches the chain.
//!
//! Rules:
//! - `drop_probability` is a number in [0, 1] (NaN refused);
//! - `added_delay_ms` and `jitter_ms` are at most [`MAX_FAULT_DELAY_MS`];
//! - at most [`MAX_PARTITION_GROUPS`] groups of at most [`MAX_PEERS_PER_GROUP`]
//!   peer ids each;
//! - `bandwidth_bytes_per_sec` is 0 (no limit) or at least
//!   [`MIN_FAULT_BANDWIDTH_BYTES_PER_SEC`];
//! - `clock_skew_ms` is at most [`MAX_FAULT_CLOCK_SKEW_MS`] either way;
//! - with `clear`, every other fault field (and `expires_after_ms`, since there
//!   is nothing left to expire) must keep its default;
//! - `active` is output only and ignored.

use dualchain_proto::limits::{
    MAX_FAULT_CLOCK_SKEW_MS, MAX_FAULT_DELAY_MS, MAX_PARTITION_GROUPS, MAX_PEERS_PER_GROUP,
    MIN_FAULT_BANDWIDTH_BYTES_PER_SEC,
};
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
    #[error("clock_skew_ms must be within ±{max}, got {value}")]
    SkewTooLarge { value: i64, max: i64 },
    #[error("bandwidth_bytes_per_sec must be 0 (no limit) or at least {min}, got {value}")]
    BandwidthTooLow { value: u64, min: u64 },
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
    let bandwidth = faults.bandwidth_bytes_per_sec;
    if bandwidth != 0 && bandwidth < MIN_FAULT_BANDWIDTH_BYTES_PER_SEC {
        return Err(FaultValidationError::BandwidthTooLow {
            value: bandwidth,
            min: MIN_FAULT_BANDWIDTH_BYTES_PER_SEC,
        });
    }
    if faults.clock_skew_ms.unsigned_abs() > MAX_FAULT_CLOCK_SKEW_MS.unsigned_abs() {
        return Err(FaultValidationError::SkewTooLarge {
            value: faults.clock_skew_ms,
            max: MAX_FAULT_CLOCK_SKEW_MS,
        });
    }
    let has_settings = probability != 0.0
        || faults.added_delay_ms != 0
        || faults.jitter_ms != 0
        || !faults.partitions.is_empty()
        || bandwidth != 0
        || faults.clock_skew_ms != 0
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
            bandwidth_bytes_per_sec: MIN_FAULT_BANDWIDTH_BYTES_PER_SEC,
            clock_skew_ms: -MAX_FAULT_CLOCK_SKEW_MS,
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
        // `clear` with any setting of any kind is refused.
        let with_settings = [
            FaultInjection {
                added_delay_ms: 10,
                ..Default::default()
            },
            FaultInjection {
                bandwidth_bytes_per_sec: 1_000_000,
                ..Default::default()
            },
            FaultInjection {
                clock_skew_ms: 10,
                ..Default::default()
            },
        ];
        for settings in with_settings {
            let clear = FaultInjection {
                clear: true,
                ..settings
            };
            assert_eq!(
                validate_fault_injection(&clear),
                Err(FaultValidationError::ClearWithSettings),
                "{clear:?}"
            );
        }
    }

    #[test]
    fn a_clock_skew_beyond_an_hour_is_refused_either_way() {
        for skew in [
            MAX_FAULT_CLOCK_SKEW_MS + 1,
            -MAX_FAULT_CLOCK_SKEW_MS - 1,
            i64::MIN,
        ] {
            let faults = FaultInjection {
                clock_skew_ms: skew,
                ..Default::default()
            };
            assert_eq!(
                validate_fault_injection(&faults),
                Err(FaultValidationError::SkewTooLarge {
                    value: skew,
                    max: MAX_FAULT_CLOCK_SKEW_MS
                })
            );
        }
    }

    #[test]
    fn a_bandwidth_below_the_minimum_is_refused() {
        let slow = FaultInjection {
            bandwidth_bytes_per_sec: MIN_FAULT_BANDWIDTH_BYTES_PER_SEC - 1,
            ..Default::default()
        };
        assert_eq!(
            validate_fault_injection(&slow),
            Err(FaultValidationError::BandwidthTooLow {
                value: MIN_FAULT_BANDWIDTH_BYTES_PER_SEC - 1,
                min: MIN_FAULT_BANDWIDTH_BYTES_PER_SEC
            })
        );
    }
}
