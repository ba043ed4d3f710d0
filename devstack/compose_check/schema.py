"""Validation against the Compose Specification JSON schema, vendored for offline use.

``compose-spec.json`` is the compose-spec project's ``schema/compose-spec.json`` (draft-07,
Apache-2.0) as shipped in the npm package ``dclint`` 3.1.0, file ``schemas/compose.schema.json``
(sha256 46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496). To update it:
``npm pack dclint@VERSION`` and copy that file here unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_PATH = Path(__file__).with_name("compose-spec.json")


@cache
def _validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def schema_errors(document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(dotted path, message)`` for every schema violation of ``document``, in file order."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(map(str, e.path)))
    return [(".".join(map(str, e.path)) or "(top level)", _message(e)) for e in errors]


def _message(error: ValidationError) -> str:
    """The error, with the closest alternative's reason when none of a oneOf/anyOf matched."""
    if not error.context:
        return error.message
    closest = best_match(error.context)
    return f"{error.message}; closest: {closest.message}"
