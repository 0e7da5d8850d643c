"""Migration blobs: every listed register of every vCPU of a VM, as bytes or as JSON.

The binary layout is declared once, with construct (``BLOB``): a header (magic, format
version, register-ABI version, counts), the register id table once, one row of 64-bit values
per vCPU, and a CRC32 over everything before it. ``Blob.to_bytes``/``Blob.from_bytes`` are a
``struct`` fast path derived from the same field list; a property test proves both agree.
The JSON form (``Blob.to_json``/``Blob.from_json``) carries the same content for humans and
checked-in vectors. Anything unusable is refused with ``BlobError`` naming the problem.
"""

from __future__ import annotations

import functools
import json
import struct
import zlib
from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from construct import (
    Array,
    Checksum,
    Const,
    Int16ul,
    Int32ul,
    Int64ul,
    RawCopy,
    Struct,
    Terminated,
    this,
)

from ..errors import BlobError
from ..regs import ids
from ..state import U64_MAX

MAGIC: Final = b"SDEIREGS"
FORMAT_VERSION: Final = 1
"""Version of the container layout below."""
ABI_VERSION: Final = 1
"""Version of the register ABI the values follow (DESIGN section 4: SDEI block 0x0100-0x01FF)."""
JSON_FORMAT: Final = f"sdei-state/blob/{FORMAT_VERSION}"

# The header, declared once: (name, construct field, struct code, what it holds). ``HEADER``
# and the fast path's ``_HEADER`` are both built from this list.
_HEADER_FIELDS: Final = (
    ("magic", Const(MAGIC), "8s", f"the bytes {MAGIC.decode()!r}"),
    ("format_version", Const(FORMAT_VERSION, Int16ul), "H",
     f"container layout version, {FORMAT_VERSION}"),
    ("abi_version", Int16ul, "H", f"register ABI version of the values, {ABI_VERSION}"),
    ("nr_regs", Int32ul, "I", "n: registers per vCPU (>= 1)"),
    ("nr_vcpus", Int32ul, "I", "v: vCPUs (>= 1)"),
    ("reserved", Const(0, Int32ul), "I", "0 (keeps the id table 8-byte aligned)"),
)

HEADER: Final = Struct(*(name / field * doc for name, field, _, doc in _HEADER_FIELDS))

BLOB: Final = Struct(
    "body" / RawCopy(Struct(
        "header" / HEADER,
        "reg_ids" / Array(this.header.nr_regs, Int64ul)
        * "register id table, in the source vCPU's KVM_GET_REG_LIST order",
        "rows" / Array(this.header.nr_vcpus, Array(this.header.nr_regs, Int64ul))
        * "one row per vCPU: the value of each register of the table, in table order",
    )),
    "crc32" / Checksum(Int32ul, lambda data: zlib.crc32(data), this.body.data)
    * "CRC32 (zlib) of every byte before it",
    Terminated,
)
"""The binary blob, little-endian. Parser, builder and documentation of the format."""

_HEADER: Final = struct.Struct("<" + "".join(code for _, _, code, _ in _HEADER_FIELDS))
HEADER_SIZE: Final = _HEADER.size
CRC_SIZE: Final = 4
assert HEADER.sizeof() == HEADER_SIZE  # the fast path and the declaration share one layout


def blob_size(nr_regs: int, nr_vcpus: int) -> int:
    """Bytes of a blob of ``nr_vcpus`` rows of ``nr_regs`` registers: 8 per value, plus the
    table and 28 bytes of header and checksum once."""
    return HEADER_SIZE + 8 * nr_regs * (1 + nr_vcpus) + CRC_SIZE


def _name(reg_id: int) -> str:
    return f"{ids.describe(reg_id)} ({reg_id:#018x})"


@dataclass(frozen=True, slots=True)
class _Table:
    """What a validated register table needs at run time: id -> column, narrow columns."""

    index: Mapping[int, int]
    narrow: tuple[tuple[int, int], ...]


@functools.lru_cache(maxsize=64)
def _table(reg_ids: tuple[int, ...]) -> _Table:
    """Validate a register table once (every vCPU of a VM shares one)."""
    _check_id_table(reg_ids)
    return _Table(MappingProxyType({rid: i for i, rid in enumerate(reg_ids)}),
                  tuple(_narrow(reg_ids)))


