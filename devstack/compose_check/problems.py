"""What a check reports: where in which file, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file."""

    #: File name, e.g. ``docker-compose.yml``.
    file: str
    #: Dotted path in the file (``services.proxy.environment``) or ``line 12``.
    where: str
    #: What is wrong and, where it helps, what to change.
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.message}"
