//! The server group filters and aggregate zones over several fake hosts:
//! affinity keeps members together, anti-affinity spreads them up to
//! `max_server_per_host`, and an aggregate's zone moves its host.

mod conductor_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use conductor_support::*;
use oxstack_compute::server::VmState;
use oxstack_compute::server_group::{self, ServerGroup};
use oxstack_hypervisor::FakeDriver;
use serde_json::json;

async fn group(rig: &Rig, policy: &str, rules: BTreeMap<String, serde_json::Value>) -> String {
    let group = ServerGroup {
        id: uuid::Uuid::new_v4().to_string(),
        name: policy.to_owned(),
        project_id: PROJECT.to_owned(),
        user_id: USER.to_owned(),
        policy: policy.to_owned(),
        rules,
        created_at: 0,
    };
    server_group::insert(rig.service.pool(), &group)
        .await
        .expect("group stored");
    group.id
}

/// Builds a member of `group_id` and returns the server once settled.
async fn build_member(rig: &Rig, name: &str, group_id: &str) -> oxstack_compute::server::Server {
    let mut server = new_server(name);
    server.server_group = Some(group_id.to_owned());
    build(rig, &server).await;
    server_group::add_member(rig.service.pool(), group_id, &server.id)
        .await
        .expect("member stored");
    settled(rig, &server.id).await
}

#[tokio::test]
async fn affinity_keeps_members_together() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let group_id = group(&rig, "affinity", BTreeMap::new()).await;
    let first = build_member(&rig, "a1", &group_id).await;
    let host = first.host.clone().expect("scheduled");
    for n in 2..=4 {
        let member = build_member(&rig, &format!("a{n}"), &group_id).await;
        assert_eq!(member.host.as_deref(), Some(host.as_str()), "member a{n}");
    }
}

#[tokio::test]
async fn anti_affinity_spreads_members() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let group_id = group(&rig, "anti-affinity", BTreeMap::new()).await;
    let first = build_member(&rig, "s1", &group_id).await;
    let second = build_member(&rig, "s2", &group_id).await;
    assert_ne!(first.host, second.host);

    let third = build_member(&rig, "s3", &group_id).await;
    assert_eq!(third.vm_state, VmState::Error);
    let message = third.fault.expect("fault").message;
    assert!(
        message.contains("ServerGroupAntiAffinityFilter removed all hosts"),
        "{message}"
    );
    assert!(message.contains(&group_id), "{message}");
}

#[tokio::test]
async fn max_server_per_host_allows_more() {
    let rig = rig().await;
    let rules = BTreeMap::from([("max_server_per_host".to_owned(), json!(2))]);
    let group_id = group(&rig, "anti-affinity", rules).await;
    let first = build_member(&rig, "m1", &group_id).await;
    let second = build_member(&rig, "m2", &group_id).await;
    assert_eq!(first.host.as_deref(), Some("node1"));
    assert_eq!(second.host.as_deref(), Some("node1"));
    let third = build_member(&rig, "m3", &group_id).await;
    assert_eq!(
        third.vm_state,
        VmState::Error,
        "a third member exceeds the rule"
    );
}

#[tokio::test]
async fn soft_policies_do_not_filter() {
    let rig = rig().await;
    let group_id = group(&rig, "soft-anti-affinity", BTreeMap::new()).await;
    for n in 1..=2 {
        let member = build_member(&rig, &format!("soft{n}"), &group_id).await;
        assert_eq!(member.vm_state, VmState::Active, "member soft{n}");
    }
}

#[tokio::test]
async fn aggregate_zone_places_server() {
    let rig = rig().await;
    add_host(&rig, "node2", "nova", Arc::new(FakeDriver::new())).await;
    let metadata = BTreeMap::from([("availability_zone".to_owned(), "edge".to_owned())]);
    let aggregate = oxstack_compute::aggregate::insert(rig.service.pool(), "edge", &metadata, 0)
        .await
        .expect("aggregate stored")
        .expect("name is free");
    oxstack_compute::aggregate::add_host(rig.service.pool(), aggregate.id, "node2", 0)
        .await
        .expect("host added");

    let mut server = new_server("edge-vm");
    server.requested_availability_zone = Some("edge".to_owned());
    build(&rig, &server).await;
    let built = settled(&rig, &server.id).await;
    assert_eq!(built.host.as_deref(), Some("node2"));
    assert_eq!(built.availability_zone.as_deref(), Some("edge"));
}
