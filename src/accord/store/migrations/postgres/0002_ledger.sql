-- The sharing ledger: the same tables as migrations/sqlite/0002_ledger.sql.

CREATE TABLE ledger_entries (
    partner text COLLATE "C" NOT NULL,
    direction text COLLATE "C" NOT NULL CHECK (direction IN ('out', 'in')),
    idx bigint NOT NULL CHECK (idx >= 0),
    data bytea NOT NULL,
    leaf bytea NOT NULL,
    PRIMARY KEY (partner, direction, idx)
);

CREATE TABLE ledger_checkpoints (
    partner text COLLATE "C" NOT NULL,
    direction text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    note bytea NOT NULL,
    PRIMARY KEY (partner, direction, size)
);

CREATE TABLE ledger_cosignatures (
    partner text COLLATE "C" NOT NULL,
    direction text COLLATE "C" NOT NULL,
    size bigint NOT NULL,
    line text COLLATE "C" NOT NULL,
    PRIMARY KEY (partner, direction, size, line)
);

CREATE TABLE ledger_receipts (
    partner text COLLATE "C" NOT NULL,
    direction text COLLATE "C" NOT NULL,
    idx bigint NOT NULL,
    note bytea NOT NULL,
    PRIMARY KEY (partner, direction, idx)
);
