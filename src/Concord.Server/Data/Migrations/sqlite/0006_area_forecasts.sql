-- Concord schema, version 6 (SQLite): next month's forecast per admin-1 area (the sum of its cells' distributions).
CREATE TABLE area_forecasts (
    area_id TEXT NOT NULL,
    month TEXT NOT NULL,
    expected REAL NOT NULL,
    at_least_one REAL NOT NULL,
    low REAL NOT NULL,
    high REAL NOT NULL,
    computed_at TEXT NOT NULL,
    classification INTEGER NOT NULL,
    releasable_to TEXT NOT NULL,
    release_mask INTEGER NOT NULL,
    caveats INTEGER NOT NULL,
    PRIMARY KEY (area_id, month)
);
