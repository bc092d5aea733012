//! Version documents and microversion negotiation.

mod common;

use axum::http::StatusCode;
use common::{Cloud, PUBLIC_URL};

#[tokio::test]
async fn root_lists_v2_0_first() {
    let cloud = Cloud::start().await;
    let reply = cloud.call("GET", "/", None, None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let versions = reply.body["versions"].as_array().expect("versions");
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["id"], "v2.0");
    assert_eq!(versions[1]["id"], "v2.1");
    assert_eq!(versions[1]["status"], "CURRENT");
    assert_eq!(versions[1]["version"], "2.85");
    assert_eq!(versions[1]["min_version"], "2.1");
    let no_slash = cloud.call("GET", "", None, None, None).await;
    assert_eq!(no_slash.body, reply.body);
}

#[tokio::test]
async fn self_links_lead_to_their_documents() {
    let cloud = Cloud::start().await;
    let reply = cloud.call("GET", "/", None, None, None).await;
    for entry in reply.body["versions"].as_array().unwrap() {
        let links = entry["links"].as_array().unwrap();
        let selfs: Vec<_> = links.iter().filter(|l| l["rel"] == "self").collect();
        assert_eq!(selfs.len(), 1, "{entry}");
        let href = selfs[0]["href"].as_str().unwrap();
        let path = href
            .strip_prefix(&format!("{PUBLIC_URL}/compute"))
            .expect(href);
        let document = cloud.call("GET", path, None, None, None).await;
        assert_eq!(document.status, StatusCode::OK, "GET {path}");
        assert_eq!(document.body["version"]["id"], entry["id"], "GET {path}");
        let own_self = document.body["version"]["links"][0]["href"]
            .as_str()
            .unwrap();
        assert_eq!(own_self, href);
    }
}

#[tokio::test]
async fn v2_1_document_without_slash_or_token() {
    let cloud = Cloud::start().await;
    for path in ["/v2.1", "/v2.1/", "/v2", "/v2/"] {
        let reply = cloud.call("GET", path, None, None, None).await;
        assert_eq!(reply.status, StatusCode::OK, "GET {path}");
        assert!(
            reply.body["version"]["links"].is_array(),
            "GET {path}: {}",
            reply.body
        );
    }
}

#[tokio::test]
async fn microversion_echoed_and_out_of_range_406() {
    let cloud = Cloud::start().await;
    let reply = cloud.get("/v2.1/flavors", &cloud.demo, "2.61").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers["openstack-api-version"], "compute 2.61");
    assert_eq!(reply.headers["x-openstack-nova-api-version"], "2.61");

    let reply = cloud.get("/v2.1/flavors", &cloud.demo, "2.200").await;
    assert_eq!(reply.status, StatusCode::NOT_ACCEPTABLE);
    let message = reply.body["computeFault"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("maximum is 2.85"), "{}", reply.body);

    let reply = cloud
        .call("GET", "/v2.1/flavors", Some(&cloud.demo), None, None)
        .await;
    assert_eq!(reply.headers["x-openstack-nova-api-version"], "2.1");
}

#[tokio::test]
async fn request_without_token_is_401() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .call("GET", "/v2.1/flavors", None, Some("2.61"), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.body["unauthorized"]["code"], 401);
}

#[tokio::test]
async fn unknown_path_and_method_use_nova_faults() {
    let cloud = Cloud::start().await;
    let missing = cloud
        .get("/v2.1/no-such-resource", &cloud.demo, "2.61")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["itemNotFound"]["code"], 404);
    assert_eq!(missing.headers["openstack-api-version"], "compute 2.61");
    let wrong_method = cloud
        .call(
            "PATCH",
            "/v2.1/flavors",
            Some(&cloud.demo),
            Some("2.61"),
            None,
        )
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.body["badMethod"]["code"], 405);
}
