-- 10-second buckets for plain PostgreSQL: a level under the minute buckets, so a VWAP window
-- reads raw trades only inside the two 10-second buckets holding its edges (a minute each
-- before). Sums and count only: the level serves exact VWAP sums, candles stay per minute.
-- Same relation and columns as the TimescaleDB continuous aggregate of this version.
--
-- Inserts (the ingest path) add to their buckets by delta; updates and deletes (reconciliation)
-- recompute the touched buckets from trades. Both run under the same per-symbol trade lock as
-- the minute level, so the two levels always agree.

CREATE TABLE trade_buckets_10s (
    symbol      text        NOT NULL,
    bucket      timestamptz NOT NULL,
    notional    numeric     NOT NULL,
    volume      numeric     NOT NULL,
    trade_count bigint      NOT NULL,
    PRIMARY KEY (symbol, bucket)
);

-- Trades stored before this version.
INSERT INTO trade_buckets_10s
SELECT symbol, bucket_start(INTERVAL '10 seconds', ts), sum(price * quantity), sum(quantity),
       count(*)
FROM trades
GROUP BY 1, 2;

CREATE FUNCTION recompute_10s_buckets(p_symbols text[], p_buckets timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trade_buckets_10s b
    USING unnest(p_symbols, p_buckets) AS t(symbol, bucket)
    WHERE b.symbol = t.symbol AND b.bucket = t.bucket;
    INSERT INTO trade_buckets_10s
    SELECT tr.symbol, t.bucket, sum(tr.price * tr.quantity), sum(tr.quantity), count(*)
    FROM (SELECT DISTINCT symbol, bucket FROM unnest(p_symbols, p_buckets) AS u(symbol, bucket)) t
    JOIN trades tr
      ON tr.symbol = t.symbol AND tr.ts >= t.bucket AND tr.ts < t.bucket + INTERVAL '10 seconds'
    GROUP BY tr.symbol, t.bucket;
END $$;

CREATE FUNCTION trade_buckets_10s_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trade_buckets_10s AS b
    SELECT symbol, bucket_start(INTERVAL '10 seconds', ts), sum(price * quantity), sum(quantity),
           count(*)
    FROM new_rows
    GROUP BY 1, 2
    ON CONFLICT (symbol, bucket) DO UPDATE SET
        notional = b.notional + excluded.notional,
        volume = b.volume + excluded.volume,
        trade_count = b.trade_count + excluded.trade_count;
    RETURN NULL;
END $$;

CREATE FUNCTION trade_buckets_10s_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_symbols text[];
    v_buckets timestamptz[];
BEGIN
    SELECT array_agg(symbol), array_agg(bucket) INTO v_symbols, v_buckets
    FROM (SELECT symbol, bucket_start(INTERVAL '10 seconds', ts) AS bucket FROM old_rows
          UNION
          SELECT symbol, bucket_start(INTERVAL '10 seconds', ts) FROM new_rows) t;
    IF v_symbols IS NOT NULL THEN
        PERFORM recompute_10s_buckets(v_symbols, v_buckets);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION trade_buckets_10s_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_symbols text[];
    v_buckets timestamptz[];
BEGIN
    SELECT array_agg(symbol), array_agg(bucket) INTO v_symbols, v_buckets
    FROM (SELECT DISTINCT symbol, bucket_start(INTERVAL '10 seconds', ts) AS bucket
          FROM old_rows) t;
    IF v_symbols IS NOT NULL THEN
        PERFORM recompute_10s_buckets(v_symbols, v_buckets);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER trade_buckets_10s_insert AFTER INSERT ON trades
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_10s_after_insert();
CREATE TRIGGER trade_buckets_10s_update AFTER UPDATE ON trades
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_10s_after_update();
CREATE TRIGGER trade_buckets_10s_delete AFTER DELETE ON trades
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION trade_buckets_10s_after_delete();
