"""The binary blob's wire format: the construct declaration and the ``struct`` fast path.

The layout is declared once, with construct (``BLOB``): a header (magic, format version,
register-ABI version, counts), the register id table once, one row of 64-bit words per vCPU,
in format version 2 a list of tagged sections (the vGIC, guest memory, the vCPUs' power
states: ``sections``), and a
CRC32 over everything before it. A blob without sections is written as version 1, byte for
byte what this library wrote before sections existed. A register of any KVM size (U8 .. U2048) takes
``max(1, KVM_REG_SIZE(id) / 8)`` little-endian words of its row, low word first (a U128
FP/SIMD register two, an SVE Z register (U2048) 32); the header's ``row_words`` is their sum, so
the declaration sizes the rows without reading the table. ``IdTable`` is the fast path derived
from the same layout (a row struct built from the id table); a property test proves both agree.
``format_table`` writes the declaration out as the Markdown table of docs/migration.md.
"""

from __future__ import annotations

import functools
import operator
import struct
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from construct import (
    Array,
    Bytes,
    Check,
    Checksum,
    Const,
    If,
    Int16ul,
    Int32ul,
    Int64ul,
    OneOf,
    Padding,
    PrefixedArray,
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
"""Version of the container layout below without sections (vCPU registers only)."""
FORMAT_VERSION_SECTIONS: Final = 2
"""Version of the container layout with sections after the rows (a whole-VM snapshot)."""
ABI_VERSION: Final = 1
"""Version of the register ABI the values follow (DESIGN section 4: SDEI block 0x0100-0x01FF)."""
_MAX_SIZE_FIELD: Final = int(ids.RegSize.U2048)


def reg_words(reg_id: int) -> int:
    """64-bit words register ``reg_id`` takes in a row: ``max(1, KVM_REG_SIZE(id) / 8)``
    (from the size field alone, like the kernel macro; the table check refuses sizes above
    U2048)."""
    return max(1, (1 << ((reg_id & ids.KVM_REG_SIZE_MASK) >> ids.KVM_REG_SIZE_SHIFT)) // 8)


def table_words(reg_ids: Sequence[int]) -> int:
    """64-bit words per row for a register table (the header's ``row_words``)."""
    return sum(reg_words(rid) for rid in reg_ids)


# The header, declared once: (name, construct field, struct code, what it holds). ``HEADER``
# and the fast path's ``HEADER_STRUCT`` are both built from this list.
_HEADER_FIELDS: Final = (
    ("magic", Const(MAGIC), "8s", f"the bytes {MAGIC.decode()!r}"),
    ("format_version", OneOf(Int16ul, (FORMAT_VERSION, FORMAT_VERSION_SECTIONS)), "H",
     f"container layout version: {FORMAT_VERSION} (vCPU registers only) or "
     f"{FORMAT_VERSION_SECTIONS} (followed by sections)"),
    ("abi_version", Int16ul, "H", f"register ABI version of the values, {ABI_VERSION}"),
    ("nr_regs", Int32ul, "I", "n: registers per vCPU (>= 1)"),
    ("nr_vcpus", Int32ul, "I", "v: vCPUs (>= 1)"),
    ("row_words", Int32ul, "I",
     "w: 64-bit words per row, the sum over the table of max(1, KVM_REG_SIZE(id) / 8) "
     "(w = n when no register is wider than 64 bits); must match the table"),
)

HEADER: Final = Struct(*(name / field * doc for name, field, _, doc in _HEADER_FIELDS))

SECTION: Final = Struct(
    "tag" / Bytes(4) * "what the payload is: b'VGIC' (the vGICv3), b'MEMR' (one memslot) or "
                          "b'MPST' (the vCPUs' power states)",
    "reserved" / Const(0, Int32ul),
    "length" / Int64ul * "payload bytes",
    "payload" / Bytes(this.length) * "declared in sdei_state.migration.sections",
    Padding(lambda ctx: -ctx.length % 8) * "zeros to the next multiple of 8",
)
"""One section of a version-2 blob: a tag, its length, its payload, padding to 8 bytes."""
SECTION_HEAD: Final = struct.Struct("<4sIQ")

BLOB: Final = Struct(
    "body" / RawCopy(Struct(
        "header" / HEADER,
        "reg_ids" / Array(this.header.nr_regs, Int64ul)
        * "register id table, in the source vCPU's KVM_GET_REG_LIST order",
        Check(lambda ctx: ctx.header.row_words == table_words(ctx.reg_ids)),
        "rows" / Array(this.header.nr_vcpus, Array(this.header.row_words, Int64ul))
        * "one row per vCPU: each register of the table in table order, in max(1, "
          "KVM_REG_SIZE(id) / 8) little-endian words, low word first",
        "sections" / If(this.header.format_version == FORMAT_VERSION_SECTIONS,
                        PrefixedArray(Int32ul, SECTION))
        * "version 2 only: a u32 count, then each section (tag, 4 zero bytes, u64 length, "
          "payload, zero padding to 8 bytes)",
    )),
    "crc32" / Checksum(Int32ul, lambda data: zlib.crc32(data), this.body.data)
    * "CRC32 (zlib) of every byte before it",
    Terminated,
)
"""The binary blob, little-endian. Parser, builder and documentation of the format."""

HEADER_STRUCT: Final = struct.Struct("<" + "".join(code for _, _, code, _ in _HEADER_FIELDS))
HEADER_SIZE: Final = HEADER_STRUCT.size
CRC_SIZE: Final = 4
assert HEADER.sizeof() == HEADER_SIZE  # the fast path and the declaration share one layout


def blob_size(nr_regs: int, nr_vcpus: int, row_words: int | None = None) -> int:
    """Bytes of a blob of ``nr_vcpus`` rows of ``nr_regs`` registers taking ``row_words``
    64-bit words (default ``nr_regs``: none wider than 64 bits): 8 per word per vCPU, plus the
    id table (8 per register) and 28 bytes of header and checksum once."""
    w = nr_regs if row_words is None else row_words
    return HEADER_SIZE + 8 * nr_regs + 8 * w * nr_vcpus + CRC_SIZE


def reg_label(reg_id: int) -> str:
    """A register as error messages name it: its macro expression and its id."""
    return f"{ids.describe(reg_id)} ({reg_id:#018x})"


def picker(cols: Sequence[int]) -> Callable[[Sequence[int]], tuple[int, ...]]:
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
class IdTable:
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


_INT_ONLY: Final = frozenset({int})


@functools.lru_cache(maxsize=64)
def _cached_table(reg_ids: tuple[int, ...]) -> IdTable:
    """Validate a register table once (every vCPU of a VM shares one)."""
    check_id_table(reg_ids)
    bits = tuple(8 * ids.reg_size(rid) for rid in reg_ids)
    words = tuple(reg_words(rid) for rid in reg_ids)
    return IdTable(
        index=MappingProxyType({rid: i for i, rid in enumerate(reg_ids)}),
        bits=bits,
        not_u64=tuple((i, b) for i, b in enumerate(bits) if b != 64),
        wide=tuple((i, b) for i, b in enumerate(bits) if b > 64),
        upto64=picker([i for i, b in enumerate(bits) if b <= 64]),
        row_words=sum(words),
        row=struct.Struct(_row_format(words)),
    )


def id_table(reg_ids: tuple[int, ...]) -> IdTable:
    """The validated table of ``reg_ids`` (``BlobError`` if unusable), cached for plain ints."""
    last = _last_table
    if last is not None and reg_ids is last[0]:  # the same tuple again (a transport's list)
        return last[1]
    if not _INT_ONLY.issuperset(map(type, reg_ids)):  # bools and others: never from the cache
        check_id_table(reg_ids)
    table = _cached_table(reg_ids)
    _remember(reg_ids, table)
    return table


def _remember(reg_ids: tuple[int, ...], table: IdTable) -> None:
    # One tuple, swapped in whole, so a reader in another thread sees a matching pair; it
    # holds the ids, so their id() cannot be reused by another tuple while it is here.
    global _last_table
    _last_table = (reg_ids, table)


_last_table: tuple[tuple[int, ...], IdTable] | None = None


def check_id_table(reg_ids: Sequence[int]) -> None:
    """Refuse an empty table, a non-u64 id, a duplicate or a size above U2048 (``BlobError``)."""
    if not reg_ids:
        raise BlobError("the register table is empty")
    seen: set[int] = set()
    for i, rid in enumerate(reg_ids):
        if isinstance(rid, bool) or not isinstance(rid, int) or not 0 <= rid <= U64_MAX:
            raise BlobError(f"register id #{i} = {rid!r} is not an unsigned 64-bit id")
        if rid in seen:
            raise BlobError(f"register {reg_label(rid)} appears twice in the register table")
        seen.add(rid)
        size_field = (rid & ids.KVM_REG_SIZE_MASK) >> ids.KVM_REG_SIZE_SHIFT
        if size_field > _MAX_SIZE_FIELD:
            raise BlobError(
                f"register {reg_label(rid)} has size field {size_field} ({ids.reg_size(rid)} "
                "bytes): KVM sizes are U8 .. U2048 (0 .. 8)"
            )


def split_words(row: Sequence[int], words: Sequence[int]) -> list[int]:
    """A row of values as its 64-bit words, each value low word first (the declaration's
    view of a row)."""
    out: list[int] = []
    for value, k in zip(row, words, strict=True):
        out.extend((value >> (64 * j)) & U64_MAX for j in range(k))
    return out


def join_words(words_row: Sequence[int], words: Sequence[int]) -> tuple[int, ...]:
    """The inverse of ``split_words``: each register's words, low first, as one value."""
    out: list[int] = []
    pos = 0
    for k in words:
        out.append(sum(words_row[pos + j] << (64 * j) for j in range(k)))
        pos += k
    return tuple(out)


Section = tuple[bytes, bytes]
"""(tag, payload) of one section."""
SECTION_TAGS: Final = (b"VGIC", b"MEMR", b"MPST")


def pack_sections(sections: Sequence[Section]) -> bytes:
    """The sections part of a version-2 body (layout ``SECTION``, after the u32 count)."""
    out = [struct.pack("<I", len(sections))]
    for tag, payload in sections:
        out += [SECTION_HEAD.pack(tag, 0, len(payload)), payload, bytes(-len(payload) % 8)]
    return b"".join(out)


def pack(reg_ids: tuple[int, ...], rows: Sequence[Sequence[int]], abi_version: int,
         sections: Sequence[Section] = ()) -> bytes:
    """The binary form of a validated table and rows (layout ``BLOB``), packed with ``struct``;
    version 1 without sections, 2 with."""
    table = id_table(reg_ids)
    fmt = FORMAT_VERSION_SECTIONS if sections else FORMAT_VERSION
    body = b"".join((
        HEADER_STRUCT.pack(MAGIC, fmt, abi_version, len(reg_ids), len(rows), table.row_words),
        struct.pack(f"<{len(reg_ids)}Q", *reg_ids),
        *map(table.pack_row, rows),
        pack_sections(sections) if sections else b"",
    ))
    return body + struct.pack("<I", zlib.crc32(body))


def unpack(data: bytes) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int]:
    """(register ids, rows, ABI version) of a version-1 binary blob; ``BlobError`` names what
    is wrong with the container (a version-2 blob is read by ``unpack_sections``). The values
    are checked by whoever builds a blob of them."""
    reg_ids, rows, abi, _ = _unpack(data, sections=False)
    return reg_ids, rows, abi


def unpack_sections(data: bytes) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...], int,
                                          tuple[Section, ...]]:
    """(register ids, rows, ABI version, sections) of a blob of either version (a version-1
    blob has no sections)."""
    return _unpack(data, sections=True)


