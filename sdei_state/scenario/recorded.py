"""A reference-VMM record (``sdei_state.vmm.reference.record``) as a scenario, replayed
through the reference model.

``to_scenario`` turns the log into a DESIGN section 7 scenario (a file ``sdei-state replay``
runs) plus the results the real vCPUs produced; ``replay`` runs it on simulated vCPUs and
returns the steps whose results differ. The scenario sets each vCPU's registers to the
recorded ones before a dispatch, so the model computes the entry from the same inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..cpu import CONTEXT_GPRS
from ..vmm.reference.record import CallRecord, DispatchRecord, InjectRecord, Record
from .format import SCENARIO_FORMAT
from .replay import run

__all__ = ["Mismatch", "replay", "to_scenario"]


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


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
    doc = {"format": SCENARIO_FORMAT, "vcpus": nr_vcpus, "steps": steps,
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
    got = run(doc)["steps"]
    bad = [Mismatch(i, doc["steps"][i], g, w)
           for i, (g, w) in enumerate(zip(got, want, strict=True))
           if w is not None and g != w]
    return sum(w is not None for w in want), bad
