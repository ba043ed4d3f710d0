"""Benchmarks of the trading data service: each figure measured against a baseline in the same
run, written to ``bench-results/<name>.json`` and summarized in ``bench-results/SUMMARY.md``.

    python -m bench                 # every benchmark, sequentially
    python -m bench.ingest --quick  # one benchmark in its tiny (smoke test) configuration
"""
