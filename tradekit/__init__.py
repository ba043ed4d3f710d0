"""What the three services share: the trade domain model, exact money, wire conversion,
configuration from the environment, structured logs and the asyncio gRPC server runtime.

Nothing here knows about a particular service; the services never import each other.
"""