def _unpack(data: bytes, *, sections: bool) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...],
                                                     int, tuple[Section, ...]]:
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise BlobError(f"blob truncated: {len(data)} bytes, a blob has at least "
                        f"{HEADER_SIZE + CRC_SIZE}")
    magic, fmt, abi, n, v, w = HEADER_STRUCT.unpack_from(data)
    if magic != MAGIC:
        raise BlobError(f"not an sdei-state blob: magic {magic!r}, expected {MAGIC!r}")
    known = (FORMAT_VERSION, FORMAT_VERSION_SECTIONS) if sections else (FORMAT_VERSION,)
    if fmt not in known:
        hint = (" (a whole-VM snapshot with sections: read it with VmSnapshot.from_bytes)"
                if fmt == FORMAT_VERSION_SECTIONS else "")
        raise BlobError(f"blob format version {fmt} is not supported here{hint} (this reads "
                        f"version {' and '.join(map(str, known))})")
    if abi != ABI_VERSION:
        raise BlobError(f"register ABI version {abi} is not supported "
                        f"(this library reads version {ABI_VERSION})")
    want = blob_size(n, v, w)
    rows_end = want - CRC_SIZE
    if fmt == FORMAT_VERSION_SECTIONS:
        want = len(data)  # the sections' lengths say where it ends; checked below
        if len(data) < rows_end + 4 + CRC_SIZE:
            raise BlobError(f"blob truncated: {len(data)} bytes, but its header declares "
                            f"{n} registers x {v} vCPUs and a section count "
                            f"({rows_end + 4 + CRC_SIZE} bytes at least)")
    if len(data) != want:
        problem = "truncated" if len(data) < want else "has trailing bytes"
        raise BlobError(f"blob {problem}: {len(data)} bytes, but its header declares "
                        f"{n} registers ({w} words per row) x {v} vCPUs = {want} bytes")
    (stored,) = struct.unpack_from("<I", data, len(data) - CRC_SIZE)
    view = memoryview(data)
    actual = zlib.crc32(view[: len(data) - CRC_SIZE])
    if stored != actual:
        raise BlobError(f"blob corrupted: CRC32 is {actual:#010x}, stored {stored:#010x}")
    reg_ids = struct.unpack_from(f"<{n}Q", data, HEADER_SIZE)
    table = id_table(reg_ids)
    if w != table.row_words:
        raise BlobError(f"header row_words is {w}, but the register table of {n} "
                        f"registers takes {table.row_words} 64-bit words per row")
    start = HEADER_SIZE + 8 * n
    found: tuple[Section, ...] = ()
    if fmt == FORMAT_VERSION_SECTIONS:
        found = _unpack_sections(view, rows_end, len(data) - CRC_SIZE)
    return reg_ids, table.unpack_rows(view[start:rows_end]), abi, found


