-- Core relations, identical in both storage modes.
-- Money is NUMERIC (exact, scale kept as received); times are timestamptz at millisecond precision.

CREATE TABLE trades (
    symbol      text        NOT NULL,
    trade_id    bigint      NOT NULL,
    ts          timestamptz NOT NULL,
    price       numeric     NOT NULL CHECK (price > 0),
    quantity    numeric     NOT NULL CHECK (quantity > 0),
    source      text        NOT NULL CHECK (source IN ('ws', 'rest')),
    verified    boolean     NOT NULL DEFAULT false,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, ts, trade_id)
);
CREATE INDEX trades_symbol_trade_id ON trades (symbol, trade_id);

-- Malformed WebSocket frames: kept verbatim with the reason, never in trades.
CREATE TABLE quarantine (
    id          bigserial   PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    payload     text        NOT NULL,
    error       text        NOT NULL
);

-- Feed periods with no trustworthy data (disconnected or stale), reconciled first.
CREATE TABLE feed_gaps (
    id          bigserial   PRIMARY KEY,
    start_ts    timestamptz NOT NULL,
    end_ts      timestamptz NOT NULL CHECK (end_ts > start_ts),
    reason      text        NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Per-symbol reconciliation position: everything before verified_until equals REST.
CREATE TABLE symbols (
    symbol         text        PRIMARY KEY,
    verified_until timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- The coverage ledger: every reconciliation window and where it stands.
CREATE TABLE coverage_windows (
    symbol       text        NOT NULL REFERENCES symbols (symbol),
    start_ts     timestamptz NOT NULL,
    end_ts       timestamptz NOT NULL CHECK (end_ts > start_ts),
    state        text        NOT NULL CHECK (state IN ('live', 'gap', 'pending', 'verified')),
    trade_count  bigint      NOT NULL DEFAULT 0,
    change_count bigint      NOT NULL DEFAULT 0,
    inserted     bigint      NOT NULL DEFAULT 0,
    updated      bigint      NOT NULL DEFAULT 0,
    deleted      bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, start_ts)
);

-- Every change reconciliation made, with old and new values (NULL where not applicable).
CREATE TABLE corrections (
    id           bigserial   PRIMARY KEY,
    symbol       text        NOT NULL,
    trade_id     bigint      NOT NULL,
    kind         text        NOT NULL CHECK (kind IN ('inserted', 'updated', 'deleted')),
    old_ts       timestamptz,
    old_price    numeric,
    old_quantity numeric,
    new_ts       timestamptz,
    new_price    numeric,
    new_quantity numeric,
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX corrections_symbol_trade ON corrections (symbol, trade_id);

-- The event log (transactional outbox). Events are appended in the same transaction as the
-- data change they announce; seq comes from event_head under its row lock, taken last in the
-- transaction, so commit order equals seq order and a reader never sees a gap.
CREATE TABLE event_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL
);
INSERT INTO event_head (seq) VALUES (0);

CREATE TABLE events (
    seq        bigint      PRIMARY KEY,
    symbol     text        NOT NULL,
    subject    text        NOT NULL,
    type       text        NOT NULL,
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- How far the NATS relay has published the event log.
CREATE TABLE event_relay (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    published_seq bigint  NOT NULL
);
INSERT INTO event_relay (published_seq) VALUES (0);

-- Aggregate ranges changed by reconciliation that still need an explicit refresh
-- (TimescaleDB mode); written in the reconciliation transaction, removed after the refresh.
CREATE TABLE aggregate_refresh_queue (
    id       bigserial   PRIMARY KEY,
    start_ts timestamptz NOT NULL,
    end_ts   timestamptz NOT NULL
);
