-- Version 4 rewrites the plain mode's minute-level insert trigger (see
-- 0004_minute_inserts.plain.sql). TimescaleDB's continuous aggregates have no such trigger:
-- nothing changes in this mode; the version exists so both modes keep one numbering.
SELECT 1;
