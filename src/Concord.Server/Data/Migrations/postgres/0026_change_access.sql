-- Concord schema, version 26 (PostgreSQL): the change feed's changes to members, organisations and sharing groups, by
-- record. A "withdrawn" change is told to a viewer only if it came after their access last changed (a member cleared
-- later must not learn of records withdrawn before from markings they could not read then); without these (small,
-- partial) indexes finding that change would walk the whole feed.
CREATE INDEX ix_changes_member_access ON changes (entity_id, sequence) WHERE entity = 'member';
CREATE INDEX ix_changes_organization_access ON changes (entity_id, sequence) WHERE entity = 'organization';
CREATE INDEX ix_changes_group_access ON changes (entity_id, sequence) WHERE entity = 'group';
