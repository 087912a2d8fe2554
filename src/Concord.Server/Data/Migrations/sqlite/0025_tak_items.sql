-- Concord schema, version 25 (SQLite): the markers, drawings, routes and alerts relayed to TAK devices, as the router
-- remembers them (the markings each went out under, its latest version as sent), so that after a restart a device that
-- connects is still sent them and a device whose member lost access to one is still told to remove it.
CREATE TABLE tak_items (
    uid TEXT NOT NULL PRIMARY KEY,
    markings TEXT NOT NULL,
    relayed_at TEXT NOT NULL,
    sender_id TEXT NOT NULL REFERENCES members (id),
    latest BLOB NULL,
    event_time TEXT NOT NULL,
    stale_at TEXT NOT NULL,
    from_certificate TEXT NOT NULL,
    deleted INTEGER NOT NULL
);
