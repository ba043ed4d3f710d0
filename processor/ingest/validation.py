"""Strict validation of provider WebSocket frames (pure): a frame is a :class:`Trade` or a
:class:`Rejection` that says exactly what is wrong. Never raises.

A valid frame is a JSON object with exactly the fields ``ticker`` (a configured symbol), ``ts``
(integer epoch milliseconds within ``[now - max_age, now + max_skew]``), ``tradeId`` (integer,
0 <= id < 2**63), ``price`` and ``quantity`` (JSON numbers or numeric strings, read exactly as
``Decimal``, finite, strictly positive, at most 40 significant digits and a magnitude PostgreSQL
NUMERIC and the protobuf text form handle comfortably).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradekit.domain import MAX_TRADE_ID, Trade
from tradekit.money import MAX_ADJUSTED, MAX_DIGITS, MIN_EXPONENT

FIELDS = frozenset({"ticker", "ts", "tradeId", "price", "quantity"})
#: Default accepted age of a trade timestamp.
MAX_AGE_MS = 7 * 24 * 3600 * 1000
#: Default accepted lead of a trade timestamp over the local clock.
MAX_SKEW_MS = 60_000
MAX_FRAME_CHARS = 4096
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a frame is not a trade; ``reason`` names the field and what is wrong with it."""

    reason: str


class _BadJson(ValueError):
    """JSON text that parses only with Python's lenient extensions."""


