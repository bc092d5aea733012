//! The compute service's tables, and the default flavors.

use oxstack_store::Migration;

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "flavors, keypairs and quotas",
        sql: r#"
CREATE TABLE compute_flavors (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    vcpus BIGINT NOT NULL,
    ram BIGINT NOT NULL,
    disk BIGINT NOT NULL,
    ephemeral BIGINT NOT NULL,
    swap BIGINT NOT NULL,
    rxtx_factor DOUBLE PRECISION NOT NULL,
    is_public BIGINT NOT NULL,
    disabled BIGINT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);
CREATE TABLE compute_flavor_access (
    flavor_id TEXT NOT NULL REFERENCES compute_flavors (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL,
    PRIMARY KEY (flavor_id, project_id)
);
CREATE TABLE compute_flavor_extra_specs (
    flavor_id TEXT NOT NULL REFERENCES compute_flavors (id) ON DELETE CASCADE,
    spec_key TEXT NOT NULL,
    spec_value TEXT NOT NULL,
    PRIMARY KEY (flavor_id, spec_key)
);
CREATE TABLE compute_keypairs (
    id BIGINT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    key_type TEXT NOT NULL,
    public_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE compute_quotas (
    project_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, resource)
)
"#,
    },
    // The default flavors, with the ids devstack gives them so that scripts
    // written against devstack find them. A migration runs once, so a
    // default flavor an operator deletes stays deleted after a restart.
    Migration {
        version: 2,
        description: "default flavors",
        sql: "
INSERT INTO compute_flavors VALUES ('42', 'm1.nano', 1, 128, 1, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('84', 'm1.micro', 1, 192, 1, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('1', 'm1.tiny', 1, 512, 1, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('2', 'm1.small', 1, 2048, 20, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('3', 'm1.medium', 2, 4096, 40, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('4', 'm1.large', 4, 8192, 80, 0, 0, 1.0, 1, 0, NULL, 0);
INSERT INTO compute_flavors VALUES ('5', 'm1.xlarge', 8, 16384, 160, 0, 0, 1.0, 1, 0, NULL, 0)
",
    },
    Migration {
        version: 3,
        description: "per-user quotas",
        sql: "
CREATE TABLE compute_user_quotas (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id, resource)
)
",
    },
    Migration {
        version: 4,
        description: "quota classes",
        sql: "
CREATE TABLE compute_quota_classes (
    class_name TEXT NOT NULL,
    resource TEXT NOT NULL,
    hard_limit BIGINT NOT NULL,
    PRIMARY KEY (class_name, resource)
)
",
    },
    // A server is stored whole as JSON in `doc`; the columns beside it are
    // the ones lists filter and sort on, and `revision`, which every write
    // compares and bumps.
    Migration {
        version: 5,
        description: "servers",
        sql: "
CREATE TABLE compute_servers (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    host TEXT,
    vm_state TEXT NOT NULL,
    task_state TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted BIGINT NOT NULL DEFAULT 0,
    revision BIGINT NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX compute_servers_project ON compute_servers (project_id, deleted);
CREATE INDEX compute_servers_host ON compute_servers (host)
",
    },
    Migration {
        version: 6,
        description: "instance actions",
        sql: "
CREATE TABLE compute_instance_actions (
    request_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT NOT NULL,
    project_id TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    message TEXT,
    PRIMARY KEY (request_id, server_id)
);
CREATE INDEX compute_instance_actions_server ON compute_instance_actions (server_id, start_time);
CREATE TABLE compute_instance_action_events (
    request_id TEXT NOT NULL,
    server_id TEXT NOT NULL,
    event TEXT NOT NULL,
    host TEXT,
    start_time BIGINT NOT NULL,
    finish_time BIGINT,
    result TEXT,
    traceback TEXT,
    PRIMARY KEY (request_id, server_id, event)
)
",
    },
    // Compute hosts: one row per service a host runs (`nova-compute`,
    // `nova-scheduler`, `nova-conductor`) with its heartbeat, and one
    // compute node per `nova-compute` service with the resources its driver
    // reported. A node's uuid is also its placement resource provider's.
    Migration {
        version: 7,
        description: "compute services and nodes",
        sql: "
CREATE TABLE compute_services (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    binary_name TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    disabled_reason TEXT,
    forced_down BIGINT NOT NULL DEFAULT 0,
    last_seen_up BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (host, binary_name)
);
CREATE TABLE compute_nodes (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL UNIQUE,
    hypervisor_hostname TEXT NOT NULL,
    hypervisor_type TEXT NOT NULL,
    hypervisor_version BIGINT NOT NULL,
    virt_type TEXT NOT NULL,
    cpu_arch TEXT NOT NULL,
    availability_zone TEXT NOT NULL,
    host_ip TEXT NOT NULL,
    vcpus BIGINT NOT NULL,
    memory_mb BIGINT NOT NULL,
    local_gb BIGINT NOT NULL,
    reserved_vcpus BIGINT NOT NULL,
    reserved_memory_mb BIGINT NOT NULL,
    reserved_disk_gb BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
)
",
    },
    // Server groups (`os-server-groups`) and their members. A server is in
    // at most one group, as in Nova, so `server_id` is the key.
    Migration {
        version: 8,
        description: "server groups",
        sql: "
CREATE TABLE compute_server_groups (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    policy TEXT NOT NULL,
    rules TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX compute_server_groups_project ON compute_server_groups (project_id);
CREATE TABLE compute_server_group_members (
    server_id TEXT PRIMARY KEY,
    group_id TEXT NOT NULL
);
CREATE INDEX compute_server_group_members_group ON compute_server_group_members (group_id)
",
    },
    // Host aggregates (`os-aggregates`): metadata is a JSON object; the
    // `availability_zone` key in it sets the zone of the member hosts.
    Migration {
        version: 9,
        description: "host aggregates",
        sql: "
CREATE TABLE compute_aggregates (
    id BIGINT PRIMARY KEY,
    uuid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT
);
CREATE TABLE compute_aggregate_hosts (
    aggregate_id BIGINT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (aggregate_id, host)
)
",
    },
];
