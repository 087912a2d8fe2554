-- Concord schema, version 28 (PostgreSQL): a member disabled by a mission administrator (or on the server) is enabled
-- again only by one: their organisation's administrators could undo a suspension the mission decided.
ALTER TABLE members ADD COLUMN disabled_by_mission boolean NOT NULL DEFAULT false;
