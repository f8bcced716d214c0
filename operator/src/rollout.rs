//! Rolling validators without losing a quorum.
//!
//! Each validator has its own StatefulSet (one pod), which rolls its pod as soon as it
//! is given a new template; so the operator rolls the network by choosing which
//! validators get the new template. It keeps a *partition*, as a single StatefulSet's
//! `RollingUpdate.partition` would: validators with an index ≥ partition run the new
//! template. A roll starts at `partition = n - 1` (one validator) and steps down by one
//! only when every validator already rolled has been recreated and enough validators
//! are Ready that taking one more down still leaves a quorum (`ready - 1 ≥ n - f`, i.e.
//! ≥ 2f+1 for n = 3f+1). Networks of fewer than 4 validators tolerate no fault; they
//! roll one validator at a time whenever all are Ready. The partition is not stored:
//! [`observe`] reads it back from which StatefulSets already hold the new template.
//!
//! Config changes (genesis/config digest in a pod annotation) and image changes both
//! change the template, so both go through this plan.

use crate::crd::common::quorum;

/// What the operator observed of the validators' StatefulSets, as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Whether the roll towards the desired template has begun (or is done): the
    /// highest validator holds it.
    pub template_current: bool,
    /// The lowest index from which every validator holds the desired template.
    pub partition: u32,
    /// Validators whose pod is Ready.
    pub ready: u32,
    /// Validators at or above the partition whose pod runs their StatefulSet's template.
    pub updated: u32,
    /// Validators whose StatefulSet exists (or is being created): indices `0..replicas`.
    pub replicas: u32,
}

/// One validator's StatefulSet as observed (index = position in the slice).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetObservation {
    /// Its template is the desired one (a missing StatefulSet will be created with it).
    pub template_current: bool,
    /// Its pod is Ready.
    pub ready: bool,
    /// Its pod runs its template (a status as new as its spec says so).
    pub updated: bool,
}

/// Folds the validators' StatefulSets (by index, `0..replicas`) into the roll's view;
/// `None` when none exists yet.
pub fn observe(sets: &[SetObservation]) -> Option<Observed> {
    if sets.is_empty() {
        return None;
    }
    let replicas = sets.len() as u32;
    let partition = sets
        .iter()
        .rposition(|s| !s.template_current)
        .map_or(0, |last_old| last_old as u32 + 1);
    Some(Observed {
        template_current: partition < replicas,
        partition,
        ready: sets.iter().filter(|s| s.ready).count() as u32,
        updated: sets[partition as usize..]
            .iter()
            .filter(|s| s.updated)
            .count() as u32,
        replicas,
    })
}

/// The partition to apply and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub partition: u32,
    pub step: Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to roll (or first creation).
    Idle,
    /// A new template: the first pod (highest ordinal) may roll now.
    Started,
    /// A new template, but too few validators are Ready to take one down.
    WaitingToStart,
    /// The roll moved on to the next pod.
    Advanced,
    /// The roll waits for the last rolled pod to be Ready (or for a quorum margin).
    Waiting,
    /// Every pod runs the new template.
    Finished,
}

/// Ready validators needed before one more may be taken down.
pub fn ready_needed_to_roll(validators: u32) -> u32 {
    (quorum(validators) + 1).min(validators)
}

