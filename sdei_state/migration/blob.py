"""Migration blobs: every listed register of every vCPU of a VM, as bytes or as JSON.

A ``Blob`` is one register table and one row of values per vCPU; ``VcpuRegisters`` is one
vCPU's row as a mapping. Both refuse, with ``BlobError`` naming the vCPU, the register and the
value, anything a VM could not have held: an unusable table, a row of the wrong length, a value
that is not an unsigned integer of its register's width (``KVM_REG_SIZE(id)`` bytes). The
binary form (``to_bytes``/``from_bytes``) is declared in ``wire``; the JSON form
(``to_json``/``from_json``, for humans and checked-in vectors) in ``blob_json``.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import BlobError
from ..regs import ids
from ..state import U64_MAX
from . import blob_json, wire
from .blob_json import JSON_FORMAT
from .wire import (
    ABI_VERSION,
    BLOB,
    CRC_SIZE,
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC,
    IdTable,
    blob_size,
    format_table,
    id_table,
    reg_label,
    reg_words,
    table_words,
)

# The format's facts stay reachable here, where they were before the wire format had a module.
__all__ = ["ABI_VERSION", "BLOB", "CRC_SIZE", "FORMAT_VERSION", "HEADER_SIZE", "JSON_FORMAT",
           "MAGIC", "Blob", "VcpuRegisters", "blob_size", "format_table", "reg_words",
           "table_words", "value_problem"]

_U32_MAX: Final = 0xFFFF_FFFF
_INT_ONLY: Final = {int}


def value_problem(reg_id: int, value: object) -> str | None:
    """Why ``value`` cannot be the value of register ``reg_id`` (an unsigned 64-bit id), or
    None if it can: not an unsigned integer, above 64 bits for a register of at most 64 (one
    word carries it), or wider than the register's ``KVM_REG_SIZE``. The reason starts with
    the value (a wide one by its bit length): ``0x100000000 does not fit its 4-byte
    register``."""
    return _problem(value, 8 * ids.reg_size(reg_id))


def _problem(v: object, bits: int) -> str | None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0 or (bits <= 64 and v > U64_MAX):
        return f"{blob_json.shown(v)} is not an unsigned {max(bits, 64)}-bit value"
    if v >> bits:
        shown = f"{v:#x}" if bits <= 64 else f"a {v.bit_length()}-bit value"
        return f"{shown} does not fit its {bits // 8}-byte register"
    return None


def _check_row(where: str, reg_ids: Sequence[int], row: Sequence[int], table: IdTable) -> None:
    if len(row) != len(reg_ids):
        raise BlobError(f"{where} has {len(row)} values for a table of {len(reg_ids)} registers")
    # C-speed passes first (type, min, max over the one-word registers), then the few
    # registers that are not U64: they answer the common case for a 4,096-vCPU blob. Only a
    # row they reject is walked register by register for the message.
    ok = set(map(type, row)) == _INT_ONLY and min(row) >= 0
    if ok:
        upto64 = table.upto64(row) if table.not_u64 else row
        ok = (not upto64 or max(upto64) <= U64_MAX) and not any(
            row[col] >> bits for col, bits in table.not_u64)
    if not ok:
        for rid, v, bits in zip(reg_ids, row, table.bits, strict=True):
            problem = _problem(v, bits)
            if problem is not None:
                raise BlobError(f"{where}: {reg_label(rid)} = {problem}")


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
        table = id_table(self.reg_ids)
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
        table = id_table(self.reg_ids)
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
                        f"differs in {len(extra)} register(s), first {reg_label(extra[0])}")
                raise BlobError(f"vCPU {i} {what} than vCPU 0: a blob has one register table")
        return cls(table, tuple(r.row for r in vcpus))

    @property
    def nr_vcpus(self) -> int:
        return len(self.rows)

    @property
    def row_words(self) -> int:
        """64-bit words per vCPU row (``table_words(reg_ids)``)."""
        return id_table(self.reg_ids).row_words

    def vcpu(self, index: int) -> VcpuRegisters:
        """vCPU ``index``'s registers."""
        if not 0 <= index < len(self.rows):
            raise IndexError(f"vCPU {index} out of range 0..{len(self.rows) - 1}")
        return VcpuRegisters(self.reg_ids, self.rows[index])

    def vcpus(self) -> tuple[VcpuRegisters, ...]:
        return tuple(VcpuRegisters(self.reg_ids, row) for row in self.rows)
    # -- binary -------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The binary form (layout ``wire.BLOB``), packed with ``struct``."""
        return wire.pack(self.reg_ids, self.rows, self.abi_version)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Blob:
        """Parse the binary form; ``BlobError`` names what is wrong with it."""
        return cls(*wire.unpack(bytes(data)))

    def build_with_construct(self) -> bytes:
        """The binary form built by the construct declaration (slow; the reference)."""
        return wire.build_with_construct(self.reg_ids, self.rows, self.abi_version)

    @classmethod
    def parse_with_construct(cls, data: bytes) -> Blob:
        """Parse with the construct declaration (slow; the reference). Errors are BlobError."""
        return cls(*wire.parse_with_construct(data)[:3])

    # -- JSON ---------------------------------------------------------------------------

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON form as Python objects (``blob_json``): ids as hex strings, values as
        integers of their register's width (a U128 value is one integer up to 2**128 - 1)."""
        return blob_json.to_obj(self.reg_ids, self.rows, self.abi_version)

    def to_json(self, *, indent: int | None = None) -> str:
        return blob_json.dumps(self.to_json_obj(), indent=indent)

    @classmethod
    def from_json_obj(cls, obj: object) -> Blob:
        """Parse the JSON form (already decoded); ``BlobError`` names the offending key."""
        return cls(*blob_json.from_obj(obj))

    @classmethod
    def from_json(cls, text: str | bytes) -> Blob:
        """Parse the JSON text (UTF-8 bytes or str); ``BlobError`` names what is wrong, within
        the limits of ``blob_json.loads``."""
        return cls.from_json_obj(blob_json.loads(text))
