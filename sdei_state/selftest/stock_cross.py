"""Cross-mode migration (stock-vmm suite): one blob moves between SDEI served by the
userspace provider and SDEI served by KVM itself, both ways, on one kernel.

On a kernel with the in-kernel SDEI ABI (``--kernel sdei`` in the lab) both modes run side by
side. The provider side is the reference provider on a VM whose kernel SDEI is switched off
before the first run (bit 1 of ``KVM_REG_ARM_STD_BMAP`` cleared: the kernel neither serves nor
dispatches) with the SMCCC filter forwarding the SDEI range to userspace; Linux's
``kvm_smccc_get_action()`` consults the filter before the firmware bitmaps, so the calls reach
the provider. ``KernelSdeiOff`` shows the provider that vCPU as a stock kernel's (its register
list without the kernel's SDEI block), so the provider's register view, and so the blob, is
the same 47 registers the kernel lists. The other side is the kernel serving SDEI (no filter).

Each migration case of the ``migration`` suite (handler running, before COMPLETE_AND_RESUME,
nested handlers, pending while masked) runs on one side until its stop point, is saved with
``save_vm``, restored with ``restore_vm`` (preflight first) into a fresh VM of the other side,
and finishes there. The guest's trace, memory and registers must equal the reference model's
uninterrupted run, and the SDEI state at the end (through either side's registers) the
model's. The kernel side cannot see calls or dispatches (it serves them), so the traces are
compared on what both sides see: doorbells and injections.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..kvm import Kvm
from ..regs import firmware
from ..regs import sdei as sdei_regs
from ..vmm import SdeiProvider
from ..vmm.in_kernel import KernelSdeiOff
from .core import Case, CheckFailed, Skip
from .host import Driver, Migration
from .migration_suite import CASES, MigrationCase
from .programs.program import GuestProgram
from .runner_kvm import InKernelEngine, KvmEngine, _KvmBase
from .scenarios import MigrateStep, RunStep, ScenarioRun, Step, at_bell, reference, single
from .trace import Dispatched, Served, TraceItem, VcpuRun, compare

NEEDS: Final = frozenset({"in-kernel-sdei", "smccc-filter"})


def both_see(item: TraceItem) -> bool:
    """What a trace shows on either side: the kernel side sees no call and no dispatch."""
    return not isinstance(item, Served | Dispatched)


class ProviderSide(KvmEngine):
    """The userspace provider on a kernel that has SDEI itself, its kernel SDEI off."""

    def __init__(self, kvm: Kvm, programs: Sequence[GuestProgram], *, load: bool = True,
                 ) -> None:
        _KvmBase.__init__(self, kvm, programs, load=load)
        self.name = "arm64 KVM + userspace provider (kernel SDEI gated off)"
        try:
            shown = [KernelSdeiOff(v) for v in self.vcpus]
            if load:  # a restore writes the saved bitmap; the provider keeps bit 1 for itself
                shown[0].gate_off()
            self.provider = SdeiProvider(self.nr_vcpus)
            self.provider.install(self.vm)
            self.views = [self.provider.attach(i, s, c)
                          for i, (s, c) in enumerate(zip(shown, self.cpus, strict=True))]
        except BaseException:
            self.vm.close()
            raise


Side = KvmEngine | InKernelEngine
SIDES: Final[dict[str, type[Side]]] = {"provider": ProviderSide, "kernel": InKernelEngine}


@dataclasses.dataclass(frozen=True)
class CrossRun:
    """A cross-mode scenario as run, with the kernel's gate bit seen after each restore."""

    out: ScenarioRun
    gate_after: tuple[int, ...]
    """The kernel's STD_BMAP bit 1 on the destination after each restore."""


def run_cross(kvm: Kvm, case: MigrationCase, path: Sequence[str]) -> CrossRun:
    """Run ``case`` starting on side ``path[0]``, migrating into ``path[1]``, ``path[2]``...
    at its stop point and finishing on the last side."""
    kind, slot, index = case.stop
    steps: list[Step] = [RunStep(0, until=at_bell(kind, slot, index))]
    steps += [MigrateStep()] * (len(path) - 1)
    scenario = single(f"cross:{case.name}:{'-'.join(path)}", _program(case), *steps,
                      RunStep(0))
    programs = scenario.build()
    expected, machine = reference(scenario, programs)
    eng: Side = SIDES[path[0]](kvm, programs)
    migrations: list[Migration] = []
    gates: list[int] = []
    try:
        drv = Driver(eng, programs)
        for step in scenario.steps:
            if isinstance(step, MigrateStep):
                eng, m = eng.migrate_into(SIDES[path[len(migrations) + 1]])
                drv.engine = eng
                migrations.append(m)
                gates.append(eng.vcpus[0].get_reg(firmware.STD_BMAP) >> 1 & 1)
            else:
                drv.run(step.vcpu, until=step.until)
        runs = tuple(_seen(drv.result(i)) for i in range(len(programs)))
        diffs = [d for w, h in zip(expected, runs, strict=True) for d in compare(w, h, both_see)]
        for i in range(len(programs)):
            have = dict(zip(sdei_regs.SDEI_REG_IDS,
                            eng.transports()[i].get_regs(sdei_regs.SDEI_REG_IDS), strict=True))
            model = sdei_regs.encode_map(machine.state(i))
            diffs += [f"vCPU {i}: {sdei_regs.SDEI_REG_BY_ID[r].name} = {have[r]:#x} at the "
                      f"end, the model has {model[r]:#x}"
                      for r in sdei_regs.SDEI_REG_IDS if have[r] != model[r]][:1]
        out = ScenarioRun(scenario, eng.name, runs, expected, (), tuple(diffs),
                          tuple(migrations), both_see)
    finally:
        eng.close()
    return CrossRun(out, tuple(gates))


def _program(case: MigrationCase) -> Callable[[], GuestProgram]:
    from .programs.catalog import PROGRAMS

    return PROGRAMS[case.program]


def _seen(run: VcpuRun) -> VcpuRun:
    return dataclasses.replace(run, trace=tuple(t for t in run.trace if both_see(t)))


def _case(case: MigrationCase, path: tuple[str, ...]) -> Case:
    name = f"{'-to-'.join(path)}-{case.name}"

    def run(backend: Any) -> None:
        why = backend.missing(NEEDS)
        if why:
            raise Skip(why)
        got = run_cross(backend.kvm, case, path)
        if got.out.differences:
            raise CheckFailed(f"{' -> '.join(path)}: differs from the reference model's "
                              f"unmigrated run: {got.out.differences[0]}")
        kernel_gate = [g for g, side in zip(got.gate_after, path[1:], strict=True)
                       if (side == "kernel") != (g == 1)]
        if kernel_gate:
            raise CheckFailed(f"the kernel's STD_BMAP bit 1 after a restore is {kernel_gate[0]}"
                              f" on path {path}: the kernel side must serve SDEI, the "
                              "provider side must have it off")
        case.facts(got.out)
        notes: list[str] = backend.memo.setdefault("notes", [])
        notes.append(f"stock-vmm {name}: {len(got.out.migrations)} cross-mode migration(s), "
                     f"{got.out.migrations[0].registers} registers per vCPU")

    return Case(name, run, f"{case.doc}; saved on the {path[0]} side, restored on the "
                f"{' then '.join(path[1:])} side (program {case.program})")


PATHS: Final = (("provider", "kernel"), ("kernel", "provider"),
                ("provider", "kernel", "provider"))


def cases() -> list[Case]:
    """Every migration point in both directions, and one round trip per point."""
    return [_case(c, p) for p in PATHS for c in CASES]
