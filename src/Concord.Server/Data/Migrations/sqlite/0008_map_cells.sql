-- Concord schema, version 8 (SQLite): the map reads incidents from one index.
-- `cell` numbers the half-degree grid square an incident lies in; Concord writes it from the location (MapCells), and
-- here it is computed for existing incidents with the same arithmetic. It leads the map index, so a viewport seeks to
-- its own squares instead of scanning its whole latitude band across the mission, and the index holds every column a
-- map point shows and the access predicate tests, so a viewport never reads the table itself.
-- SQLite cannot drop a column's default without rebuilding the table, so the 0 stays; Concord writes every incident's cell.
ALTER TABLE incidents ADD COLUMN cell INTEGER NOT NULL DEFAULT 0;
UPDATE incidents SET cell = CAST((latitude + 90) * 2 AS INTEGER) * 720 + CAST((longitude + 180) * 2 AS INTEGER);
DROP INDEX ix_incidents_location;
CREATE INDEX ix_incidents_map ON incidents (cell, latitude, longitude, starts_at, number, classification, caveats, release_mask, releasable_to, mixed, id, category, status, title, ends_at, killed_best, report_count, tlp);
