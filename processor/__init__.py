"""Data Processor: keeps the WebSocket feed alive, stores and validates trades, reconciles them
with the REST API through ProxyService, and announces every trade-data event."""
