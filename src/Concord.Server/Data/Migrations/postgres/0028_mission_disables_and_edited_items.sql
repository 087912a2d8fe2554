-- Concord schema, version 28 (PostgreSQL): a member disabled by a mission administrator (or on the server) is enabled
-- again only by one: their organisation's administrators could undo a suspension the mission decided. A TAK item
-- remembers whether another member's device sent a version of it: its first sender's devices are then told to remove it
-- when they may no longer read that version.
ALTER TABLE members ADD COLUMN disabled_by_mission boolean NOT NULL DEFAULT false;
ALTER TABLE tak_items ADD COLUMN edited_by_others boolean NOT NULL DEFAULT false;
