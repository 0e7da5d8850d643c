"""The VMM's record of SDEI traffic, and its replay through the reference model.

``RecordingProvider`` is the provider with a log: every SDEI call a vCPU makes (function,
x1-x5, and x0-x3 as the guest sees them afterwards), every event its entry check takes (the
interrupted context the handler will return to, VBAR_EL1 and SCTLR_EL1 as dispatch read them,
and the entry registers), every hypervisor injection and every migration. Each entry is
logged while the machine's lock is held, so the log's order is the order the machine saw.

``tally`` counts a record; ``to_json``/``from_json`` carry one to another process. Turning a
record into a scenario and replaying it through the model is ``sdei_state.scenario.recorded``
(the scenario layer sits above this one).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ... import spec
from ...cpu import CpuReg
from ...events import SW_SIGNALED, Event
from ...kvm.exits import Exit, HypercallExit
from ...machine import CallOutcome
from ..provider import SdeiProvider

_ARGS: Final = (CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5)
_OUT: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3)
_ENTRY: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.PC, CpuReg.PSTATE,
                 CpuReg.VBAR_EL1, CpuReg.SCTLR_EL1)
"""x0-x3, PC, PSTATE on entry to the handler (``DispatchRecord.entry``), then VBAR, SCTLR."""
_SCTLR: Final = (CpuReg.SCTLR_EL1,)
MAX_RECORDS: Final = 1 << 20
"""A guest that makes more calls than this stops being recorded (``overflowed``)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    vcpu: int
    function_id: int
    args: tuple[int, ...]
    out: tuple[int, int, int, int]
    """x0 (unsigned), x1, x2, x3 after the call."""
    sctlr: int | None = None
    """SCTLR_EL1 at the call, for COMPLETE_AND_RESUME (its PSTATE depends on it)."""


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    vcpu: int
    event: int
    context: tuple[int, ...]
    """The interrupted x0..x17, PC, PSTATE."""
    vbar: int
    sctlr: int
    entry: tuple[int, ...]
    """x0, x1, x2, x3, PC, PSTATE on entry to the handler."""


@dataclass(frozen=True, slots=True)
class InjectRecord:
    vcpu: int
    event: int
    ok: bool


@dataclass(frozen=True, slots=True)
class MigrateRecord:
    pass


Record = CallRecord | DispatchRecord | InjectRecord | MigrateRecord


class RecordingProvider(SdeiProvider):
    """``SdeiProvider`` that logs its traffic (``records``)."""

    def __init__(self, nr_vcpus: int, **kwargs: Any) -> None:
        super().__init__(nr_vcpus, **kwargs)
        self.records: list[Record] = []
        self.overflowed = False
        self._guard = threading.Lock()

    def _log(self, r: Record) -> None:
        with self._guard:
            if len(self.records) < MAX_RECORDS:
                self.records.append(r)
            else:
                self.overflowed = True

    def before_run(self, index: int) -> Event | None:
        with self.machine.lock:
            ev = super().before_run(index)
            if ev is not None:
                ctx = self.machine.state(index).contexts[ev.priority]
                got = self.cpu(index).read(_ENTRY)
                self._log(DispatchRecord(index, ev.number, (*ctx.x, ctx.pc, ctx.pstate),
                                         got[CpuReg.VBAR_EL1], got[CpuReg.SCTLR_EL1],
                                         tuple(got.values())[:6]))
            return ev

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        if not isinstance(exit_, HypercallExit) or not spec.in_sdei_block(exit_.nr):
            return super().handle_exit(index, exit_)
        cpu = self.cpu(index)
        fid = exit_.nr & 0xFFFF_FFFF
        with self.machine.lock:
            args = tuple(cpu.read(_ARGS).values())
            sctlr = cpu.read(_SCTLR)[CpuReg.SCTLR_EL1] \
                if fid == spec.Function.EVENT_COMPLETE_AND_RESUME else None
            out = super().handle_exit(index, exit_)
            x = cpu.read(_OUT)
            self._log(CallRecord(index, fid, args,
                                 (x[CpuReg.X0], x[CpuReg.X1], x[CpuReg.X2], x[CpuReg.X3]), sctlr))
            return out

    def inject(self, index: int, number: int) -> bool:
        with self.machine.lock:
            ok = super().inject(index, number)
            self._log(InjectRecord(index, number, ok))
            return ok

    def note_migration(self) -> None:
        """The VM was saved and restored here (the replay migrates its simulated VM too)."""
        self._log(MigrateRecord())


@dataclass(frozen=True)
class Tally:
    """Per vCPU, from the host's record: event 0 made pending there (successful SIGNALs
    aimed at it, successful injections of event 0) and its handler entries, per event."""

    signalled: tuple[int, ...]
    entered: tuple[Counter[int], ...]
    calls: Counter[int]
    """Calls by function id (all vCPUs)."""


def tally(nr_vcpus: int, records: Iterable[Record],
          vcpu_of_mpidr: Callable[[int], int | None]) -> Tally:
    """Count the record; ``vcpu_of_mpidr(mpidr)`` maps a SIGNAL target to its vCPU."""
    signalled = [0] * nr_vcpus
    entered: list[Counter[int]] = [Counter() for _ in range(nr_vcpus)]
    calls: Counter[int] = Counter()
    for r in records:
        if isinstance(r, CallRecord):
            calls[r.function_id] += 1
            if r.function_id == spec.Function.EVENT_SIGNAL and r.out[0] == 0:
                target = vcpu_of_mpidr(r.args[1])
                if target is not None:
                    signalled[target] += 1
        elif isinstance(r, DispatchRecord):
            entered[r.vcpu][r.event] += 1
        elif isinstance(r, InjectRecord) and r.ok and r.event == SW_SIGNALED.number:
            signalled[r.vcpu] += 1
    return Tally(tuple(signalled), tuple(entered), calls)


__all__ = ["CallRecord", "DispatchRecord", "InjectRecord", "MigrateRecord", "Record",
           "RecordingProvider", "Tally", "from_json", "tally", "to_json"]


def to_json(records: Iterable[Record]) -> list[dict[str, Any]]:
    """The record as JSON values (each with its ``kind``), for handing a run to another
    process."""
    out: list[dict[str, Any]] = []
    for r in records:
        d: dict[str, Any] = {"kind": type(r).__name__}
        for name in r.__slots__:
            v = getattr(r, name)
            d[name] = list(v) if isinstance(v, tuple) else v
        out.append(d)
    return out


def from_json(items: Sequence[dict[str, Any]]) -> list[Record]:
    """``to_json``'s inverse; ValueError naming the entry for anything else."""
    kinds: dict[str, Callable[..., Record]] = {
        c.__name__: c for c in (CallRecord, DispatchRecord, InjectRecord, MigrateRecord)}
    out: list[Record] = []
    for i, d in enumerate(items):
        cls = kinds.get(d.get("kind", "")) if isinstance(d, dict) else None
        if cls is None:
            raise ValueError(f"record entry {i}: unknown kind {d!r:.60}")
        try:
            args = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()
                    if k != "kind"}
            out.append(cls(**args))
        except TypeError as e:
            raise ValueError(f"record entry {i}: {e}") from None
    return out
