import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trading.v1 import events_pb2 as _events_pb2
from trading.v1 import trade_pb2 as _trade_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WindowState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WINDOW_STATE_UNSPECIFIED: _ClassVar[WindowState]
    WINDOW_STATE_LIVE: _ClassVar[WindowState]
    WINDOW_STATE_GAP: _ClassVar[WindowState]
    WINDOW_STATE_PENDING: _ClassVar[WindowState]
    WINDOW_STATE_VERIFIED: _ClassVar[WindowState]
WINDOW_STATE_UNSPECIFIED: WindowState
WINDOW_STATE_LIVE: WindowState
WINDOW_STATE_GAP: WindowState
WINDOW_STATE_PENDING: WindowState
WINDOW_STATE_VERIFIED: WindowState

class StreamEventsRequest(_message.Message):
    __slots__ = ("symbols", "from_sequence", "last_publish_time")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    from_sequence: int
    last_publish_time: _timestamp_pb2.Timestamp
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., from_sequence: _Optional[int] = ..., last_publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _events_pb2.Event
    def __init__(self, event: _Optional[_Union[_events_pb2.Event, _Mapping]] = ...) -> None: ...

class BackfillRequest(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BackfillResponse(_message.Message):
    __slots__ = ("windows_total", "windows_done", "window", "trade_count", "change_count", "complete")
    WINDOWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_DONE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    windows_total: int
    windows_done: int
    window: _trade_pb2.TimeWindow
    trade_count: int
    change_count: int
    complete: bool
    def __init__(self, windows_total: _Optional[int] = ..., windows_done: _Optional[int] = ..., window: _Optional[_Union[_trade_pb2.TimeWindow, _Mapping]] = ..., trade_count: _Optional[int] = ..., change_count: _Optional[int] = ..., complete: _Optional[bool] = ...) -> None: ...

class CoverageWindow(_message.Message):
    __slots__ = ("symbol", "window", "state", "trade_count", "change_count", "updated_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    window: _trade_pb2.TimeWindow
    state: WindowState
    trade_count: int
    change_count: int
    updated_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., window: _Optional[_Union[_trade_pb2.TimeWindow, _Mapping]] = ..., state: _Optional[_Union[WindowState, str]] = ..., trade_count: _Optional[int] = ..., change_count: _Optional[int] = ..., updated_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCoverageRequest(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCoverageResponse(_message.Message):
    __slots__ = ("windows", "verified_until", "verified_from")
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FROM_FIELD_NUMBER: _ClassVar[int]
    windows: _containers.RepeatedCompositeFieldContainer[CoverageWindow]
    verified_until: _timestamp_pb2.Timestamp
    verified_from: _timestamp_pb2.Timestamp
    def __init__(self, windows: _Optional[_Iterable[_Union[CoverageWindow, _Mapping]]] = ..., verified_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetProcessorStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetProcessorStatsResponse(_message.Message):
    __slots__ = ("frames_received", "trades_ingested", "duplicates_dropped", "frames_quarantined", "connections", "gaps_recorded", "windows_verified", "corrections_inserted", "corrections_updated", "corrections_deleted", "events_published", "windows_rejected", "events_pruned", "relay_ready")
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    TRADES_INGESTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    GAPS_RECORDED_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    CORRECTIONS_INSERTED_FIELD_NUMBER: _ClassVar[int]
    CORRECTIONS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    CORRECTIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    EVENTS_PRUNED_FIELD_NUMBER: _ClassVar[int]
    RELAY_READY_FIELD_NUMBER: _ClassVar[int]
    frames_received: int
    trades_ingested: int
    duplicates_dropped: int
    frames_quarantined: int
    connections: int
    gaps_recorded: int
    windows_verified: int
    corrections_inserted: int
    corrections_updated: int
    corrections_deleted: int
    events_published: int
    windows_rejected: int
    events_pruned: int
    relay_ready: bool
    def __init__(self, frames_received: _Optional[int] = ..., trades_ingested: _Optional[int] = ..., duplicates_dropped: _Optional[int] = ..., frames_quarantined: _Optional[int] = ..., connections: _Optional[int] = ..., gaps_recorded: _Optional[int] = ..., windows_verified: _Optional[int] = ..., corrections_inserted: _Optional[int] = ..., corrections_updated: _Optional[int] = ..., corrections_deleted: _Optional[int] = ..., events_published: _Optional[int] = ..., windows_rejected: _Optional[int] = ..., events_pruned: _Optional[int] = ..., relay_ready: _Optional[bool] = ...) -> None: ...
