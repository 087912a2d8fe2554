-- Concord schema, version 27 (PostgreSQL): a sanitised release keeps the reason its releaser gave (the audit gives only its
-- length: the words are the releaser's, and auditors read the log mission-wide), shown with the copy to those who may
-- read the original.
ALTER TABLE reports ADD COLUMN release_reason text NULL;
