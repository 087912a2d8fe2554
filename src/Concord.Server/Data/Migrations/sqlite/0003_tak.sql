-- Concord schema, version 3 (SQLite): TAK field devices — client certificates mapped to members, tracks, GeoChat messages.
CREATE TABLE device_certificates (
    thumbprint TEXT NOT NULL PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    subject TEXT NOT NULL,
    serial TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT NULL
);
CREATE INDEX ix_device_certificates_member ON device_certificates (member_id);

-- Latest position of each device, with its recent history (bounded) as JSON.
CREATE TABLE tracks (
    uid TEXT NOT NULL PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    callsign TEXT NOT NULL,
    cot_type TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    hae REAL NOT NULL,
    course REAL NULL,
    speed REAL NULL,
    observed_at TEXT NOT NULL,
    stale_at TEXT NOT NULL,
    history_json TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX ix_tracks_location ON tracks (latitude, longitude);

CREATE TABLE messages (
    id TEXT NOT NULL PRIMARY KEY,
    member_id TEXT NOT NULL REFERENCES members (id),
    chatroom TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL
);
CREATE INDEX ix_messages_sent ON messages (sent_at);
