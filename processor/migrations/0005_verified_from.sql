-- Where each symbol's verified range begins. verified_until says that trades before it equal
-- the REST API, but only from here on: history before the processor first ran is verified only
-- by a backfill, which moves verified_from back over the windows it verifies. NULL: from the
-- first trade on (nothing before it needs verifying).
ALTER TABLE symbols ADD COLUMN verified_from timestamptz;

-- Existing symbols: from the start of the run of contiguous verified ledger windows that ends
-- at verified_until (the watermark itself when no such window is recorded).
WITH RECURSIVE down (symbol, start_ts) AS (
    SELECT symbol, verified_until FROM symbols
    UNION ALL
    SELECT d.symbol, c.start_ts
    FROM down d
    JOIN coverage_windows c
      ON c.symbol = d.symbol AND c.state = 'verified'
     AND c.end_ts = d.start_ts AND c.start_ts < d.start_ts
)
UPDATE symbols s SET verified_from = (SELECT min(d.start_ts) FROM down d WHERE d.symbol = s.symbol);