/// Decides the partition. `existing` is `None` when no StatefulSet exists yet.
pub fn plan(validators: u32, existing: Option<Observed>) -> Plan {
    let Some(o) = existing else {
        return Plan {
            partition: 0,
            step: Step::Idle,
        };
    };
    let can_take_one_down = o.ready >= ready_needed_to_roll(validators);
    // Ordinals the StatefulSet does not hold yet (the network grew) take no pod down:
    // they start on the new template. A partition above them would create them from the
    // old one, whose volumes lack their keys: a new validator that can never start.
    let existing = o.replicas.min(validators);
    if !o.template_current {
        return if can_take_one_down {
            Plan {
                partition: validators.saturating_sub(1).min(existing),
                step: Step::Started,
            }
        } else {
            Plan {
                partition: existing,
                step: Step::WaitingToStart,
            }
        };
    }
    let partition = o.partition.min(existing);
    if partition == 0 {
        return Plan {
            partition: 0,
            step: Step::Idle,
        };
    }
    let rolled = validators - partition;
    // Every pod at or above the partition must be recreated and the margin must hold.
    if o.updated >= rolled && can_take_one_down {
        let next = partition - 1;
        Plan {
            partition: next,
            step: if next == 0 {
                Step::Finished
            } else {
                Step::Advanced
            },
        }
    } else {
        Plan {
            partition,
            step: Step::Waiting,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(template_current: bool, ready: bool, updated: bool) -> SetObservation {
        SetObservation {
            template_current,
            ready,
            updated,
        }
    }

    #[test]
    fn observing_reads_the_partition_back_from_the_templates() {
        assert_eq!(observe(&[]), None);
        let all_new = [set(true, true, true); 4];
        let o = observe(&all_new).unwrap();
        assert_eq!(
            (o.partition, o.template_current, o.ready, o.updated),
            (0, true, 4, 4)
        );
        let all_old = [set(false, true, true); 4];
        let o = observe(&all_old).unwrap();
        assert_eq!((o.partition, o.template_current, o.updated), (4, false, 0));
        assert_eq!(plan(4, Some(o)).partition, 3);
        // Validator 3 got the new template; its pod is being recreated.
        let rolling = [
            set(false, true, true),
            set(false, true, true),
            set(false, true, true),
            set(true, false, false),
        ];
        let o = observe(&rolling).unwrap();
        assert_eq!(
            (o.partition, o.template_current, o.ready, o.updated),
            (3, true, 3, 0)
        );
        assert_eq!(plan(4, Some(o)).step, Step::Waiting);
        // An old template above a new one (a roll restarted by another change) is not
        // rolled: the partition sits above it.
        let mixed = [
            set(true, true, true),
            set(false, true, true),
            set(true, true, true),
        ];
        assert_eq!(observe(&mixed).unwrap().partition, 2);
    }

    #[test]
    fn creation_has_no_partition() {
        assert_eq!(
            plan(4, None),
            Plan {
                partition: 0,
                step: Step::Idle
            }
        );
    }

    #[test]
    fn a_template_change_rolls_one_pod_then_steps_down() {
        let o = Observed {
            template_current: false,
            partition: 0,
            ready: 4,
            updated: 4,
            replicas: 4,
        };
        assert_eq!(
            plan(4, Some(o)),
            Plan {
                partition: 3,
                step: Step::Started
            }
        );
        // Pod 3 is being recreated: only 3 ready, not enough margin (quorum 3 + 1).
        let o = Observed {
            template_current: true,
            partition: 3,
            ready: 3,
            updated: 0,
            replicas: 4,
        };
        assert_eq!(plan(4, Some(o)).step, Step::Waiting);
        // Pod 3 is back and updated: move on to pod 2.
        let o = Observed {
            template_current: true,
            partition: 3,
            ready: 4,
            updated: 1,
            replicas: 4,
        };
        assert_eq!(
            plan(4, Some(o)),
            Plan {
                partition: 2,
                step: Step::Advanced
            }
        );
        let o = Observed {
            template_current: true,
            partition: 1,
            ready: 4,
            updated: 3,
            replicas: 4,
        };
        assert_eq!(
            plan(4, Some(o)),
            Plan {
                partition: 0,
                step: Step::Finished
            }
        );
    }

    #[test]
    fn a_roll_does_not_start_without_margin() {
        let o = Observed {
            template_current: false,
            partition: 0,
            ready: 3,
            updated: 4,
            replicas: 4,
        };
        assert_eq!(
            plan(4, Some(o)),
            Plan {
                partition: 4,
                step: Step::WaitingToStart
            }
        );
    }

    #[test]
    fn small_networks_roll_when_all_ready() {
        let o = Observed {
            template_current: false,
            partition: 0,
            ready: 1,
            updated: 1,
            replicas: 1,
        };
        assert_eq!(
            plan(1, Some(o)),
            Plan {
                partition: 0,
                step: Step::Started
            }
        );
        let o = Observed {
            template_current: false,
            partition: 0,
            ready: 2,
            updated: 3,
            replicas: 3,
        };
        assert_eq!(plan(3, Some(o)).step, Step::WaitingToStart);
    }

    #[test]
    fn a_grown_network_creates_its_new_pods_on_the_new_template_even_without_margin() {
        // 4 → 5: the new template (five keys, five peers) cannot roll an existing pod
        // while only the four old ones are Ready, but the fifth must not be created from
        // the old template (no key for it there).
        let o = Observed {
            template_current: false,
            partition: 0,
            ready: 4,
            updated: 4,
            replicas: 4,
        };
        assert_eq!(
            plan(5, Some(o)),
            Plan {
                partition: 4,
                step: Step::WaitingToStart
            }
        );
        // Once the fifth is Ready, the roll goes on down from ordinal 3.
        let o = Observed {
            template_current: true,
            partition: 4,
            ready: 5,
            updated: 1,
            replicas: 5,
        };
        assert_eq!(
            plan(5, Some(o)),
            Plan {
                partition: 3,
                step: Step::Advanced
            }
        );
    }

    proptest! {
        /// Whatever is observed, the plan never lets more pods be down (or rolling) than
        /// the quorum allows: a step only happens with `ready ≥ quorum + 1`, and the
        /// partition only moves by one.
        #[test]
        fn never_breaks_quorum(n in 4u32..=200, ready in 0u32..=200, updated in 0u32..=200,
                               partition in 0u32..=200, replicas in 0u32..=200, current: bool) {
            let ready = ready.min(n);
            let o = Observed { template_current: current, partition, ready, updated: updated.min(n), replicas };
            let p = plan(n, Some(o));
            match p.step {
                Step::Started | Step::Advanced | Step::Finished => {
                    prop_assert!(ready > quorum(n));
                }
                _ => {}
            }
            // (Down to the ordinals that exist: moving past those takes no pod down.)
            if current && partition > 0 && partition <= n {
                prop_assert!(p.partition + 1 >= partition.min(n).min(replicas));
            }
            prop_assert!(p.partition <= n);
            // Ordinals that do not exist yet never start on the old template.
            prop_assert!(p.partition <= replicas);
        }
    }
}
