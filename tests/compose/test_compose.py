"""docker-compose.yml and Dockerfile pass the offline checks, and broken copies of them do not."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.compose_check import Problem, check_all, check_compose, check_dockerfile
from devstack.compose_check.__main__ import main
from devstack.compose_check.schema import SCHEMA_PATH

ROOT = Path(__file__).resolve().parents[2]
_FILES = (
    "docker-compose.yml",
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "requirements.lock",
)
_FOLDERS = ("gen", "tradekit", "devstack", "simulator", "proxy", "processor", "vwap")

Compose = dict[str, Any]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's build files, its packages linked, to break without harm."""
    for name in _FILES:
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    for name in _FOLDERS:
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    return tmp_path


def _broken_compose(project: Path, change: Callable[[Compose], None]) -> list[str]:
    path = project / "docker-compose.yml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return [f"{p.where}: {p.message}" for p in check_compose(path)]


def _broken_dockerfile(project: Path, old: str, new: str) -> list[str]:
    path = project / "Dockerfile"
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    return [p.message for p in check_dockerfile(path)]


def test_project_files_pass() -> None:
    """The committed docker-compose.yml and Dockerfile have no problem."""
    assert [str(p) for p in check_all(ROOT)] == []


def test_copy_of_project_passes(project: Path) -> None:
    """The test copy is faithful: unchanged, it passes too (so each failure below is the edit's)."""
    assert check_all(project) == []


def test_vendored_schema_is_the_recorded_one() -> None:
    """compose-spec.json is byte for byte the file whose hash the schema module records."""
    digest = hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest()
    assert digest in (SCHEMA_PATH.with_name("schema.py")).read_text(encoding="utf-8")


def test_schema_rejects_unknown_service_key(project: Path) -> None:
    """A key the Compose specification does not have is reported at its path."""

    def change(c: Compose) -> None:
        c["services"]["proxy"]["restart_policy"] = "always"

    found = _broken_compose(project, change)
    assert any(f.startswith("services.proxy:") and "restart_policy" in f for f in found)


def test_schema_rejects_wrong_type(project: Path) -> None:
    """A depends_on condition outside the specification's enum is reported."""

    def change(c: Compose) -> None:
        c["services"]["vwap"]["depends_on"]["processor"]["condition"] = "service_ready"

    found = _broken_compose(project, change)
    assert any(f.startswith("services.vwap.depends_on") for f in found)


def test_command_of_missing_package_is_reported(project: Path) -> None:
    """`python -m vwapp` names no package with __main__.py."""

    def change(c: Compose) -> None:
        c["services"]["vwap"]["command"] = ["python", "-m", "vwapp"]

    assert _broken_compose(project, change) == [
        "services.vwap.command: `python -m vwapp`: no package vwapp with __main__.py"
    ]


def test_command_that_is_not_python_module_is_reported(project: Path) -> None:
    """A project service must run `python -m <package>`."""

    def change(c: Compose) -> None:
        c["services"]["proxy"]["command"] = "proxy --serve"

    found = _broken_compose(project, change)
    assert any(f.startswith("services.proxy.command: must be `python -m") for f in found)


def test_undeclared_environment_variable_is_reported(project: Path) -> None:
    """A variable the service does not read (a typo, or another service's) is reported."""

    def change(c: Compose) -> None:
        c["services"]["processor"]["environment"]["DB_URL"] = "postgresql://x@timescaledb/y"
        c["services"]["vwap"]["environment"]["NATS_URL"] = "nats://nats:4222"

    found = _broken_compose(project, change)
    assert (
        "services.processor.environment.DB_URL: `python -m processor` does not read DB_URL" in found
    )
    assert "services.vwap.environment.NATS_URL: `python -m vwap` does not read NATS_URL" in found


def test_list_form_environment_is_checked(project: Path) -> None:
    """Environment written as KEY=VALUE items is checked like the mapping form."""

    def change(c: Compose) -> None:
        env = c["services"]["simulator"]["environment"]
        c["services"]["simulator"]["environment"] = [f"{k}={v}" for k, v in env.items()]
        c["services"]["simulator"]["environment"].append("SIM_SPEED=2")

    found = _broken_compose(project, change)
    assert found == [
        "services.simulator.environment.SIM_SPEED: `python -m simulator` does not read SIM_SPEED"
    ]


