"""Where the selftest guest keeps its code, data, stack and doorbell, and the result records.

One memslot of ``mem_size`` bytes at ``base`` (GPA 0x40000000, as in the lab) holds::

    base + 0x0000  main program (entry point) and the resume stub
    base + 0x2000  exception vector table: VBAR_EL1 (2 KiB aligned, 16 entries x 0x80)
    base + 0x2800  SDEI handlers (primary region: vectors + 0x800)
    base + 0x4000  second vector table (used when a program switches VBAR_EL1)
    base + 0x4800  handlers of the alternate region (alt_vectors + 0x800)
    base + 0x8000  result area (records below), zeroed by the host before the first run
    base + 0xA000  stack, growing down from stack_top = base + 0x10000

The doorbell window lies outside every memslot, so a store there is a KVM_EXIT_MMIO (see
``doorbell``). 64 KiB is a multiple of every arm64 host page size (4K/16K/64K), as a memslot
must be.

A *record* is the block one handler (or the resume stub) fills: x0..x17 as found on entry,
then SP, NZCV, DAIF, CurrentEL, SPSel, ELR_EL1 and SPSR_EL1 as read with ``mrs``, an entry
count, and from +0x100 the x0 result of each SDEI call it makes. ``RECORD_FIELDS`` declares it
once; the program generator stores by it and ``Record.parse`` reads by it.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .a64 import EncodeError

MEMSLOT_GRANULE: Final = 0x10000
"""Memslot sizes and addresses must be host-page aligned; 64 KiB covers every arm64 page size."""

MAX_MAIN_CALLS: Final = 128
MAX_SLOTS: Final = 4
"""Handler records (one per handler of a program)."""
MAX_RECORD_CALLS: Final = 96
"""SDEI calls one handler or the resume stub may make (results at record + 0x100)."""

RECORD_FIELDS: Final = (
    *(f"x{n}" for n in range(18)),
    "sp", "nzcv", "daif", "currentel", "spsel", "elr_el1", "spsr_el1", "count",
)
"""The u64 fields at the start of a record, in order (offset = 8 * position)."""
RECORD_CALLS: Final = 0x100
RECORD_SIZE: Final = RECORD_CALLS + 8 * MAX_RECORD_CALLS  # 0x400

FAULT_FIELDS: Final = ("vector", "esr_el1", "elr_el1", "far_el1", "spsr_el1", "count")
"""The fault record an exception vector fills: the entry's address, then the syndrome."""

# Offsets in the result area.
MAIN_RESULTS: Final = 0x000
RESUME_RECORD: Final = 0x400
FAULT_RECORD: Final = 0x800
HANDLER_RECORDS: Final = 0x1000
RESULTS_USED: Final = HANDLER_RECORDS + MAX_SLOTS * RECORD_SIZE  # 0x2000

PSTATE_OBSERVABLE: Final = 0xF000_0000 | 0x3C0 | 0xC | 0x1
"""The PSTATE bits a record shows (NZCV, DAIF, EL, SP): compare a model PSTATE masked by this."""


def record_offset(name: str) -> int:
    """Byte offset of a record field (``x3``, ``daif``, ``count`` ...)."""
    try:
        return 8 * RECORD_FIELDS.index(name)
    except ValueError:
        raise KeyError(f"no record field {name!r} (have {', '.join(RECORD_FIELDS)})") from None


def fault_offset(name: str) -> int:
    """Byte offset of a fault-record field."""
    try:
        return 8 * FAULT_FIELDS.index(name)
    except ValueError:
        raise KeyError(f"no fault-record field {name!r} (have {', '.join(FAULT_FIELDS)})") from None


