"""Reading the processor's settings: symbols are checked at start."""

from __future__ import annotations

import pytest

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from processor.config import ProcessorConfig
from tradekit.config import ConfigError, Env


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("BTC,ETH USD", "cannot be a symbol"),
        ("BTC.USD", "cannot be a symbol"),
        ("BTC,*", "cannot be a symbol"),
        ("BTC,>", "cannot be a symbol"),
        ("BTC,ÉTH", "cannot be a symbol"),
        (" , ", "at least one symbol"),
        ("BTC,ETH,BTC", "twice"),
    ],
)
def test_processor_symbols_must_be_usable_as_subject_tokens(raw: str, message: str) -> None:
    """A symbol ends NATS subjects: one that would break them is refused at start, by name."""
    with pytest.raises(ConfigError, match=message):
        ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"SYMBOLS": raw}))


def test_processor_symbols_accept_common_tickers() -> None:
    config = ProcessorConfig.from_env(Env(PROCESSOR_SETTINGS, {"SYMBOLS": "BTC, BTC-USD,ETH/USDT"}))
    assert config.symbols == ("BTC", "BTC-USD", "ETH/USDT")
