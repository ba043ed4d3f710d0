"""The README documents what the code does: its configuration tables are the code's, its
grpcurl examples are valid requests."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from processor.config import SETTINGS as PROCESSOR_SETTINGS
from proxy.config import SETTINGS as PROXY_SETTINGS
from tradekit.config import Setting, settings_table
from vwap.config import SETTINGS as VWAP_SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize(
    ("name", "settings"),
    [("proxy", PROXY_SETTINGS), ("processor", PROCESSOR_SETTINGS), ("vwap", VWAP_SETTINGS)],
)
def test_readme_configuration_table_matches_the_code(
    name: str, settings: tuple[Setting, ...]
) -> None:
    """Each service's table in the README is exactly what `--settings-table` prints."""
    assert settings_table(settings) in README, f"README table for {name} is out of date"


_GRPCURL = re.compile(
    r"grpcurl -plaintext(?: -d '(?P<body>(?:[^']|'\$\w+')*)')?\s+\S+\s+"
    r"(?P<service>trading\.v1\.\w+)/(?P<method>\w+)"
)
_SHELL_TIME = re.compile(r"^(\w+)=\$\(date [^)]*\)", re.MULTILINE)
_SHELL_TIME_NAMES = re.compile(r"(\w+)=\$\(")


def _readme_shell_times() -> dict[str, str]:
    """The README's example times, computed by its own ``date`` commands."""
    lines = [
        line.split("#")[0].strip()
        for line in README.splitlines()
        if _SHELL_TIME.match(line.strip())
    ]
    names = [name for line in lines for name in _SHELL_TIME_NAMES.findall(line)]
    script = "; ".join(lines) + "; " + "; ".join(f'echo "{n}=${n}"' for n in names)
    out = subprocess.run(["bash", "-c", script], check=True, capture_output=True, text=True)
    return dict(line.split("=", 1) for line in out.stdout.split())


def test_readme_grpcurl_examples_are_valid_requests() -> None:
    """Every RPC has a grpcurl example, and each example's body parses as its method's
    request with the README's own example times (its ``date`` commands): field names,
    durations and timestamps are real."""
    from google.protobuf import json_format, message_factory
    from trading.v1 import processor_pb2, proxy_pb2, vwap_pb2

    methods = {
        f"{service.full_name}/{method.name}": method.input_type
        for module in (proxy_pb2, processor_pb2, vwap_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    times = _readme_shell_times()
    assert set(times) >= {"FROM", "TO"}, times
    text = README.replace("\\\n", " ")
    examples = list(_GRPCURL.finditer(text))
    assert {f"{m['service']}/{m['method']}" for m in examples} == set(methods)
    for example in examples:
        body = example["body"] or "{}"
        body = re.sub(r"'\$(\w+)'", lambda m: times[m[1]], body)
        request = message_factory.GetMessageClass(
            methods[f"{example['service']}/{example['method']}"]
        )()
        json_format.Parse(body, request)  # raises on an unknown field or a malformed value