def _table_of(reg_ids: tuple[int, ...]) -> _Table:
    if not all(type(r) is int for r in reg_ids):  # bools and others: never from the cache
        _check_id_table(reg_ids)
    return _table(reg_ids)


def _check_id_table(reg_ids: Sequence[int]) -> None:
    if not reg_ids:
        raise BlobError("the register table is empty")
    seen: set[int] = set()
    for i, rid in enumerate(reg_ids):
        if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= U64_MAX:
            raise BlobError(f"register id #{i} = {rid!r} is not an unsigned 64-bit id")
        if rid in seen:
            raise BlobError(f"register {_name(rid)} appears twice in the register table")
        seen.add(rid)
        if ids.reg_size(rid) > 8:
            raise BlobError(
                f"register {_name(rid)} is {ids.reg_size(rid)} bytes wide; a blob carries "
                "registers of at most 64 bits"
            )


def _narrow(reg_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(column, bits) of each register narrower than 64 bits: only those need a width check."""
    return [(i, 8 * ids.reg_size(rid)) for i, rid in enumerate(reg_ids) if ids.reg_size(rid) < 8]


def _check_row(
    where: str, reg_ids: Sequence[int], row: Sequence[int], narrow: Sequence[tuple[int, int]]
) -> None:
    if len(row) != len(reg_ids):
        raise BlobError(f"{where} has {len(row)} values for a table of {len(reg_ids)} registers")
    # min/max first: one C-speed pass answers the common case for a 4,096-vCPU blob.
    if not (all(type(v) is int for v in row) and min(row) >= 0 and max(row) <= U64_MAX):
        for rid, v in zip(reg_ids, row, strict=True):
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= U64_MAX:
                raise BlobError(f"{where}: {_name(rid)} = {v!r} is not an unsigned 64-bit value")
    for col, bits in narrow:
        if row[col] >> bits:
            rid = reg_ids[col]
            raise BlobError(f"{where}: {_name(rid)} = {row[col]:#x} does not fit its "
                            f"{bits // 8}-byte register")


@dataclass(frozen=True, slots=True)
class VcpuRegisters(Mapping[int, int]):
    """One vCPU's saved registers: id -> value, in the order the vCPU listed them.

    A read-only mapping. Equality compares the ids, their order and the values, and only with
    another ``VcpuRegisters`` (use ``as_dict()`` to compare with a plain dict)."""

    reg_ids: tuple[int, ...]
    row: tuple[int, ...]
    """The values, aligned with ``reg_ids``."""
    _index: Mapping[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.reg_ids, tuple) or not isinstance(self.row, tuple):
            raise BlobError("VcpuRegisters takes a tuple of ids and a tuple of values")
        table = _table_of(self.reg_ids)
        _check_row("the vCPU", self.reg_ids, self.row, table.narrow)
        object.__setattr__(self, "_index", table.index)

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[int, int]]) -> VcpuRegisters:
        """From (id, value) pairs, keeping their order."""
        return cls(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))

    def __getitem__(self, reg_id: int) -> int:
        return self.row[self._index[reg_id]]

    def __contains__(self, reg_id: object) -> bool:
        return reg_id in self._index

    def items(self) -> ItemsView[int, int]:
        return dict(zip(self.reg_ids, self.row, strict=True)).items()

    def __iter__(self) -> Iterator[int]:
        return iter(self.reg_ids)

    def __len__(self) -> int:
        return len(self.reg_ids)

    def as_dict(self) -> dict[int, int]:
        return dict(zip(self.reg_ids, self.row, strict=True))


@dataclass(frozen=True, slots=True)
class Blob:
    """Every register of every vCPU of a VM: one register table, one row of values per vCPU."""

    reg_ids: tuple[int, ...]
    rows: tuple[tuple[int, ...], ...]
    abi_version: int = ABI_VERSION

    def __post_init__(self) -> None:
        if self.abi_version != ABI_VERSION:
            raise BlobError(f"register ABI version {self.abi_version} is not supported "
                            f"(this library reads version {ABI_VERSION})")
        if not isinstance(self.reg_ids, tuple) or not isinstance(self.rows, tuple):
            raise BlobError("Blob takes a tuple of ids and a tuple of rows")
        table = _table_of(self.reg_ids)
        if not self.rows:
            raise BlobError("the blob holds no vCPU")
        if len(self.rows) > 0xFFFFFFFF or len(self.reg_ids) > 0xFFFFFFFF:
            raise BlobError("too many vCPUs or registers for the 32-bit counts of the format")
        for i, row in enumerate(self.rows):
            if not isinstance(row, tuple):
                raise BlobError(f"vCPU {i}: a row is a tuple of values")
            _check_row(f"vCPU {i}", self.reg_ids, row, table.narrow)

    @classmethod
    def from_vcpus(cls, vcpus: Sequence[VcpuRegisters]) -> Blob:
        """A blob of saved vCPUs that all list the same registers in the same order."""
        if not vcpus:
            raise BlobError("the blob holds no vCPU")
        table = vcpus[0].reg_ids
        for i, regs in enumerate(vcpus):
            if regs.reg_ids != table:
                extra = sorted(set(regs.reg_ids) ^ set(table))
                what = ("lists them in another order" if not extra else
                        f"differs in {len(extra)} register(s), first {_name(extra[0])}")
                raise BlobError(f"vCPU {i} {what} than vCPU 0: a blob has one register table")
        return cls(table, tuple(r.row for r in vcpus))

    @property
    def nr_vcpus(self) -> int:
        return len(self.rows)

    def vcpu(self, index: int) -> VcpuRegisters:
        """vCPU ``index``'s registers."""
        if not 0 <= index < len(self.rows):
            raise IndexError(f"vCPU {index} out of range 0..{len(self.rows) - 1}")
        return VcpuRegisters(self.reg_ids, self.rows[index])

    def vcpus(self) -> tuple[VcpuRegisters, ...]:
        return tuple(VcpuRegisters(self.reg_ids, row) for row in self.rows)

    # -- binary -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The binary form (layout ``BLOB``), packed with ``struct``."""
        n, v = len(self.reg_ids), len(self.rows)
        flat = [x for row in self.rows for x in row]
        body = b"".join((
            _HEADER.pack(MAGIC, FORMAT_VERSION, self.abi_version, n, v, 0),
            struct.pack(f"<{n}Q", *self.reg_ids),
            struct.pack(f"<{n * v}Q", *flat),
        ))
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Blob:
        """Parse the binary form; ``BlobError`` names what is wrong with it."""
        data = bytes(data)
        if len(data) < HEADER_SIZE + CRC_SIZE:
            raise BlobError(f"blob truncated: {len(data)} bytes, a blob has at least "
                            f"{HEADER_SIZE + CRC_SIZE}")
        magic, fmt, abi, n, v, reserved = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BlobError(f"not an sdei-state blob: magic {magic!r}, expected {MAGIC!r}")
        if fmt != FORMAT_VERSION:
            raise BlobError(f"blob format version {fmt} is not supported "
                            f"(this library reads version {FORMAT_VERSION})")
        if abi != ABI_VERSION:
            raise BlobError(f"register ABI version {abi} is not supported "
                            f"(this library reads version {ABI_VERSION})")
        if reserved != 0:
            raise BlobError(f"reserved header field is {reserved:#x}, must be 0")
        want = blob_size(n, v)
        if len(data) != want:
            problem = "truncated" if len(data) < want else "has trailing bytes"
            raise BlobError(f"blob {problem}: {len(data)} bytes, but its header declares "
                            f"{n} registers x {v} vCPUs = {want} bytes")
        (stored,) = struct.unpack_from("<I", data, want - CRC_SIZE)
        actual = zlib.crc32(memoryview(data)[: want - CRC_SIZE])
        if stored != actual:
            raise BlobError(f"blob corrupted: CRC32 is {actual:#010x}, stored {stored:#010x}")
        reg_ids = struct.unpack_from(f"<{n}Q", data, HEADER_SIZE)
        flat = struct.unpack_from(f"<{n * v}Q", data, HEADER_SIZE + 8 * n)
        return cls(reg_ids, tuple(flat[i * n:(i + 1) * n] for i in range(v)), abi)

    # -- the declaration, as a reference implementation ------------------------------------

    def build_with_construct(self) -> bytes:
        """The binary form built by the construct declaration (slow; the reference)."""
        header = {"format_version": FORMAT_VERSION, "abi_version": self.abi_version,
                  "nr_regs": len(self.reg_ids), "nr_vcpus": len(self.rows)}
        body = {"header": header, "reg_ids": list(self.reg_ids),
                "rows": [list(r) for r in self.rows]}
        return bytes(BLOB.build({"body": {"value": body}}))

    @classmethod
    def parse_with_construct(cls, data: bytes) -> Blob:
        """Parse with the construct declaration (slow; the reference). Errors are BlobError."""
        from construct import ConstructError

        try:
            parsed = BLOB.parse(data)
        except ConstructError as e:
            raise BlobError(f"blob refused by its declaration: {e}") from None
        body = parsed.body.value
        return cls(tuple(body.reg_ids), tuple(tuple(r) for r in body.rows),
                   body.header.abi_version)

    # -- JSON ---------------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON form as Python objects: ids as hex strings, values as integers."""
        return {
            "format": JSON_FORMAT,
            "abi_version": self.abi_version,
            "registers": [f"{rid:#018x}" for rid in self.reg_ids],
            "vcpus": [list(row) for row in self.rows],
        }

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_json_obj(), indent=indent)

    @classmethod
    def from_json_obj(cls, obj: object) -> Blob:
        """Parse the JSON form (already decoded); ``BlobError`` names the offending key."""
        if not isinstance(obj, dict):
            raise BlobError(f"a JSON blob is an object, not {type(obj).__name__}")
        keys = {"format", "abi_version", "registers", "vcpus"}
        unknown = sorted(set(obj) - keys)
        if unknown:
            raise BlobError(f"unknown key {unknown[0]!r} in JSON blob")
        missing = sorted(keys - set(obj))
        if missing:
            raise BlobError(f"JSON blob lacks key {missing[0]!r}")
        if obj["format"] != JSON_FORMAT:
            raise BlobError(f"JSON blob format {obj['format']!r} is not supported "
                            f"(this library reads {JSON_FORMAT!r})")
        abi = obj["abi_version"]
        if not isinstance(abi, int) or isinstance(abi, bool):
            raise BlobError(f"abi_version = {abi!r} is not an integer")
        regs, rows = obj["registers"], obj["vcpus"]
        if not isinstance(regs, list):
            raise BlobError("'registers' is not a list")
        table = tuple(_json_id(i, r) for i, r in enumerate(regs))
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise BlobError("'vcpus' is not a list of lists of values")
        return cls(table, tuple(tuple(r) for r in rows), abi)

    @classmethod
    def from_json(cls, text: str | bytes) -> Blob:
        try:
            obj = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise BlobError(f"JSON blob is not valid JSON: {e}") from None
        return cls.from_json_obj(obj)


def _json_id(index: int, text: object) -> int:
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        try:
            return int(text, 0)
        except ValueError:
            pass
    raise BlobError(f"registers[{index}] = {text!r} is not a register id")


def format_table() -> str:
    """The binary layout as a Markdown table, generated from ``BLOB``."""
    rows = ["| offset | size | field | content |", "|---|---|---|---|"]
    off = 0
    for sub in HEADER.subcons:
        size = sub.sizeof()
        rows.append(f"| {off} | {size} | `{sub.name}` | {sub.docs} |")
        off += size
    body = BLOB.subcons[0].subcon.subcon  # "body" / RawCopy(Struct(...))
    for sub in body.subcons[1:]:
        size = "8 n" if sub.name == "reg_ids" else "8 n v"
        where = f"{off}" if sub.name == "reg_ids" else f"{off} + 8 n"
        rows.append(f"| {where} | {size} | `{sub.name}` | {sub.docs} |")
    crc = BLOB.subcons[1]
    rows.append(f"| {off} + 8 n (1 + v) | {crc.sizeof()} | `{crc.name}` | {crc.docs} |")
    return "\n".join(rows)
