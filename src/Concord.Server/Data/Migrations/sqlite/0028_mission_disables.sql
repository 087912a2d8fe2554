-- Concord schema, version 28 (SQLite): a member disabled by a mission administrator (or on the server) is enabled again
-- only by one: their organisation's administrators could undo a suspension the mission decided.
ALTER TABLE members ADD COLUMN disabled_by_mission INTEGER NOT NULL DEFAULT 0;
