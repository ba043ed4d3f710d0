-- The event log's floor: every event from seq `seq` on is still in `events`. The retention job
-- deletes a prefix of the log (events older than EVENT_LOG_RETENTION that the NATS relay has
-- published, never the last one it published, so the newest event stays) and raises the
-- floor in the same transaction; StreamEvents refuses a position under the floor
-- (OUT_OF_RANGE: those events are gone) instead of skipping them without a word.
CREATE TABLE event_log_floor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    seq       bigint  NOT NULL
);
INSERT INTO event_log_floor (seq) VALUES (1);
