-- Aggregates for plain PostgreSQL (and Apache-only TimescaleDB): the same relations and columns
-- as the TimescaleDB continuous aggregates, kept exact by statement-level triggers with
-- transition tables. Buckets are UTC-aligned (date_bin from 2000-01-03, as time_bucket).
--
--   trade_buckets_1m / _1h / _1d (symbol, bucket, notional, volume, trade_count,
--                                 open, high, low, close)
--
-- Inserts (the ingest path) update minute buckets by delta; updates and deletes (reconciliation)
-- recompute the touched minutes from trades. Hours are recomputed from their minutes and days
-- from their hours, so every level is exact.

CREATE FUNCTION trade_order_key(ts timestamptz, trade_id bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (extract(epoch FROM ts) * 1000) * 10000000000000000000 + trade_id;

CREATE TABLE trade_buckets_1m_state (
    symbol      text        NOT NULL,
    bucket      timestamptz NOT NULL,
    notional    numeric     NOT NULL,
    volume      numeric     NOT NULL,
    trade_count bigint      NOT NULL,
    open        numeric     NOT NULL,
    open_key    numeric     NOT NULL,
    high        numeric     NOT NULL,
    low         numeric     NOT NULL,
    close       numeric     NOT NULL,
    close_key   numeric     NOT NULL,
    PRIMARY KEY (symbol, bucket)
);

CREATE VIEW trade_buckets_1m AS
SELECT symbol, bucket, notional, volume, trade_count, open, high, low, close
FROM trade_buckets_1m_state;

CREATE TABLE trade_buckets_1h (
    symbol      text        NOT NULL,
    bucket      timestamptz NOT NULL,
    notional    numeric     NOT NULL,
    volume      numeric     NOT NULL,
    trade_count bigint      NOT NULL,
    open        numeric     NOT NULL,
    high        numeric     NOT NULL,
    low         numeric     NOT NULL,
    close       numeric     NOT NULL,
    PRIMARY KEY (symbol, bucket)
);

CREATE TABLE trade_buckets_1d (LIKE trade_buckets_1h INCLUDING ALL);

CREATE FUNCTION bucket_start(width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN date_bin(width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00');

-- Recompute hour buckets from their minutes and day buckets from their hours.
CREATE FUNCTION recompute_upper_buckets(p_symbols text[], p_minutes timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS touched_hours (symbol text, bucket timestamptz)
        ON COMMIT DROP;
    DELETE FROM touched_hours;
    INSERT INTO touched_hours
    SELECT DISTINCT s, bucket_start(INTERVAL '1 hour', m)
    FROM unnest(p_symbols, p_minutes) AS t(s, m);

    DELETE FROM trade_buckets_1h h USING touched_hours t
    WHERE h.symbol = t.symbol AND h.bucket = t.bucket;
    INSERT INTO trade_buckets_1h
    SELECT m.symbol, t.bucket, sum(m.notional), sum(m.volume), sum(m.trade_count)::bigint,
           (array_agg(m.open ORDER BY m.bucket))[1], max(m.high), min(m.low),
           (array_agg(m.close ORDER BY m.bucket DESC))[1]
    FROM touched_hours t
    JOIN trade_buckets_1m_state m
      ON m.symbol = t.symbol AND m.bucket >= t.bucket AND m.bucket < t.bucket + INTERVAL '1 hour'
    GROUP BY m.symbol, t.bucket;

    DELETE FROM trade_buckets_1d d
    USING (SELECT DISTINCT symbol, bucket_start(INTERVAL '1 day', bucket) AS bucket
           FROM touched_hours) t
    WHERE d.symbol = t.symbol AND d.bucket = t.bucket;
    INSERT INTO trade_buckets_1d
    SELECT h.symbol, t.bucket, sum(h.notional), sum(h.volume), sum(h.trade_count)::bigint,
           (array_agg(h.open ORDER BY h.bucket))[1], max(h.high), min(h.low),
           (array_agg(h.close ORDER BY h.bucket DESC))[1]
    FROM (SELECT DISTINCT symbol, bucket_start(INTERVAL '1 day', bucket) AS bucket
          FROM touched_hours) t
    JOIN trade_buckets_1h h
      ON h.symbol = t.symbol AND h.bucket >= t.bucket AND h.bucket < t.bucket + INTERVAL '1 day'
    GROUP BY h.symbol, t.bucket;
END $$;

-- Recompute minute buckets from trades (after updates and deletes), then the upper levels.
CREATE FUNCTION recompute_minute_buckets(p_symbols text[], p_minutes timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trade_buckets_1m_state b
    USING unnest(p_symbols, p_minutes) AS t(symbol, bucket)
    WHERE b.symbol = t.symbol AND b.bucket = t.bucket;
    INSERT INTO trade_buckets_1m_state
    SELECT tr.symbol, t.bucket, sum(tr.price * tr.quantity), sum(tr.quantity), count(*),
           (array_agg(tr.price ORDER BY tr.ts, tr.trade_id))[1],
           min(trade_order_key(tr.ts, tr.trade_id)),
           max(tr.price), min(tr.price),
           (array_agg(tr.price ORDER BY tr.ts DESC, tr.trade_id DESC))[1],
           max(trade_order_key(tr.ts, tr.trade_id))
    FROM (SELECT DISTINCT symbol, bucket FROM unnest(p_symbols, p_minutes) AS u(symbol, bucket)) t
    JOIN trades tr
      ON tr.symbol = t.symbol AND tr.ts >= t.bucket AND tr.ts < t.bucket + INTERVAL '1 minute'
    GROUP BY tr.symbol, t.bucket;
    PERFORM recompute_upper_buckets(p_symbols, p_minutes);
END $$;

CREATE FUNCTION trade_buckets_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_symbols text[];
    v_minutes timestamptz[];
BEGIN
    INSERT INTO trade_buckets_1m_state AS b
    SELECT symbol, bucket_start(INTERVAL '1 minute', ts), sum(price * quantity), sum(quantity),
           count(*),
           (array_agg(price ORDER BY ts, trade_id))[1], min(trade_order_key(ts, trade_id)),
           max(price), min(price),
           (array_agg(price ORDER BY ts DESC, trade_id DESC))[1], max(trade_order_key(ts, trade_id))
    FROM new_rows
    GROUP BY symbol, bucket_start(INTERVAL '1 minute', ts)
    ON CONFLICT (symbol, bucket) DO UPDATE SET
        notional = b.notional + excluded.notional,
        volume = b.volume + excluded.volume,
        trade_count = b.trade_count + excluded.trade_count,
        open = CASE WHEN excluded.open_key < b.open_key THEN excluded.open ELSE b.open END,
        open_key = least(b.open_key, excluded.open_key),
        high = greatest(b.high, excluded.high),
        low = least(b.low, excluded.low),
        close = CASE WHEN excluded.close_key > b.close_key THEN excluded.close ELSE b.close END,
        close_key = greatest(b.close_key, excluded.close_key);
    SELECT array_agg(symbol), array_agg(bucket) INTO v_symbols, v_minutes
    FROM (SELECT DISTINCT symbol, bucket_start(INTERVAL '1 minute', ts) AS bucket
          FROM new_rows) t;
    IF v_symbols IS NOT NULL THEN
        PERFORM recompute_upper_buckets(v_symbols, v_minutes);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION trade_buckets_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_symbols text[];
    v_minutes timestamptz[];
BEGIN
    SELECT array_agg(symbol), array_agg(bucket) INTO v_symbols, v_minutes
    FROM (SELECT symbol, bucket_start(INTERVAL '1 minute', ts) AS bucket FROM old_rows
          UNION
          SELECT symbol, bucket_start(INTERVAL '1 minute', ts) FROM new_rows) t;
    IF v_symbols IS NOT NULL THEN
        PERFORM recompute_minute_buckets(v_symbols, v_minutes);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION trade_buckets_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_symbols text[];
    v_minutes timestamptz[];
BEGIN
    SELECT array_agg(symbol), array_agg(bucket) INTO v_symbols, v_minutes
    FROM (SELECT DISTINCT symbol, bucket_start(INTERVAL '1 minute', ts) AS bucket
          FROM old_rows) t;
    IF v_symbols IS NOT NULL THEN
        PERFORM recompute_minute_buckets(v_symbols, v_minutes);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trade_buckets_insert AFTER INSERT ON trades
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_after_insert();
CREATE TRIGGER trade_buckets_update AFTER UPDATE ON trades
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_after_update();
CREATE TRIGGER trade_buckets_delete AFTER DELETE ON trades
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_after_delete();
