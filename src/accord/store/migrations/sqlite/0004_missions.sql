-- Missions (TAK Data Sync): one row per mission holding its state as a JSON document
-- (accord.missions.codec) without its contents, one row per item or file (so an edit rewrites
-- what changed, not the whole mission), and its change log, append-only (a trigger refuses updates).

CREATE TABLE missions (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mission_contents (
    guid TEXT NOT NULL REFERENCES missions (guid) ON DELETE CASCADE,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (guid, key)
) WITHOUT ROWID;

CREATE TABLE mission_changes (
    guid TEXT NOT NULL REFERENCES missions (guid) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq > 0),
    time_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (guid, seq)
) WITHOUT ROWID;

CREATE TRIGGER mission_changes_append_only BEFORE UPDATE ON mission_changes
BEGIN
    SELECT RAISE(ABORT, 'mission_changes is append-only');
END;
