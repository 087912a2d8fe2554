-- Concord schema, version 23 (SQLite): an update that changes a record's marking keeps the marking it had on its change
-- row, so that those who could read the record before and may not now are told (as "withdrawn") to drop what they show
-- of it: a task narrowed with its incident stayed on the boards of the organisation it was withdrawn from.
ALTER TABLE changes ADD COLUMN prior_classification INTEGER NULL;
ALTER TABLE changes ADD COLUMN prior_releasable_to TEXT NULL;
ALTER TABLE changes ADD COLUMN prior_caveats INTEGER NULL;
