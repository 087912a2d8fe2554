-- Concord schema, version 14 (SQLite): a member's session version. A signed-in browser's cookie carries the version it
-- was issued under; changing the member's password or disabling the member bumps it, which ends every session signed in
-- before (a stolen cookie no longer outlives a password reset, nor a disable and re-enable).
ALTER TABLE members ADD COLUMN session_version INTEGER NOT NULL DEFAULT 0;
