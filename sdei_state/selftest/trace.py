"""What a guest run did, and how it compares with the reference run of the same program.

The VMM loop records the same trace items on every engine (``Served``, ``Bell``, ``Injected``,
``Dispatched``), so a run on KVM compares item by item with the reference model's run
(``compare``), and the spec facts a suite checks read one ``VcpuRun`` whatever produced it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from ..cpu import CpuReg
from ..guest.doorbell import Bell, BellKind
from ..guest.layout import (
    FAULT_FIELDS,
    HANDLER_RECORDS,
    MAIN_RESULTS,
    RECORD_CALLS,
    RECORD_FIELDS,
    RECORD_SIZE,
    RESUME_RECORD,
    Layout,
)
from .programs.program import GuestProgram

FINAL_REGS: Final[tuple[CpuReg, ...]] = tuple(r for r in CpuReg if r is not CpuReg.SP)
"""Registers compared at the end of a run. SP is left out: the model's ``sp`` is SP_EL0 on
the simulated vCPU and the current SP over KVM; the records hold the SP the guest used."""


@dataclass(frozen=True, slots=True)
class Served:
    """The host served an SDEI call (KVM_EXIT_HYPERCALL)."""

    site: str | None
    """``GuestProgram.site_returning_to`` of the exit PC (None: no site of the program)."""
    function_id: int
    args: tuple[int, ...]
    """x1..x5 as read at the exit."""
    ret: int
    """Signed x0 as the guest sees it (0 for a completion that resumed a context)."""
    completed: int | None
    """Event number whose handler a successful COMPLETE / COMPLETE_AND_RESUME finished."""


@dataclass(frozen=True, slots=True)
class Injected:
    """The host injected ``event`` (``ok`` False: refused, not registered)."""

    event: int
    ok: bool


@dataclass(frozen=True, slots=True)
class Dispatched:
    """The entry check took an event: the vCPU now runs its handler."""

    event: int
    entry: int
    interrupted_pc: int
    interrupted_pstate: int


TraceItem = Served | Bell | Injected | Dispatched


@dataclass(frozen=True)
class VcpuRun:
    """What one vCPU did: the trace, its memslot and registers at the end."""

    program: GuestProgram
    trace: tuple[TraceItem, ...]
    memory: bytes
    regs: Mapping[CpuReg, int]
    finished: bool
    """True if it settled in the idle loop; False if it stopped at a terminal doorbell or
    where the caller asked (``Driver.run(until=...)``)."""
    engine: str = ""

    def bells(self, kind: BellKind | None = None) -> list[Bell]:
        """The doorbells rung, optionally of one kind, in order."""
        return [t for t in self.trace if isinstance(t, Bell) and (kind is None or t.kind is kind)]

    def served(self) -> list[Served]:
        """The hypercalls served, in order."""
        return [t for t in self.trace if isinstance(t, Served)]

    def dispatches(self) -> list[Dispatched]:
        """The dispatches the entry check made, in order."""
        return [t for t in self.trace if isinstance(t, Dispatched)]

    def main_results(self) -> list[int]:
        """x0 of main's calls as their doorbells carried them, by call index."""
        return [b.data for b in self.bells(BellKind.MAIN_CALL)]


# -- comparing a run with the reference run --------------------------------------------------

_REGIONS: Final = (("code", "base", "vectors"), ("vectors", "vectors", "handlers"),
                   ("handlers", "handlers", "alt_vectors"),
                   ("alt vectors", "alt_vectors", "alt_handlers"),
                   ("alt handlers", "alt_handlers", "code_end"),
                   ("results", "results", "stack_top"))


def where(layout: Layout, address: int, program: GuestProgram | None = None) -> str:
    """A guest address in words: ``handler 'sdei' record x3``, ``main result 4``, ``stack``."""
    off = address - layout.results
    if 0 <= off < HANDLER_RECORDS + 4 * RECORD_SIZE:
        def rec(base: int, what: str) -> str:
            o = off - base
            if o >= RECORD_CALLS:
                return f"{what} record, result of call {(o - RECORD_CALLS) // 8}"
            n = o // 8
            return f"{what} record {RECORD_FIELDS[n] if n < len(RECORD_FIELDS) else hex(o)}"

        if off < RESUME_RECORD:
            return f"main result {(off - MAIN_RESULTS) // 8}"
        if off < RESUME_RECORD + RECORD_SIZE:
            return rec(RESUME_RECORD, "resume stub")
        if off >= HANDLER_RECORDS:
            slot = (off - HANDLER_RECORDS) // RECORD_SIZE
            names = {h.slot: h.name for h in program.handlers} if program else {}
            return rec(HANDLER_RECORDS + slot * RECORD_SIZE,
                       f"handler {names.get(slot, slot)!r}")
        n = (off - 0x800) // 8
        if 0 <= n < len(FAULT_FIELDS):
            return f"fault record {FAULT_FIELDS[n]}"
    if layout.results + 0x2000 <= address < layout.stack_top:
        return "stack"
    for name, lo, hi in _REGIONS:
        if getattr(layout, lo) <= address < getattr(layout, hi):
            return name
    return "memory"


def _item(t: TraceItem) -> str:
    if isinstance(t, Served):
        done = f", completed event {t.completed:#x}" if t.completed is not None else ""
        return (f"call at {t.site} fn {t.function_id:#x} args "
                f"({', '.join(hex(a) for a in t.args)}) -> {t.ret}{done}")
    if isinstance(t, Dispatched):
        return (f"dispatch of event {t.event:#x} to {t.entry:#x} interrupting pc "
                f"{t.interrupted_pc:#x} pstate {t.interrupted_pstate:#x}")
    if isinstance(t, Injected):
        return f"injection of event {t.event:#x}: {'ok' if t.ok else 'refused'}"
    return f"doorbell {t}"


def compare(expected: VcpuRun, got: VcpuRun, sees: Callable[[TraceItem], bool], *,
            regs: bool = True) -> list[str]:
    """Differences between a run and the reference run of the same program: every trace
    item the engine can observe, in order, then the memslot word by word, then the final
    registers. Empty when they agree."""
    out: list[str] = []
    want = [t for t in expected.trace if sees(t)]
    have = list(got.trace)
    for n, (w, h) in enumerate(zip(want, have, strict=False)):
        if w != h:
            out.append(f"trace item {n}: got {_item(h)}; the model predicts {_item(w)}")
            break
    else:
        if len(want) != len(have):
            n = min(len(want), len(have))
            extra = (f"the model predicts more: {_item(want[n])}" if len(want) > n
                     else f"got more: {_item(have[n])}")
            out.append(f"trace: {len(have)} items, the model predicts {len(want)}; {extra}")
    lay = expected.program.layout
    a, b = expected.memory, got.memory
    if len(a) != len(b):
        out.append(f"memslot sizes differ: {len(b):#x} vs {len(a):#x}")
    else:
        for off in range(0, len(a), 8):
            if a[off:off + 8] != b[off:off + 8]:
                addr = lay.base + off
                gv = int.from_bytes(b[off:off + 8], "little")
                wv = int.from_bytes(a[off:off + 8], "little")
                out.append(f"memory at {addr:#x} ({where(lay, addr, expected.program)}): "
                           f"{gv:#x}, the model predicts {wv:#x}")
                break
    if regs:
        for r in FINAL_REGS:
            if expected.regs.get(r) != got.regs.get(r):
                out.append(f"final {r.key}: {got.regs.get(r, 0):#x}, the model predicts "
                           f"{expected.regs.get(r, 0):#x}")
                break
    return out
