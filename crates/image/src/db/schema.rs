//! The image tables.

use oxstack_store::Migration;

pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "image tables",
    sql: r#"
CREATE TABLE images (
    id TEXT PRIMARY KEY,
    name TEXT,
    status TEXT NOT NULL,
    visibility TEXT NOT NULL,
    protected BIGINT NOT NULL,
    os_hidden BIGINT NOT NULL,
    disk_format TEXT,
    container_format TEXT,
    size BIGINT,
    virtual_size BIGINT,
    checksum TEXT,
    os_hash_algo TEXT,
    os_hash_value TEXT,
    min_disk BIGINT NOT NULL,
    min_ram BIGINT NOT NULL,
    owner TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    tags TEXT NOT NULL DEFAULT '[]',
    generation BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_status ON images (status);
CREATE TABLE image_members (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (image_id, member_id)
);
CREATE INDEX image_members_member ON image_members (member_id)
"#,
}];
