-- Concord schema, version 21 (PostgreSQL): a task's comments and its reason keep the marking the task had when they were
-- written. A routed task follows its incident's marking, which widens when a report leaves the incident: what was
-- written for the narrower audience (perhaps quoting that report) is shown only to those who may read it under its own.
-- Comments and reasons written before this version take the task's marking as it is now (what they were shown under).
ALTER TABLE task_comments ADD COLUMN classification integer NOT NULL DEFAULT 0;
ALTER TABLE task_comments ADD COLUMN releasable_to text NOT NULL DEFAULT '';
ALTER TABLE task_comments ADD COLUMN caveats bigint NOT NULL DEFAULT 0;
UPDATE task_comments c SET classification = t.classification, releasable_to = t.releasable_to, caveats = t.caveats
FROM tasks t WHERE t.id = c.task_id;
ALTER TABLE tasks ADD COLUMN reason_classification integer NULL;
ALTER TABLE tasks ADD COLUMN reason_releasable_to text NULL;
ALTER TABLE tasks ADD COLUMN reason_caveats bigint NULL;
UPDATE tasks SET reason_classification = classification, reason_releasable_to = releasable_to, reason_caveats = caveats WHERE reason IS NOT NULL;
