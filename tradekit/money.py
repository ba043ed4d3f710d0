"""Exact decimal money: parsing from text, canonical text out, and the VWAP division.

Prices, quantities, notionals and VWAPs are ``Decimal`` end to end. Values enter as text (JSON
tokens, protobuf strings, PostgreSQL NUMERIC) and leave as text; nothing passes through float.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

#: Significant digits of a VWAP quotient (rounded half-even). Notional and volume stay exact.
VWAP_PRECISION = 30

_VWAP_CONTEXT = decimal.Context(prec=VWAP_PRECISION, rounding=decimal.ROUND_HALF_EVEN)

#: Exact arithmetic on money: the largest precision and exponent range Decimal has, and every
#: rounding trapped, so a product, sum or difference is exact or raises. (The default context
#: keeps 28 significant digits: a 40-digit price times a quantity, or a running total of large
#: and finely divided notionals, would be rounded without a word.) Never used to divide.
EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[
        decimal.InvalidOperation,
        decimal.DivisionByZero,
        decimal.Overflow,
        decimal.Inexact,
        decimal.Rounded,
    ],
)
#: ``a * b``, exact.
exact_product = EXACT.multiply
#: ``a + b``, exact.
exact_sum = EXACT.add
#: ``a - b``, exact.
exact_difference = EXACT.subtract
_MAX_DIGITS = 40


class InvalidDecimal(ValueError):
    """A text is not an acceptable exact decimal."""


def parse_decimal(text: str, *, field: str = "value") -> Decimal:
    """Parse ``text`` as a finite decimal written in plain or exponent notation.

    Rejects NaN, infinities, empty or padded strings and absurdly long numbers, naming ``field``
    in the error so the caller can say what to change.
    """
    if not text or text != text.strip():
        raise InvalidDecimal(f"{field} must be a decimal string such as '27123.45', got {text!r}")
    try:
        value = Decimal(text)
    except decimal.InvalidOperation:
        raise InvalidDecimal(
            f"{field} must be a decimal string such as '27123.45', got {text!r}"
        ) from None
    if not value.is_finite():
        raise InvalidDecimal(f"{field} must be a finite number, got {text!r}")
    if len(value.as_tuple().digits) > _MAX_DIGITS:
        raise InvalidDecimal(f"{field} has more than {_MAX_DIGITS} digits: {text!r}")
    return value


def parse_positive(text: str, *, field: str) -> Decimal:
    """Parse a strictly positive decimal (a price or a quantity)."""
    value = parse_decimal(text, field=field)
    if value <= 0:
        raise InvalidDecimal(f"{field} must be positive, got {text!r}")
    return value


def to_text(value: Decimal) -> str:
    """Canonical plain-notation text of ``value`` (never exponent notation), keeping its scale."""
    return format(value, "f")


def vwap_quotient(notional: Decimal, volume: Decimal) -> Decimal:
    """``notional / volume`` rounded half-even to :data:`VWAP_PRECISION` significant digits."""
    if volume == 0:
        raise ZeroDivisionError("VWAP of an empty window is undefined")
    return _VWAP_CONTEXT.divide(notional, volume)
