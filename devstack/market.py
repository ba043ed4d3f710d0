"""The simulated market a data directory follows, continued across ``make run`` restarts.

The simulator's tape is fixed by its seed, its tape settings and its start instant
(``SIM_START_MS``). A stack on a data directory that a previous stack used starts the simulator
at that stack's first start, with the same settings: the restarted simulator continues the same
market, knows (over REST) the trades made while it was down, and never hands out a trade id of
the earlier run again. Otherwise the processor would find the new market's trades colliding with
stored ids and the old market's unverified trades missing from REST.

The market is recorded in ``<data_dir>/market.json``. A new market begins (and is recorded)
when there is none, when the ``SIM_*`` settings that shape it changed, or when it began more
than :data:`CONTINUE_FOR_MS` ago (generating the missed hours would slow the start).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from simulator.config import OPTIONS

FILE_NAME: Final = "market.json"
#: How old a market may be and still be continued.
CONTINUE_FOR_MS: Final = 6 * 3_600_000
#: The settings that shape the tape: its seed, tickers, source and rates (not where the
#: simulator listens, how it fails or what it logs).
SHAPING: Final = frozenset(
    {"SIM_SEED", "SIM_TICKERS", "SIM_REPLAY_FILE"}
    | {option.env for option in OPTIONS if option.section == "tape"}
)


def market_settings(sim_env: Mapping[str, str]) -> dict[str, str]:
    """The settings in ``sim_env`` that shape the tape, sorted by name."""
    return {key: value for key, value in sorted(sim_env.items()) if key in SHAPING}


def market_start_ms(data_dir: Path, sim_env: Mapping[str, str], now_ms: int) -> int:
    """The start instant to give the simulator: the recorded market's when it can be
    continued, else ``now_ms`` (recorded as a new market)."""
    path = data_dir / FILE_NAME
    settings = market_settings(sim_env)
    try:
        recorded = json.loads(path.read_text())
        start = int(recorded["start_ms"])
        same = recorded["settings"] == settings
    except (OSError, ValueError, KeyError, TypeError):
        start, same = now_ms, False
    if same and now_ms - CONTINUE_FOR_MS <= start <= now_ms:
        return start
    path.write_text(json.dumps({"start_ms": now_ms, "settings": settings}, indent=1) + "\n")
    return now_ms
