-- Concord schema, version 19 (PostgreSQL): the change feed's deletions of incidents, by sequence. A TAK device that connects
-- is told to remove the incidents deleted since its last connection began that it may have had; without this index that
-- read walks every change written since (a million after a large import).
CREATE INDEX ix_changes_incident_deletions ON changes (sequence) WHERE entity = 'incident' AND operation = 'deleted';
