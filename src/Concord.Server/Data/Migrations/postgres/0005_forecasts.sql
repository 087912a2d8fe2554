-- Concord schema, version 5 (PostgreSQL): the latest forecast per PRIO-GRID cell, marked for the audience it was computed for.
CREATE TABLE forecasts (
    gid integer NOT NULL,
    month timestamptz NOT NULL,
    latitude double precision NOT NULL,
    longitude double precision NOT NULL,
    expected double precision NOT NULL,
    at_least_one double precision NOT NULL,
    low double precision NOT NULL,
    high double precision NOT NULL,
    computed_at timestamptz NOT NULL,
    classification integer NOT NULL,
    releasable_to text NOT NULL,
    release_mask bigint NOT NULL,
    caveats bigint NOT NULL,
    PRIMARY KEY (gid, month)
);
