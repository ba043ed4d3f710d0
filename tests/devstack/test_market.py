"""Which simulated market a data directory continues (devstack.market)."""

from __future__ import annotations

import json
from pathlib import Path

from devstack.market import CONTINUE_FOR_MS, FILE_NAME, market_start_ms

NOW = 1_800_000_000_000


def test_a_new_directory_records_a_market_starting_now(tmp_path: Path) -> None:
    """No record: the market starts now and is recorded with its shaping settings only."""
    env = {"SIM_SEED": "3", "SIM_PORT": "0", "SIM_WS_DROP_RATE": "0.1"}
    assert market_start_ms(tmp_path, env, NOW) == NOW
    recorded = json.loads((tmp_path / FILE_NAME).read_text())
    assert recorded == {"start_ms": NOW, "settings": {"SIM_SEED": "3"}}


def test_a_later_start_continues_the_recorded_market(tmp_path: Path) -> None:
    """Same tape settings (faults, port and profile may differ): the first start again."""
    market_start_ms(tmp_path, {"SIM_SEED": "3", "SIM_RATE": "5"}, NOW)
    later = NOW + CONTINUE_FOR_MS
    env = {"SIM_RATE": "5", "SIM_SEED": "3", "SIM_PROFILE": "hostile", "SIM_PORT": "9"}
    assert market_start_ms(tmp_path, env, later) == NOW
    assert market_start_ms(tmp_path, {"SIM_SEED": "3", "SIM_RATE": "5"}, later + 1) == later + 1


def test_changed_tape_settings_start_a_new_market(tmp_path: Path) -> None:
    """Another seed, rate or ticker list is another market: it starts now and replaces the
    record (continuing would hand out the old ids for other trades)."""
    market_start_ms(tmp_path, {"SIM_SEED": "3"}, NOW)
    for n, env in enumerate(({"SIM_SEED": "4"}, {"SIM_RATE": "9"}, {"SIM_TICKERS": "BTC"}), 1):
        assert market_start_ms(tmp_path, env, NOW + n) == NOW + n
        assert market_start_ms(tmp_path, env, NOW + 100) == NOW + n


def test_an_unreadable_or_future_record_starts_a_new_market(tmp_path: Path) -> None:
    """A damaged record, or one starting after now (clock moved back), is replaced."""
    path = tmp_path / FILE_NAME
    for text in (
        "not json",
        '{"start_ms": "x"}',
        json.dumps({"start_ms": NOW + 5, "settings": {}}),
    ):
        path.write_text(text)
        assert market_start_ms(tmp_path, {}, NOW) == NOW