class LayoutError(EncodeError):
    """A layout that cannot work: overlap, misalignment, doorbell inside the memslot."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Guest physical addresses of every region (defaults: the lab's layout above)."""

    base: int = 0x4000_0000
    mem_size: int = 0x1_0000
    vectors: int = 0x4000_2000
    handlers: int = 0x4000_2800
    alt_vectors: int = 0x4000_4000
    alt_handlers: int = 0x4000_4800
    code_end: int = 0x4000_6000
    results: int = 0x4000_8000
    stack_top: int = 0x4001_0000
    doorbell: int = 0x1000_0000
    doorbell_span: int = 0x8000
    """4096 doorbell codes of 8 bytes: ``str xt, [xn, #8*code]`` reaches them all."""

    def __post_init__(self) -> None:
        for name in ("base", "mem_size", "vectors", "handlers", "alt_vectors", "alt_handlers",
                     "code_end", "results", "stack_top", "doorbell", "doorbell_span"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 48:
                raise LayoutError(f"layout.{name} = {v!r} is not a 48-bit guest address")
        for name, align in (("base", MEMSLOT_GRANULE), ("mem_size", MEMSLOT_GRANULE),
                            ("vectors", 0x800), ("alt_vectors", 0x800), ("handlers", 16),
                            ("alt_handlers", 16), ("results", 8), ("stack_top", 16),
                            ("doorbell", 8), ("doorbell_span", 8)):
            v = getattr(self, name)
            if v % align:
                raise LayoutError(f"layout.{name} = {v:#x} is not {align:#x}-aligned")
        order = (("base", self.base), ("vectors", self.vectors), ("handlers", self.handlers),
                 ("alt_vectors", self.alt_vectors), ("alt_handlers", self.alt_handlers),
                 ("code_end", self.code_end), ("results", self.results),
                 ("results + used", self.results + RESULTS_USED),
                 ("stack_top", self.stack_top), ("base + mem_size", self.end))
        for (n1, a1), (n2, a2) in itertools.pairwise(order):
            if a1 > a2:
                raise LayoutError(f"layout.{n1} = {a1:#x} lies above layout.{n2} = {a2:#x}")
        if self.handlers - self.vectors < 0x800 or self.alt_handlers - self.alt_vectors < 0x800:
            raise LayoutError("a vector table (0x800 bytes) overlaps the handlers after it")
        if self.handlers - self.vectors != self.alt_handlers - self.alt_vectors:
            raise LayoutError("handlers and alt_handlers must lie at the same offset from "
                              "their vector tables (relative-mode programs rely on it)")
        lo, hi = self.doorbell, self.doorbell + self.doorbell_span
        if lo < self.end and self.base < hi:
            raise LayoutError(f"doorbell window {lo:#x}..{hi:#x} overlaps the memslot "
                              f"{self.base:#x}..{self.end:#x}: its stores would not exit")

    @property
    def end(self) -> int:
        """First address past the memslot."""
        return self.base + self.mem_size

    @property
    def entry(self) -> int:
        """Initial PC: the main program starts at the memslot base."""
        return self.base

    def handler_record(self, slot: int) -> int:
        """Address of handler slot ``slot``'s record."""
        if not 0 <= slot < MAX_SLOTS:
            raise LayoutError(f"handler slot {slot} outside 0..{MAX_SLOTS - 1}")
        return self.results + HANDLER_RECORDS + slot * RECORD_SIZE

    @property
    def resume_record(self) -> int:
        """Address of the resume stub's record."""
        return self.results + RESUME_RECORD

    @property
    def fault_record(self) -> int:
        """Address of the fault record the vectors fill."""
        return self.results + FAULT_RECORD

    def main_result(self, index: int) -> int:
        """Address where main stores x0 after its call ``index``."""
        if not 0 <= index < MAX_MAIN_CALLS:
            raise LayoutError(f"main call {index} outside 0..{MAX_MAIN_CALLS - 1}")
        return self.results + MAIN_RESULTS + 8 * index

    def in_memslot(self, address: int, size: int = 1) -> bool:
        """True if ``size`` bytes at ``address`` lie inside the memslot."""
        return self.base <= address and address + size <= self.end


LAYOUT: Final = Layout()
"""The default layout (the lab's GPA 0x40000000, doorbell at 0x10000000)."""


Mem = bytes | bytearray | memoryview
"""A copy of (or a view on) the memslot, from its base."""


def _u64s(mem: Mem, layout: Layout, addr: int, n: int) -> tuple[int, ...]:
    if not layout.in_memslot(addr, 8 * n):
        raise ValueError(f"{addr:#x}+{8 * n:#x} is outside the memslot")
    off = addr - layout.base
    if len(mem) < off + 8 * n:
        raise ValueError(f"guest memory of {len(mem):#x} bytes does not reach {addr + 8 * n:#x}")
    return struct.unpack_from(f"<{n}Q", mem, off)


@dataclass(frozen=True, slots=True)
class Record:
    """A handler's (or the resume stub's) record, read back from guest memory."""

    x: tuple[int, ...]
    """x0..x17 as the code found them on entry."""
    sp: int
    nzcv: int
    daif: int
    currentel: int
    spsel: int
    elr_el1: int
    spsr_el1: int
    count: int
    """How many times the code was entered."""
    calls: tuple[int, ...]
    """x0 after each SDEI call, in program order."""

    @property
    def pstate(self) -> int:
        """PSTATE as far as ``mrs`` shows it (the ``PSTATE_OBSERVABLE`` bits)."""
        return self.nzcv | self.daif | self.currentel | self.spsel

    @classmethod
    def parse(cls, mem: Mem, layout: Layout, address: int,
              ncalls: int) -> Record:
        """Read the record at ``address`` from ``mem``, a copy of the memslot from its base."""
        if not 0 <= ncalls <= MAX_RECORD_CALLS:
            raise ValueError(f"ncalls = {ncalls} outside 0..{MAX_RECORD_CALLS}")
        v = _u64s(mem, layout, address, len(RECORD_FIELDS))
        calls = _u64s(mem, layout, address + RECORD_CALLS, ncalls) if ncalls else ()
        sp, nzcv, daif, currentel, spsel, elr, spsr, count = v[18:]
        return cls(tuple(v[:18]), sp, nzcv, daif, currentel, spsel, elr, spsr, count, calls)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """What an exception vector saw (all zero while no unexpected exception happened)."""

    vector: int
    """Address of the vector entry taken."""
    esr_el1: int
    elr_el1: int
    far_el1: int
    spsr_el1: int
    count: int

    @classmethod
    def parse(cls, mem: Mem, layout: Layout) -> FaultRecord:
        """Read the fault record from a copy of the memslot."""
        vector, esr, elr, far, spsr, count = _u64s(mem, layout, layout.fault_record,
                                                   len(FAULT_FIELDS))
        return cls(vector, esr, elr, far, spsr, count)


def main_results(mem: Mem, layout: Layout, n: int) -> Sequence[int]:
    """x0 after each of main's first ``n`` calls, as the guest stored them."""
    return _u64s(mem, layout, layout.main_result(0), n) if n else ()
