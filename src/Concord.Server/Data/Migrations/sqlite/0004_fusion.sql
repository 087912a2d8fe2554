-- Concord schema, version 4 (SQLite): fusion of reports into incidents — what each link was decided by and its scores,
-- the features fusion compares on each incident, and proposals waiting for an analyst.
ALTER TABLE incident_reports ADD COLUMN decision TEXT NOT NULL DEFAULT 'new';
ALTER TABLE incident_reports ADD COLUMN score_detail TEXT NULL;
ALTER TABLE incidents ADD COLUMN actors TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN keywords TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN datasets TEXT NOT NULL DEFAULT '';

CREATE TABLE fusion_proposals (
    id TEXT NOT NULL PRIMARY KEY,
    report_id TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    score REAL NOT NULL,
    score_detail TEXT NOT NULL,
    created_at TEXT NOT NULL,
    decided_at TEXT NULL,
    decision TEXT NULL,
    decided_by TEXT NULL
);
CREATE INDEX ix_fusion_proposals_incident ON fusion_proposals (incident_id);
CREATE INDEX ix_fusion_proposals_report ON fusion_proposals (report_id);
