//! Security groups and their rules as the OpenStack CLI drives them: the
//! per-project `default` group, lookups by name, rule creation and its
//! checks, and the rules on deleting and renaming groups.

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use common::{Cloud, Reply};
use serde_json::{json, Value};

fn assert_error(reply: &Reply, status: StatusCode, error_type: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.error_type(), error_type, "{}", reply.body);
}

/// Looks up the caller's `default` group as the CLI does, and returns it.
async fn find_default(cloud: &Cloud, token: &str) -> Value {
    let by_name = cloud.get("/v2.0/security-groups/default", token).await;
    assert_error(&by_name, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let listed = cloud.get("/v2.0/security-groups?name=default", token).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let groups = listed.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", listed.body);
    groups[0].clone()
}

async fn create_rule(cloud: &Cloud, token: &str, rule: Value) -> Reply {
    cloud
        .post(
            "/v2.0/security-group-rules",
            token,
            json!({ "security_group_rule": rule }),
        )
        .await
}

fn rule_shapes(rules: &Value) -> HashSet<(String, String, bool)> {
    rules
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            (
                rule["direction"].as_str().unwrap().to_owned(),
                rule["ethertype"].as_str().unwrap().to_owned(),
                !rule["remote_group_id"].is_null(),
            )
        })
        .collect()
}

#[tokio::test]
async fn cli_group_list_creates_default_group() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .get(
            "/v2.0/security-groups?fields=id&fields=name&fields=description&fields=project_id&fields=tags&fields=shared",
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let groups = reply.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", reply.body);
    let group = &groups[0];
    assert_eq!(group["name"], "default");
    assert_eq!(group["project_id"], cloud.demo_project.as_str());
    assert_eq!(group["shared"], false);
    assert_eq!(group["tags"], json!([]));
    assert_eq!(group.as_object().unwrap().len(), 6, "{group}");

    // Listing again does not make a second default group.
    let again = cloud.get("/v2.0/security-groups", &cloud.demo).await;
    assert_eq!(again.body["security_groups"].as_array().unwrap().len(), 1);
    let full = &again.body["security_groups"][0];
    let id = full["id"].as_str().unwrap();
    let expected: HashSet<(String, String, bool)> = [
        ("egress", "IPv4", false),
        ("egress", "IPv6", false),
        ("ingress", "IPv4", true),
        ("ingress", "IPv6", true),
    ]
    .iter()
    .map(|(d, e, r)| ((*d).to_owned(), (*e).to_owned(), *r))
    .collect();
    assert_eq!(rule_shapes(&full["security_group_rules"]), expected);
    for rule in full["security_group_rules"].as_array().unwrap() {
        if !rule["remote_group_id"].is_null() {
            assert_eq!(rule["remote_group_id"], id);
        }
        assert!(rule["protocol"].is_null());
        assert!(rule["remote_ip_prefix"].is_null());
        assert_eq!(rule["belongs_to_default_sg"], true);
    }
}