def _constant(name: str) -> Any:
    raise _BadJson(f"non-standard JSON constant {name}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _BadJson(f"duplicate field {key!r}")
            seen.add(key)
    return result


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


#: A plain positive decimal string every check below accepts: at most 30 integer digits (no
#: leading zero), at most 30 decimals, and (checked apart) at most MAX_DIGITS characters.
_PLAIN_AMOUNT = re.compile(r"[1-9][0-9]{0,29}(?:\.[0-9]{1,30})?|0\.[0-9]{1,30}")


def _amount(name: str, value: object) -> Decimal | Rejection:
    """``value`` as a valid amount: a plain string, or a Decimal whose exact text is plain (a
    JSON number with a fraction), accepted at once; the rest checked by :func:`_checked_amount`
    (which gives the same answer for the plain ones; property-tested)."""
    if type(value) is str:
        text: str | None = value
    elif type(value) is Decimal:
        text = str(value)  # a Decimal's str round-trips exactly
    else:
        text = None
    if text is not None and len(text) <= MAX_DIGITS and _PLAIN_AMOUNT.fullmatch(text):
        amount = value if isinstance(value, Decimal) else Decimal(text)
        if amount:  # "0.000" is plain but not positive
            return amount
    return _checked_amount(name, value)


def _checked_amount(name: str, value: object) -> Decimal | Rejection:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        return Rejection(f"{name} must be a JSON number or numeric string, got {_kind(value)}")
    if isinstance(value, str):
        if not _JSON_NUMBER.fullmatch(value):
            return Rejection(f"{name} string is not a decimal number: {_short(value)}")
        try:
            amount = Decimal(value)
        except InvalidOperation:
            return Rejection(f"{name} is out of range: {_short(value)}")
    elif isinstance(value, int):
        if value > 10**MAX_DIGITS:
            return Rejection(f"{name} is out of range: {_short(value)}")
        amount = Decimal(value)
    else:
        amount = value
    if not amount.is_finite():
        return Rejection(f"{name} must be finite, got {_short(value)}")
    if amount <= 0:
        return Rejection(f"{name} must be strictly positive, got {_short(value)}")
    digits = amount.as_tuple()
    exponent = digits.exponent
    assert isinstance(exponent, int)
    if len(digits.digits) > MAX_DIGITS:
        return Rejection(f"{name} has more than {MAX_DIGITS} significant digits")
    if exponent < MIN_EXPONENT or amount.adjusted() > MAX_ADJUSTED:
        return Rejection(f"{name} is out of range [1e{MIN_EXPONENT}, 1e{MAX_ADJUSTED + 1})")
    return amount


def _timestamp(value: object, now_ms: int, max_age_ms: int, max_skew_ms: int) -> int | Rejection:
    if isinstance(value, bool) or not isinstance(value, int):
        return Rejection(f"ts must be an integer of epoch milliseconds, got {_kind(value)}")
    low, high = now_ms - max_age_ms, now_ms + max_skew_ms
    if low <= value <= high:
        return value
    for unit, as_ms in (
        ("seconds", value * 1000),
        ("microseconds", value // 1000),
        ("nanoseconds", value // 1_000_000),
    ):
        if low <= as_ms <= high:
            return Rejection(f"ts {value} looks like epoch {unit}, expected epoch milliseconds")
    return Rejection(f"ts {value} is outside the accepted range [{low}, {high}] (epoch ms)")


# The fast path: a frame that is one flat JSON object of exactly the five fields, each value a
# plain string (no escapes) or a JSON number. JSON whitespace only; no duplicate keys.
_WS = r"[ \t\n\r]*"
_PAIR = (
    _WS
    + r'"(ticker|ts|tradeId|price|quantity)"'
    + _WS
    + ":"
    + _WS
    + r'(?:"([^"\\\x00-\x1f]*)"|('
    + _JSON_NUMBER.pattern
    + "))"
    + _WS
)
_FLAT_OBJECT = re.compile(r"\{" + ",".join([_PAIR] * len(FIELDS)) + r"\}")


def flat_object(raw: str) -> dict[str, Any] | None:
    """What ``json.loads(raw, parse_float=Decimal)`` gives for the common shape of a frame
    (see ``_FLAT_OBJECT``), read by one regular expression; None for anything else (duplicate
    keys included), which the JSON parser then reads."""
    match = _FLAT_OBJECT.fullmatch(raw)
    if match is None:
        return None
    groups = match.groups()
    obj: dict[str, Any] = {}
    for i in range(0, 3 * len(FIELDS), 3):
        key, text, number = groups[i], groups[i + 1], groups[i + 2]
        if text is not None:
            obj[key] = text
        elif "." in number or "e" in number or "E" in number:
            try:
                obj[key] = Decimal(number)
            except InvalidOperation:  # an exponent beyond Decimal's range: the parser says so
                return None
        else:
            obj[key] = int(number)
    return obj if len(obj) == len(FIELDS) else None


def parse_frame(
    raw: str | bytes,
    *,
    now_ms: int,
    symbols: frozenset[str],
    max_age_ms: int = MAX_AGE_MS,
    max_skew_ms: int = MAX_SKEW_MS,
) -> Trade | Rejection:
    """The trade a provider frame carries, or why it is rejected."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejection(f"frame is not valid UTF-8 (byte {exc.start})")
    if len(raw) > MAX_FRAME_CHARS:
        return Rejection(f"frame is longer than {MAX_FRAME_CHARS} characters")
    obj = flat_object(raw)
    if obj is None:
        try:
            obj = json.loads(
                raw,
                parse_float=Decimal,
                parse_constant=_constant,
                object_pairs_hook=_unique_keys,
            )
        except _BadJson as exc:
            return Rejection(f"frame is not strict JSON: {exc}")
        except InvalidOperation:
            return Rejection("frame has a number out of range")
        except (ValueError, RecursionError) as exc:
            return Rejection(f"frame is not JSON: {str(exc)[:120]}")
    if not isinstance(obj, dict):
        return Rejection(f"frame must be a JSON object, got {_kind(obj)}")
    if obj.keys() != FIELDS:
        missing = FIELDS - obj.keys()
        if missing:
            return Rejection(f"missing field(s) {', '.join(sorted(missing))}")
        extra = obj.keys() - FIELDS
        return Rejection(f"unexpected field(s) {', '.join(sorted(map(_short, extra)))}")
    ticker = obj["ticker"]
    if not isinstance(ticker, str):
        return Rejection(f"ticker must be a string, got {_kind(ticker)}")
    if ticker not in symbols:
        return Rejection(f"ticker {_short(ticker)} is not a configured symbol")
    trade_id = obj["tradeId"]
    if isinstance(trade_id, bool) or not isinstance(trade_id, int):
        return Rejection(f"tradeId must be an integer, got {_kind(trade_id)}")
    if not 0 <= trade_id <= MAX_TRADE_ID:
        return Rejection(f"tradeId must be within [0, 2**63 - 1], got {_short(trade_id)}")
    ts = _timestamp(obj["ts"], now_ms, max_age_ms, max_skew_ms)
    if isinstance(ts, Rejection):
        return ts
    price = _amount("price", obj["price"])
    if isinstance(price, Rejection):
        return price
    quantity = _amount("quantity", obj["quantity"])
    if isinstance(quantity, Rejection):
        return quantity
    return Trade(ticker, trade_id, ts, price, quantity)


def quarantine_text(raw: str | bytes) -> str:
    """``raw`` as text PostgreSQL accepts: invalid UTF-8, lone surrogates and NUL escaped."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", errors="backslashreplace")
    else:
        text = raw.encode("utf-8", errors="backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")
