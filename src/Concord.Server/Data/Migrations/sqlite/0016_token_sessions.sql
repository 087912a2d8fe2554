-- Concord schema, version 16 (SQLite): the session version an access token was made under. A token works only while its
-- member's session version is the one it was made under: a password change or a disable ends it with the sessions, also
-- one made by a stolen session at the moment of the reset (which the reset's revocation of existing tokens could miss).
-- Tokens made before this version have none, and stay as they were (revoked by a reset as before).
ALTER TABLE access_tokens ADD COLUMN session_version INTEGER NULL;
