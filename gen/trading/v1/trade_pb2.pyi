import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TradeSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRADE_SOURCE_UNSPECIFIED: _ClassVar[TradeSource]
    TRADE_SOURCE_WEBSOCKET: _ClassVar[TradeSource]
    TRADE_SOURCE_REST: _ClassVar[TradeSource]
TRADE_SOURCE_UNSPECIFIED: TradeSource
TRADE_SOURCE_WEBSOCKET: TradeSource
TRADE_SOURCE_REST: TradeSource

class Trade(_message.Message):
    __slots__ = ("symbol", "trade_id", "time", "price", "quantity")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    trade_id: int
    time: _timestamp_pb2.Timestamp
    price: str
    quantity: str
    def __init__(self, symbol: _Optional[str] = ..., trade_id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., price: _Optional[str] = ..., quantity: _Optional[str] = ...) -> None: ...

class StoredTrade(_message.Message):
    __slots__ = ("trade", "source", "verified", "received_time")
    TRADE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    trade: Trade
    source: TradeSource
    verified: bool
    received_time: _timestamp_pb2.Timestamp
    def __init__(self, trade: _Optional[_Union[Trade, _Mapping]] = ..., source: _Optional[_Union[TradeSource, str]] = ..., verified: _Optional[bool] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TimeWindow(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
