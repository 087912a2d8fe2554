-- Concord schema, version 8 (PostgreSQL): the map reads incidents from one index.
-- `cell` numbers the half-degree grid square an incident lies in; Concord writes it from the location (MapCells), and
-- here it is computed for existing incidents with the same arithmetic. It leads the map index, so a viewport seeks to
-- its own squares instead of scanning its whole latitude band across the mission, and the index includes every column
-- a map point shows and the access predicate tests, so a viewport is an index-only scan once the table's pages are
-- all-visible (autovacuum's work).
ALTER TABLE incidents ADD COLUMN cell integer NOT NULL DEFAULT 0;
UPDATE incidents SET cell = floor((latitude + 90) * 2)::integer * 720 + floor((longitude + 180) * 2)::integer;
ALTER TABLE incidents ALTER COLUMN cell DROP DEFAULT;
DROP INDEX ix_incidents_location;
CREATE INDEX ix_incidents_map ON incidents (cell, latitude, longitude, starts_at)
    INCLUDE (number, classification, caveats, release_mask, releasable_to, mixed, id, category, status, title, ends_at, killed_best, report_count, tlp);
