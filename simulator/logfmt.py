"""Structured `key=value` log lines, one per event."""

from __future__ import annotations

import logging
import sys
import time

LOGGER_NAME = "simulator"


def _value(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def kv(event: str, **fields: object) -> str:
    """`event=<event> k=v ...` with values quoted when needed."""
    parts = [f"event={_value(event)}"]
    parts.extend(f"{key}={_value(value)}" for key, value in fields.items())
    return " ".join(parts)


class LogfmtFormatter(logging.Formatter):
    """Prefixes `ts=... level=... logger=...` to an already key=value message."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        millis = int(record.msecs)
        line = (
            f"ts={stamp}.{millis:03d}Z level={record.levelname.lower()} "
            f"logger={record.name} {record.getMessage()}"
        )
        if record.exc_info:
            line += " exc=" + _value(self.formatException(record.exc_info))
        return line


def configure_logging(level: str) -> None:
    """Send key=value lines to stderr for the simulator and aiohttp loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger(LOGGER_NAME).setLevel(level)


def get_logger(name: str) -> logging.Logger:
    """A child of the simulator logger."""
    return logging.getLogger(f"{LOGGER_NAME}.{name}")
