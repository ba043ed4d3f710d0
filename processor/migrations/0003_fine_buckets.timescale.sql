-- 10-second buckets for TimescaleDB: a continuous aggregate under the minute one, so a VWAP
-- window reads raw trades only inside the two 10-second buckets holding its edges (a minute
-- each before). Sums and count only: the level serves exact VWAP sums, candles stay per minute.
-- Same relation and columns as the plain-PostgreSQL mode of this version.
--
-- Created without data; until a refresh materialises a range, real-time aggregation answers it
-- from trades (exact, slower). The policy's window starts at the hypertable's first trade
-- (start_offset NULL), so its first run materialises the trades stored before this version in
-- one refresh, never leaving them below the watermark unmaterialised; later runs refresh only
-- invalidated ranges. Corrections are also refreshed explicitly by the processor, as for the
-- other levels, and the history is queued for it here too.

CREATE MATERIALIZED VIEW trade_buckets_10s
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '10 seconds', ts) AS bucket,
       sum(price * quantity) AS notional,
       sum(quantity) AS volume,
       count(*) AS trade_count
FROM trades
GROUP BY symbol, time_bucket(INTERVAL '10 seconds', ts)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('trade_buckets_10s',
    start_offset => NULL, end_offset => INTERVAL '10 seconds',
    schedule_interval => INTERVAL '1 minute');

INSERT INTO aggregate_refresh_queue (start_ts, end_ts)
SELECT min(ts), max(ts) + INTERVAL '1 millisecond' FROM trades HAVING count(*) > 0;
