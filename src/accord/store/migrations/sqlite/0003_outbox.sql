-- Store and forward (federation): what a link released but the partner has not yet
-- acknowledged, by per-link sequence number, and per-link marks (the last sequence number
-- given out, the highest one received) that must survive a restart.

CREATE TABLE outbox (
    partner TEXT NOT NULL,
    seq INTEGER NOT NULL CHECK (seq > 0),
    frame BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (partner, seq)
) WITHOUT ROWID;

CREATE TABLE link_marks (
    partner TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('sent', 'received')),
    seq INTEGER NOT NULL,
    PRIMARY KEY (partner, kind)
) WITHOUT ROWID;
