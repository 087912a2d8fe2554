-- Concord schema, version 24 (SQLite): a patrol keeps the reason it was last moved with (cancelled because the bridge is
-- down), which was checked and then dropped.
ALTER TABLE patrols ADD COLUMN reason TEXT NULL;
