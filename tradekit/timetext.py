"""Instants and durations as people read them in error messages (pure).

>>> iso_ms(1_795_538_700_000)
'2026-11-24T16:45:00.000Z'
>>> human_ms(2_678_400_000), human_ms(5_400_000), human_ms(1_500), human_ms(250)
('31d', '1h30m', '1.5s', '250ms')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000))


def iso_ms(ms: int) -> str:
    """UTC ISO-8601 with milliseconds for ``ms`` since the epoch; outside years 1..9999 the
    raw number (``"... ms since the epoch"``)."""
    try:
        instant = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms} ms since the epoch"
    return instant.isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


def human_ms(ms: int) -> str:
    """A duration as days, hours, minutes and seconds (``2h30m``, ``1.5s``, ``250ms``)."""
    if ms < 0:
        return "-" + human_ms(-ms)
    if ms < 1000:
        return f"{ms}ms"
    parts = []
    rest = ms
    for suffix, width in _UNITS:
        if rest >= width:
            parts.append(f"{rest // width}{suffix}")
            rest %= width
    if rest:
        seconds, millis = divmod(rest, 1000)
        parts.append(f"{seconds}.{millis:03d}".rstrip("0").rstrip(".") + "s")
    return "".join(parts)
