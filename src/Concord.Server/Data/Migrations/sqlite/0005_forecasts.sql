-- Concord schema, version 5 (SQLite): the latest forecast per PRIO-GRID cell, marked for the audience it was computed for.
CREATE TABLE forecasts (
    gid INTEGER NOT NULL,
    month TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    expected REAL NOT NULL,
    at_least_one REAL NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    computed_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    PRIMARY KEY (gid, month)
);
