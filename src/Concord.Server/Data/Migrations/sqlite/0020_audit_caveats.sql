-- Concord schema, version 20 (SQLite): an audit entry carries the caveats of the records it names, beside their level,
-- so that an auditor without a caveat does not learn who read, created or changed the records under it. Entries written
-- before this version have none (0), and their hashes are unchanged: the caveats enter an entry's hash only when non-zero.
ALTER TABLE audit ADD COLUMN caveats INTEGER NOT NULL DEFAULT 0;
