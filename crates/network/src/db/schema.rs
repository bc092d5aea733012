//! The network service's tables.

use oxstack_store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "networks and subnets",
    sql: r#"
CREATE TABLE networks (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    shared BIGINT NOT NULL,
    external BIGINT NOT NULL,
    mtu BIGINT NOT NULL,
    network_type TEXT NOT NULL,
    physical_network TEXT,
    segmentation_id BIGINT,
    segment_key TEXT NOT NULL UNIQUE,
    port_security_enabled BIGINT NOT NULL,
    is_default BIGINT NOT NULL,
    availability_zone_hints TEXT NOT NULL,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX networks_project ON networks (project_id);
CREATE TABLE subnets (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    ip_version BIGINT NOT NULL,
    cidr TEXT NOT NULL,
    gateway_ip TEXT,
    allocation_pools TEXT NOT NULL,
    enable_dhcp BIGINT NOT NULL,
    dns_nameservers TEXT NOT NULL,
    host_routes TEXT NOT NULL,
    ipv6_ra_mode TEXT,
    ipv6_address_mode TEXT,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX subnets_network ON subnets (network_id);
CREATE INDEX subnets_project ON subnets (project_id)
"#,
}];