def test_loopback_listen_address_is_reported(project: Path) -> None:
    """A service left on 127.0.0.1 is unreachable from the other containers."""

    def change(c: Compose) -> None:
        del c["services"]["proxy"]["environment"]["PROXY_HOST"]

    found = _broken_compose(project, change)
    assert any(f.startswith("services.proxy.environment: set PROXY_HOST=0.0.0.0") for f in found)


def test_health_check_of_another_port_is_reported(project: Path) -> None:
    """The health check must probe the port the service listens on."""

    def change(c: Compose) -> None:
        c["services"]["vwap"]["environment"]["VWAP_PORT"] = "50063"

    found = _broken_compose(project, change)
    assert "services.vwap.healthcheck.test: does not probe port 50063" in found
    assert "services.vwap.ports.0: publishes 50053, the service uses 50063" in found


def test_health_check_without_grpc_health_is_reported(project: Path) -> None:
    """A gRPC service's health check must call grpc.health.v1.Health/Check."""

    def change(c: Compose) -> None:
        c["services"]["processor"]["healthcheck"]["test"] = ["CMD", "true", "127.0.0.1:50052"]

    found = _broken_compose(project, change)
    assert found == [
        "services.processor.healthcheck.test: does not use grpc.health.v1.Health/Check"
    ]


def test_missing_health_check_is_reported(project: Path) -> None:
    """Without a health check a service cannot be waited for with service_healthy."""

    def change(c: Compose) -> None:
        del c["services"]["proxy"]["healthcheck"]

    found = _broken_compose(project, change)
    assert (
        "services.processor.depends_on.proxy: service_healthy, but proxy has no health check"
        in found
    )
    assert any(f.startswith("services.proxy.healthcheck: missing") for f in found)


def test_link_to_wrong_port_or_without_depends_on_is_reported(project: Path) -> None:
    """A setting naming a service must depend on it and use the port it listens on."""

    def change(c: Compose) -> None:
        c["services"]["processor"]["environment"]["PROXY_ADDRESS"] = "proxy:50052"
        del c["services"]["processor"]["depends_on"]["nats"]

    found = _broken_compose(project, change)
    assert (
        "services.processor.environment.PROXY_ADDRESS: port 50052, but proxy listens on 50051"
        in found
    )
    assert "services.processor.environment.NATS_URL: uses nats but does not depend_on it" in found


def test_unreadable_yaml_is_reported(project: Path) -> None:
    """A file that is not YAML is one problem, not a crash."""
    path = project / "docker-compose.yml"
    path.write_text("services: [unclosed\n", encoding="utf-8")
    assert [p.where for p in check_compose(path)] == ["(file)"]


def test_dockerfile_missing_package_copy_is_reported(project: Path) -> None:
    """`pip install .` without one of the project's packages copied is reported."""
    found = _broken_dockerfile(project, "COPY vwap ./vwap\n", "")
    assert found == ["pip install .: vwap is not copied into the image before"]


def test_dockerfile_missing_generated_code_is_reported(project: Path) -> None:
    """gen/ holds the packaged protobuf code; forgetting it is reported."""
    found = _broken_dockerfile(project, "COPY gen ./gen\n", "")
    assert found == ["pip install .: gen/trading is not copied into the image before"]


def test_dockerfile_copy_of_missing_file_is_reported(project: Path) -> None:
    """COPY of a path that is not in the build context is reported."""
    found = _broken_dockerfile(project, "COPY requirements.lock ./", "COPY requirements.txt ./")
    assert "COPY requirements.txt: no such file or folder" in found
    assert "pip install -r requirements.lock: not copied into the image before" in found


def test_dockerfile_copy_of_dockerignored_path_is_reported(project: Path) -> None:
    """COPY of a path .dockerignore keeps out of the context is reported."""
    with (project / ".dockerignore").open("a", encoding="utf-8") as f:
        f.write("proxy\n")
    assert [p.message for p in check_dockerfile(project / "Dockerfile")] == [
        "COPY proxy: excluded by .dockerignore"
    ]


def test_cli_exit_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command exits 0 on the project and 1, printing the problem, on a broken copy."""
    assert main(["--root", str(project)]) == 0
    (project / "Dockerfile").write_text("FROM python:3.11-slim\nCOPY nope /x\n", encoding="utf-8")
    assert main(["--root", str(project)]) == 1
    assert (
        str(Problem("Dockerfile", "line 2", "COPY nope: no such file or folder"))
        in capsys.readouterr().out
    )
