//! Allocations, usages and allocation candidates through the HTTP API and
//! the Rust API the scheduler calls.

mod common;

use std::collections::BTreeMap;

use axum::http::StatusCode;
use common::{allocation_body, new_uuid, Cloud};
use oxstack_placement::{CandidateRequest, ConsumerId, PlacementError, ProviderId, Resources};
use serde_json::json;

#[tokio::test]
async fn allocation_round_trip_updates_usage() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let consumer = new_uuid();
    let body = allocation_body(&provider, json!({"VCPU": 2, "MEMORY_MB": 1024}));
    let reply = cloud
        .call("PUT", &format!("/allocations/{consumer}"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    let reply = cloud
        .call("GET", &format!("/allocations/{consumer}"), None)
        .await;
    assert_eq!(reply.body["allocations"][&provider]["resources"]["VCPU"], 2);
    assert_eq!(
        reply.body["project_id"],
        "11111111-1111-1111-1111-111111111111"
    );

    let reply = cloud
        .call(
            "GET",
            &format!("/resource_providers/{provider}/usages"),
            None,
        )
        .await;
    assert_eq!(reply.body["usages"], json!({"VCPU": 2, "MEMORY_MB": 1024}));
    let reply = cloud
        .call(
            "GET",
            "/usages?project_id=11111111-1111-1111-1111-111111111111",
            None,
        )
        .await;
    assert_eq!(reply.body["usages"]["MEMORY_MB"], 1024);
    let reply = cloud
        .call(
            "GET",
            &format!("/resource_providers/{provider}/allocations"),
            None,
        )
        .await;
    assert_eq!(
        reply.body["allocations"][&consumer]["resources"]["MEMORY_MB"],
        1024
    );

    let reply = cloud
        .call("DELETE", &format!("/allocations/{consumer}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = cloud
        .call("DELETE", &format!("/allocations/{consumer}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = cloud
        .call(
            "GET",
            &format!("/resource_providers/{provider}/usages"),
            None,
        )
        .await;
    assert_eq!(reply.body["usages"]["VCPU"], 0);
}

#[tokio::test]
async fn over_capacity_claim_names_class_and_amounts() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 4, 4096).await;
    let first = allocation_body(&provider, json!({"VCPU": 3}));
    let reply = cloud
        .call("PUT", &format!("/allocations/{}", new_uuid()), Some(first))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    let second = allocation_body(&provider, json!({"VCPU": 2, "MEMORY_MB": 512}));
    let consumer = new_uuid();
    let reply = cloud
        .call("PUT", &format!("/allocations/{consumer}"), Some(second))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    let detail = reply.detail();
    for part in ["VCPU", "request for 2", "capacity of 4", "3 is used"] {
        assert!(detail.contains(part), "{part} missing from: {detail}");
    }
    // All or nothing: the memory that fitted was not allocated either.
    let reply = cloud
        .call("GET", &format!("/allocations/{consumer}"), None)
        .await;
    assert_eq!(reply.body["allocations"], json!({}));
}

#[tokio::test]
async fn unit_limits_and_missing_inventory_conflict() {
    let cloud = Cloud::start().await;
    let provider = cloud.create_provider("cn1").await;
    let reply = cloud
        .set_inventories(&provider, json!({"VCPU": {"total": 8, "max_unit": 2}}))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let too_big = allocation_body(&provider, json!({"VCPU": 4}));
    let reply = cloud
        .call(
            "PUT",
            &format!("/allocations/{}", new_uuid()),
            Some(too_big),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.detail().contains("max_unit"), "{}", reply.detail());

    let no_disk = allocation_body(&provider, json!({"DISK_GB": 1}));
    let reply = cloud
        .call(
            "PUT",
            &format!("/allocations/{}", new_uuid()),
            Some(no_disk),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.detail().contains("DISK_GB"), "{}", reply.detail());

    let unknown = allocation_body(&new_uuid(), json!({"VCPU": 1}));
    let reply = cloud
        .call(
            "PUT",
            &format!("/allocations/{}", new_uuid()),
            Some(unknown),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn inventory_in_use_cannot_be_removed() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let body = allocation_body(&provider, json!({"VCPU": 1}));
    cloud
        .call("PUT", &format!("/allocations/{}", new_uuid()), Some(body))
        .await;
    let reply = cloud
        .set_inventories(&provider, json!({"MEMORY_MB": {"total": 4096}}))
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "placement.inventory.inuse");
    let reply = cloud
        .call("DELETE", &format!("/resource_providers/{provider}"), None)
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "placement.resource_provider.inuse");
}

#[tokio::test]
async fn list_format_before_microversion_1_12() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let consumer = new_uuid();
    let body = json!({
        "allocations": [{"resource_provider": {"uuid": provider}, "resources": {"VCPU": 1}}],
        "project_id": "p", "user_id": "u",
    });
    let reply = cloud
        .call_at(
            Some("placement 1.8"),
            "PUT",
            &format!("/allocations/{consumer}"),
            Some(&cloud.admin),
            Some(body),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    let reply = cloud
        .call_at(
            Some("placement 1.10"),
            "GET",
            "/allocation_candidates?resources=VCPU:1",
            Some(&cloud.admin),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let request = &reply.body["allocation_requests"][0]["allocations"][0];
    assert_eq!(request["resource_provider"]["uuid"], provider.as_str());
}

#[tokio::test]
async fn post_allocations_is_all_or_nothing() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 2, 4096).await;
    let (fits, too_much) = (new_uuid(), new_uuid());
    let body = json!({
        fits.clone(): allocation_body(&provider, json!({"VCPU": 1})),
        too_much.clone(): allocation_body(&provider, json!({"VCPU": 2})),
    });
    let reply = cloud.call("POST", "/allocations", Some(body)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let reply = cloud
        .call("GET", &format!("/allocations/{fits}"), None)
        .await;
    assert_eq!(reply.body["allocations"], json!({}));

    let body = json!({ fits.clone(): allocation_body(&provider, json!({"VCPU": 2})) });
    let reply = cloud.call("POST", "/allocations", Some(body)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
}

#[tokio::test]
async fn candidates_filter_by_capacity_and_traits() {
    let cloud = Cloud::start().await;
    let big = cloud.compute_node("big", 16, 32768).await;
    let small = cloud.compute_node("small", 2, 2048).await;
    let full = cloud.compute_node("full", 4, 8192).await;
    let body = allocation_body(&full, json!({"VCPU": 4}));
    cloud
        .call("PUT", &format!("/allocations/{}", new_uuid()), Some(body))
        .await;

    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=VCPU:2,MEMORY_MB:4096",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let requests = reply.body["allocation_requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{}", reply.body);
    assert_eq!(
        requests[0]["allocations"][&big]["resources"]["MEMORY_MB"],
        4096
    );
    let summary = &reply.body["provider_summaries"][&big]["resources"]["VCPU"];
    assert_eq!(summary["capacity"], 16);
    assert_eq!(summary["used"], 0);

    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=VCPU:1&limit=1",
            None,
        )
        .await;
    assert_eq!(
        reply.body["allocation_requests"].as_array().unwrap().len(),
        1
    );

    let traits = json!({"resource_provider_generation": 1, "traits": ["HW_CPU_X86_AVX2"]});
    let reply = cloud
        .call(
            "PUT",
            &format!("/resource_providers/{small}/traits"),
            Some(traits),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=VCPU:1&required=HW_CPU_X86_AVX2",
            None,
        )
        .await;
    let summaries = reply.body["provider_summaries"].as_object().unwrap();
    assert_eq!(summaries.keys().collect::<Vec<_>>(), [&small]);
    assert_eq!(summaries[&small]["traits"], json!(["HW_CPU_X86_AVX2"]));

    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=CUSTOM_NOPE:1",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_never_overcommit() {
    let cloud = Cloud::start().await;
    let provider = ProviderId(cloud.compute_node("cn1", 8, 65536).await);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let service = cloud.service.clone();
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            let allocations =
                BTreeMap::from([(provider, Resources::from([("VCPU".to_owned(), 1)]))]);
            let consumer = ConsumerId(uuid::Uuid::new_v4().to_string());
            service
                .claim(&consumer, "project", "user", &allocations)
                .await
        }));
    }
    let mut granted = 0;
    let mut rejected = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => granted += 1,
            Err(PlacementError::CapacityExceeded { class, .. }) => {
                assert_eq!(class, "VCPU");
                rejected += 1;
            }
            Err(other) => panic!("unexpected claim failure: {other:?}"),
        }
    }
    assert_eq!(granted, 8);
    assert_eq!(rejected, 12);
    let (_, usages) = cloud.service.provider_usages(&provider).await.unwrap();
    assert_eq!(usages["VCPU"], 8);
}

