-- The last batch each ingest writer committed, with what it changed. A writer that loses its
-- connection while committing cannot tell whether the batch landed; before writing it again it
-- locks its row here and skips the batch when the row already names it. Trades and their events
-- are idempotent on their own (a trade id is stored once); quarantined frames and feed gaps have
-- no natural key and were written twice. One row per writer (two per processor start); rows
-- idle for a week are pruned by each writer's first batch.
CREATE TABLE ingest_commits (
    writer       uuid        PRIMARY KEY,
    batch        bigint      NOT NULL,
    inserted     integer     NOT NULL,
    conflicts    integer     NOT NULL,
    quarantined  integer     NOT NULL,
    gaps         integer     NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
);
