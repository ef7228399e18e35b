-- Store and forward: the same tables as migrations/sqlite/0003_outbox.sql.

CREATE TABLE outbox (
    partner text COLLATE "C" NOT NULL,
    seq bigint NOT NULL CHECK (seq > 0),
    frame bytea NOT NULL,
    created_ms bigint NOT NULL,
    PRIMARY KEY (partner, seq)
);

CREATE TABLE link_marks (
    partner text COLLATE "C" NOT NULL,
    kind text COLLATE "C" NOT NULL CHECK (kind IN ('sent', 'received')),
    seq bigint NOT NULL,
    PRIMARY KEY (partner, kind)
);
