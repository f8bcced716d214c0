//! Leader election against the mocked API server.

use super::fake_api::FakeApi;
use super::fixtures::TestClock;
use crate::leader::{Attempt, LeaseConfig, release, try_acquire};

#[tokio::test]
async fn one_leader_takeover_after_expiry_and_release() {
    let (client, fake) = FakeApi::start();
    let clock = TestClock::at("2026-11-21T08:00:00Z");
    let a = LeaseConfig::new("ops", "a");
    let b = LeaseConfig::new("ops", "b");
    assert_eq!(
        try_acquire(&client, &a, clock.as_ref()).await.unwrap(),
        Attempt::Leader
    );
    assert_eq!(
        try_acquire(&client, &b, clock.as_ref()).await.unwrap(),
        Attempt::Follower
    );
    // Renewal keeps it.
    clock.advance(10);
    assert_eq!(
        try_acquire(&client, &a, clock.as_ref()).await.unwrap(),
        Attempt::Leader
    );
    clock.advance(10);
    assert_eq!(
        try_acquire(&client, &b, clock.as_ref()).await.unwrap(),
        Attempt::Follower
    );
    // a stops renewing: after the 15 s lease, b takes over and a becomes a follower.
    clock.advance(6);
    assert_eq!(
        try_acquire(&client, &b, clock.as_ref()).await.unwrap(),
        Attempt::Leader
    );
    assert_eq!(
        try_acquire(&client, &a, clock.as_ref()).await.unwrap(),
        Attempt::Follower
    );
    let lease = fake
        .get(
            "coordination.k8s.io/v1",
            "ops",
            "leases",
            "dualchain-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // Release hands it over at once.
    release(&client, &b).await;
    assert_eq!(
        try_acquire(&client, &a, clock.as_ref()).await.unwrap(),
        Attempt::Leader
    );
}
