"""Guest scenarios as data, run on a backend and on the reference model, and compared.

A ``GuestScenario`` is the programs of a VM (one per vCPU) and the host's steps: run a vCPU until
it settles (or until a doorbell), migrate the VM. ``execute`` runs it on the backend's engine;
the reference run is ``host.simulate`` for one vCPU (migration steps do not change what
the guest must see, so the reference is the uninterrupted run) and the same steps on
``SimEngine`` for several. ``run_scenario`` memoizes both per backend, so every case that checks
one scenario pays for one run; the cases then check the comparison and their spec facts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..guest.doorbell import Bell, BellKind
from ..machine import Machine
from ..regs import sdei as sdei_regs
from .core import CheckFailed
from .host import Driver, Engine, HostError, Migration, simulate
from .programs.program import GuestProgram
from .sim_engine import SimEngine
from .trace import Dispatched, Injected, Served, TraceItem, VcpuRun, compare


@dataclass(frozen=True, slots=True)
class RunStep:
    """Run ``vcpu`` until it settles, or until a doorbell ``until`` accepts."""

    vcpu: int = 0
    until: Callable[[Bell], bool] | None = None


@dataclass(frozen=True, slots=True)
class MigrateStep:
    """Save every vCPU, restore into a new VM, go on there."""


Step = RunStep | MigrateStep


def at_bell(kind: BellKind, slot: int = 0, index: int = 0) -> Callable[[Bell], bool]:
    """``until`` for the first doorbell of that kind (and slot and index)."""
    def match(b: Bell) -> bool:
        return b.kind is kind and b.slot == slot and b.index == index

    return match


@dataclass(frozen=True)
class GuestScenario:
    """A VM's programs and the host's steps."""

    key: str
    build: Callable[[], tuple[GuestProgram, ...]]
    steps: tuple[Step, ...] = (RunStep(0),)

    @property
    def migrates(self) -> bool:
        return any(isinstance(s, MigrateStep) for s in self.steps)


def single(name: str, make: Callable[[], GuestProgram], *steps: Step) -> GuestScenario:
    """A one-vCPU scenario (default step: run vCPU 0 until it settles)."""
    return GuestScenario(name, lambda: (make(),), tuple(steps) or (RunStep(0),))


@dataclass(frozen=True)
class ScenarioRun:
    """A scenario as the backend ran it, the reference run, and how they compare."""

    scenario: GuestScenario
    engine: str
    runs: tuple[VcpuRun, ...]
    reference: tuple[VcpuRun, ...]
    marks: tuple[tuple[int, int], ...]
    """(vCPU, trace length) after each run step: where one step ended in a trace."""
    differences: tuple[str, ...]
    migrations: tuple[Migration, ...] = ()
    sees: Callable[[TraceItem], bool] = field(default=lambda _t: True)

    @property
    def sees_dispatch(self) -> bool:
        """False when the kernel dispatches (in-kernel SDEI): no ``Dispatched`` items."""
        return self.sees(Dispatched(0, 0, 0, 0))

    @property
    def sees_calls(self) -> bool:
        return self.sees(Served(None, 0xC400_0020, (0,) * 5, 0, None))

    def run(self, i: int = 0) -> VcpuRun:
        return self.runs[i]


def execute(engine: Engine, programs: Sequence[GuestProgram], steps: Sequence[Step],
            ) -> tuple[Driver, list[tuple[int, int]], list[Migration]]:
    """Run the steps on ``engine``; the engine after migrations is ``driver.engine``."""
    drv = Driver(engine, programs)
    marks: list[tuple[int, int]] = []
    migrations: list[Migration] = []
    for step in steps:
        if isinstance(step, MigrateStep):
            drv.engine, m = drv.engine.migrate()
            migrations.append(m)
            continue
        drv.run(step.vcpu, until=step.until)
        marks.append((step.vcpu, drv.mark(step.vcpu)))
    return drv, marks, migrations


def reference(scenario: GuestScenario, programs: Sequence[GuestProgram]) -> tuple[
        tuple[VcpuRun, ...], Machine]:
    """The reference model's run of the scenario, and its machine at the end."""
    if len(programs) == 1:
        m = Machine(1)
        return (simulate(programs[0], machine=m),), m
    eng = SimEngine(programs)
    drv, _, _ = execute(eng, programs, [s for s in scenario.steps if isinstance(s, RunStep)])
    return tuple(drv.result(i) for i in range(len(programs))), eng.machine


