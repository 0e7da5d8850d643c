"""The published JSON Schemas (draft 2020-12) of the scenario and result formats.

They are package data (``sdei_state/schemas/*.schema.json``) for other tools and languages; the
library itself validates with its own parser (``format.parse``), which also checks what a
schema cannot state (a ``vcpu`` below ``vcpus``, call and register names, JSON integers
written as ``1.0``, repeated keys). The tests validate every vector against both schemas and
check that parser and schema refuse the same malformed documents.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Final, Literal

SCHEMA_NAMES: Final = ("scenario", "result")


def schema(name: Literal["scenario", "result"]) -> dict[str, Any]:
    """The JSON Schema of the scenario or the result format, as a JSON value."""
    if name not in SCHEMA_NAMES:
        raise ValueError(f"no schema {name!r} (one of {', '.join(SCHEMA_NAMES)})")
    text = resources.files("sdei_state").joinpath("schemas", f"{name}.schema.json").read_text(
        encoding="utf-8")
    value: dict[str, Any] = json.loads(text)
    return value
