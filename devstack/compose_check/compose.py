"""Checks of ``docker-compose.yml``: the schema, then each service built from this project."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from devstack.compose_check.declared import DeclaredService, declared_services
from devstack.compose_check.problems import Problem
from devstack.compose_check.project import runs_as_module
from devstack.compose_check.schema import schema_errors

_HOST_PORT = re.compile(r"^([A-Za-z0-9._-]+):(\d+)$")
_ANY_INTERFACE = "0.0.0.0"


def check_compose(path: Path) -> list[Problem]:
    """Every problem of the compose file at ``path`` (its folder is the project root)."""
    name = path.name
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return [Problem(name, "(file)", f"cannot read: {exc}")]
    if not isinstance(document, dict):
        return [Problem(name, "(top level)", "not a mapping")]
    problems = [Problem(name, where, message) for where, message in schema_errors(document)]
    if problems:
        return problems  # the checks below rely on the shapes the schema guarantees
    services: dict[str, dict[str, Any]] = document.get("services") or {}
    own_images = {s["image"] for s in services.values() if "build" in s and "image" in s}
    for service_name, service in services.items():
        problems += [Problem(name, w, m) for w, m in _dependency_problems(service_name, services)]
        if "build" in service or service.get("image") in own_images:
            found = _own_service_problems(path.parent, service_name, services)
            problems += [Problem(name, w, m) for w, m in found]
    return problems


def _dependency_problems(name: str, services: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``depends_on`` names services, and waits for health only of services that have it."""
    problems = []
    for target, condition in _depends_on(services[name]).items():
        where = f"services.{name}.depends_on.{target}"
        if target not in services:
            problems.append((where, "no such service"))
        elif condition == "service_healthy" and not _has_healthcheck(services[target]):
            problems.append((where, f"service_healthy, but {target} has no health check"))
    return problems


def _own_service_problems(
    root: Path, name: str, services: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """The command, settings, listen address, health check and links of one service."""
    service = services[name]
    at = f"services.{name}"
    argv = _argv(service.get("command"))
    if len(argv) < 3 or argv[0] not in ("python", "python3") or argv[1] != "-m":
        return [(f"{at}.command", f"must be `python -m <package>`, got {argv!r}")]
    module = argv[2]
    if not runs_as_module(root, module):
        return [(f"{at}.command", f"`python -m {module}`: no package {module} with __main__.py")]
    declared = declared_services().get(module)
    if declared is None:
        return [(f"{at}.command", f"no declared settings for `python -m {module}`")]
    environment = _environment(service)
    problems = [
        (f"{at}.environment.{key}", f"`python -m {module}` does not read {key}")
        for key in environment
        if key not in declared.env_names
    ]
    if environment.get(declared.host_var) != _ANY_INTERFACE:
        message = f"set {declared.host_var}={_ANY_INTERFACE}: other containers cannot reach it"
        problems.append((f"{at}.environment", message))
    port = _listen_port(declared, environment)
    if port is None:
        return [*problems, (f"{at}.environment.{declared.port_var}", "not a port number")]
    problems += _healthcheck_problems(at, service, declared, port)
    problems += _published_port_problems(at, service, port)
    problems += _link_problems(name, services, environment)
    return problems


def _healthcheck_problems(
    at: str, service: Mapping[str, Any], declared: DeclaredService, port: int
) -> list[tuple[str, str]]:
    if not _has_healthcheck(service):
        return [(f"{at}.healthcheck", "missing: depends_on cannot wait for it to be healthy")]
    test = " ".join(_argv(service["healthcheck"].get("test")))
    problems = []
    if f":{port}" not in test:
        problems.append((f"{at}.healthcheck.test", f"does not probe port {port}"))
    if declared.probe not in test:
        problems.append((f"{at}.healthcheck.test", f"does not use {declared.probe}"))
    return problems


def _published_port_problems(
    at: str, service: Mapping[str, Any], port: int
) -> list[tuple[str, str]]:
    problems = []
    for index, mapping in enumerate(service.get("ports") or []):
        if isinstance(mapping, dict):
            target = str(mapping.get("target", ""))
        else:
            target = str(mapping).split("/")[0].rsplit(":", 1)[-1]
        if target != str(port):
            problems.append((f"{at}.ports.{index}", f"publishes {target}, the service uses {port}"))
    return problems


def _link_problems(
    name: str, services: Mapping[str, Any], environment: Mapping[str, str | None]
) -> list[tuple[str, str]]:
    """A setting naming another service (``proxy:50051``) needs depends_on and its port."""
    problems = []
    depends_on = _depends_on(services[name])
    for key, value in environment.items():
        link = _host_and_port(value or "")
        if link is None or link[0] not in services or link[0] == name:
            continue
        host, port = link
        where = f"services.{name}.environment.{key}"
        if host not in depends_on:
            problems.append((where, f"uses {host} but does not depend_on it"))
        listen = _service_port(services[host])
        if port is not None and listen is not None and port != listen:
            problems.append((where, f"port {port}, but {host} listens on {listen}"))
    return problems


def _service_port(service: Mapping[str, Any]) -> int | None:
    """The port a service of this project listens on; None for other images."""
    argv = _argv(service.get("command"))
    declared = declared_services().get(argv[2]) if len(argv) >= 3 and argv[1] == "-m" else None
    return None if declared is None else _listen_port(declared, _environment(service))


def _listen_port(declared: DeclaredService, environment: Mapping[str, str | None]) -> int | None:
    text = environment.get(declared.port_var)
    if text is None:
        return declared.default_port
    return int(text) if text.isdigit() else None


def _host_and_port(value: str) -> tuple[str, int | None] | None:
    if "://" in value:
        parts = urlsplit(value)
        try:
            return (parts.hostname, parts.port) if parts.hostname else None
        except ValueError:
            return None
    match = _HOST_PORT.match(value)
    return (match[1], int(match[2])) if match else None


def _argv(command: str | list[Any] | None) -> list[str]:
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def _environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    """``environment`` as a mapping, from either of its two forms (dict or ``KEY=VALUE`` list)."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {k: None if v is None else _scalar(v) for k, v in env.items()}
    pairs = (str(item).partition("=") for item in env)
    return {key: (value if sep else None) for key, sep, value in pairs}


def _scalar(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """``depends_on`` as service -> condition, from either of its two forms."""
    depends = service.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {k: v.get("condition", "service_started") for k, v in depends.items()}


def _has_healthcheck(service: Mapping[str, Any]) -> bool:
    check = service.get("healthcheck") or {}
    return not check.get("disable") and bool(check.get("test"))
