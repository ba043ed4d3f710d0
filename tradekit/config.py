"""Configuration from environment variables, declared once per service.

Each service lists its :class:`Setting` s; the entry point reads them into a frozen dataclass
once, and ``--help`` prints the same list (name, default, meaning) that the README shows.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class ConfigError(ValueError):
    """An environment variable has a value the service cannot use."""


@dataclass(frozen=True, slots=True)
class Setting:
    """One environment variable a service reads."""

    name: str
    default: str
    help: str


class Env:
    """Typed access to declared settings; an undeclared name is a programming error."""

    def __init__(self, settings: Sequence[Setting], environ: Mapping[str, str]) -> None:
        self._declared = {s.name: s for s in settings}
        self._environ = environ

    def text(self, name: str) -> str:
        """The raw value, or the declared default."""
        setting = self._declared[name]
        return self._environ.get(name, setting.default)

    def integer(self, name: str, *, minimum: int | None = None) -> int:
        """An integer value, at least ``minimum`` when given."""
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        return value

    def duration_ms(self, name: str, *, minimum: int = 0) -> int:
        """A duration such as ``250ms``, ``5s``, ``5m``, ``1h`` or ``7d``, in milliseconds."""
        raw = self.text(name)
        return parse_duration_ms(raw, name=name, minimum=minimum)

    def boolean(self, name: str) -> bool:
        """``true``/``false`` (also 1/0, yes/no)."""
        raw = self.text(name).strip().lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def csv(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks removed."""
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())


def parse_duration_ms(raw: str, *, name: str, minimum: int = 0) -> int:
    """Parse ``<integer><unit>`` with unit ms, s, m, h or d into milliseconds."""
    match = _DURATION.match(raw.strip())
    if not match:
        raise ConfigError(f"{name} must look like 250ms, 5s, 5m, 1h or 7d, got {raw!r}")
    value = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} ms, got {raw!r}")
    return value


def settings_table(settings: Sequence[Setting]) -> str:
    """The settings as a Markdown table (name, default, meaning), as the README shows them."""
    rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | `{s.default}` | {s.help} |" for s in settings]
    return "\n".join(rows)


def parse_command_line(
    prog: str, description: str, settings: Sequence[Setting], argv: Sequence[str] | None
) -> argparse.Namespace:
    """Parse ``argv`` (``--help`` and ``--settings-table``); ``--help`` lists the settings."""
    epilog = "environment variables:\n" + "\n".join(
        f"  {s.name:<28} {s.help} (default: {s.default or 'empty'})" for s in settings
    )
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--settings-table",
        action="store_true",
        help="print the environment variables as a Markdown table and exit",
    )
    return parser.parse_args(argv)
