-- Concord schema, version 15 (PostgreSQL): the audit detail is stored without compression. A read of a viewport names
-- up to 5,000 record ids (about 190 KB of text); PostgreSQL's default compression (pglz) tried each such detail, found
-- it would not shrink (ids are random) and stored it as it was, having spent about 2 ms doing so while the reader
-- waited (docs/benchmarks-notes.md, "Audit details and compression"). Only rows written from now on are affected.
ALTER TABLE audit ALTER COLUMN detail SET STORAGE EXTERNAL;
