-- Concord schema, version 3 (PostgreSQL): TAK field devices — client certificates mapped to members, tracks, GeoChat messages.
CREATE TABLE device_certificates (
    thumbprint text NOT NULL PRIMARY KEY,
    member_id uuid NOT NULL REFERENCES members (id),
    subject text NOT NULL,
    serial text NOT NULL,
    issued_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz NULL
);
CREATE INDEX ix_device_certificates_member ON device_certificates (member_id);

-- Latest position of each device, with its recent history (bounded) as JSON.
CREATE TABLE tracks (
    uid text NOT NULL PRIMARY KEY,
    member_id uuid NOT NULL REFERENCES members (id),
    callsign text NOT NULL,
    cot_type text NOT NULL,
    latitude double precision NOT NULL,
    longitude double precision NOT NULL,
    hae double precision NOT NULL,
    course double precision NULL,
    speed double precision NULL,
    observed_at timestamptz NOT NULL,
    stale_at timestamptz NOT NULL,
    history_json text NOT NULL,
    classification integer NOT NULL,
    releasable_to text NOT NULL,
    release_mask bigint NOT NULL,
    caveats bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX ix_tracks_location ON tracks (latitude, longitude);

CREATE TABLE messages (
    id uuid NOT NULL PRIMARY KEY,
    member_id uuid NOT NULL REFERENCES members (id),
    chatroom text NOT NULL,
    sender text NOT NULL,
    text text NOT NULL,
    sent_at timestamptz NOT NULL,
    classification integer NOT NULL,
    releasable_to text NOT NULL,
    release_mask bigint NOT NULL,
    caveats bigint NOT NULL
);
CREATE INDEX ix_messages_sent ON messages (sent_at);
