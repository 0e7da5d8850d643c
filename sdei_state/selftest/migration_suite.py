"""The ``migration`` suite: stop a VM while a handler runs, save everything, restore into a
new VM, and the handler completes there with the right context.

Each case runs a guest program until a doorbell inside the handler (or, for the masked case,
while an event is pending), saves every register of the vCPU with
``sdei_state.migration.save_vm`` (core and system registers, firmware registers, and the SDEI
block: from the userspace provider on KVM, from the simulated vCPU elsewhere), builds a new VM,
restores with ``restore_vm`` (preflight first), copies guest memory and goes on. The whole
trace, memory and final registers must equal the reference model's *uninterrupted* run: a
migration must not change anything the guest sees. The saved SDEI registers must hold the
state the handler was in, and the program's own spec facts must hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..guest.doorbell import BellKind
from ..regs import firmware
from ..regs import sdei as sdei_regs
from ..state import HandlerState, handler_entry_pstate
from .core import Case, CheckFailed, Suite, expect_eq
from .programs.catalog import PROGRAMS
from .programs.program import EP_ARG_BASE, HANDLER_FILL_BASE, IDLE_X
from .scenarios import MigrateStep, RunStep, ScenarioRun, at_bell, checked, single
from .sdei_suites import (
    IDLE_PSTATE,
    _complete_and_resume,
    _complete_restores,
    _critical_preempts_normal,
    _event_context,
    _masked_until_unmask,
)

RUN: Final = int(HandlerState.ENABLED_RUNNING)
PENDING_BIT: Final = 1 << 3


def saved(out: ScenarioRun, name: str, vcpu: int = 0) -> int:
    """A register of the migration blob, by short name (``SDEI_CONTEXT(0, 3)``)."""
    if not out.migrations:
        raise CheckFailed("the scenario did not migrate")
    blob = out.migrations[0].blob
    rid = sdei_regs.SDEI_REG_BY_NAME[name].id if name.startswith("SDEI_") else {
        "PSCI_VERSION": firmware.PSCI_VERSION, "STD_BMAP": firmware.STD_BMAP}[name]
    regs = blob.vcpu(vcpu)
    if rid not in regs:
        raise CheckFailed(f"the blob lacks {name} ({rid:#018x}): not everything was saved")
    return regs[rid]


def _carried_firmware(out: ScenarioRun) -> None:
    saved(out, "PSCI_VERSION")
    expect_eq("saved STD_BMAP bit 1 (SDEI on)", saved(out, "STD_BMAP") >> 1 & 1, 1)


def _context(out: ScenarioRun, c: int, x: Sequence[int], pc: int, pstate: int) -> None:
    for r, v in enumerate(x):
        expect_eq(f"saved SDEI_CONTEXT({c}, {r})", saved(out, f"SDEI_CONTEXT({c}, {r})"), v)
    expect_eq(f"saved SDEI_CONTEXT({c}, 18) (PC)", saved(out, f"SDEI_CONTEXT({c}, 18)"), pc)
    expect_eq(f"saved SDEI_CONTEXT({c}, 19) (PSTATE)", saved(out, f"SDEI_CONTEXT({c}, 19)"),
              pstate)


def _running_normal(out: ScenarioRun) -> None:
    prog = out.run().program
    _carried_firmware(out)
    expect_eq("saved SDEI_VCPU_STATE (unmasked)", saved(out, "SDEI_VCPU_STATE"), 0)
    expect_eq("saved SDEI_EVENT_STATE(0) (registered, enabled, running)",
              saved(out, "SDEI_EVENT_STATE(0)"), RUN)
    expect_eq("saved SDEI_EVENT_EP_ADDR(0)", saved(out, "SDEI_EVENT_EP_ADDR(0)"),
              prog.handler("sdei").address)
    expect_eq("saved SDEI_EVENT_EP_ARG(0)", saved(out, "SDEI_EVENT_EP_ARG(0)"), EP_ARG_BASE)
    _context(out, 0, IDLE_X, prog.interrupt_point, IDLE_PSTATE)


def _in_handler(out: ScenarioRun) -> None:
    _running_normal(out)
    _event_context(out)
    _complete_restores(out)


def _before_resume(out: ScenarioRun) -> None:
    _running_normal(out)
    _complete_and_resume(out)


def _nested(out: ScenarioRun) -> None:
    prog = out.run().program
    normal = prog.handler("normal")
    _carried_firmware(out)
    expect_eq("saved SDEI_EVENT_STATE(0) (normal: running)", saved(out, "SDEI_EVENT_STATE(0)"),
              RUN)
    expect_eq("saved SDEI_EVENT_STATE(1) (critical: running)",
              saved(out, "SDEI_EVENT_STATE(1)"), RUN)
    _context(out, 0, IDLE_X, prog.interrupt_point, IDLE_PSTATE)
    normal_x = (RUN, 0, 0, 0, 0, 0, *(HANDLER_FILL_BASE | r for r in range(6, 16)),
                normal.record, prog.layout.doorbell)
    _context(out, 1, normal_x, normal.calls[0].return_pc + 8,
             handler_entry_pstate(IDLE_PSTATE))
    _critical_preempts_normal(out)


def _pending_masked(out: ScenarioRun) -> None:
    _carried_firmware(out)
    expect_eq("saved SDEI_VCPU_STATE (masked)", saved(out, "SDEI_VCPU_STATE"), 1)
    expect_eq("saved SDEI_EVENT_STATE(0) (registered, enabled, pending)",
              saved(out, "SDEI_EVENT_STATE(0)"), int(HandlerState.ENABLED) | PENDING_BIT)
    for c in (0, 1):
        expect_eq(f"saved SDEI_CONTEXT({c}, 18) (no handler running: 0)",
                  saved(out, f"SDEI_CONTEXT({c}, 18)"), 0)
    _masked_until_unmask(out)


@dataclass(frozen=True)
class MigrationCase:
    name: str
    program: str
    stop: tuple[BellKind, int, int]
    facts: Callable[[ScenarioRun], None]
    doc: str

    def case(self, *, in_kernel: bool = False) -> Case:
        kind, slot, index = self.stop
        scenario = single(f"migrate:{self.name}", PROGRAMS[self.program],
                          RunStep(0, until=at_bell(kind, slot, index)), MigrateStep(),
                          RunStep(0))

        def run(backend: Any) -> None:
            checked(backend, scenario, self.facts, in_kernel=in_kernel)

        name = f"migrate-{self.name}" if in_kernel else self.name
        return Case(name, run, f"{self.doc} (program {self.program})")


CASES: Final = (
    MigrationCase("handler-running", "dispatch-complete", (BellKind.HANDLER_CALL, 0, 9),
                  _in_handler, "stopped between two EVENT_CONTEXT calls of the handler; on "
                  "the new VM the rest of the context reads and COMPLETE are right"),
    MigrationCase("before-complete-and-resume", "dispatch-resume",
                  (BellKind.HANDLER_EXIT, 0, 0), _before_resume,
                  "stopped right before COMPLETE_AND_RESUME; the resume stub sees the "
                  "interrupted PC/PSTATE on the new VM"),
    MigrationCase("nested-handlers", "nested", (BellKind.HANDLER_CALL, 1, 5), _nested,
                  "stopped inside the critical handler that preempted the normal one: both "
                  "contexts travel, both complete in order on the new VM"),
    MigrationCase("pending-while-masked", "masked-unmask", (BellKind.MAIN_CALL, 0, 3),
                  _pending_masked, "stopped with event 0 pending on a masked vCPU; "
                  "PE_UNMASK on the new VM takes it"),
)


def suite() -> Suite:
    return Suite("migration", "save a VM with a handler running (core, firmware and SDEI "
                 "registers), restore into a new VM, finish there; against the model",
                 tuple(c.case() for c in CASES), frozenset({"sdei"}))


def in_kernel_cases() -> list[Case]:
    """The same migrations with the kernel holding the SDEI state (sdei-in-kernel)."""
    return [c.case(in_kernel=True) for c in CASES]
