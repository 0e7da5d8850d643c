"""QEMU's migration stream, read for what it carries of each vCPU's registers.

A stream (QEMU ``migration/savevm.c``) starts with the magic ``QEVM`` and version 3; each
device state is a section with a header: a type byte (``QEMU_VM_SECTION_FULL`` = 4), a
big-endian 32-bit section id, the id string (length byte, then the string), a 32-bit
instance id and a 32-bit version. An arm64 vCPU is section ``cpu`` with instance id = the
vCPU index, and its ``vmstate_arm_cpu`` (``target/arm/machine.c``) holds the register list
QEMU took from ``KVM_GET_REG_LIST`` (every register but the core and SVE ones, ascending) as
``cpreg_vmstate_array_len`` (32-bit), then ``cpreg_vmstate_indexes`` and
``cpreg_vmstate_values`` (that many big-endian 64-bit words each).

``cpu_sections`` finds each ``cpu`` section header and, after it, the first place where a
length n is followed by n ascending arm64 ONE_REG ids of size U32 or U64 (QEMU carries no
other size in that list): the ids and the values after them. Guest RAM precedes the vCPU
sections in the stream, so only bytes inside a ``cpu`` section are considered.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import pairwise
from typing import Final

MAGIC: Final = b"QEVM"
VERSION: Final = 3
SECTION_FULL: Final = 4
CPU: Final = b"cpu"
MAX_REGS: Final = 4096
SEARCH: Final = 1 << 16
"""How far after a ``cpu`` header the arrays may start (the fields before them are a few
hundred bytes: core registers, the FP/SIMD state)."""


class StreamError(ValueError):
    """The bytes are not a QEMU stream with arm64 vCPU register lists; says why."""


@dataclass(frozen=True)
class CpuRegs:
    vcpu: int
    ids: tuple[int, ...]
    values: tuple[int, ...]

    def as_dict(self) -> dict[int, int]:
        return dict(zip(self.ids, self.values, strict=True))


def _is_reg_id(v: int) -> bool:
    return v >> 48 in (0x6020, 0x6030)  # KVM_REG_ARM64 | KVM_REG_SIZE_U32 / U64


def _arrays(data: bytes, start: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    end = min(len(data) - 4, start + SEARCH)
    for off in range(start, end):
        (n,) = struct.unpack_from(">i", data, off)
        if not 1 <= n <= MAX_REGS or off + 4 + 16 * n > len(data):
            continue
        first = struct.unpack_from(">Q", data, off + 4)[0]
        if not _is_reg_id(first):
            continue
        ids = struct.unpack_from(f">{n}Q", data, off + 4)
        if all(_is_reg_id(i) for i in ids) and all(a < b for a, b in pairwise(ids)):
            return ids, struct.unpack_from(f">{n}Q", data, off + 4 + 8 * n)
    return None


def cpu_sections(data: bytes) -> list[CpuRegs]:
    """The register list of every vCPU in the stream, by vCPU index."""
    if data[:4] != MAGIC or struct.unpack_from(">I", data, 4)[0] != VERSION:
        raise StreamError(f"not a QEMU migration stream (starts {data[:8].hex()}; "
                          f"expected {MAGIC.hex()} and version {VERSION})")
    found: dict[int, CpuRegs] = {}
    needle = bytes([len(CPU)]) + CPU
    pos = data.find(needle)
    while pos != -1:
        head = pos - 5
        if head >= 0 and data[head] == SECTION_FULL and pos + 4 + 8 <= len(data):
            instance = struct.unpack_from(">I", data, pos + 4)[0]
            got = _arrays(data, pos + 4 + 8)
            if got is not None and instance not in found:
                found[instance] = CpuRegs(instance, *got)
        pos = data.find(needle, pos + 1)
    if not found:
        raise StreamError("no cpu section with a register list in the stream")
    return [found[i] for i in sorted(found)]
