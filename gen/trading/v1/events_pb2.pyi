import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from trading.v1 import trade_pb2 as _trade_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CorrectionKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CORRECTION_KIND_UNSPECIFIED: _ClassVar[CorrectionKind]
    CORRECTION_KIND_INSERTED: _ClassVar[CorrectionKind]
    CORRECTION_KIND_UPDATED: _ClassVar[CorrectionKind]
    CORRECTION_KIND_DELETED: _ClassVar[CorrectionKind]
CORRECTION_KIND_UNSPECIFIED: CorrectionKind
CORRECTION_KIND_INSERTED: CorrectionKind
CORRECTION_KIND_UPDATED: CorrectionKind
CORRECTION_KIND_DELETED: CorrectionKind

class TradeEvent(_message.Message):
    __slots__ = ("trade", "received_time")
    TRADE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    trade: _trade_pb2.Trade
    received_time: _timestamp_pb2.Timestamp
    def __init__(self, trade: _Optional[_Union[_trade_pb2.Trade, _Mapping]] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CorrectionEvent(_message.Message):
    __slots__ = ("kind", "old_trade", "new_trade", "window", "correction_id")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OLD_TRADE_FIELD_NUMBER: _ClassVar[int]
    NEW_TRADE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_ID_FIELD_NUMBER: _ClassVar[int]
    kind: CorrectionKind
    old_trade: _trade_pb2.Trade
    new_trade: _trade_pb2.Trade
    window: _trade_pb2.TimeWindow
    correction_id: int
    def __init__(self, kind: _Optional[_Union[CorrectionKind, str]] = ..., old_trade: _Optional[_Union[_trade_pb2.Trade, _Mapping]] = ..., new_trade: _Optional[_Union[_trade_pb2.Trade, _Mapping]] = ..., window: _Optional[_Union[_trade_pb2.TimeWindow, _Mapping]] = ..., correction_id: _Optional[int] = ...) -> None: ...

class WindowVerifiedEvent(_message.Message):
    __slots__ = ("symbol", "window", "trade_count", "change_count", "inserted", "updated", "deleted", "verified_until", "verified_from")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FROM_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    window: _trade_pb2.TimeWindow
    trade_count: int
    change_count: int
    inserted: int
    updated: int
    deleted: int
    verified_until: _timestamp_pb2.Timestamp
    verified_from: _timestamp_pb2.Timestamp
    def __init__(self, symbol: _Optional[str] = ..., window: _Optional[_Union[_trade_pb2.TimeWindow, _Mapping]] = ..., trade_count: _Optional[int] = ..., change_count: _Optional[int] = ..., inserted: _Optional[int] = ..., updated: _Optional[int] = ..., deleted: _Optional[int] = ..., verified_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., verified_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("sequence", "symbol", "publish_time", "trade", "correction", "window_verified")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_TIME_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    CORRECTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    symbol: str
    publish_time: _timestamp_pb2.Timestamp
    trade: TradeEvent
    correction: CorrectionEvent
    window_verified: WindowVerifiedEvent
    def __init__(self, sequence: _Optional[int] = ..., symbol: _Optional[str] = ..., publish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trade: _Optional[_Union[TradeEvent, _Mapping]] = ..., correction: _Optional[_Union[CorrectionEvent, _Mapping]] = ..., window_verified: _Optional[_Union[WindowVerifiedEvent, _Mapping]] = ...) -> None: ...
