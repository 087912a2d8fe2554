-- Concord schema, version 12 (PostgreSQL): secrets of this deployment.
-- `source-ids` keys the ids of imported reports (Reports/SourceIds): derived from the source record's id and this
-- secret, they are the same on every import into this store (so importing again finds what is there) and cannot be
-- worked out by anyone without the store, so that no member can probe, with an id of their own making, whether an
-- organisation holds a record, nor take the id of a record before its importer does. `legacy-source-ids` is there when
-- the store held imported reports before this version: they keep the ids the readers give, under which imports look
-- them up too (a store without it has none, and imports skip that lookup). Two version 4 UUIDs give 244
-- random bits (gen_random_uuid draws them from a cryptographic source).
CREATE TABLE deployment_keys (
    name text NOT NULL PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO deployment_keys (name, value) VALUES ('source-ids', replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
INSERT INTO deployment_keys (name, value) SELECT 'legacy-source-ids', 'yes' WHERE EXISTS (SELECT 1 FROM reports WHERE external_ref IS NOT NULL);
