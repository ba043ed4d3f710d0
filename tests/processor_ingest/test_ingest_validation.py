"""Strict validation of provider frames (pure, no servers)."""

from __future__ import annotations

import contextlib
import decimal
import json
from decimal import Decimal
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.ingest import validation
from processor.ingest.validation import Rejection, flat_object, parse_frame, quarantine_text
from simulator.trade import encode_frame
from tradekit.domain import Trade

NOW = 1_700_000_000_000
SYMBOLS = frozenset({"BTC", "ETH"})


def frame(**fields: object) -> str:
    """A frame whose values are raw JSON texts (strings inserted verbatim)."""
    base: dict[str, object] = {
        "ticker": '"BTC"',
        "ts": str(NOW - 5),
        "quantity": "0.125",
        "price": "27123.45",
        "tradeId": "1234567",
    }
    base.update(fields)
    return "{" + ", ".join(f'"{k}": {v}' for k, v in base.items() if v is not None) + "}"


def parse(raw: str | bytes) -> Trade | Rejection:
    """parse_frame at the fixed clock."""
    return parse_frame(raw, now_ms=NOW, symbols=SYMBOLS)


def test_valid_frame_is_read_exactly() -> None:
    """The documented example frame becomes the exact trade."""
    assert parse(frame()) == Trade("BTC", 1234567, NOW - 5, Decimal("27123.45"), Decimal("0.125"))


def test_bytes_frame_is_accepted() -> None:
    """A binary frame holding UTF-8 JSON is read like a text frame."""
    assert isinstance(parse(frame().encode()), Trade)


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ("1.5e-3", Decimal("0.0015")),
        ("15E+2", Decimal("15E+2")),
        ('"27123.450000000000000000001"', Decimal("27123.450000000000000000001")),
        ("27123.450000000000000000001", Decimal("27123.450000000000000000001")),
        ("7", Decimal(7)),
        ('"7"', Decimal(7)),
        ('"2.5e-7"', Decimal("2.5e-7")),
    ],
)
def test_numbers_and_numeric_strings_are_exact(price: str, expected: Decimal) -> None:
    """Exponent forms, long decimals, integers and strings parse to the exact decimal."""
    trade = parse(frame(price=price))
    assert isinstance(trade, Trade)
    assert trade.price == expected
    assert trade.price.as_tuple() == expected.as_tuple()


