-- Missions: the same tables as migrations/sqlite/0004_missions.sql.

CREATE TABLE missions (
    guid text COLLATE "C" PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    doc text NOT NULL
);

CREATE TABLE mission_contents (
    guid text COLLATE "C" NOT NULL REFERENCES missions (guid) ON DELETE CASCADE,
    key text COLLATE "C" NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (guid, key)
);

CREATE TABLE mission_changes (
    guid text COLLATE "C" NOT NULL REFERENCES missions (guid) ON DELETE CASCADE,
    seq bigint NOT NULL CHECK (seq > 0),
    time_ms bigint NOT NULL,
    doc text NOT NULL,
    PRIMARY KEY (guid, seq)
);

CREATE FUNCTION mission_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mission_changes is append-only';
END;
$$;

CREATE TRIGGER mission_changes_append_only BEFORE UPDATE ON mission_changes
    FOR EACH ROW EXECUTE FUNCTION mission_changes_append_only();