def _unpack_sections(view: memoryview, pos: int, end: int) -> tuple[Section, ...]:
    (count,) = struct.unpack_from("<I", view, pos)
    pos += 4
    out: list[Section] = []
    for i in range(count):
        if pos + SECTION_HEAD.size > end:
            raise BlobError(f"blob truncated: section {i} of {count} has no room for its head")
        tag, reserved, length = SECTION_HEAD.unpack_from(view, pos)
        pos += SECTION_HEAD.size
        if tag not in SECTION_TAGS:
            raise BlobError(f"section {i}: unknown tag {bytes(tag)!r} (known: "
                            f"{', '.join(map(repr, SECTION_TAGS))})")
        padded = length + (-length % 8)
        if reserved or pos + padded > end:
            raise BlobError(f"section {i} ({tag.decode()}): " + (
                f"reserved field {reserved:#x} is not 0" if reserved else
                f"{length} bytes of payload run past the end of the blob"))
        if any(view[pos + length:pos + padded]):
            raise BlobError(f"section {i} ({tag.decode()}): padding is not zeros")
        out.append((bytes(tag), bytes(view[pos:pos + length])))
        pos += padded
    if pos != end:
        raise BlobError(f"blob has trailing bytes: {end - pos} after its {count} sections")
    return tuple(out)


