"""What the services' PostgreSQL connection pools share."""

from __future__ import annotations

#: How long a pool retries one lost connection before giving it up (psycopg_pool waits 1, 2,
#: 4 s... between attempts, doubling up to this). Its default, 5 min, left the pool's next
#: attempt up to a minute after a database came back from a long outage: health said SERVING
#: while every call still failed. Given up sooner, the next request that finds no connection
#: starts a new attempt at once, so calls succeed within seconds of the database's return.
RECONNECT_TIMEOUT_S = 10.0