#[tokio::test]
async fn concurrent_first_uses_make_one_default_group() {
    let cloud = std::sync::Arc::new(Cloud::start().await);
    let mut tasks = Vec::new();
    for path in [
        "/v2.0/security-groups",
        "/v2.0/networks",
        "/v2.0/ports",
        "/v2.0/security-group-rules",
    ] {
        let cloud = cloud.clone();
        tasks.push(tokio::spawn(
            async move { cloud.get(path, &cloud.demo).await },
        ));
    }
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let listed = cloud
        .get("/v2.0/security-groups?name=default", &cloud.admin)
        .await;
    let path = format!("/v2.0/security-groups?project_id={}", cloud.demo_project);
    let demo_groups = cloud.get(&path, &cloud.admin).await;
    assert_eq!(
        demo_groups.body["security_groups"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{}",
        demo_groups.body
    );
    // The admin's own lookup by name finds only its own project's group.
    assert_eq!(
        listed.body["security_groups"].as_array().unwrap().len(),
        1,
        "{}",
        listed.body
    );
}

#[tokio::test]
async fn cli_rule_list_and_create_on_default() {
    let cloud = Cloud::start().await;
    let group = find_default(&cloud, &cloud.demo).await;
    let group_id = group["id"].as_str().unwrap();

    // `openstack security group rule list default`.
    let path = format!("/v2.0/security-group-rules?security_group_id={group_id}");
    let rules = cloud.get(&path, &cloud.demo).await;
    assert_eq!(rules.status, StatusCode::OK, "{}", rules.body);
    assert_eq!(
        rules.body["security_group_rules"].as_array().unwrap().len(),
        4
    );

    // `openstack security group rule create --protocol tcp --dst-port 22 default`.
    let ssh = json!({"remote_ip_prefix": "0.0.0.0/0", "protocol": "tcp", "direction": "ingress",
                     "port_range_min": 22, "security_group_id": group_id, "ethertype": "IPv4",
                     "port_range_max": 22});
    let created = create_rule(&cloud, &cloud.demo, ssh.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let rule = &created.body["security_group_rule"];
    assert_eq!(rule["protocol"], "tcp");
    assert_eq!(rule["port_range_min"], 22);
    assert_eq!(rule["port_range_max"], 22);
    assert_eq!(rule["remote_ip_prefix"], "0.0.0.0/0");
    assert_eq!(rule["security_group_id"], group_id);
    assert_eq!(rule["project_id"], cloud.demo_project.as_str());

    let duplicate = create_rule(&cloud, &cloud.demo, ssh).await;
    assert_error(&duplicate, StatusCode::CONFLICT, "SecurityGroupRuleExists");
    assert!(
        duplicate
            .error_message()
            .contains(rule["id"].as_str().unwrap()),
        "{}",
        duplicate.body
    );
    // The protocol number is the same rule as its name.
    let by_number = json!({"protocol": "6", "direction": "ingress", "port_range_min": 22,
                           "port_range_max": 22, "security_group_id": group_id});
    let reply = create_rule(&cloud, &cloud.demo, by_number).await;
    assert_error(&reply, StatusCode::CONFLICT, "SecurityGroupRuleExists");

    // `openstack security group rule create --proto icmp default`.
    let icmp = json!({"ethertype": "IPv4", "remote_ip_prefix": "0.0.0.0/0", "direction": "ingress",
                      "protocol": "icmp", "security_group_id": group_id});
    let created_icmp = create_rule(&cloud, &cloud.demo, icmp).await;
    assert_eq!(
        created_icmp.status,
        StatusCode::CREATED,
        "{}",
        created_icmp.body
    );

    let shown = cloud
        .get(&format!("/v2.0/security-groups/{group_id}"), &cloud.demo)
        .await;
    assert_eq!(
        shown.body["security_group"]["security_group_rules"]
            .as_array()
            .unwrap()
            .len(),
        6
    );

    let rule_path = format!(
        "/v2.0/security-group-rules/{}",
        rule["id"].as_str().unwrap()
    );
    let reply = cloud.get(&rule_path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud.delete(&rule_path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.get(&rule_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupRuleNotFound");
}

#[tokio::test]
async fn bad_rules_have_neutron_types() {
    let cloud = Cloud::start().await;
    let group = find_default(&cloud, &cloud.demo).await;
    let group_id = group["id"].as_str().unwrap();
    let base = |extra: Value| {
        let mut rule = json!({"security_group_id": group_id, "direction": "ingress"});
        for (key, value) in extra.as_object().unwrap() {
            rule[key] = value.clone();
        }
        rule
    };
    let cases = [
        (
            json!({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortRange",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 0, "port_range_max": 20}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "tcp", "port_range_min": 1, "port_range_max": 65536}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidPortValue",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 300}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"protocol": "icmp", "port_range_min": 8, "port_range_max": 256}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupInvalidIcmpValue",
        ),
        (
            json!({"protocol": "bogus"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"protocol": 300}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidProtocol",
        ),
        (
            json!({"port_range_min": 22, "port_range_max": 22}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupProtocolRequiredWithPorts",
        ),
        (
            json!({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleParameterConflict",
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": group_id}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
        ),
        (
            json!({"ethertype": "IPv5"}),
            StatusCode::BAD_REQUEST,
            "SecurityGroupRuleInvalidEtherType",
        ),
        (
            json!({"direction": "sideways"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"remote_ip_prefix": "10.0.0.0/99"}),
            StatusCode::BAD_REQUEST,
            "HTTPBadRequest",
        ),
        (
            json!({"remote_group_id": "no-such-group"}),
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
        ),
        (
            json!({"security_group_id": "no-such-group"}),
            StatusCode::NOT_FOUND,
            "SecurityGroupNotFound",
        ),
    ];
    for (extra, status, error_type) in cases {
        let reply = create_rule(&cloud, &cloud.demo, base(extra.clone())).await;
        assert_eq!(reply.status, status, "{extra}: {}", reply.body);
        assert_eq!(reply.error_type(), error_type, "{extra}: {}", reply.body);
    }
    let reply = create_rule(&cloud, &cloud.demo, json!({"security_group_id": group_id})).await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "HTTPBadRequest");
}

#[tokio::test]
async fn cli_group_create_returns_egress_rules() {
    let cloud = Cloud::start().await;
    let reply = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web", "description": "web"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let group = &reply.body["security_group"];
    assert_eq!(group["name"], "web");
    assert_eq!(group["description"], "web");
    assert_eq!(group["stateful"], true);
    assert_eq!(group["revision_number"], 1);
    let expected: HashSet<(String, String, bool)> =
        [("egress", "IPv4", false), ("egress", "IPv6", false)]
            .iter()
            .map(|(d, e, r)| ((*d).to_owned(), (*e).to_owned(), *r))
            .collect();
    assert_eq!(rule_shapes(&group["security_group_rules"]), expected);
    assert_eq!(
        group["security_group_rules"][0]["belongs_to_default_sg"],
        false
    );

    // The project's default group came into being too.
    let listed = cloud.get("/v2.0/security-groups", &cloud.demo).await;
    let names: HashSet<&str> = listed.body["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "web"].into_iter().collect());

    let reply = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "default"}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "SecurityGroupDefaultAlreadyExists",
    );
}

#[tokio::test]
async fn default_group_cannot_be_renamed_or_deleted() {
    let cloud = Cloud::start().await;
    let group = find_default(&cloud, &cloud.demo).await;
    let path = format!("/v2.0/security-groups/{}", group["id"].as_str().unwrap());

    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"security_group": {"name": "other"}}),
        )
        .await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "SecurityGroupCannotUpdateDefault",
    );
    let reply = cloud
        .put(
            &path,
            &cloud.demo,
            json!({"security_group": {"description": "mine"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["security_group"]["description"], "mine");
    assert_eq!(reply.body["security_group"]["revision_number"], 2);

    let reply = cloud.delete(&path, &cloud.demo).await;
    assert_error(
        &reply,
        StatusCode::CONFLICT,
        "SecurityGroupCannotRemoveDefault",
    );
}

#[tokio::test]
async fn group_in_use_by_port_cannot_be_deleted() {
    let cloud = Cloud::start().await;
    let network = cloud.create_network(&cloud.demo, "net").await;
    let web = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    let web_id = web.body["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = cloud
        .post(
            "/v2.0/ports",
            &cloud.demo,
            json!({"port": {"network_id": network["id"], "security_groups": [web_id]}}),
        )
        .await;
    assert_eq!(port.status, StatusCode::CREATED, "{}", port.body);
    let group_path = format!("/v2.0/security-groups/{web_id}");
    let reply = cloud.delete(&group_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::CONFLICT, "SecurityGroupInUse");

    let port_path = format!("/v2.0/ports/{}", port.body["port"]["id"].as_str().unwrap());
    cloud.delete(&port_path, &cloud.demo).await;
    let reply = cloud.delete(&group_path, &cloud.demo).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = cloud.get(&group_path, &cloud.demo).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let rules = cloud
        .get(
            &format!("/v2.0/security-group-rules?security_group_id={web_id}"),
            &cloud.demo,
        )
        .await;
    assert_eq!(rules.body["security_group_rules"], json!([]));
}

#[tokio::test]
async fn other_projects_groups_are_invisible() {
    let cloud = Cloud::start().await;
    let group = find_default(&cloud, &cloud.demo).await;
    let group_id = group["id"].as_str().unwrap();
    let path = format!("/v2.0/security-groups/{group_id}");

    let reply = cloud.get(&path, &cloud.alt).await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let reply = cloud
        .put(
            &path,
            &cloud.alt,
            json!({"security_group": {"description": "x"}}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let reply = create_rule(
        &cloud,
        &cloud.alt,
        json!({"security_group_id": group_id, "direction": "ingress"}),
    )
    .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
    let alt_default = find_default(&cloud, &cloud.alt).await;
    assert_ne!(alt_default["id"], group["id"]);
    let rules = cloud.get("/v2.0/security-group-rules", &cloud.alt).await;
    for rule in rules.body["security_group_rules"].as_array().unwrap() {
        assert_eq!(rule["security_group_id"], alt_default["id"]);
    }
    // A port cannot use another project's group.
    let network = cloud.create_network(&cloud.alt, "alt-net").await;
    let reply = cloud
        .post(
            "/v2.0/ports",
            &cloud.alt,
            json!({"port": {"network_id": network["id"], "security_groups": [group_id]}}),
        )
        .await;
    assert_error(&reply, StatusCode::NOT_FOUND, "SecurityGroupNotFound");
}

#[tokio::test]
async fn discovery_lists_new_resources_and_extension() {
    let cloud = Cloud::start().await;
    let reply = cloud.call("GET", "/v2.0/", None, None).await;
    let collections: HashSet<&str> = reply.body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["collection"].as_str().unwrap())
        .collect();
    for collection in ["ports", "security-groups", "security-group-rules"] {
        assert!(
            collections.contains(collection),
            "{collection}: {}",
            reply.body
        );
    }
    let reply = cloud
        .get("/v2.0/extensions/security-group", &cloud.demo)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let reply = cloud
        .get(
            "/v2.0/extensions/tag-ports-during-bulk-creation",
            &cloud.demo,
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn group_tags_and_admin_project_filter() {
    let cloud = Cloud::start().await;
    let web = cloud
        .post(
            "/v2.0/security-groups",
            &cloud.demo,
            json!({"security_group": {"name": "web"}}),
        )
        .await;
    let web_id = web.body["security_group"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = cloud
        .put(
            &format!("/v2.0/security-groups/{web_id}/tags"),
            &cloud.demo,
            json!({"tags": ["red", "blue"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let listed = cloud
        .get("/v2.0/security-groups?tags=red", &cloud.demo)
        .await;
    let groups = listed.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", listed.body);
    assert_eq!(groups[0]["tags"], json!(["red", "blue"]));
    assert_eq!(groups[0]["revision_number"], 2);

    // An admin filtering on a project that never used the API gets its
    // default group created.
    let path = format!("/v2.0/security-groups?project_id={}", cloud.alt_project);
    let listed = cloud.get(&path, &cloud.admin).await;
    let groups = listed.body["security_groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", listed.body);
    assert_eq!(groups[0]["name"], "default");
    assert_eq!(groups[0]["project_id"], cloud.alt_project.as_str());
}