REJECTED = [
    ("not json", "{'ticker': 'BTC'}", "not JSON"),
    ("truncated", frame()[:30], "not JSON"),
    ("trailing brace", frame() + "}", "not JSON"),
    ("empty", "", "not JSON"),
    ("array", "[1, 2]", "must be a JSON object, got array"),
    ("number", "42", "must be a JSON object, got number"),
    ("invalid utf8", b'{"ticker": "\xff"}', "not valid UTF-8"),
    ("missing price", frame(price=None), "missing field(s) price"),
    ("extra field", frame(side='"buy"'), "unexpected field(s) 'side'"),
    ("duplicate key", frame()[:-1] + ', "price": 1}', "duplicate field 'price'"),
    ("NaN", frame(price="NaN"), "non-standard JSON constant NaN"),
    ("Infinity", frame(quantity="Infinity"), "non-standard JSON constant Infinity"),
    ("ticker number", frame(ticker="42"), "ticker must be a string, got number"),
    ("ticker list", frame(ticker='["BTC"]'), "ticker must be a string, got array"),
    ("unknown ticker", frame(ticker='"DOGE"'), "ticker 'DOGE' is not a configured symbol"),
    ("ts string", frame(ts=f'"{NOW}"'), "ts must be an integer of epoch milliseconds, got string"),
    ("ts float", frame(ts=f"{NOW}.5"), "ts must be an integer of epoch milliseconds, got number"),
    ("ts bool", frame(ts="true"), "got boolean"),
    ("ts null", frame(ts="null"), "got null"),
    ("ts seconds", frame(ts=str(NOW // 1000)), "looks like epoch seconds"),
    ("ts microseconds", frame(ts=str(NOW * 1000)), "looks like epoch microseconds"),
    ("ts nanoseconds", frame(ts=str(NOW * 1_000_000)), "looks like epoch nanoseconds"),
    ("ts too old", frame(ts=str(NOW - 8 * 86_400_000)), "outside the accepted range"),
    ("ts in the future", frame(ts=str(NOW + 61_000)), "outside the accepted range"),
    ("id string", frame(tradeId='"id-5"'), "tradeId must be an integer, got string"),
    ("id float", frame(tradeId="5.25"), "tradeId must be an integer, got number"),
    ("id bool", frame(tradeId="false"), "tradeId must be an integer, got boolean"),
    ("id negative", frame(tradeId="-1"), "tradeId must be within"),
    ("id beyond bigint", frame(tradeId=str(2**63)), "tradeId must be within"),
    ("price zero", frame(price="0"), "price must be strictly positive"),
    ("price negative", frame(price="-27123.45"), "price must be strictly positive"),
    ("quantity zero string", frame(quantity='"0.000"'), "quantity must be strictly positive"),
    ("price bool", frame(price="false"), "price must be a JSON number or numeric string, got bool"),
    ("price null", frame(price="null"), "got null"),
    ("price object", frame(price='{"value": 1}'), "got object"),
    ("price text", frame(price='"n/a"'), "price string is not a decimal number"),
    ("price padded", frame(price='" 1.5"'), "price string is not a decimal number"),
    ("price underscore", frame(price='"1_000"'), "price string is not a decimal number"),
    ("price NaN string", frame(price='"NaN"'), "price string is not a decimal number"),
    ("price huge exponent", frame(price="1e999999999999999999999"), "number out of range"),
    ("price tiny", frame(price="1e-31"), "price is out of range"),
    ("price enormous", frame(price="1e30"), "price is out of range"),
    ("price too many digits", frame(price="1." + "1" * 40), "more than 40 significant digits"),
    ("nested deeply", "[" * 3000 + "]" * 3000, "frame is"),
    ("too long", frame(price='"' + "1" * 5000 + '"'), "longer than 4096"),
]


@pytest.mark.parametrize(("raw", "reason"), [r[1:] for r in REJECTED], ids=[r[0] for r in REJECTED])
def test_malformed_frame_is_rejected_with_reason(raw: str | bytes, reason: str) -> None:
    """Each kind of malformed frame is a Rejection whose reason names the problem."""
    result = parse(raw)
    assert isinstance(result, Rejection), result
    assert reason in result.reason


def test_quarantine_text_is_storable() -> None:
    """Invalid UTF-8, NUL and lone surrogates become escapes PostgreSQL text accepts."""
    assert quarantine_text(b"a\xffb\x00c") == "a\\xffb\\x00c"
    assert quarantine_text("x\ud800y") == "x\\ud800y"
    assert quarantine_text("plain") == "plain"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@settings(max_examples=400)
@given(json_values)
def test_any_json_never_raises(value: object) -> None:
    """Any JSON document gives a Trade or a Rejection, never an exception."""
    result = parse(json.dumps(value))
    assert isinstance(result, Trade | Rejection)


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_any_bytes_never_raise(raw: bytes) -> None:
    """Any bytes give a Rejection (or, by luck, a Trade), never an exception."""
    assert isinstance(parse(raw), Trade | Rejection)


field_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.sampled_from(["BTC", "ETH", "1e5", "-0", "0.0", NOW, NOW // 1000]),
)


@settings(max_examples=400)
@given(
    st.dictionaries(
        st.sampled_from(["ticker", "ts", "tradeId", "price", "quantity", "x"]), field_values
    )
)
def test_frames_with_arbitrary_field_values_never_raise(obj: dict[str, object]) -> None:
    """Objects with the right keys but arbitrary values never raise."""
    assert isinstance(parse(json.dumps(obj)), Trade | Rejection)


@st.composite
def positive_decimals(draw: st.DrawFn) -> Decimal:
    """A positive decimal within the accepted range, up to 40 digits, any scale."""
    digits = draw(st.integers(min_value=1, max_value=40))
    mantissa = draw(st.integers(min_value=1, max_value=10**digits - 1))
    length = len(str(mantissa))
    exponent = draw(st.integers(min_value=-30, max_value=29 - (length - 1)))
    return Decimal((0, tuple(int(c) for c in str(mantissa)), exponent))


@st.composite
def number_text(draw: st.DrawFn, value: Decimal) -> str:
    """``value`` written as a JSON number (plain or exponent form) or a numeric string."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    mantissa = "".join(map(str, digits))
    form = draw(st.sampled_from(["plain", "exponent", "string", "string_exponent"]))
    if form.endswith("exponent"):
        text = f"{mantissa[0]}.{mantissa[1:]}" if len(mantissa) > 1 else mantissa
        text += f"e{exponent + len(mantissa) - 1}"
    else:
        text = format(value, "f")
    return f'"{text}"' if form.startswith("string") else text


@settings(max_examples=400)
@given(
    st.sampled_from(sorted(SYMBOLS)),
    st.integers(min_value=0, max_value=2**63 - 1),
    st.integers(min_value=NOW - 7 * 86_400_000, max_value=NOW + 60_000),
    positive_decimals(),
    positive_decimals(),
    st.data(),
)
def test_valid_frames_round_trip_exactly(
    symbol: str, trade_id: int, ts: int, price: Decimal, quantity: Decimal, data: st.DataObject
) -> None:
    """Any valid trade, written in any accepted number form, parses back to equal values."""
    raw = frame(
        ticker=f'"{symbol}"',
        ts=str(ts),
        tradeId=str(trade_id),
        price=data.draw(number_text(price)),
        quantity=data.draw(number_text(quantity)),
    )
    result = parse(raw)
    assert isinstance(result, Trade), (raw, result)
    assert result.same_values(Trade(symbol, trade_id, ts, price, quantity))


_KEYS = ("ticker", "ts", "tradeId", "price", "quantity", "extra", "Ticker")
_VALUE_TEXTS = st.one_of(
    st.sampled_from(
        [
            '"BTC"',
            '"ETH"',
            '"B\\"TC"',
            '"\\u0042TC"',
            '"27123.45"',
            '"1e3"',
            '"-1"',
            '""',
            "0",
            "-0",
            "1",
            "-5",
            "0.0",
            "1.5e3",
            "1E-2",
            "2e999999999999",
            "01",
            "1.",
            ".5",
            "true",
            "null",
            "NaN",
            "[1]",
            '{"a": 1}',
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(lambda d: format(d, "f")),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.text(max_size=8).map(json.dumps),
    st.text(max_size=8).map(lambda t: '"' + t + '"'),
)
_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\x0b"])


_FIELD_KEYS = ("ticker", "ts", "tradeId", "price", "quantity")
_KEY_LISTS = st.one_of(
    st.permutations(_FIELD_KEYS),
    st.lists(st.sampled_from(_KEYS), min_size=4, max_size=6),
)
_PLAIN_VALUE = st.one_of(
    st.sampled_from(['"BTC"', '"0.125"', "1700000000000", "27123.45", "0.125", "7"]),
    st.integers(min_value=0, max_value=2**64).map(str),
    st.decimals(min_value=0, allow_nan=False, allow_infinity=False, places=8).map(str),
)
_JSON_SPACE = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n"])


@settings(max_examples=1000)
@given(
    keys=_KEY_LISTS,
    values=st.lists(st.one_of(_PLAIN_VALUE, _PLAIN_VALUE, _VALUE_TEXTS), min_size=6, max_size=6),
    spaces=st.lists(st.one_of(*[_JSON_SPACE] * 9, _SPACE), min_size=30, max_size=30),
)
def test_fast_path_reads_exactly_what_the_json_parser_reads(
    keys: list[str], values: list[str], spaces: list[str]
) -> None:
    """Whatever frame the regular-expression fast path accepts, it reads exactly as the strict
    JSON parser does (same keys, same values, same types), and parse_frame agrees with the
    JSON-only path on every frame."""
    pairs = list(zip(keys, values, strict=False))
    ws = iter(spaces)
    raw = (
        "{" + ",".join(f'{next(ws)}"{k}"{next(ws)}:{next(ws)}{v}{next(ws)}' for k, v in pairs) + "}"
    )
    fast = flat_object(raw)
    if fast is not None:
        strict = json.loads(raw, parse_float=Decimal)
        assert {k: (type(v), v) for k, v in fast.items()} == {
            k: (type(v), v) for k, v in strict.items()
        }
        assert [str(v) for v in fast.values()] == [str(strict[k]) for k in fast]
    with mock.patch.object(validation, "flat_object", return_value=None):
        slow_result = parse(raw)
    assert parse(raw) == slow_result


def test_simulator_frames_take_the_fast_path() -> None:
    """The simulator's frame layout (numbers or numeric strings, any field order) is read by
    the fast path, so the benchmark measures it."""
    sim = encode_frame("BTC", NOW - 5, 42, "27123.45", "0.125")
    as_strings = encode_frame("BTC", NOW - 5, 42, "27123.45", "0.125", price_as_string=True)
    for raw in (sim.decode(), as_strings.decode(), frame()):
        assert flat_object(raw) is not None, raw
    assert parse(sim) == Trade("BTC", 42, NOW - 5, Decimal("27123.45"), Decimal("0.125"))


_DIGITS = st.text(alphabet="0123456789", max_size=34)
_AMOUNT_TEXTS = st.one_of(
    st.builds(lambda i, f: i + ("." + f if f else ""), _DIGITS, _DIGITS),
    st.builds(lambda i, f, e: f"{i}.{f}e{e}", _DIGITS, _DIGITS, st.integers(-40, 40)),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.text(alphabet="0123456789.-+eE ", max_size=45),
)


@settings(max_examples=2000)
@given(_AMOUNT_TEXTS)
def test_amount_fast_path_agrees_with_the_full_checks(text: str) -> None:
    """Plain decimal strings, and Decimals whose text is plain, read at once give exactly what
    the full checks give (same value, same digits), and the rest get the full checks' answer,
    rejections included."""
    values: list[object] = [text]
    with contextlib.suppress(decimal.InvalidOperation):
        values.append(Decimal(text))  # what the frame parser makes of a JSON number
    for value in values:
        fast = validation._amount("price", value)
        full = validation._checked_amount("price", value)
        assert fast == full, value
        if isinstance(fast, Decimal):
            assert isinstance(full, Decimal)
            assert fast.as_tuple() == full.as_tuple()


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        ("0.000", False),
        ("1" + "0" * 29, True),
        ("1" + "0" * 30, False),
        ("0." + "0" * 29 + "1", True),
        ("0." + "0" * 30 + "1", False),
        ("1" * 20 + "." + "1" * 20, True),
        ("1" * 21 + "." + "1" * 20, False),
    ],
)
def test_amount_bounds_hold_on_the_fast_path(text: str, *, accepted: bool) -> None:
    """Zero, 30 integer digits, 30 decimals and 40 significant digits: the bounds the fast path
    must not widen."""
    assert isinstance(validation._amount("price", text), Decimal) is accepted
    assert isinstance(validation._amount("price", Decimal(text)), Decimal) is accepted
