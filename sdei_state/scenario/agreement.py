"""Backends in agreement: the same scenarios replayed on two backends give the same results.

What is compared, per scenario: every step's result object, and for every vCPU at the end
its ``cpu`` object and the registers a simulated vCPU lists except the firmware ones (core
registers, the 47 SDEI registers, SCTLR_EL1 and VBAR_EL1). The firmware registers are left
out because their values are the host's, not the scenario's (the workaround levels are what
the CPU needs; PSCI_VERSION and the bitmaps are the kernel's); a real vCPU's many other
system registers are not part of any scenario.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import SdeiStateError
from ..regs import sdei as sdei_regs
from ..vcpu.sim import CORE_IDS, SYS_IDS
from .format import parse
from .replay import Runner

_COMPARED: Final = frozenset(f"{r:#018x}" for r in (*CORE_IDS, *SYS_IDS,
                                                     *sdei_regs.SDEI_REG_IDS))


@dataclass
class Agreement:
    """How many scenarios and steps were compared, and every difference found."""

    scenarios: int = 0
    steps: int = 0
    mismatches: list[str] = field(default_factory=list)

    def summary(self, a: str, b: str) -> str:
        return (f"{a} vs {b}: {self.scenarios} scenarios, {self.steps} steps, "
                f"{len(self.mismatches)} mismatches")


def comparable(result: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a result document two backends must agree on (module docstring)."""
    return {"steps": result["steps"],
            "final": [{"vcpu": f["vcpu"], "cpu": f["cpu"],
                       "registers": {k: v for k, v in f["registers"].items() if k in _COMPARED}}
                      for f in result["final"]]}


def first_difference(want: Mapping[str, Any], got: Mapping[str, Any]) -> str | None:
    """Where ``got`` first differs from ``want`` (both ``comparable``), or None."""
    for i, (w, g) in enumerate(zip(want["steps"], got["steps"], strict=True)):
        if w != g:
            return f"step {i}: {g} (expected {w})"
    for w, g in zip(want["final"], got["final"], strict=True):
        for part in ("cpu", "registers"):
            for k in sorted(set(w[part]) | set(g[part])):
                if w[part].get(k) != g[part].get(k):
                    return (f"final vCPU {w['vcpu']} {part} {k}: {g[part].get(k)!r} "
                            f"(expected {w[part].get(k)!r})")
    return None


def replay(doc: object, factory: Callable[[int], Any] | None) -> dict[str, Any]:
    runner = Runner(parse(doc), factory)
    try:
        return runner.run()
    finally:
        runner.close()


def agree(docs: Iterable[tuple[str, object]], reference: Callable[[int], Any] | None,
          other: Callable[[int], Any]) -> Agreement:
    """Replay every (name, scenario) on both VM factories (None: simulated) and compare."""
    out = Agreement()
    for name, doc in docs:
        out.scenarios += 1
        want = comparable(replay(doc, reference))
        out.steps += len(want["steps"])
        try:
            got = comparable(replay(doc, other))
        except SdeiStateError as e:
            out.mismatches.append(f"{name}: {e}")
            continue
        diff = first_difference(want, got)
        if diff is not None:
            out.mismatches.append(f"{name}: {diff}")
    return out
