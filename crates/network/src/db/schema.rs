//! The network service's tables.

use oxstack_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        version: 2,
        description: "ports, IP allocations and security groups",
        // The primary key of ip_allocations is what keeps two ports from
        // getting one address: concurrent creates that chose the same one
        // collide here and the loser chooses again.
        sql: r#"
CREATE TABLE security_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    stateful BIGINT NOT NULL,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX security_groups_project ON security_groups (project_id);
CREATE TABLE default_security_groups (
    project_id TEXT PRIMARY KEY,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE
);
CREATE TABLE security_group_rules (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    direction TEXT NOT NULL,
    ethertype TEXT NOT NULL,
    protocol TEXT,
    port_range_min BIGINT,
    port_range_max BIGINT,
    remote_ip_prefix TEXT,
    remote_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
    description TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    rule_key TEXT NOT NULL UNIQUE
);
CREATE INDEX security_group_rules_group ON security_group_rules (security_group_id);
CREATE TABLE ports (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks (id),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    mac_address TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    status TEXT NOT NULL,
    device_owner TEXT NOT NULL,
    device_id TEXT NOT NULL,
    binding_host_id TEXT NOT NULL,
    binding_vnic_type TEXT NOT NULL,
    binding_vif_type TEXT NOT NULL,
    binding_vif_details TEXT NOT NULL,
    binding_profile TEXT NOT NULL,
    port_security_enabled BIGINT NOT NULL,
    allowed_address_pairs TEXT NOT NULL,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (network_id, mac_address)
);
CREATE INDEX ports_network ON ports (network_id);
CREATE INDEX ports_device ON ports (device_id);
CREATE TABLE ip_allocations (
    subnet_id TEXT NOT NULL REFERENCES subnets (id),
    ip_address TEXT NOT NULL,
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    network_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, ip_address)
);
CREATE INDEX ip_allocations_port ON ip_allocations (port_id);
CREATE TABLE port_security_groups (
    port_id TEXT NOT NULL REFERENCES ports (id) ON DELETE CASCADE,
    security_group_id TEXT NOT NULL REFERENCES security_groups (id),
    position BIGINT NOT NULL,
    PRIMARY KEY (port_id, security_group_id)
);
CREATE INDEX port_security_groups_group ON port_security_groups (security_group_id)
"#,
    },
    Migration {
        version: 3,
        description: "routers, floating IPs, quotas and network agents",
        // Router interfaces and gateways are ports (device_id = router id),
        // so routers keep only the gateway port's id. Floating IPs name their
        // associated port without a foreign key, because deleting that port
        // disassociates the floating IP instead of failing.
        sql: r#"
CREATE TABLE routers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    gateway_network_id TEXT REFERENCES networks (id),
    gateway_port_id TEXT,
    enable_snat BIGINT NOT NULL,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX routers_project ON routers (project_id);
CREATE TABLE floatingips (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    floating_network_id TEXT NOT NULL REFERENCES networks (id),
    floating_ip_address TEXT NOT NULL,
    floating_port_id TEXT NOT NULL,
    port_id TEXT,
    fixed_ip_address TEXT,
    router_id TEXT,
    status TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    revision_number BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX floatingips_project ON floatingips (project_id);
CREATE INDEX floatingips_port ON floatingips (port_id);
CREATE TABLE network_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
);
CREATE TABLE network_quota_locks (
    project_id TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);
CREATE TABLE network_agents (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL UNIQUE,
    agent_type TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    topic TEXT NOT NULL,
    admin_state_up BIGINT NOT NULL,
    configurations TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
)
"#,
    },
];
