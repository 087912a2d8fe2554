-- Concord schema, version 25 (PostgreSQL): the markers, drawings, routes and alerts relayed to TAK devices, as the router
-- remembers them (the markings each went out under, its latest version as sent), so that after a restart a device that
-- connects is still sent them and a device whose member lost access to one is still told to remove it.
CREATE TABLE tak_items (
    uid text NOT NULL PRIMARY KEY,
    markings text NOT NULL,
    relayed_at timestamptz NOT NULL,
    sender_id uuid NOT NULL REFERENCES members (id),
    latest bytea NULL,
    event_time timestamptz NOT NULL,
    stale_at timestamptz NOT NULL,
    from_certificate text NOT NULL,
    deleted boolean NOT NULL
);
