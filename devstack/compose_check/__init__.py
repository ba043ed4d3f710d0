"""Offline checks of ``docker-compose.yml`` and ``Dockerfile`` (no Docker engine needed).

- the compose file is valid against the Compose Specification JSON schema (vendored:
  ``compose-spec.json``, see :mod:`devstack.compose_check.schema`);
- every service built from this project runs ``python -m <package>`` of a package with a
  ``__main__.py``, sets only environment variables that service declares, listens on
  ``0.0.0.0``, has a health check probing its own port, and reaches the other services it names
  in its settings (``proxy:50051``, ``nats://nats:4222``) through ``depends_on``;
- every ``COPY`` in the Dockerfile copies something that exists and is not dockerignored, every
  ``pip install -r FILE`` installs a copied file, and ``pip install .`` has every package.

``python -m devstack.compose_check [--root DIR]`` prints one line per problem, exit 1 if any.
"""

from __future__ import annotations

from pathlib import Path

from devstack.compose_check.compose import check_compose
from devstack.compose_check.dockerfile import check_dockerfile
from devstack.compose_check.problems import Problem

__all__ = ["Problem", "check_all", "check_compose", "check_dockerfile"]


def check_all(root: Path) -> list[Problem]:
    """Every problem of ``root/docker-compose.yml`` and of the Dockerfiles it builds."""
    return [*check_compose(root / "docker-compose.yml"), *check_dockerfile(root / "Dockerfile")]
