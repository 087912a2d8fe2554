-- Concord schema, version 30 (PostgreSQL): a report's leaving an incident is marked on its change row (its id after a '-'
-- among the causes). A build before this version would fail reading such a row, and refuses a store of this version
-- instead. A release's copy no longer says it is one: the copies stored before carry "Sanitised release by ORG" as their
-- source, which told those who may not read the original that a higher-marked report lies behind them.
UPDATE reports SET source_description = NULL WHERE released_from IS NOT NULL;
