"""Migration blobs: every listed register of every vCPU of a VM, as bytes or as JSON.

The binary layout is declared once, with construct (``BLOB``): a header (magic, format
version, register-ABI version, counts), the register id table once, one row of 64-bit words
per vCPU, and a CRC32 over everything before it. A register of any KVM size (U8 .. U2048)
takes ``max(1, KVM_REG_SIZE(id) / 8)`` little-endian words of its row, low word first (a U128
FP/SIMD register two, an SVE Z register (U2048) 32); the header's
``row_words`` is their sum, so the declaration sizes the rows without reading the table.
``Blob.to_bytes``/``Blob.from_bytes`` are a ``struct`` fast path derived from the same
layout (a row struct built from the id table); a property test proves both agree. The JSON
form (``Blob.to_json``/``Blob.from_json``) carries the same content for humans and checked-in
vectors, values as integers of their register's width. Anything unusable is refused with
``BlobError`` naming the problem.
"""

from __future__ import annotations

import functools
import json
import operator
import struct
import zlib
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from construct import (
    Array,
    Check,
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

_MAX_SIZE_FIELD: Final = int(ids.RegSize.U2048)
_U32_MAX: Final = 0xFFFF_FFFF
_INT_ONLY: Final = {int}


def reg_words(reg_id: int) -> int:
    """64-bit words register ``reg_id`` takes in a row: ``max(1, KVM_REG_SIZE(id) / 8)``
    (from the size field alone, like the kernel macro; the table check refuses sizes above
    U2048)."""
    return max(1, (1 << ((reg_id & ids.KVM_REG_SIZE_MASK) >> ids.KVM_REG_SIZE_SHIFT)) // 8)


def table_words(reg_ids: Sequence[int]) -> int:
    """64-bit words per row for a register table (the header's ``row_words``)."""
    return sum(reg_words(rid) for rid in reg_ids)


# The header, declared once: (name, construct field, struct code, what it holds). ``HEADER``
# and the fast path's ``_HEADER`` are both built from this list.
_HEADER_FIELDS: Final = (
    ("magic", Const(MAGIC), "8s", f"the bytes {MAGIC.decode()!r}"),
    ("format_version", Const(FORMAT_VERSION, Int16ul), "H",
     f"container layout version, {FORMAT_VERSION}"),
    ("abi_version", Int16ul, "H", f"register ABI version of the values, {ABI_VERSION}"),
    ("nr_regs", Int32ul, "I", "n: registers per vCPU (>= 1)"),
    ("nr_vcpus", Int32ul, "I", "v: vCPUs (>= 1)"),
    ("row_words", Int32ul, "I",
     "w: 64-bit words per row, the sum over the table of max(1, KVM_REG_SIZE(id) / 8) "
     "(w = n when no register is wider than 64 bits); must match the table"),
)

HEADER: Final = Struct(*(name / field * doc for name, field, _, doc in _HEADER_FIELDS))

BLOB: Final = Struct(
    "body" / RawCopy(Struct(
        "header" / HEADER,
        "reg_ids" / Array(this.header.nr_regs, Int64ul)
        * "register id table, in the source vCPU's KVM_GET_REG_LIST order",
        Check(lambda ctx: ctx.header.row_words == table_words(ctx.reg_ids)),
        "rows" / Array(this.header.nr_vcpus, Array(this.header.row_words, Int64ul))
        * "one row per vCPU: each register of the table in table order, in max(1, "
          "KVM_REG_SIZE(id) / 8) little-endian words, low word first",
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


def blob_size(nr_regs: int, nr_vcpus: int, row_words: int | None = None) -> int:
    """Bytes of a blob of ``nr_vcpus`` rows of ``nr_regs`` registers taking ``row_words``
    64-bit words (default ``nr_regs``: none wider than 64 bits): 8 per word per vCPU, plus the
    id table (8 per register) and 28 bytes of header and checksum once."""
    w = nr_regs if row_words is None else row_words
    return HEADER_SIZE + 8 * nr_regs + 8 * w * nr_vcpus + CRC_SIZE


def _name(reg_id: int) -> str:
    return f"{ids.describe(reg_id)} ({reg_id:#018x})"


def _picker(cols: Sequence[int]) -> Callable[[Sequence[int]], tuple[int, ...]]:
    """A C-speed ``row -> tuple of row[c] for c in cols``."""
    if len(cols) == 1:
        (c,) = cols
        return lambda row: (row[c],)
    if not cols:
        return lambda row: ()
    return operator.itemgetter(*cols)


def _row_format(words: Sequence[int]) -> str:
    """The struct format of one row: ``Q`` per one-word register, ``<8k>s`` per wide one
    (its k little-endian words, low first, are the value's little-endian bytes), runs
    merged (``91Q``)."""
    parts: list[str] = []
    run = 0
    for k in words:
        if k == 1:
            run += 1
            continue
        if run:
            parts.append(f"{run}Q")
            run = 0
        parts.append(f"{8 * k}s")
    if run:
        parts.append(f"{run}Q")
    return "<" + "".join(parts)


@dataclass(frozen=True, slots=True)
class _Table:
    """What a validated register table needs at run time: id -> column, the width of each
    column, and the row struct of the fast path."""

    index: Mapping[int, int]
    bits: tuple[int, ...]
    """Width in bits of each column's register."""
    not_u64: tuple[tuple[int, int], ...]
    """(column, bits) of registers narrower or wider than 64 bits."""
    wide: tuple[tuple[int, int], ...]
    """(column, bits) of registers wider than 64 bits."""
    upto64: Callable[[Sequence[int]], tuple[int, ...]]
    """Picks the values of the registers of at most 64 bits from a row."""
    row_words: int
    row: struct.Struct

    def pack_row(self, row: Sequence[int]) -> bytes:
        """One row of values as its bytes (a wide value as its little-endian bytes)."""
        if not self.wide:
            return self.row.pack(*row)
        vals: list[int | bytes] = list(row)
        for col, bits in self.wide:
            vals[col] = row[col].to_bytes(bits // 8, "little")
        return self.row.pack(*vals)

    def unpack_rows(self, data: memoryview) -> tuple[tuple[int, ...], ...]:
        """Every row of ``data`` (a whole number of rows) as values."""
        rows = self.row.iter_unpack(data)
        if not self.wide:
            return tuple(rows)
        out: list[tuple[int, ...]] = []
        for raw in rows:
            vals = list(raw)
            for col, _ in self.wide:
                vals[col] = int.from_bytes(vals[col], "little")
            out.append(tuple(vals))
        return tuple(out)


@functools.lru_cache(maxsize=64)
def _table(reg_ids: tuple[int, ...]) -> _Table:
    """Validate a register table once (every vCPU of a VM shares one)."""
    _check_id_table(reg_ids)
    bits = tuple(8 * ids.reg_size(rid) for rid in reg_ids)
    words = tuple(reg_words(rid) for rid in reg_ids)
    return _Table(
        index=MappingProxyType({rid: i for i, rid in enumerate(reg_ids)}),
        bits=bits,
        not_u64=tuple((i, b) for i, b in enumerate(bits) if b != 64),
        wide=tuple((i, b) for i, b in enumerate(bits) if b > 64),
        upto64=_picker([i for i, b in enumerate(bits) if b <= 64]),
        row_words=sum(words),
        row=struct.Struct(_row_format(words)),
    )


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
        size_field = (rid & ids.KVM_REG_SIZE_MASK) >> ids.KVM_REG_SIZE_SHIFT
        if size_field > _MAX_SIZE_FIELD:
            raise BlobError(
                f"register {_name(rid)} has size field {size_field} ({ids.reg_size(rid)} "
                "bytes): KVM sizes are U8 .. U2048 (0 .. 8)"
            )


def value_problem(reg_id: int, value: object) -> str | None:
    """Why ``value`` cannot be the value of register ``reg_id`` (an unsigned 64-bit id), or
    None if it can: not an unsigned integer, above 64 bits for a register of at most 64 (one
    word carries it), or wider than the register's ``KVM_REG_SIZE``. The reason starts with
    the value (a wide one by its bit length): ``0x100000000 does not fit its 4-byte
    register``."""
    return _problem(value, 8 * ids.reg_size(reg_id))


def _problem(v: object, bits: int) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (bits <= 64 and v > U64_MAX):
        return f"{v!r} is not an unsigned {max(bits, 64)}-bit value"
    if v >> bits:
        shown = f"{v:#x}" if bits <= 64 else f"a {v.bit_length()}-bit value"
        return f"{shown} does not fit its {bits // 8}-byte register"
    return None


def _check_row(where: str, reg_ids: Sequence[int], row: Sequence[int], table: _Table) -> None:
    if len(row) != len(reg_ids):
        raise BlobError(f"{where} has {len(row)} values for a table of {len(reg_ids)} registers")
    # C-speed passes first (type, min, max over the one-word registers), then the few
    # registers that are not U64: they answer the common case for a 4,096-vCPU blob. Only a
    # row they reject is walked register by register for the message.
    ok = set(map(type, row)) == _INT_ONLY and min(row) >= 0
    if ok:
        upto64 = table.upto64(row)
        ok = (not upto64 or max(upto64) <= U64_MAX) and not any(
            row[col] >> bits for col, bits in table.not_u64)
    if not ok:
        for rid, v, bits in zip(reg_ids, row, table.bits, strict=True):
            problem = _problem(v, bits)
            if problem is not None:
                raise BlobError(f"{where}: {_name(rid)} = {problem}")


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
        _check_row("the vCPU", self.reg_ids, self.row, table)
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
    """Every register of every vCPU of a VM: one register table, one row of values per vCPU.

    Values are unsigned integers of their register's width (``KVM_REG_SIZE(id)`` bytes)."""

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
        if max(len(self.rows), len(self.reg_ids), table.row_words) > _U32_MAX:
            raise BlobError("too many vCPUs, registers or words per row for the 32-bit counts "
                            "of the format")
        for i, row in enumerate(self.rows):
            if not isinstance(row, tuple):
                raise BlobError(f"vCPU {i}: a row is a tuple of values")
            _check_row(f"vCPU {i}", self.reg_ids, row, table)

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

    @property
    def row_words(self) -> int:
        """64-bit words per vCPU row (``table_words(reg_ids)``)."""
        return _table_of(self.reg_ids).row_words

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
        table = _table_of(self.reg_ids)
        body = b"".join((
            _HEADER.pack(MAGIC, FORMAT_VERSION, self.abi_version, n, v, table.row_words),
            struct.pack(f"<{n}Q", *self.reg_ids),
            *map(table.pack_row, self.rows),
        ))
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Blob:
        """Parse the binary form; ``BlobError`` names what is wrong with it."""
        data = bytes(data)
        if len(data) < HEADER_SIZE + CRC_SIZE:
            raise BlobError(f"blob truncated: {len(data)} bytes, a blob has at least "
                            f"{HEADER_SIZE + CRC_SIZE}")
        magic, fmt, abi, n, v, w = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BlobError(f"not an sdei-state blob: magic {magic!r}, expected {MAGIC!r}")
        if fmt != FORMAT_VERSION:
            raise BlobError(f"blob format version {fmt} is not supported "
                            f"(this library reads version {FORMAT_VERSION})")
        if abi != ABI_VERSION:
            raise BlobError(f"register ABI version {abi} is not supported "
                            f"(this library reads version {ABI_VERSION})")
        want = blob_size(n, v, w)
        if len(data) != want:
            problem = "truncated" if len(data) < want else "has trailing bytes"
            raise BlobError(f"blob {problem}: {len(data)} bytes, but its header declares "
                            f"{n} registers ({w} words per row) x {v} vCPUs = {want} bytes")
        (stored,) = struct.unpack_from("<I", data, want - CRC_SIZE)
        view = memoryview(data)
        actual = zlib.crc32(view[: want - CRC_SIZE])
        if stored != actual:
            raise BlobError(f"blob corrupted: CRC32 is {actual:#010x}, stored {stored:#010x}")
        reg_ids = struct.unpack_from(f"<{n}Q", data, HEADER_SIZE)
        table = _table_of(reg_ids)
        if w != table.row_words:
            raise BlobError(f"header row_words is {w}, but the register table of {n} "
                            f"registers takes {table.row_words} 64-bit words per row")
        start = HEADER_SIZE + 8 * n
        return cls(reg_ids, table.unpack_rows(view[start: want - CRC_SIZE]), abi)

    # -- the declaration, as a reference implementation ------------------------------------

    def build_with_construct(self) -> bytes:
        """The binary form built by the construct declaration (slow; the reference)."""
        words = [reg_words(rid) for rid in self.reg_ids]
        header = {"format_version": FORMAT_VERSION, "abi_version": self.abi_version,
                  "nr_regs": len(self.reg_ids), "nr_vcpus": len(self.rows),
                  "row_words": sum(words)}
        body = {"header": header, "reg_ids": list(self.reg_ids),
                "rows": [_split(row, words) for row in self.rows]}
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
        reg_ids = tuple(body.reg_ids)
        _table_of(reg_ids)  # refuse a bad table before reading rows by it
        words = [reg_words(rid) for rid in reg_ids]
        return cls(reg_ids, tuple(_join(row, words) for row in body.rows),
                   body.header.abi_version)

    # -- JSON ---------------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON form as Python objects: ids as hex strings, values as integers of their
        register's width (a U128 value is one integer up to 2**128 - 1)."""
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


def _split(row: Sequence[int], words: Sequence[int]) -> list[int]:
    """A row of values as its 64-bit words, each value low word first (the declaration's
    view of a row)."""
    out: list[int] = []
    for value, k in zip(row, words, strict=True):
        out.extend((value >> (64 * j)) & U64_MAX for j in range(k))
    return out


def _join(words_row: Sequence[int], words: Sequence[int]) -> tuple[int, ...]:
    """The inverse of ``_split``: each register's words, low first, as one value."""
    out: list[int] = []
    pos = 0
    for k in words:
        out.append(sum(words_row[pos + j] << (64 * j) for j in range(k)))
        pos += k
    return tuple(out)


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
    places = {"reg_ids": (f"{off}", "8 n"), "rows": (f"{off} + 8 n", "8 w v")}
    for sub in body.subcons[1:]:
        if sub.name is None:  # the Check that row_words matches the table: not a field
            continue
        where, size = places[sub.name]
        rows.append(f"| {where} | {size} | `{sub.name}` | {sub.docs} |")
    crc = BLOB.subcons[1]
    rows.append(f"| {off} + 8 (n + w v) | {crc.sizeof()} | `{crc.name}` | {crc.docs} |")
    return "\n".join(rows)
