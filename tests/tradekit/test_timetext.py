"""Instants and durations in error messages read back to the exact milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tradekit.timetext import human_ms, iso_ms

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_MS = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
LAST_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - EPOCH) // timedelta(
    milliseconds=1
)
_PART = re.compile(r"(\d+)d|(\d+)h|(\d+)m(?!s)|(\d+(?:\.\d+)?)s|(\d+)ms")
_WIDTHS = (86_400_000, 3_600_000, 60_000)


@given(st.integers(min_value=FIRST_MS, max_value=LAST_MS))
def test_iso_reads_back_to_the_same_millisecond(ms: int) -> None:
    text = iso_ms(ms)
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text.removesuffix("Z") + "+00:00")
    assert (parsed - EPOCH) // timedelta(milliseconds=1) == ms


@given(st.one_of(st.integers(max_value=FIRST_MS - 1), st.integers(min_value=LAST_MS + 1)))
def test_an_instant_outside_the_calendar_is_the_number(ms: int) -> None:
    assert iso_ms(ms) == f"{ms} ms since the epoch"


def _read(text: str) -> int:
    total, pos = 0, 0
    for match in _PART.finditer(text):
        assert match.start() == pos, text
        pos = match.end()
        days, hours, minutes, seconds, millis = match.groups()
        for value, width in zip((days, hours, minutes), _WIDTHS, strict=True):
            if value:
                total += int(value) * width
        if seconds:
            whole, _, frac = seconds.partition(".")
            total += int(whole) * 1000 + int(frac.ljust(3, "0"))
        if millis:
            total += int(millis)
    assert pos == len(text), text
    return total


@given(st.integers(min_value=0, max_value=10**13))
def test_a_duration_reads_back_to_the_same_milliseconds(ms: int) -> None:
    assert _read(human_ms(ms)) == ms
