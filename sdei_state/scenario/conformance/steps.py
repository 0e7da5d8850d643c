"""The script builder of the conformance scenarios, and the value it builds.

A ``Script`` collects scenario steps (DESIGN section 7) and, with each, the result that step
must give, so that a step and its expectation sit on one line of a scenario and the step index
of an expectation cannot drift. ``Script.build`` freezes both into a ``Conformance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .oracle import SUCCESS, reg_id

# -- the value type ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Conformance:
    """One named conformance scenario with its hand-written expectations.

    ``expect`` maps a step index to the fields its result must have (a partial result object);
    ``final_expect`` maps ``[vcpuN:]NAME`` to a value, NAME being a register name of
    ``REG_IDS`` (or a hex id) read from ``final[N].registers``, or ``cpu.<field>`` read from
    ``final[N].cpu``; N defaults to 0.
    """

    name: str
    doc: str
    """One line: what the scenario covers."""
    scenario: Mapping[str, Any]
    """The scenario document (``sdei-state/scenario/1``)."""
    expect: Mapping[int, Mapping[str, Any]]
    final_expect: Mapping[str, int]


# -- the builder ------------------------------------------------------------------------------

RegRef = str | int
"""A register as an oracle name (``oracle.REG_IDS``) or an id."""


class Script:
    """Collects steps and, with each, its expectation."""

    def __init__(self, vcpus: int = 1) -> None:
        self.vcpus = vcpus
        self.steps: list[dict[str, Any]] = []
        self.expect: dict[int, dict[str, Any]] = {}

    def _add(self, step: dict[str, Any], want: dict[str, Any], note: str | None) -> None:
        if note:
            step["comment"] = note
        self.expect[len(self.steps)] = want
        self.steps.append(step)

    def cpu(self, v: int, *, x: Mapping[int, int] | None = None, note: str | None = None,
            **regs: int) -> None:
        """Set emulated CPU registers (``x`` by number; sp, pc, pstate, ... by keyword)."""
        body: dict[str, Any] = dict(regs)
        if x:
            body["x"] = {str(k): val for k, val in sorted(x.items())}
        self._add({"vcpu": v, "cpu": body}, {}, note)

    def call(self, v: int, fn: str | int, *args: int, ret: int, note: str | None = None) -> None:
        """An SDEI call that returns: x0 = ``ret`` (signed), x1..x3 = 0 (DESIGN section 5)."""
        step: dict[str, Any] = {"vcpu": v, "call": fn}
        if args:
            step["args"] = list(args)
        self._add(step, {"x0": ret, "x1": 0, "x2": 0, "x3": 0}, note)

    def complete(self, v: int, fn: str, *args: int, x: tuple[int, int, int, int],
                 note: str | None = None) -> None:
        """A successful COMPLETE / COMPLETE_AND_RESUME: x0..x3 of the restored context."""
        step: dict[str, Any] = {"vcpu": v, "call": fn}
        if args:
            step["args"] = list(args)
        x0 = x[0] - (1 << 64) if x[0] >> 63 else x[0]
        self._add(step, {"x0": x0, "x1": x[1], "x2": x[2], "x3": x[3]}, note)

    def dispatch(self, v: int, taken: int, *, pc: int, pstate: int, x1: int, x2: int, x3: int,
                 note: str | None = None) -> None:
        """A dispatch check that enters a handler: x0 = event number, x1 = ep_arg, x2/x3 =
        interrupted PC/PSTATE, PC = entry point, PSTATE = handler-entry PSTATE."""
        self._add({"vcpu": v, "dispatch": True},
                  {"taken": taken, "pc": pc, "pstate": pstate, "x0": taken, "x1": x1, "x2": x2,
                   "x3": x3}, note)

    def no_dispatch(self, v: int, *, pc: int, pstate: int, x0: int | None = None,
                    note: str | None = None) -> None:
        """A dispatch check that takes nothing: PC and PSTATE (and x0 if given) unchanged."""
        want: dict[str, Any] = {"taken": None, "pc": pc, "pstate": pstate}
        if x0 is not None:
            want["x0"] = x0
        self._add({"vcpu": v, "dispatch": True}, want, note)

    def inject(self, v: int, number: int, *, ok: bool, note: str | None = None) -> None:
        self._add({"vcpu": v, "inject": number}, {"ok": ok}, note)

    def set_reg(self, v: int, reg: RegRef, value: int, *, errno: str | None = None,
                note: str | None = None) -> None:
        self._add({"vcpu": v, "set_reg": {"id": f"{reg_id(reg):#018x}", "value": value}},
                  {"errno": errno}, note)

    def get_reg(self, v: int, reg: RegRef, value: int | None = None, *,
                errno: str | None = None, note: str | None = None) -> None:
        if (value is None) == (errno is None):
            raise ValueError("get_reg expects exactly one of value and errno")
        want: dict[str, Any] = {"value": value} if errno is None else {"errno": errno}
        self._add({"vcpu": v, "get_reg": f"{reg_id(reg):#018x}"}, want, note)

    def migrate(self, note: str | None = None) -> None:
        self._add({"migrate": True}, {}, note)

    def build(self, name: str, doc: str, final: Mapping[str, int] | None = None) -> Conformance:
        doc_obj = {"format": "sdei-state/scenario/1", "description": doc, "vcpus": self.vcpus,
                   "steps": self.steps}
        return Conformance(name, doc, doc_obj, MappingProxyType(dict(self.expect)),
                           MappingProxyType(dict(final or {})))


def arm(s: Script, v: int, event: int, ep: int, arg: int, *, unmask: bool = True,
        flags: int = 0) -> None:
    """Common setup: register (absolute), enable, and unmask on one vCPU."""
    s.call(v, "EVENT_REGISTER", event, ep, arg, flags, 0, ret=SUCCESS)
    s.call(v, "EVENT_ENABLE", event, ret=SUCCESS)
    if unmask:
        s.call(v, "PE_UNMASK", ret=SUCCESS)
