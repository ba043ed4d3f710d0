"""The proxy service: the only client of the provider's slow, faulty REST API.

It fetches whole time windows page by page (``paging``), each request retried until it
succeeds (``retrying``) and hedged when it runs long (``hedging``), and streams the pages to
gRPC callers (``servicer``). ``python -m proxy --help`` lists its settings.
"""
