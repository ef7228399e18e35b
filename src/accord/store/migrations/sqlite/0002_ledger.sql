-- The sharing ledger (accord.ledger): per partner and direction, an append-only log of entries
-- (canonical bytes and leaf hash), its signed checkpoints, the partner's cosignatures and
-- receipts. Rows are only ever added; `accord ledger verify` replays them.

CREATE TABLE ledger_entries (
    partner TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('out', 'in')),
    idx INTEGER NOT NULL CHECK (idx >= 0),
    data BLOB NOT NULL,
    leaf BLOB NOT NULL,
    PRIMARY KEY (partner, direction, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_checkpoints (
    partner TEXT NOT NULL,
    direction TEXT NOT NULL,
    size INTEGER NOT NULL,
    note BLOB NOT NULL,
    PRIMARY KEY (partner, direction, size)
) WITHOUT ROWID;

CREATE TABLE ledger_cosignatures (
    partner TEXT NOT NULL,
    direction TEXT NOT NULL,
    size INTEGER NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (partner, direction, size, line)
) WITHOUT ROWID;

CREATE TABLE ledger_receipts (
    partner TEXT NOT NULL,
    direction TEXT NOT NULL,
    idx INTEGER NOT NULL,
    note BLOB NOT NULL,
    PRIMARY KEY (partner, direction, idx)
) WITHOUT ROWID;
