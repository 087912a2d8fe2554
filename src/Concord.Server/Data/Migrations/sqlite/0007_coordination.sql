-- Concord schema, version 7 (SQLite): coordination — responsibility and assistance rules in agreements, tasks with
-- deadlines, requests for assistance between organisations, escalations (one row per missed deadline, never two),
-- joint patrols, coordination meetings and the liaison log. Every record here is marked like reports and incidents.
ALTER TABLE agreements ADD COLUMN coordination_json TEXT NOT NULL DEFAULT '{}';

CREATE TABLE tasks (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    member_id TEXT NULL REFERENCES members (id),
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NULL,
    routing_key TEXT NULL,
    incident_id TEXT NULL,
    request_id TEXT NULL,
    meeting_id TEXT NULL,
    escalated_item_id TEXT NULL,
    category TEXT NULL,
    area_id TEXT NULL,
    agreement_code TEXT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    acknowledge_by TEXT NULL,
    respond_by TEXT NULL,
    acknowledged_at TEXT NULL,
    responded_at TEXT NULL,
    completed_at TEXT NULL,
    acknowledge_escalated_at TEXT NULL,
    respond_escalated_at TEXT NULL,
    next_deadline TEXT NULL,
    escalate_to_organization_id TEXT NULL REFERENCES organizations (id),
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_tasks_id ON tasks (id);
CREATE UNIQUE INDEX ux_tasks_routing_key ON tasks (routing_key);
CREATE INDEX ix_tasks_next_deadline ON tasks (next_deadline) WHERE next_deadline IS NOT NULL;
CREATE INDEX ix_tasks_organization ON tasks (organization_id, status);
CREATE INDEX ix_tasks_incident ON tasks (incident_id);

CREATE TABLE task_comments (
    id TEXT NOT NULL PRIMARY KEY,
    task_id TEXT NOT NULL,
    member_id TEXT NOT NULL REFERENCES members (id),
    author TEXT NOT NULL,
    at TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX ix_task_comments_task ON task_comments (task_id, at);

CREATE TABLE requests (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    title TEXT NOT NULL,
    details TEXT NOT NULL,
    priority TEXT NOT NULL,
    requester_organization_id TEXT NOT NULL REFERENCES organizations (id),
    requester_member_id TEXT NOT NULL REFERENCES members (id),
    addressee_organization_id TEXT NULL REFERENCES organizations (id),
    addressee_kind TEXT NULL,
    assigned_organization_id TEXT NULL REFERENCES organizations (id),
    latitude REAL NULL,
    longitude REAL NULL,
    route_json TEXT NULL,
    window_start TEXT NOT NULL,
    window_end TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NULL,
    criteria_json TEXT NOT NULL,
    incident_id TEXT NULL,
    agreement_code TEXT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    acknowledge_by TEXT NULL,
    respond_by TEXT NULL,
    acknowledged_at TEXT NULL,
    responded_at TEXT NULL,
    completed_at TEXT NULL,
    acknowledge_escalated_at TEXT NULL,
    respond_escalated_at TEXT NULL,
    next_deadline TEXT NULL,
    escalate_to_organization_id TEXT NULL REFERENCES organizations (id),
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_requests_id ON requests (id);
CREATE INDEX ix_requests_next_deadline ON requests (next_deadline) WHERE next_deadline IS NOT NULL;
CREATE INDEX ix_requests_addressee ON requests (addressee_organization_id, status);
CREATE INDEX ix_requests_requester ON requests (requester_organization_id, status);

CREATE TABLE escalations (
    id TEXT NOT NULL PRIMARY KEY,
    item_entity TEXT NOT NULL,
    item_id TEXT NOT NULL,
    deadline TEXT NOT NULL,
    due_at TEXT NOT NULL,
    escalated_at TEXT NOT NULL,
    to_organization_id TEXT NULL REFERENCES organizations (id),
    task_id TEXT NULL
);
CREATE UNIQUE INDEX ux_escalations_item ON escalations (item_id, deadline);

CREATE TABLE patrols (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    organizations TEXT NOT NULL,
    members TEXT NOT NULL,
    route_json TEXT NOT NULL,
    starts_at TEXT NOT NULL,
    ends_at TEXT NOT NULL,
    status TEXT NOT NULL,
    report_id TEXT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_patrols_id ON patrols (id);
CREATE INDEX ix_patrols_starts ON patrols (starts_at);

CREATE TABLE meetings (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    title TEXT NOT NULL,
    held_at TEXT NOT NULL,
    place TEXT NOT NULL,
    participants TEXT NOT NULL,
    decisions_json TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_meetings_id ON meetings (id);
CREATE INDEX ix_meetings_held ON meetings (held_at);

CREATE TABLE liaison_log (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    at TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    member_id TEXT NOT NULL REFERENCES members (id),
    counterpart_organization_id TEXT NULL REFERENCES organizations (id),
    counterpart TEXT NOT NULL,
    channel TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE UNIQUE INDEX ux_liaison_log_id ON liaison_log (id);
CREATE INDEX ix_liaison_log_at ON liaison_log (at);

-- The incident router starts at the end of the change feed: responsibility rules route incidents created or changed from
-- now on, not the whole history.
INSERT INTO settings (key, value) SELECT 'coordination.router.after', CAST(COALESCE(MAX(sequence), 0) AS TEXT) FROM changes;
