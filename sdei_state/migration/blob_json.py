"""The JSON form of a migration blob: the same content as the binary form, for people and for
checked-in vectors.

``{"format": "sdei-state/blob/1", "abi_version": 1, "registers": [ids], "vcpus": [rows]}``:
ids as hex strings (``"0x6030000000140100"``; unsigned integers are accepted on input), values
as unsigned integers of their register's width. ``schemas/blob.schema.json`` (JSON Schema
draft 2020-12, shipped with the package, ``schema()``) states the same shape; whatever the
schema refuses, ``from_obj`` refuses too, and ``from_obj`` also checks what a schema cannot
(row length against the table, each value against its register's width, duplicate ids).

Reading is bounded: ``loads`` refuses duplicate keys, ``NaN``/``Infinity``, integers of more
digits than the widest register value (617, a U2048) and nesting deeper than the interpreter's
recursion limit, each with a ``BlobError`` naming it, before any value is interpreted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, cast

from ..errors import BlobError
from ..state import U64_MAX
from .wire import ABI_VERSION, FORMAT_VERSION, FORMAT_VERSION_SECTIONS

JSON_FORMAT: Final = f"sdei-state/blob/{FORMAT_VERSION}"
SNAPSHOT_JSON_FORMAT: Final = f"sdei-state/blob/{FORMAT_VERSION_SECTIONS}"
"""The JSON form of a whole-VM snapshot (``vm_json``): not a blob this module reads."""
KEYS: Final = ("format", "abi_version", "registers", "vcpus")
MAX_INT_DIGITS: Final = len(str((1 << 2048) - 1))
"""Decimal digits of the widest register value (a U2048, 2**2048 - 1): 617."""
SCHEMA_RESOURCE: Final = "blob.schema.json"
"""The JSON Schema of this form, in the package's ``schemas`` folder."""

_HEX_ID: Final = re.compile(r"0x[0-9a-fA-F]{1,16}")
_SHOWN: Final = 60


def shown(value: object) -> str:
    """``repr(value)``, cut to a readable length (a refused value may be megabytes long)."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN - 3]}..."


def to_obj(reg_ids: Sequence[int], rows: Sequence[Sequence[int]],
           abi_version: int) -> dict[str, Any]:
    """The JSON form as Python objects."""
    return {
        "format": JSON_FORMAT,
        "abi_version": abi_version,
        "registers": [f"{rid:#018x}" for rid in reg_ids],
        "vcpus": [list(row) for row in rows],
    }


def dumps(obj: dict[str, Any], *, indent: int | None = None) -> str:
    return json.dumps(obj, indent=indent)


def from_obj(obj: object) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int]:
    """(register ids, rows, ABI version) of a decoded JSON blob, its shape checked; the rows'
    values are checked against their registers by the ``Blob`` built of them."""
    if not isinstance(obj, dict):
        raise BlobError(f"a JSON blob is an object, not {type(obj).__name__}")
    if obj.get("format") == SNAPSHOT_JSON_FORMAT:
        raise BlobError(f"JSON blob format {SNAPSHOT_JSON_FORMAT!r} is a whole-VM snapshot: "
                        "read it with VmSnapshot.from_json")
    unknown = sorted(set(obj) - set(KEYS))
    if unknown:
        raise BlobError(f"unknown key {shown(unknown[0])} in JSON blob (keys: {', '.join(KEYS)})")
    missing = [k for k in KEYS if k not in obj]
    if missing:
        raise BlobError(f"JSON blob lacks key {missing[0]!r}")
    if obj["format"] != JSON_FORMAT:
        raise BlobError(f"JSON blob format {shown(obj['format'])} is not supported "
                        f"(this library reads {JSON_FORMAT!r})")
    abi = obj["abi_version"]
    if type(abi) is not int:
        raise BlobError(f"abi_version = {shown(abi)} is not an integer")
    if abi != ABI_VERSION:
        raise BlobError(f"register ABI version {shown(abi)} is not supported "
                        f"(this library reads version {ABI_VERSION})")
    regs, rows = obj["registers"], obj["vcpus"]
    if not isinstance(regs, list):
        raise BlobError(f"'registers' is not a list but {type(regs).__name__}")
    table = tuple(_reg_id(i, r) for i, r in enumerate(regs))
    if not isinstance(rows, list):
        raise BlobError(f"'vcpus' is not a list of lists of values but {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise BlobError(f"vcpus[{i}] = {shown(row)}: 'vcpus' is a list of lists of values")
    # Typed as ints for the Blob that checks them: every value is type- and range-checked there.
    return table, cast(tuple[tuple[int, ...], ...], tuple(tuple(r) for r in rows)), abi


def _reg_id(index: int, value: object) -> int:
    if type(value) is int and 0 <= value <= U64_MAX:
        return value
    if isinstance(value, str) and _HEX_ID.fullmatch(value):
        return int(value, 16)
    raise BlobError(f"registers[{index}] = {shown(value)} is not a register id (a hex string "
                    "'0x' and 1 to 16 hex digits, or an unsigned 64-bit integer)")


def loads(text: str | bytes) -> object:
    """Decode JSON text (bytes: UTF-8, as RFC 8259 requires) within the limits above;
    ``BlobError`` otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BlobError(f"JSON blob is not UTF-8: byte {text[e.start]:#04x} at offset "
                            f"{e.start}") from None
    try:
        return json.loads(text, parse_int=_int, parse_constant=_constant,
                          object_pairs_hook=_object)
    except RecursionError:
        raise BlobError("JSON blob is nested too deeply (a blob nests 3 levels)") from None
    except ValueError as e:
        raise BlobError(f"JSON blob is not valid JSON: {e}") from None


def _int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise BlobError(f"JSON blob holds an integer of {digits} digits: no register value has "
                        f"more than {MAX_INT_DIGITS}")
    return int(text)


def _constant(name: str) -> object:
    raise BlobError(f"JSON blob holds {name}, which is not JSON (RFC 8259) and no value")


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise BlobError(f"JSON blob has the key {shown(key)} twice in one object")
        out[key] = value
    return out


def schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the JSON form, as shipped in ``sdei_state.schemas``."""
    path = Path(__file__).resolve().parent.parent / "schemas" / SCHEMA_RESOURCE
    doc: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return doc