def build_with_construct(reg_ids: Sequence[int], rows: Sequence[Sequence[int]],
                         abi_version: int, sections: Sequence[Section] = ()) -> bytes:
    """The binary form built by the construct declaration (slow; the reference)."""
    words = [reg_words(rid) for rid in reg_ids]
    header = {"format_version": FORMAT_VERSION_SECTIONS if sections else FORMAT_VERSION,
              "abi_version": abi_version,
              "nr_regs": len(reg_ids), "nr_vcpus": len(rows), "row_words": sum(words)}
    body = {"header": header, "reg_ids": list(reg_ids),
            "rows": [split_words(row, words) for row in rows],
            "sections": [{"tag": t, "length": len(p), "payload": p} for t, p in sections]}
    return bytes(BLOB.build({"body": {"value": body}}))


def parse_with_construct(data: bytes, *, sections: bool = False) -> tuple[
        tuple[int, ...], tuple[tuple[int, ...], ...], int, tuple[Section, ...]]:
    """(register ids, rows, ABI version, sections) parsed by the construct declaration (slow;
    the reference); a version-2 blob only with ``sections``. Errors are ``BlobError``."""
    from construct import ConstructError

    try:
        parsed = BLOB.parse(data)
    except ConstructError as e:
        raise BlobError(f"blob refused by its declaration: {e}") from None
    body = parsed.body.value
    if body.header.format_version != FORMAT_VERSION and not sections:
        raise BlobError(f"blob format version {body.header.format_version} is refused by the "
                        "declaration of a blob without sections")
    reg_ids = tuple(body.reg_ids)
    id_table(reg_ids)  # refuse a bad table before reading rows by it
    words = [reg_words(rid) for rid in reg_ids]
    found = tuple((bytes(s.tag), bytes(s.payload)) for s in (body.sections or ()))
    return (reg_ids, tuple(join_words(row, words) for row in body.rows),
            body.header.abi_version, found)


def format_table() -> str:
    """The binary layout as a Markdown table, generated from ``BLOB``."""
    rows = ["| offset | size | field | content |", "|---|---|---|---|"]
    off = 0
    for sub in HEADER.subcons:
        size = sub.sizeof()
        rows.append(f"| {off} | {size} | `{sub.name}` | {sub.docs} |")
        off += size
    body = BLOB.subcons[0].subcon.subcon  # "body" / RawCopy(Struct(...))
    places = {"reg_ids": (f"{off}", "8 n"), "rows": (f"{off} + 8 n", "8 w v"),
              "sections": (f"{off} + 8 (n + w v)", "s")}
    for sub in body.subcons[1:]:
        if sub.name is None:  # the Check that row_words matches the table: not a field
            continue
        where, size = places[sub.name]
        rows.append(f"| {where} | {size} | `{sub.name}` | {sub.docs} |")
    crc = BLOB.subcons[1]
    rows.append(f"| {off} + 8 (n + w v) + s | {crc.sizeof()} | `{crc.name}` | {crc.docs} |")
    return "\n".join(rows)
