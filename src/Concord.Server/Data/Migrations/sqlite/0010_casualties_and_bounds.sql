-- Concord schema, version 10 (SQLite): an incident's casualty range and the box around its reports.
-- Beside the median best figures, an incident keeps the range its reports give: from the lowest killed (injured)
-- figure any linked report gives (its low estimate, else its best) to the highest (its high estimate, else its best).
-- south/north/west/east bound every linked report's place: a viewer's copy of a mixed incident lies where one of its
-- reports does, so a viewport that misses the box misses every copy, and the mixed index holds the box to rule them
-- out before any report is read. Concord keeps all of these as reports join; here they are computed for existing
-- incidents from their reports, in one pass.
ALTER TABLE incidents ADD COLUMN killed_low INTEGER NULL;
ALTER TABLE incidents ADD COLUMN killed_high INTEGER NULL;
ALTER TABLE incidents ADD COLUMN injured_low INTEGER NULL;
ALTER TABLE incidents ADD COLUMN injured_high INTEGER NULL;
ALTER TABLE incidents ADD COLUMN south REAL NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN north REAL NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN west REAL NOT NULL DEFAULT 0;
ALTER TABLE incidents ADD COLUMN east REAL NOT NULL DEFAULT 0;
UPDATE incidents SET south = c.south, north = c.north, west = c.west, east = c.east,
    killed_low = c.killed_low, killed_high = c.killed_high, injured_low = c.injured_low, injured_high = c.injured_high
FROM (
    SELECT l.incident_id,
        MIN(r.latitude) AS south,
        MAX(r.latitude) AS north,
        MIN(r.longitude) AS west,
        MAX(r.longitude) AS east,
        MIN(CASE WHEN COALESCE(r.killed_civilian_low, r.killed_civilian_best) IS NULL AND COALESCE(r.killed_other_low, r.killed_other_best) IS NULL THEN NULL ELSE COALESCE(r.killed_civilian_low, r.killed_civilian_best, 0) + COALESCE(r.killed_other_low, r.killed_other_best, 0) END) AS killed_low,
        MAX(CASE WHEN COALESCE(r.killed_civilian_high, r.killed_civilian_best) IS NULL AND COALESCE(r.killed_other_high, r.killed_other_best) IS NULL THEN NULL ELSE COALESCE(r.killed_civilian_high, r.killed_civilian_best, 0) + COALESCE(r.killed_other_high, r.killed_other_best, 0) END) AS killed_high,
        MIN(CASE WHEN COALESCE(r.injured_civilian_low, r.injured_civilian_best) IS NULL AND COALESCE(r.injured_other_low, r.injured_other_best) IS NULL THEN NULL ELSE COALESCE(r.injured_civilian_low, r.injured_civilian_best, 0) + COALESCE(r.injured_other_low, r.injured_other_best, 0) END) AS injured_low,
        MAX(CASE WHEN COALESCE(r.injured_civilian_high, r.injured_civilian_best) IS NULL AND COALESCE(r.injured_other_high, r.injured_other_best) IS NULL THEN NULL ELSE COALESCE(r.injured_civilian_high, r.injured_civilian_best, 0) + COALESCE(r.injured_other_high, r.injured_other_best, 0) END) AS injured_high
    FROM incident_reports l JOIN reports r ON r.id = l.report_id
    GROUP BY l.incident_id
) AS c
WHERE incidents.id = c.incident_id;
DROP INDEX ix_incidents_mixed;
CREATE INDEX ix_incidents_mixed ON incidents (ends_at, starts_at, south, north, west, east) WHERE mixed;
