"""Exact decimal money: parsing from text, canonical text out, and the VWAP division.

Prices, quantities, notionals and VWAPs are ``Decimal`` end to end. Values enter as text (JSON
tokens, protobuf strings, PostgreSQL NUMERIC) and leave as text; nothing passes through float.
"""

from __future__ import annotations

import decimal
import re
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
#: An amount (a price or a quantity) has at most this many significant digits...
MAX_DIGITS = 40
#: ...and lies in [1e-30, 1e30): its exponent at least MIN_EXPONENT, its adjusted exponent (of
#: the leading digit) at most MAX_ADJUSTED. Its plain text is then at most 61 characters.
MIN_EXPONENT = -30
MAX_ADJUSTED = 29
#: Decimal text as JSON writes numbers, in ASCII digits only (Decimal alone also accepts
#: "1_000", "١٢", ".5" and "1.").
_DECIMAL_TEXT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?", re.ASCII)


class InvalidDecimal(ValueError):
    """A text is not an acceptable exact decimal."""


def parse_decimal(text: str, *, field: str = "value") -> Decimal:
    """Parse ``text`` as a decimal written in plain or exponent notation, ASCII digits only.

    Rejects NaN, infinities, empty or padded strings, more than :data:`MAX_DIGITS` significant
    digits and non-zero magnitudes outside [1e-30, 1e30) (``1E+999999`` would be a million
    digits as text), naming ``field`` in the error so the caller can say what to change.
    """
    if not _DECIMAL_TEXT.fullmatch(text):
        if text in ("NaN", "Infinity", "-Infinity", "inf", "-inf"):
            raise InvalidDecimal(f"{field} must be a finite number, got {text!r}")
        raise InvalidDecimal(f"{field} must be a decimal string such as '27123.45', got {text!r}")
    value = Decimal(text)
    digits = value.as_tuple()
    if len(digits.digits) > MAX_DIGITS:
        raise InvalidDecimal(f"{field} has more than {MAX_DIGITS} digits: {text!r}")
    exponent = digits.exponent
    assert isinstance(exponent, int)  # finite: the pattern admits no NaN or infinity
    if value and (exponent < MIN_EXPONENT or value.adjusted() > MAX_ADJUSTED):
        raise InvalidDecimal(
            f"{field} is out of range [1e{MIN_EXPONENT}, 1e{MAX_ADJUSTED + 1}): {text!r}"
        )
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


def canonical_text(value: Decimal) -> str:
    """The one plain-notation text of ``value``'s number: no exponent, no trailing zeros in
    the fraction (``6.000`` and ``6`` are both ``6``). Sums and quotients carry the scale of
    whatever they were computed from, which differs between reads of the same window; this
    text does not, so clients may compare or hash it."""
    return format(value.normalize(EXACT), "f")  # never rounds: EXACT traps it


def vwap_quotient(notional: Decimal, volume: Decimal) -> Decimal:
    """``notional / volume`` rounded half-even to :data:`VWAP_PRECISION` significant digits."""
    if volume == 0:
        raise ZeroDivisionError("VWAP of an empty window is undefined")
    return _VWAP_CONTEXT.divide(notional, volume)
