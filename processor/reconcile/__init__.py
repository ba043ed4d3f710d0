"""Reconciliation: make stored trades equal the provider's REST API, window by window.

planner.py       which windows to verify next (pure)
diff.py          stored trades vs REST trades -> corrections (pure)
proxy_client.py  fetch one window through ProxyService.FetchTrades
storage.py       the SQL of reconciliation (parameterized, one module)
apply.py         verify one window in one transaction, with its events
scheduler.py     the periodic Reconciler (async context manager)
coverage.py      the coverage ledger as GetCoverage shows it
backfill.py      reconcile a historic range on demand, with progress
config.py        ReconcileConfig
errors.py        the error tree
"""