#[tokio::test]
async fn rust_api_claims_and_releases() {
    let cloud = Cloud::start().await;
    let service = &cloud.service;
    let provider = ProviderId(new_uuid());
    let created = service.ensure_provider(&provider, "host-a").await.unwrap();
    let again = service.ensure_provider(&provider, "host-a").await.unwrap();
    assert_eq!(created.uuid, again.uuid);

    let inventories = [("VCPU", 4), ("MEMORY_MB", 2048)]
        .into_iter()
        .map(|(class, total)| {
            (
                class.to_owned(),
                oxstack_placement::Inventory::with_total(total),
            )
        })
        .collect();
    service
        .set_inventory(&provider, &inventories)
        .await
        .unwrap();

    let request = CandidateRequest {
        resources: Resources::from([("VCPU".to_owned(), 2), ("MEMORY_MB".to_owned(), 1024)]),
        ..CandidateRequest::default()
    };
    let candidates = service.allocation_candidates(&request).await.unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].provider, provider);

    let consumer = ConsumerId(new_uuid());
    let claim = BTreeMap::from([(provider.clone(), candidates[0].allocations.clone())]);
    service.claim(&consumer, "p", "u", &claim).await.unwrap();
    let (_, usages) = service.provider_usages(&provider).await.unwrap();
    assert_eq!(usages["MEMORY_MB"], 1024);

    assert!(service.release(&consumer).await.unwrap());
    assert!(!service.release(&consumer).await.unwrap());
    let (_, usages) = service.provider_usages(&provider).await.unwrap();
    assert_eq!(usages["MEMORY_MB"], 0);
}

