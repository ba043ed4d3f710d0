"""The gRPC channel one service opens to another."""

from __future__ import annotations

import grpc

#: gRPC's default reconnect backoff grows to 120 s: a proxy or processor down for a couple of
#: minutes was still unreachable (UNAVAILABLE, "failed to connect to all addresses") for up to
#: two minutes after it came back. Services on the same network retry every 2 s at most.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
)


def service_channel(address: str) -> grpc.aio.Channel:
    """An insecure channel to another of the system's services at ``address``."""
    return grpc.aio.insecure_channel(address, options=RECONNECT_OPTIONS)
