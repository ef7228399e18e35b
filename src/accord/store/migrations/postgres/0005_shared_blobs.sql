-- Data package bytes for nodes of one organisation sharing this database (issue 17): a
-- package uploaded to one node downloads from every other (accord.store.postgres_blobs).
-- PostgreSQL only: a SQLite file is never shared by two nodes. A blob row is written in the
-- same transaction as its chunks, so a blob row means the bytes are whole.

CREATE TABLE shared_blobs (
    hash text COLLATE "C" PRIMARY KEY,
    size bigint NOT NULL CHECK (size >= 0)
);

CREATE TABLE shared_blob_chunks (
    hash text COLLATE "C" NOT NULL REFERENCES shared_blobs (hash) ON DELETE CASCADE,
    seq integer NOT NULL CHECK (seq >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (hash, seq)
);
