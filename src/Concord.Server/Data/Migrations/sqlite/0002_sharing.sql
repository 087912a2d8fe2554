-- Concord schema, version 2 (SQLite): the sharing model — deployment settings, TLP, sharing groups, agreements,
-- sanitised releases, incidents built from reports of different markings, and the hash-chained audit log.
CREATE TABLE settings (
    key TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

ALTER TABLE reports ADD COLUMN tlp TEXT NOT NULL DEFAULT 'amber';
ALTER TABLE reports ADD COLUMN agreement_id TEXT NULL;
ALTER TABLE reports ADD COLUMN agreement_version INTEGER NULL;
ALTER TABLE reports ADD COLUMN released_from TEXT NULL;
CREATE INDEX ix_reports_released_from ON reports (released_from);

ALTER TABLE incidents ADD COLUMN tlp TEXT NOT NULL DEFAULT 'amber';
-- 1 when the linked reports do not all carry the same marking: such an incident is shown to each viewer as computed
-- from the reports that viewer may see.
ALTER TABLE incidents ADD COLUMN mixed INTEGER NOT NULL DEFAULT 0;
-- The viewport index covers the mixed flag too, so the access test stays inside the index.
DROP INDEX ix_incidents_location;
CREATE INDEX ix_incidents_location ON incidents (latitude, longitude, starts_at, classification, caveats, release_mask, releasable_to, mixed);

CREATE TABLE sharing_groups (
    id TEXT NOT NULL PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    owner_organization_id TEXT NOT NULL REFERENCES organizations (id),
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_sharing_groups_code ON sharing_groups (code);

CREATE TABLE sharing_group_members (
    group_id TEXT NOT NULL REFERENCES sharing_groups (id),
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    PRIMARY KEY (group_id, organization_id)
);
CREATE INDEX ix_sharing_group_members_organization ON sharing_group_members (organization_id);

-- Agreements are versioned: a change writes a new version; reports keep the version that marked them.
CREATE TABLE agreements (
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    parties TEXT NOT NULL,
    rules_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    retired_at TEXT NULL,
    PRIMARY KEY (id, version)
);
CREATE UNIQUE INDEX ux_agreements_code_version ON agreements (code, version);

CREATE TABLE audit (
    chain_index INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    member_id TEXT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NULL,
    entity_id TEXT NULL,
    detail TEXT NOT NULL,
    classification INTEGER NOT NULL,
    previous_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
-- No secondary indexes: the audit is written far more often than it is searched, and an auditor's query scans it
-- in chain order (which the primary key gives).
