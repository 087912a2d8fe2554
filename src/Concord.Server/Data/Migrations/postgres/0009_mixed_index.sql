-- Concord schema, version 9 (PostgreSQL): mixed incidents are read on their own.
-- A mixed incident (reports under different markings) is placed in every list, page and count by what the viewer may
-- see of it, so queries read the mixed incidents that may reach a page apart from the others, by their stored end
-- (a rebuilt incident never ends later than the stored one). This partial index holds only them: it stays as small as
-- they are few, and costs nothing to incidents under one marking.
CREATE INDEX ix_incidents_mixed ON incidents (ends_at) WHERE mixed;
