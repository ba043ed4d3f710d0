"""Checks of a ``Dockerfile``: what it copies exists and reaches the build, what pip installs was
copied first.

Understands single-stage Dockerfiles: ``COPY --from`` (multi-stage) sources are not checked, and
``.dockerignore`` exceptions (``!pattern``) are not supported.
"""

from __future__ import annotations

import glob
import json
import shlex
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from devstack.compose_check.problems import Problem
from devstack.compose_check.project import top_level_packages

_SEPARATORS = frozenset({"&&", "||", ";", "|"})
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    line: int
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of ``text``, skipping comments and blank lines."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped
        if not pending:
            start = number
        pending.append(stripped.removesuffix("\\").strip())
        if not stripped.endswith("\\"):
            keyword, _, arguments = " ".join(pending).partition(" ")
            instructions.append(Instruction(start, keyword.upper(), arguments.strip()))
            pending = []
    return instructions


def check_dockerfile(path: Path) -> list[Problem]:
    """Every problem of the Dockerfile at ``path``; its folder is the build context."""
    name, root = path.name, path.parent
    try:
        instructions = parse_dockerfile(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [Problem(name, "(file)", f"cannot read: {exc}")]
    ignored = _dockerignore(root)
    copied: list[str] = []
    problems: list[Problem] = []
    for instruction in instructions:
        where = f"line {instruction.line}"
        if instruction.keyword in ("COPY", "ADD"):
            sources = _copy_sources(instruction.arguments)
            for source in sources:
                problems += [
                    Problem(name, where, m) for m in _source_problems(root, source, ignored)
                ]
            copied += [_normal(s) for s in sources]
        elif instruction.keyword == "RUN":
            for installed in _pip_installs(instruction.arguments):
                problems += [
                    Problem(name, where, m) for m in _install_problems(root, installed, copied)
                ]
    return problems


def _copy_sources(arguments: str) -> list[str]:
    tokens = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    if any(t.startswith("--from") for t in tokens):
        return []
    paths = [t for t in tokens if not t.startswith("--")]
    return paths[:-1]


def _source_problems(root: Path, source: str, ignored: list[str]) -> list[str]:
    relative = _normal(source)
    if _GLOB_CHARS & set(relative):
        matches = glob.glob(relative, root_dir=root)
        return [] if matches else [f"COPY {source}: matches nothing"]
    if not (root / relative).exists():
        return [f"COPY {source}: no such file or folder"]
    if _is_ignored(relative, ignored):
        return [f"COPY {source}: excluded by .dockerignore"]
    return []


def _pip_installs(arguments: str) -> list[list[str]]:
    """The arguments after ``install`` of every ``pip install`` in a RUN (shell form)."""
    tokens = shlex.split(arguments.replace(";", " ; "))
    commands: list[list[str]] = [[]]
    for token in tokens:
        if token in _SEPARATORS:
            commands.append([])
        else:
            commands[-1].append(token)
    installs = []
    for command in commands:
        for index in range(len(command) - 1):
            if command[index] in ("pip", "pip3") and command[index + 1] == "install":
                installs.append(command[index + 2 :])
    return installs


def _install_problems(root: Path, arguments: list[str], copied: list[str]) -> list[str]:
    problems = []
    for index, argument in enumerate(arguments):
        requirement = None
        if argument in ("-r", "--requirement") and index + 1 < len(arguments):
            requirement = arguments[index + 1]
        elif argument.startswith("--requirement="):
            requirement = argument.partition("=")[2]
        if requirement is not None and not _is_copied(_normal(requirement), copied):
            problems.append(f"pip install -r {requirement}: not copied into the image before")
        if requirement is not None and not (root / _normal(requirement)).is_file():
            problems.append(f"pip install -r {requirement}: no such file")
    if "." in arguments:
        needed = ["pyproject.toml", *top_level_packages(root)]
        problems += [
            f"pip install .: {item} is not copied into the image before"
            for item in needed
            if not _is_copied(item, copied)
        ]
    return problems


def _dockerignore(root: Path) -> list[str]:
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [_normal(line) for line in lines if line and not line.startswith(("#", "!"))]


def _is_ignored(relative: str, patterns: list[str]) -> bool:
    """Whether ``relative`` or a folder above it matches a .dockerignore pattern."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/")
        for prefix in prefixes:
            if fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/"):
                tails = prefix.split("/")
                if any(fnmatchcase("/".join(tails[i:]), anywhere) for i in range(len(tails))):
                    return True
    return False


def _is_copied(relative: str, copied: list[str]) -> bool:
    return any(c == "." or relative == c or relative.startswith(c + "/") for c in copied)


def _normal(path: str) -> str:
    """A context-relative path without ``./``, leading or trailing ``/``; ``.`` for the root."""
    text = path.strip().strip("/")
    while text.startswith("./"):
        text = text[2:]
    return text or "."
