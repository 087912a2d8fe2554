-- Concord schema, version 11 (PostgreSQL): what a change to an incident tells whom.
-- A report joining or leaving an incident changes it only for those who may see that report: for anyone else, the
-- incident as they see it (rebuilt from the reports they may see) is the same. Such a change row names the report
-- (`cause`), and the feed, live pushes and TAK streams announce it only to those who may see it. An incident's
-- `status_changed_at` is the other part of its last change as a viewer of a mixed incident sees it.
ALTER TABLE changes ADD COLUMN cause uuid NULL;
ALTER TABLE incidents ADD COLUMN status_changed_at timestamp with time zone NULL;
