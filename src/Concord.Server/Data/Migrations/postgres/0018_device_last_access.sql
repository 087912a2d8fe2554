-- Concord schema, version 18 (PostgreSQL): what a device certificate's member could read when the device last connected
-- (clearance, caveats, organisation, nation, groups, as JSON). A device keeps the incidents it was sent until they go
-- stale, a week later; one that reconnects after its member's access narrowed while it was away is first told to remove
-- the incidents the old access showed and the new one does not.
ALTER TABLE device_certificates ADD COLUMN last_access text NULL;
