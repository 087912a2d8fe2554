-- Concord schema, version 17 (PostgreSQL): browser sessions ended by signing out. Each session cookie carries an id of
-- its own; signing out records it here, and a copy of the cookie (another browser, a proxy's log, a stolen disk) is
-- refused from then on. A row is needed only until the session would have ended anyway (24 hours after its sign-in),
-- and is removed after that.
CREATE TABLE ended_sessions (
    id uuid NOT NULL PRIMARY KEY,
    member_id uuid NOT NULL REFERENCES members (id),
    ended_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX ix_ended_sessions_member ON ended_sessions (member_id, expires_at);
