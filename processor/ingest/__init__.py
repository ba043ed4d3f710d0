"""WebSocket ingest: validate provider frames, drop duplicates, keep the feed alive and record
its gaps, and write provisional trades (with their events) in batches.

Pure cores: :mod:`validation`, :mod:`dedup`, :mod:`gaps`, :mod:`backoff`, :mod:`records`.
I/O shells: :mod:`feed` (the WebSocket), :mod:`storage` (SQL), :mod:`writer` (batching),
:mod:`lanes` (parallel writers, each for its share of the symbols) and :mod:`service` (the
async context manager that owns them).
"""
