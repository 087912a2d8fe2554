-- Concord schema, version 11 (PostgreSQL): what a change to an incident tells whom.
-- A report joining or leaving an incident changes it only for those who may see that report: for anyone else, the
-- incident as they see it (rebuilt from the reports they may see) is the same. Such a change row names the reports
-- (`causes`, an encoded set: one row per write, so that sequence numbers do not count hidden reports), and the feed,
-- live pushes and TAK streams announce it only to those who may see one of them.
-- An incident's `updated_at` is from now on the later of when a report last joined it and when its status last moved
-- (`status_changed_at`), never the time a report left, so that a viewer who may see all its reports sees exactly that,
-- and a viewer of a mixed incident the same computed from their own reports. Both are set here for existing incidents:
-- status changes from the audit log (an incident's only "update" entries), joins from the links.
ALTER TABLE changes ADD COLUMN causes text NULL;
ALTER TABLE incidents ADD COLUMN status_changed_at timestamp with time zone NULL;
UPDATE incidents SET status_changed_at = a.at
FROM (SELECT entity_id, MAX(at) AS at FROM audit WHERE action = 'update' AND entity = 'incident' GROUP BY entity_id) AS a
WHERE incidents.id = a.entity_id;
UPDATE incidents SET updated_at = CASE WHEN incidents.status_changed_at IS NOT NULL AND incidents.status_changed_at > l.linked THEN incidents.status_changed_at ELSE l.linked END
FROM (SELECT incident_id, MAX(linked_at) AS linked FROM incident_reports GROUP BY incident_id) AS l
WHERE incidents.id = l.incident_id;
