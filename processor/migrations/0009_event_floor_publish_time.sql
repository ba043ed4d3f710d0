-- When the newest event retention removed (seq floor - 1) was published, in ms since the epoch
-- (NULL until retention removes one). A client resuming at the floor quotes that event's
-- publish time: compared with this, a log replaced or restored since is noticed even though
-- the event itself is gone.
ALTER TABLE event_log_floor ADD COLUMN below_published_ms bigint;
