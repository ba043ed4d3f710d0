"""Formatting of the live status: a table for terminals, one line for logs."""

from __future__ import annotations

from devstack.status import StackStatus, render_line, render_table

STATUS = StackStatus(
    trades_ingested=120,
    duplicates_dropped=7,
    frames_quarantined=2,
    windows_verified=9,
    windows_rejected=3,
    corrections=4,
    vwaps={"BTC": "27000.5", "ETH": None},
    relay_ready=True,
)


def test_table_lists_every_counter_and_vwap() -> None:
    """The table has one row per counter and per symbol, '-' for a window without trades."""
    lines = render_table(STATUS, "12:00:00")
    text = "\n".join(lines)
    assert lines[0] == "status at 12:00:00"
    assert "trades ingested" in text
    assert "120" in text
    assert "27000.5" in text
    assert any(line.split() == ["ETH", "-"] for line in lines)
    assert any(line.split() == ["NATS", "relay", "publishing"] for line in lines)


def test_line_is_key_value_pairs() -> None:
    """The one-line form has key=value pairs for counters and VWAPs."""
    line = render_line(STATUS, "12:00:00")
    assert "trades_ingested=120" in line
    assert "corrections=4" in line
    assert "windows_rejected=3" in line
    assert "vwap_BTC=27000.5" in line
    assert "vwap_ETH=-" in line
    assert "relay=publishing" in line
    waiting = StackStatus(trades_ingested=1, relay_ready=False)
    assert "relay=waiting" in render_line(waiting, "t")  # NATS down or the stream refused


def test_unavailable_status_shows_the_error() -> None:
    """A failed reading says why instead of showing stale numbers."""
    failed = StackStatus(error="UNAVAILABLE: connection refused")
    assert "unavailable: UNAVAILABLE: connection refused" in render_table(failed, "t")[-1]
    assert "status=unavailable" in render_line(failed, "t")
