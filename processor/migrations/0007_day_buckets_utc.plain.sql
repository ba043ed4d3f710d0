-- Day buckets span 24 hours whatever the session's TimeZone. Version 2 summed a day's hours up
-- to `bucket + INTERVAL '1 day'`, a calendar day in the writing session's TimeZone: with a
-- zone that has daylight saving time (the server's default, copied from the OS at initdb, or
-- PGTZ), the day of a change summed 23 or 25 hours, leaving out its last hour or taking the
-- next day's first. The function is replaced, and every stored day is summed again from its
-- hours (the hour level was never affected: '1 hour' has no calendar part).

CREATE OR REPLACE FUNCTION recompute_upper_buckets(p_symbols text[], p_minutes timestamptz[])
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
      ON h.symbol = t.symbol AND h.bucket >= t.bucket AND h.bucket < t.bucket + INTERVAL '24 hours'
    GROUP BY h.symbol, t.bucket;
END $$;

DELETE FROM trade_buckets_1d;
INSERT INTO trade_buckets_1d
SELECT symbol, bucket_start(INTERVAL '1 day', bucket), sum(notional), sum(volume),
       sum(trade_count)::bigint, (array_agg(open ORDER BY bucket))[1], max(high), min(low),
       (array_agg(close ORDER BY bucket DESC))[1]
FROM trade_buckets_1h
GROUP BY symbol, bucket_start(INTERVAL '1 day', bucket);
