-- The PostgreSQL schema: the same tables as migrations/sqlite/0001_initial.sql.
-- Text that is compared or sorted is COLLATE "C" (code point order, as in SQLite), whatever
-- the database's locale: the type-prefix range and the page order depend on it.
-- Groups are text[]; the visibility filter is `groups && $visible`.

CREATE TABLE history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid text COLLATE "C" NOT NULL,
    type text COLLATE "C" NOT NULL,
    how text NOT NULL,
    time_ms bigint NOT NULL,
    start_ms bigint NOT NULL,
    stale_ms bigint NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    hae double precision NOT NULL,
    callsign text NOT NULL,
    groups text[] NOT NULL,
    payload_format smallint NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX history_time ON history (time_ms, id);
CREATE INDEX history_uid ON history (uid, time_ms, id);
CREATE INDEX history_type ON history (type, time_ms);
-- Where, for bounding-box queries: a GiST (R-tree) over the point. A bbox + time query
-- combines it with history_time (a BitmapAnd): ~7 ms over 1M events (benchmarks/RESULTS.md).
-- A GiST over (point, time_ms) through btree_gist halved that but cost ~25 % of the write
-- rate and needs an extension some hosted servers refuse; not worth it at this size.
-- Geometric operators compare with a 1e-6 tolerance, so the index answers a superset that
-- lat/lon then settle exactly.
CREATE INDEX history_space ON history USING gist (point(lon, lat));

-- The newest event of every uid, as it was routed: what survives a restart.
CREATE TABLE latest (
    uid text COLLATE "C" PRIMARY KEY,
    type text NOT NULL,
    how text NOT NULL,
    time_ms bigint NOT NULL,
    start_ms bigint NOT NULL,
    stale_ms bigint NOT NULL,
    lat double precision NOT NULL,
    lon double precision NOT NULL,
    hae double precision NOT NULL,
    callsign text NOT NULL,
    groups text[] NOT NULL,
    payload_format smallint NOT NULL,
    payload bytea NOT NULL
);
CREATE INDEX latest_stale ON latest (stale_ms);

CREATE TABLE packages (
    hash text COLLATE "C" PRIMARY KEY,
    name text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    mimetype text COLLATE "C" NOT NULL,
    keywords text[] NOT NULL,
    tool text COLLATE "C" NOT NULL,
    groups text[] NOT NULL,
    creator_uid text COLLATE "C" NOT NULL,
    submitter text NOT NULL,
    submitted_ms bigint NOT NULL,
    lat double precision,
    lon double precision,
    expiration_ms bigint
);
CREATE INDEX packages_submitted ON packages (submitted_ms);

CREATE TABLE videos (
    uid text COLLATE "C" PRIMARY KEY,
    alias text COLLATE "C" NOT NULL,
    url text NOT NULL,
    groups text[] NOT NULL,
    fields jsonb NOT NULL,
    active boolean NOT NULL
);
