-- Concord schema, version 6 (PostgreSQL): next month's forecast per admin-1 area (the sum of its cells' distributions).
CREATE TABLE area_forecasts (
    area_id uuid NOT NULL,
    month timestamptz NOT NULL,
    expected double precision NOT NULL,
    at_least_one double precision NOT NULL,
    low double precision NOT NULL,
    high double precision NOT NULL,
    computed_at timestamptz NOT NULL,
    classification integer NOT NULL,
    releasable_to text NOT NULL,
    release_mask bigint NOT NULL,
    caveats bigint NOT NULL,
    PRIMARY KEY (area_id, month)
);
