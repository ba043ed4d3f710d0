-- Aggregates for TimescaleDB with continuous aggregates (Timescale License): trades is a
-- hypertable; a 1-minute continuous aggregate and hierarchical 1-hour and 1-day ones keep
-- notional, volume, trade count and OHLC, with real-time aggregation and refresh policies.
-- Late corrections older than the policies' windows are refreshed explicitly by the processor
-- (aggregate_refresh_queue). Same relations and columns as the plain-PostgreSQL mode.

CREATE FUNCTION trade_order_key(ts timestamptz, trade_id bigint) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN (extract(epoch FROM ts) * 1000) * 10000000000000000000 + trade_id;

SELECT create_hypertable('trades', by_range('ts', INTERVAL '1 day'));

CREATE MATERIALIZED VIEW trade_buckets_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 minute', ts) AS bucket,
       sum(price * quantity) AS notional,
       sum(quantity) AS volume,
       count(*) AS trade_count,
       first(price, trade_order_key(ts, trade_id)) AS open,
       max(price) AS high,
       min(price) AS low,
       last(price, trade_order_key(ts, trade_id)) AS close
FROM trades
GROUP BY symbol, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW trade_buckets_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 hour', bucket) AS bucket,
       sum(notional) AS notional,
       sum(volume) AS volume,
       sum(trade_count)::bigint AS trade_count,
       first(open, bucket) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, bucket) AS close
FROM trade_buckets_1m
GROUP BY symbol, time_bucket(INTERVAL '1 hour', bucket)
WITH NO DATA;

CREATE MATERIALIZED VIEW trade_buckets_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT symbol,
       time_bucket(INTERVAL '1 day', bucket) AS bucket,
       sum(notional) AS notional,
       sum(volume) AS volume,
       sum(trade_count)::bigint AS trade_count,
       first(open, bucket) AS open,
       max(high) AS high,
       min(low) AS low,
       last(close, bucket) AS close
FROM trade_buckets_1h
GROUP BY symbol, time_bucket(INTERVAL '1 day', bucket)
WITH NO DATA;

SELECT add_continuous_aggregate_policy('trade_buckets_1m',
    start_offset => INTERVAL '2 hours', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('trade_buckets_1h',
    start_offset => INTERVAL '1 day', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '10 minutes');
SELECT add_continuous_aggregate_policy('trade_buckets_1d',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour');
