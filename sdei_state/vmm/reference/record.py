"""The VMM's record of SDEI traffic, and its replay through the reference model.

``RecordingProvider`` is the provider with a log: every SDEI call a vCPU makes (function,
x1-x5, and x0-x3 as the guest sees them afterwards), every event its entry check takes (the
interrupted context the handler will return to, VBAR_EL1 and SCTLR_EL1 as dispatch read them,
and the entry registers), every hypervisor injection and every migration. Each entry is
logged while the machine's lock is held, so the log's order is the order the machine saw.

``to_scenario`` turns the log into a DESIGN section 7 scenario (a file ``sdei-state replay``
runs) plus the results the real vCPUs produced; ``replay`` runs it on simulated vCPUs and
returns the steps whose results differ. The scenario sets each vCPU's registers to the
recorded ones before a dispatch, so the model computes the entry from the same inputs.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ... import scenario, spec
from ...cpu import CONTEXT_GPRS, CpuReg
from ...events import SW_SIGNALED, Event
from ...kvm.exits import Exit, HypercallExit
from ...machine import CallOutcome
from ..provider import SdeiProvider

_ARGS: Final = (CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5)
_OUT: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3)
_ENTRY: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.PC, CpuReg.PSTATE,
                 CpuReg.VBAR_EL1, CpuReg.SCTLR_EL1)
MAX_RECORDS: Final = 1 << 20
"""A guest that makes more calls than this stops being recorded (``overflowed``)."""


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


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
                vals = self.cpu(index).read(_ENTRY)
                self._log(DispatchRecord(index, ev.number, (*ctx.x, ctx.pc, ctx.pstate),
                                         vals[6], vals[7], vals[:6]))
            return ev

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        if not isinstance(exit_, HypercallExit) or not spec.in_sdei_block(exit_.nr):
            return super().handle_exit(index, exit_)
        cpu = self.cpu(index)
        fid = exit_.nr & 0xFFFF_FFFF
        with self.machine.lock:
            args = cpu.read(_ARGS)
            sctlr = cpu.read((CpuReg.SCTLR_EL1,))[0] \
                if fid == spec.Function.EVENT_COMPLETE_AND_RESUME else None
            out = super().handle_exit(index, exit_)
            x = cpu.read(_OUT)
            self._log(CallRecord(index, fid, args, (x[0], x[1], x[2], x[3]), sctlr))
            return out

    def inject(self, index: int, number: int) -> bool:
        with self.machine.lock:
            ok = super().inject(index, number)
            self._log(InjectRecord(index, number, ok))
            return ok

    def note_migration(self) -> None:
        """The VM was saved and restored here (the replay migrates its simulated VM too)."""
        self._log(MigrateRecord())


def to_scenario(nr_vcpus: int, records: Iterable[Record]) -> tuple[dict[str, Any],
                                                                   list[dict[str, Any] | None]]:
    """The scenario for ``records`` and, per step, the result the real run produced (None
    for steps that only set registers)."""
    steps: list[dict[str, Any]] = []
    want: list[dict[str, Any] | None] = []
    for r in records:
        if isinstance(r, CallRecord):
            if r.sctlr is not None:
                steps.append({"vcpu": r.vcpu, "cpu": {"sctlr_el1": r.sctlr}})
                want.append(None)
            steps.append({"vcpu": r.vcpu, "call": r.function_id, "args": list(r.args)})
            want.append({"x0": _signed(r.out[0]), "x1": r.out[1], "x2": r.out[2],
                         "x3": r.out[3]})
        elif isinstance(r, DispatchRecord):
            x = {str(i): v for i, v in enumerate(r.context[:len(CONTEXT_GPRS)])}
            steps.append({"vcpu": r.vcpu, "cpu": {
                "x": x, "pc": r.context[-2], "pstate": r.context[-1], "vbar_el1": r.vbar,
                "sctlr_el1": r.sctlr}})
            want.append(None)
            steps.append({"vcpu": r.vcpu, "dispatch": True})
            e = r.entry
            want.append({"taken": r.event, "pc": e[4], "pstate": e[5], "x0": e[0], "x1": e[1],
                         "x2": e[2], "x3": e[3]})
        elif isinstance(r, InjectRecord):
            steps.append({"vcpu": r.vcpu, "inject": r.event})
            want.append({"ok": r.ok})
        else:
            steps.append({"migrate": True})
            want.append({})
    doc = {"format": scenario.SCENARIO_FORMAT, "vcpus": nr_vcpus, "steps": steps,
           "description": "recorded by the reference VMM"}
    return doc, want


@dataclass(frozen=True)
class Mismatch:
    step: int
    request: dict[str, Any]
    got: dict[str, Any]
    want: dict[str, Any]

    def __str__(self) -> str:
        return (f"step {self.step} {self.request}: the model gives {self.got}, the VM gave "
                f"{self.want}")


def replay(nr_vcpus: int, records: Sequence[Record]) -> tuple[int, list[Mismatch]]:
    """Run the record through the reference model; (steps compared, mismatches)."""
    doc, want = to_scenario(nr_vcpus, records)
    got = scenario.run(doc)["steps"]
    bad = [Mismatch(i, doc["steps"][i], g, w)
           for i, (g, w) in enumerate(zip(got, want, strict=True))
           if w is not None and g != w]
    return sum(w is not None for w in want), bad


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


__all__ = ["CallRecord", "DispatchRecord", "InjectRecord", "MigrateRecord",
           "Mismatch", "Record", "RecordingProvider", "Tally", "from_json", "replay", "tally",
           "to_json", "to_scenario"]


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