#[tokio::test]
async fn stale_consumer_generation_conflicts() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let consumer = new_uuid();
    let path = format!("/allocations/{consumer}");
    let reply = cloud
        .call(
            "PUT",
            &path,
            Some(allocation_body(&provider, json!({"VCPU": 1}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.call("GET", &path, None).await;
    assert_eq!(reply.body["consumer_generation"], 1);
    let listed = format!("/resource_providers/{provider}/allocations");
    let reply = cloud.call("GET", &listed, None).await;
    assert_eq!(
        reply.body["allocations"][&consumer]["consumer_generation"],
        1
    );

    // A second writer that still believes the consumer is new loses.
    let reply = cloud
        .call(
            "PUT",
            &path,
            Some(allocation_body(&provider, json!({"VCPU": 2}))),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(reply.code(), "placement.concurrent_update");

    let mut body = allocation_body(&provider, json!({"VCPU": 2}));
    body["consumer_generation"] = json!(1);
    let reply = cloud.call("PUT", &path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    // From 1.28 an empty map removes the allocations.
    let body =
        json!({"allocations": {}, "project_id": "p", "user_id": "u", "consumer_generation": 2});
    let reply = cloud.call("PUT", &path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.call("GET", &path, None).await;
    assert_eq!(reply.body["allocations"], json!({}));
}

#[tokio::test]
async fn granular_groups_merge_or_isolate() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let query = "/allocation_candidates?resources1=VCPU:1&resources2=VCPU:2,MEMORY_MB:512";
    let reply = cloud.call("GET", query, None).await;
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "group_policy is required"
    );

    let reply = cloud
        .call("GET", &format!("{query}&group_policy=none"), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let resources = &reply.body["allocation_requests"][0]["allocations"][&provider]["resources"];
    assert_eq!(resources["VCPU"], 3);
    assert_eq!(resources["MEMORY_MB"], 512);

    let reply = cloud
        .call("GET", &format!("{query}&group_policy=isolate"), None)
        .await;
    assert_eq!(reply.body["allocation_requests"], json!([]));

    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=VCPU:1&required1=HW_CPU_X86_AVX",
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "orphaned required1");

    let old = cloud
        .call_at(
            Some("placement 1.24"),
            "GET",
            "/allocation_candidates?resources1=VCPU:1",
            Some(&cloud.admin),
            None,
        )
        .await;
    assert_eq!(
        old.status,
        StatusCode::BAD_REQUEST,
        "granular groups need 1.25"
    );
}

#[tokio::test]
async fn summaries_cover_all_classes_from_1_27() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 8, 4096).await;
    let reply = cloud
        .call("GET", "/allocation_candidates?resources=VCPU:1", None)
        .await;
    let summary = &reply.body["provider_summaries"][&provider]["resources"];
    assert_eq!(summary["MEMORY_MB"]["capacity"], 4096);

    let old = cloud
        .call_at(
            Some("placement 1.26"),
            "GET",
            "/allocation_candidates?resources=VCPU:1",
            Some(&cloud.admin),
            None,
        )
        .await;
    let summary = &old.body["provider_summaries"][&provider]["resources"];
    assert!(summary.get("MEMORY_MB").is_none(), "{summary}");
}

#[tokio::test]
async fn reserved_may_equal_total_from_1_26() {
    let cloud = Cloud::start().await;
    let provider = cloud.create_provider("cn1").await;
    let path = format!("/resource_providers/{provider}/inventories");
    let body = json!({"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4, "reserved": 4}}});
    let old = cloud
        .call_at(
            Some("placement 1.25"),
            "PUT",
            &path,
            Some(&cloud.admin),
            Some(body.clone()),
        )
        .await;
    assert_eq!(old.status, StatusCode::BAD_REQUEST, "{}", old.body);
    let reply = cloud.call("PUT", &path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn hundred_providers_are_all_candidates() {
    let cloud = Cloud::start().await;
    let started = std::time::Instant::now();
    for index in 0..100 {
        cloud.compute_node(&format!("cn{index}"), 8, 16384).await;
    }
    let created = started.elapsed();
    let started = std::time::Instant::now();
    let reply = cloud
        .call(
            "GET",
            "/allocation_candidates?resources=VCPU:1,MEMORY_MB:512",
            None,
        )
        .await;
    let listed = started.elapsed();
    assert_eq!(
        reply.body["allocation_requests"].as_array().unwrap().len(),
        100
    );
    // Printed for comparison with other placement services; not asserted,
    // because the time depends on the machine.
    println!("100 providers with inventories: {created:?}; candidates: {listed:?}");
}

#[tokio::test]
async fn post_allocations_moves_between_consumers() {
    let cloud = Cloud::start().await;
    let provider = cloud.compute_node("cn1", 2, 4096).await;
    let (instance, migration) = (new_uuid(), new_uuid());
    let body = allocation_body(&provider, json!({"VCPU": 2}));
    let reply = cloud
        .call("PUT", &format!("/allocations/{instance}"), Some(body))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);

    // The provider is full, so the move only fits because the instance's
    // allocation goes away in the same request.
    let mut emptied = allocation_body(&provider, json!({}));
    emptied["allocations"] = json!({});
    emptied["consumer_generation"] = json!(1);
    let body = json!({
        instance.clone(): emptied,
        migration.clone(): allocation_body(&provider, json!({"VCPU": 2})),
    });
    let reply = cloud.call("POST", "/allocations", Some(body)).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud
        .call("GET", &format!("/allocations/{migration}"), None)
        .await;
    assert_eq!(reply.body["allocations"][&provider]["resources"]["VCPU"], 2);
    let reply = cloud
        .call("GET", &format!("/allocations/{instance}"), None)
        .await;
    assert_eq!(reply.body["allocations"], json!({}));
}
