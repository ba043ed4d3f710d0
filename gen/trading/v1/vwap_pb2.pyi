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

class VwapPoint(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time", "notional", "volume", "vwap", "trade_count", "verified")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    NOTIONAL_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    VWAP_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    notional: str
    volume: str
    vwap: str
    trade_count: int
    verified: bool
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., notional: _Optional[str] = ..., volume: _Optional[str] = ..., vwap: _Optional[str] = ..., trade_count: _Optional[int] = ..., verified: _Optional[bool] = ...) -> None: ...

class GetVwapRequest(_message.Message):
    __slots__ = ("symbol", "end_time", "window")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    end_time: _timestamp_pb2.Timestamp
    window: _duration_pb2.Duration
    def __init__(self, symbol: _Optional[str] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetVwapResponse(_message.Message):
    __slots__ = ("point", "as_of")
    POINT_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    point: VwapPoint
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, point: _Optional[_Union[VwapPoint, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetVwapSeriesRequest(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time", "step", "window")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    step: _duration_pb2.Duration
    window: _duration_pb2.Duration
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., step: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetVwapSeriesResponse(_message.Message):
    __slots__ = ("point",)
    POINT_FIELD_NUMBER: _ClassVar[int]
    point: VwapPoint
    def __init__(self, point: _Optional[_Union[VwapPoint, _Mapping]] = ...) -> None: ...

class StreamVwapRequest(_message.Message):
    __slots__ = ("symbols", "window", "step")
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    window: _duration_pb2.Duration
    step: _duration_pb2.Duration
    def __init__(self, symbols: _Optional[_Iterable[str]] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., step: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class StreamVwapResponse(_message.Message):
    __slots__ = ("update", "revision", "verified")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    update: VwapUpdate
    revision: VwapRevision
    verified: VwapVerified
    def __init__(self, update: _Optional[_Union[VwapUpdate, _Mapping]] = ..., revision: _Optional[_Union[VwapRevision, _Mapping]] = ..., verified: _Optional[_Union[VwapVerified, _Mapping]] = ...) -> None: ...

class VwapUpdate(_message.Message):
    __slots__ = ("point", "closed", "sequence")
    POINT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    point: VwapPoint
    closed: bool
    sequence: int
    def __init__(self, point: _Optional[_Union[VwapPoint, _Mapping]] = ..., closed: _Optional[bool] = ..., sequence: _Optional[int] = ...) -> None: ...

class VwapRevision(_message.Message):
    __slots__ = ("old_point", "new_point", "reason", "sequence")
    OLD_POINT_FIELD_NUMBER: _ClassVar[int]
    NEW_POINT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    old_point: VwapPoint
    new_point: VwapPoint
    reason: str
    sequence: int
    def __init__(self, old_point: _Optional[_Union[VwapPoint, _Mapping]] = ..., new_point: _Optional[_Union[VwapPoint, _Mapping]] = ..., reason: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class VwapVerified(_message.Message):
    __slots__ = ("symbol", "verified_from", "verified_until", "sequence")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FROM_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    verified_from: _timestamp_pb2.Timestamp
    verified_until: _timestamp_pb2.Timestamp
    sequence: int
    def __init__(self, symbol: _Optional[str] = ..., verified_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sequence: _Optional[int] = ...) -> None: ...

class GetTradesRequest(_message.Message):
    __slots__ = ("symbol", "start_time", "end_time", "page_size", "page_token")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, symbol: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetTradesResponse(_message.Message):
    __slots__ = ("trades", "next_page_token")
    TRADES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    trades: _containers.RepeatedCompositeFieldContainer[_trade_pb2.StoredTrade]
    next_page_token: str
    def __init__(self, trades: _Optional[_Iterable[_Union[_trade_pb2.StoredTrade, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListSymbolsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSymbolsResponse(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedCompositeFieldContainer[SymbolSummary]
    def __init__(self, symbols: _Optional[_Iterable[_Union[SymbolSummary, _Mapping]]] = ...) -> None: ...

class SymbolSummary(_message.Message):
    __slots__ = ("symbol", "first_trade_time", "last_trade_time", "verified_until", "verified_from")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    FIRST_TRADE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_TIME_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FROM_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    first_trade_time: _timestamp_pb2.Timestamp
    last_trade_time: _timestamp_pb2.Timestamp
    verified_until: _timestamp_pb2.Timestamp
    verified_from: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., first_trade_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_trade_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
