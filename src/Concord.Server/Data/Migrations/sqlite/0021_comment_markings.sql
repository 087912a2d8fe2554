-- Concord schema, version 21 (SQLite): a task's comments and its reason keep the marking the task had when they were
-- written. A routed task follows its incident's marking, which widens when a report leaves the incident: what was
-- written for the narrower audience (perhaps quoting that report) is shown only to those who may read it under its own.
-- Comments and reasons written before this version take the task's marking as it is now (what they were shown under).
ALTER TABLE task_comments ADD COLUMN classification INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_comments ADD COLUMN releasable_to TEXT NOT NULL DEFAULT '';
ALTER TABLE task_comments ADD COLUMN caveats INTEGER NOT NULL DEFAULT 0;
UPDATE task_comments SET
    classification = (SELECT t.classification FROM tasks t WHERE t.id = task_comments.task_id),
    releasable_to = (SELECT t.releasable_to FROM tasks t WHERE t.id = task_comments.task_id),
    caveats = (SELECT t.caveats FROM tasks t WHERE t.id = task_comments.task_id)
WHERE EXISTS (SELECT 1 FROM tasks t WHERE t.id = task_comments.task_id);
ALTER TABLE tasks ADD COLUMN reason_classification INTEGER NULL;
ALTER TABLE tasks ADD COLUMN reason_releasable_to TEXT NULL;
ALTER TABLE tasks ADD COLUMN reason_caveats INTEGER NULL;
UPDATE tasks SET reason_classification = classification, reason_releasable_to = releasable_to, reason_caveats = caveats WHERE reason IS NOT NULL;
