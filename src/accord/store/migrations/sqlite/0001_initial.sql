-- History: one row per routed event. groups = \x1fA\x1fB\x1f (records.group_key).
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL,
    type TEXT NOT NULL,
    how TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    stale_ms INTEGER NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    hae REAL NOT NULL,
    callsign TEXT NOT NULL,
    groups TEXT NOT NULL,
    payload_format INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX history_time ON history (time_ms, id);
CREATE INDEX history_uid ON history (uid, time_ms);
CREATE INDEX history_type ON history (type, time_ms);
-- Where and when, for bounding-box queries. R*Tree keeps 32-bit floats rounded outwards, so
-- it answers a superset that the history row then settles exactly.
CREATE VIRTUAL TABLE history_space USING rtree (
    id, lat_min, lat_max, lon_min, lon_max, t_min, t_max
);
-- Kept in step by triggers: inside SQLite, so an archive batch is one statement per chunk
-- of rows (the writer thread holds the GIL only to bind them, not once more per row).
CREATE TRIGGER history_space_add AFTER INSERT ON history BEGIN
    INSERT INTO history_space VALUES
        (new.id, new.lat, new.lat, new.lon, new.lon, new.time_ms, new.time_ms);
END;
CREATE TRIGGER history_space_remove AFTER DELETE ON history BEGIN
    DELETE FROM history_space WHERE id = old.id;
END;

-- The newest event of every uid, as it was routed: what survives a restart.
CREATE TABLE latest (
    uid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    how TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    start_ms INTEGER NOT NULL,
    stale_ms INTEGER NOT NULL,
    lat REAL NOT NULL,
    lon REAL NOT NULL,
    hae REAL NOT NULL,
    callsign TEXT NOT NULL,
    groups TEXT NOT NULL,
    payload_format INTEGER NOT NULL,
    payload BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX latest_stale ON latest (stale_ms);

CREATE TABLE packages (
    hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    mimetype TEXT NOT NULL,
    keywords TEXT NOT NULL,        -- JSON list
    tool TEXT NOT NULL,
    groups TEXT NOT NULL,
    creator_uid TEXT NOT NULL,
    submitter TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    lat REAL,
    lon REAL,
    expiration_ms INTEGER
) WITHOUT ROWID;
CREATE INDEX packages_submitted ON packages (submitted_ms);

CREATE TABLE videos (
    uid TEXT PRIMARY KEY,
    alias TEXT NOT NULL,
    url TEXT NOT NULL,
    groups TEXT NOT NULL,
    fields TEXT NOT NULL,          -- JSON object
    active INTEGER NOT NULL
) WITHOUT ROWID;
