-- Concord schema, version 1 (SQLite). Times are UTC text 'yyyy-MM-dd HH:mm:ss.FFFFFFF', which sorts as time.
CREATE TABLE organizations (
    id TEXT NOT NULL PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    nation TEXT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_organizations_code ON organizations (code);

CREATE TABLE caveats (
    code TEXT NOT NULL PRIMARY KEY,
    bit INTEGER NOT NULL,
    description TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_caveats_bit ON caveats (bit);

CREATE TABLE members (
    id TEXT NOT NULL PRIMARY KEY,
    user_name TEXT NOT NULL,
    display_name TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    roles TEXT NOT NULL,
    clearance INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_members_user_name ON members (user_name);
CREATE INDEX ix_members_organization ON members (organization_id);

CREATE TABLE access_tokens (
    id TEXT NOT NULL PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NULL
);
CREATE UNIQUE INDEX ux_access_tokens_secret ON access_tokens (secret_hash);
CREATE INDEX ix_access_tokens_member ON access_tokens (member_id);

CREATE TABLE areas (
    id TEXT NOT NULL PRIMARY KEY,
    code TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    geometry_json TEXT NOT NULL,
    min_latitude REAL NOT NULL,
    min_longitude REAL NOT NULL,
    max_latitude REAL NOT NULL,
    max_longitude REAL NOT NULL
);
CREATE UNIQUE INDEX ux_areas_code ON areas (code);

CREATE TABLE categories (
    code TEXT NOT NULL PRIMARY KEY,
    parent TEXT NULL,
    scheme TEXT NOT NULL,
    label TEXT NOT NULL,
    label_fr TEXT NOT NULL,
    description TEXT NOT NULL
);

CREATE TABLE reports (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    member_id TEXT NOT NULL REFERENCES members (id),
    observed_at TEXT NOT NULL,
    observed_precision TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    location_precision_meters REAL NOT NULL,
    area_id TEXT NULL REFERENCES areas (id),
    category TEXT NOT NULL REFERENCES categories (code),
    killed_civilian_low INTEGER NULL,
    killed_civilian_best INTEGER NULL,
    killed_civilian_high INTEGER NULL,
    killed_other_low INTEGER NULL,
    killed_other_best INTEGER NULL,
    killed_other_high INTEGER NULL,
    injured_civilian_low INTEGER NULL,
    injured_civilian_best INTEGER NULL,
    injured_civilian_high INTEGER NULL,
    injured_other_low INTEGER NULL,
    injured_other_best INTEGER NULL,
    injured_other_high INTEGER NULL,
    narrative TEXT NOT NULL,
    narrative_language TEXT NOT NULL,
    actors TEXT NOT NULL,
    source_reliability TEXT NOT NULL,
    source_credibility INTEGER NOT NULL,
    source_description TEXT NULL,
    protected_source TEXT NULL,
    external_ref TEXT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    request_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_reports_id ON reports (id);
CREATE INDEX ix_reports_observed ON reports (observed_at, number);
-- Viewport queries: the bounding box, the sort key and the marking are all in the index, so the newest N visible rows
-- are found without touching the table; only those N are then read.
CREATE INDEX ix_reports_location ON reports (latitude, longitude, observed_at, classification, caveats, release_mask, releasable_to);
CREATE INDEX ix_reports_organization ON reports (organization_id, observed_at);
CREATE INDEX ix_reports_category ON reports (category, observed_at);

CREATE TABLE incidents (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    category TEXT NOT NULL REFERENCES categories (code),
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    location_precision_meters REAL NOT NULL,
    area_id TEXT NULL REFERENCES areas (id),
    status TEXT NOT NULL,
    title TEXT NOT NULL,
    killed_best INTEGER NULL,
    injured_best INTEGER NULL,
    report_count INTEGER NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX ux_incidents_id ON incidents (id);
CREATE INDEX ix_incidents_starts ON incidents (starts_at, number);
CREATE INDEX ix_incidents_location ON incidents (latitude, longitude, starts_at, classification, caveats, release_mask, releasable_to);

CREATE TABLE incident_reports (
    incident_id TEXT NOT NULL,
    report_id TEXT NOT NULL,
    contribution REAL NOT NULL,
    linked_at TEXT NOT NULL,
    PRIMARY KEY (incident_id, report_id)
);
CREATE UNIQUE INDEX ux_incident_reports_report ON incident_reports (report_id);

CREATE TABLE changes (
    sequence INTEGER PRIMARY KEY,
    entity TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    at TEXT NOT NULL
);
