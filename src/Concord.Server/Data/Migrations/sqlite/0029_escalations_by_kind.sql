-- Concord schema, version 29 (SQLite): an escalation is of a task or of a request, and clients choose the ids of both,
-- so one id may name one of each. Keyed by the id alone, the second of them to miss a deadline could not be stored, and
-- as the scheduler stores its escalations together, none could after it. The kind is part of the escalation's key and
-- of its notice's routing key.
DROP INDEX ux_escalations_item;
CREATE UNIQUE INDEX ux_escalations_item ON escalations (item_entity, item_id, deadline);
UPDATE tasks SET routing_key = 'escalation:' || (SELECT e.item_entity FROM escalations e WHERE e.task_id = tasks.id) || ':' || substr(routing_key, 12)
WHERE role = 'escalation' AND routing_key LIKE 'escalation:%' AND EXISTS (SELECT 1 FROM escalations e WHERE e.task_id = tasks.id);
