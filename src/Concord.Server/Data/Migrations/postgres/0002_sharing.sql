-- Concord schema, version 2 (PostgreSQL): the sharing model — deployment settings, TLP, sharing groups, agreements,
-- sanitised releases, incidents built from reports of different markings, and the hash-chained audit log.
CREATE TABLE settings (
    key text NOT NULL PRIMARY KEY,
    value text NOT NULL
);

ALTER TABLE reports ADD COLUMN tlp text NOT NULL DEFAULT 'amber';
ALTER TABLE reports ADD COLUMN agreement_id uuid NULL;
ALTER TABLE reports ADD COLUMN agreement_version integer NULL;
ALTER TABLE reports ADD COLUMN released_from uuid NULL;
CREATE INDEX ix_reports_released_from ON reports (released_from);

ALTER TABLE incidents ADD COLUMN tlp text NOT NULL DEFAULT 'amber';
-- 1 when the linked reports do not all carry the same marking: such an incident is shown to each viewer as computed
-- from the reports that viewer may see.
ALTER TABLE incidents ADD COLUMN mixed boolean NOT NULL DEFAULT false;
-- The viewport index covers the mixed flag too, so the access test stays inside the index.
DROP INDEX ix_incidents_location;
CREATE INDEX ix_incidents_location ON incidents (latitude, longitude, starts_at) INCLUDE (number, classification, caveats, release_mask, releasable_to, mixed);

CREATE TABLE sharing_groups (
    id uuid NOT NULL PRIMARY KEY,
    code text NOT NULL,
    name text NOT NULL,
    owner_organization_id uuid NOT NULL REFERENCES organizations (id),
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX ux_sharing_groups_code ON sharing_groups (code);

CREATE TABLE sharing_group_members (
    group_id uuid NOT NULL REFERENCES sharing_groups (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    PRIMARY KEY (group_id, organization_id)
);
CREATE INDEX ix_sharing_group_members_organization ON sharing_group_members (organization_id);

-- Agreements are versioned: a change writes a new version; reports keep the version that marked them.
CREATE TABLE agreements (
    id uuid NOT NULL,
    version integer NOT NULL,
    code text NOT NULL,
    name text NOT NULL,
    parties text NOT NULL,
    rules_json text NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    retired_at timestamptz NULL,
    PRIMARY KEY (id, version)
);
CREATE UNIQUE INDEX ux_agreements_code_version ON agreements (code, version);

CREATE TABLE audit (
    chain_index bigint NOT NULL PRIMARY KEY,
    at timestamptz NOT NULL,
    member_id uuid NULL,
    actor text NOT NULL,
    action text NOT NULL,
    entity text NULL,
    entity_id uuid NULL,
    detail text NOT NULL,
    classification integer NOT NULL,
    previous_hash text NOT NULL,
    hash text NOT NULL
);
-- No secondary indexes: the audit is written far more often than it is searched, and an auditor's query scans it
-- in chain order (which the primary key gives).
