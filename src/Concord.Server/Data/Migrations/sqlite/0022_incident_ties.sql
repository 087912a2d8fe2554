-- Concord schema, version 22 (SQLite): incidents that sort alike (the same start, the same number of reports) are put in
-- the order of a random number each holds, not of their store number. The store number tells in which order incidents
-- were opened, so an incident listed next to a probe report's own, dated alike, told whether a report hidden from the
-- viewer had opened it before (random incident ids, "created" in the feed and sealed cursors hide it everywhere else).
ALTER TABLE incidents ADD COLUMN tie INTEGER NOT NULL DEFAULT 0;
UPDATE incidents SET tie = random() & 9223372036854775807;
DROP INDEX ix_incidents_starts;
CREATE INDEX ix_incidents_starts ON incidents (starts_at, tie);
DROP INDEX ix_incidents_map;
CREATE INDEX ix_incidents_map ON incidents (cell, latitude, longitude, starts_at, tie, classification, caveats, release_mask, releasable_to, mixed, id, category, status, title, ends_at, killed_best, report_count, tlp);
