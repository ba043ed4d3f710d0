"""Where this project's packages are, as ``pyproject.toml`` tells setuptools to find them."""

from __future__ import annotations

import tomllib
from pathlib import Path


def package_roots(root: Path) -> list[Path]:
    """The ``where`` folders of ``[tool.setuptools.packages.find]`` (``.`` by default)."""
    find = _find_table(root)
    return [root / where for where in find.get("where", ["."])]


def top_level_packages(root: Path) -> list[str]:
    """Folders (relative to ``root``) of the top-level packages ``pip install .`` installs."""
    include = [p.rstrip("*") for p in _find_table(root).get("include", ["*"])]
    found: list[str] = []
    for where in package_roots(root):
        for name in include:
            if name and "." not in name and (where / name / "__init__.py").is_file():
                found.append((where / name).relative_to(root).as_posix())
    return found


def runs_as_module(root: Path, module: str) -> bool:
    """Whether ``python -m module`` runs a package of this project (one with ``__main__.py``)."""
    parts = module.split(".")
    return any((where.joinpath(*parts) / "__main__.py").is_file() for where in package_roots(root))


def _find_table(root: Path) -> dict[str, list[str]]:
    with (root / "pyproject.toml").open("rb") as f:
        pyproject = tomllib.load(f)
    find: dict[str, list[str]] = (
        pyproject.get("tool", {}).get("setuptools", {}).get("packages", {}).get("find", {})
    )
    return find