def run_scenario(backend: Any, scenario: GuestScenario, *, in_kernel: bool = False
                 ) -> ScenarioRun:
    """The scenario on ``backend`` (memoized per backend), compared with the reference. On a
    kernel that serves SDEI itself every run is the in-kernel one, so a suite's case and its
    ``sdei-in-kernel`` twin share one run."""
    in_kernel = in_kernel or bool(getattr(backend, "in_kernel", False))
    key = f"scenario:{scenario.key}:{'in-kernel' if in_kernel else 'default'}"
    memo: dict[str, Any] = backend.memo
    got = memo.get(key)
    if isinstance(got, ScenarioRun):
        return got
    if isinstance(got, BaseException):  # the run failed once: every case on it says so
        raise got
    try:
        got = _run_scenario(backend, scenario, in_kernel)
        notes: list[str] = memo.setdefault("notes", [])
        for m in got.migrations:
            notes.append(f"{scenario.key}: migrated {m.registers} registers "
                         f"({m.blob_bytes} bytes) and {m.memory_bytes >> 10} KiB of memory in "
                         f"{m.seconds:.3f}s")
    except HostError as e:
        err = CheckFailed(f"scenario {scenario.key}: {e}")
        memo[key] = err
        raise err from None
    except Exception as e:  # a kernel or library error: every case on this run reports it
        memo[key] = e
        raise
    memo[key] = got
    return got


def _run_scenario(backend: Any, scenario: GuestScenario, in_kernel: bool) -> ScenarioRun:
    programs = scenario.build()
    expected, machine = reference(scenario, programs)
    engine: Engine = backend.engine(programs, in_kernel=in_kernel)
    try:
        drv, marks, migrations = execute(engine, programs, scenario.steps)
        engine = drv.engine
        runs = tuple(drv.result(i) for i in range(len(programs)))
        diffs: list[str] = []
        for i, (want, have) in enumerate(zip(expected, runs, strict=True)):
            where = f"vCPU {i} ({have.program.name}): " if len(runs) > 1 else ""
            diffs += [where + d for d in compare(want, have, engine.sees)]
        kernel_regs = getattr(engine, "sdei_registers", None)
        if kernel_regs is not None:  # in-kernel SDEI: its registers against the model's
            for i in range(len(programs)):
                model = sdei_regs.encode_map(machine.state(i))
                have_regs = kernel_regs(i)
                for rid in sdei_regs.SDEI_REG_IDS:
                    if have_regs[rid] != model[rid]:
                        diffs.append(f"vCPU {i}: {sdei_regs.SDEI_REG_BY_ID[rid].name} = "
                                     f"{have_regs[rid]:#x} at the end, the model has "
                                     f"{model[rid]:#x}")
                        break
        return ScenarioRun(scenario, engine.name, runs, expected, tuple(marks), tuple(diffs),
                       tuple(migrations), engine.sees)
    finally:
        engine.close()


def checked(backend: Any, scenario: GuestScenario, facts: Callable[[ScenarioRun], None], *,
            in_kernel: bool = False) -> None:
    """A case body: the run must equal the model's, then ``facts`` (the spec) must hold."""
    out = run_scenario(backend, scenario, in_kernel=in_kernel)
    if out.differences:
        more = f" (+{len(out.differences) - 1} more)" if len(out.differences) > 1 else ""
        raise CheckFailed(f"{out.engine} differs from the reference model: "
                          f"{out.differences[0]}{more}")
    last: dict[int, RunStep] = {}
    for step in out.scenario.steps:
        if isinstance(step, RunStep):
            last[step.vcpu] = step
    for i, r in enumerate(out.runs):
        final = last.get(i)
        if final is not None and final.until is None and not r.finished:
            raise CheckFailed(f"vCPU {i} ({r.program.name}) did not settle: it stopped at "
                              f"{r.trace[-1] if r.trace else 'its start'}")
    facts(out)


def injected(run: VcpuRun) -> list[Injected]:
    return [t for t in run.trace if isinstance(t, Injected)]
