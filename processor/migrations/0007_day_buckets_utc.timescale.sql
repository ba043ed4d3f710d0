-- Nothing to do in TimescaleDB mode: time_bucket's days are 24 hours (UTC) whatever the
-- session's TimeZone. (Plain mode's version 7 repairs its day buckets; versions are numbered
-- alike in both modes.)
SELECT 1;
