-- Concord schema, version 4 (PostgreSQL): fusion of reports into incidents — what each link was decided by and its scores,
-- the features fusion compares on each incident, and proposals waiting for an analyst.
ALTER TABLE incident_reports ADD COLUMN decision text NOT NULL DEFAULT 'new';
ALTER TABLE incident_reports ADD COLUMN score_detail text NULL;
ALTER TABLE incidents ADD COLUMN actors text NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN keywords text NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN datasets text NOT NULL DEFAULT '';

CREATE TABLE fusion_proposals (
    id uuid NOT NULL PRIMARY KEY,
    report_id uuid NOT NULL,
    incident_id uuid NOT NULL,
    score double precision NOT NULL,
    score_detail text NOT NULL,
    created_at timestamptz NOT NULL,
    decided_at timestamptz NULL,
    decision text NULL,
    decided_by uuid NULL
);
CREATE INDEX ix_fusion_proposals_incident ON fusion_proposals (incident_id);
CREATE INDEX ix_fusion_proposals_report ON fusion_proposals (report_id);
