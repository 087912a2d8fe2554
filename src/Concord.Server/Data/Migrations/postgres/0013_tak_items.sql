-- Concord schema, version 13 (PostgreSQL): who first sent a TAK item. A marker or spot report from a device becomes a
-- report whose external_ref is 'tak:' and the item's uid; a deletion of an item another member sent first is not
-- routed, and after a restart the router finds that member here (Tak/TakRouter). Partial: only reports from TAK items,
-- so that imports (whose reports also carry external refs) pay nothing for it.
CREATE INDEX ix_reports_tak_items ON reports (external_ref, received_at) WHERE external_ref LIKE 'tak:%';
