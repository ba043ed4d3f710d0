import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trading.v1 import trade_pb2 as _trade_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FetchTradesRequest(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FetchTradesResponse(_message.Message):
    __slots__ = ("page", "complete")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    page: TradePage
    complete: WindowComplete
    def __init__(self, page: _Optional[_Union[TradePage, _Mapping]] = ..., complete: _Optional[_Union[WindowComplete, _Mapping]] = ...) -> None: ...

class TradePage(_message.Message):
    __slots__ = ("trades", "progress")
    TRADES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    trades: _containers.RepeatedCompositeFieldContainer[_trade_pb2.Trade]
    progress: FetchProgress
    def __init__(self, trades: _Optional[_Iterable[_Union[_trade_pb2.Trade, _Mapping]]] = ..., progress: _Optional[_Union[FetchProgress, _Mapping]] = ...) -> None: ...

class WindowComplete(_message.Message):
    __slots__ = ("total_trades", "progress")
    TOTAL_TRADES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    total_trades: int
    progress: FetchProgress
    def __init__(self, total_trades: _Optional[int] = ..., progress: _Optional[_Union[FetchProgress, _Mapping]] = ...) -> None: ...

class FetchProgress(_message.Message):
    __slots__ = ("pages", "attempts", "retries", "hedges", "cursor", "trades")
    PAGES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    HEDGES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    TRADES_FIELD_NUMBER: _ClassVar[int]
    pages: int
    attempts: int
    retries: int
    hedges: int
    cursor: _timestamp_pb2.Timestamp
    trades: int
    def __init__(self, pages: _Optional[int] = ..., attempts: _Optional[int] = ..., retries: _Optional[int] = ..., hedges: _Optional[int] = ..., cursor: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trades: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("requests", "succeeded", "timeouts", "server_errors", "rate_limited", "connection_errors", "not_found", "cancelled", "retries", "hedges", "hedges_won", "windows_completed", "windows_in_flight", "trades_streamed", "latency_p50", "latency_p95", "latency_p99", "attempt_timeout")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    TIMEOUTS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ERRORS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    CONNECTION_ERRORS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    HEDGES_FIELD_NUMBER: _ClassVar[int]
    HEDGES_WON_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    TRADES_STREAMED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    requests: int
    succeeded: int
    timeouts: int
    server_errors: int
    rate_limited: int
    connection_errors: int
    not_found: int
    cancelled: int
    retries: int
    hedges: int
    hedges_won: int
    windows_completed: int
    windows_in_flight: int
    trades_streamed: int
    latency_p50: _duration_pb2.Duration
    latency_p95: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    attempt_timeout: _duration_pb2.Duration
    def __init__(self, requests: _Optional[int] = ..., succeeded: _Optional[int] = ..., timeouts: _Optional[int] = ..., server_errors: _Optional[int] = ..., rate_limited: _Optional[int] = ..., connection_errors: _Optional[int] = ..., not_found: _Optional[int] = ..., cancelled: _Optional[int] = ..., retries: _Optional[int] = ..., hedges: _Optional[int] = ..., hedges_won: _Optional[int] = ..., windows_completed: _Optional[int] = ..., windows_in_flight: _Optional[int] = ..., trades_streamed: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p95: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempt_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
