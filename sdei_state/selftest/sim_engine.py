"""The simulated engine: guest programs on ``vmm.GuestVcpu`` served by the reference model.

``SimEngine`` is the prediction for the same programs on KVM, and the simulated backend's
engine. With ``vm`` (a ``SimVm``), its machine serves the calls and each vCPU's registers are
also a ``RegTransport`` (``GuestCpuTransport``): core and system registers from the
interpreter, firmware and SDEI registers from the simulated vCPU, so ``migrate`` saves and
restores through ``sdei_state.migration`` as on KVM.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from ..cpu import CpuRegs
from ..events import Event
from ..guest.a64 import SysReg
from ..guest.interpreter import GuestCpu
from ..machine import Machine
from ..regs import ids
from ..regs.firmware import HostFirmware
from ..vcpu.transport import RegTransport
from ..vmm import GuestVcpu, ModelServer
from .host import Migration
from .programs.program import GuestProgram
from .trace import TraceItem

if TYPE_CHECKING:
    from ..vcpu.sim import SimVcpu, SimVm


class SimEngine:
    """Simulated vCPUs (``GuestVcpu``) served by one reference ``Machine``."""

    def __init__(self, programs: Sequence[GuestProgram], *, machine: Machine | None = None,
                 vm: SimVm | None = None, load: bool = True) -> None:
        self.name = "simulated vCPU"
        self.programs = tuple(programs)
        self.nr_vcpus = len(self.programs)
        if vm is not None and machine is not None:
            raise ValueError("give a machine or a SimVm, not both")
        self.vm = vm
        self.machine = vm.machine if vm is not None else (
            machine if machine is not None else Machine(self.nr_vcpus))
        self.vcpus = [GuestVcpu(p.layout, i, p.image if load else None)
                      for i, p in enumerate(self.programs)]
        # No kernel answers the other hypercalls here: the model answers every one.
        self._server = ModelServer(self.machine, [v.cpu for v in self.vcpus], only_sdei=False)

    @property
    def server(self) -> ModelServer:
        return self._server

    def vcpu(self, i: int) -> GuestVcpu:
        return self.vcpus[i]

    def cpu(self, i: int) -> CpuRegs:
        return self.vcpus[i].cpu

    def inject(self, i: int, number: int) -> bool:
        return self.machine.inject(i, number)

    def deliverable(self, i: int) -> Event | None:
        return self.machine.deliverable(i)

    def memory(self, i: int) -> bytes:
        return self.vcpus[i].memory()

    def sees(self, item: TraceItem) -> bool:
        return True

    def transports(self) -> list[RegTransport]:
        """Each vCPU as a ``RegTransport`` (needs ``vm``)."""
        if self.vm is None:
            raise ValueError("a SimEngine without a SimVm has no register transport")
        return [GuestCpuTransport(self.vm.vcpus[i], v.guest) for i, v in enumerate(self.vcpus)]

    def migrate(self) -> tuple[SimEngine, Migration]:
        """Save every register with ``save_vm``, restore into a new ``SimVm`` with fresh
        vCPUs with ``restore_vm``, copy the memslots. This engine is left as it was."""
        from ..migration import restore_vm, save_vm
        from ..vcpu.sim import SimVm

        if self.vm is None:
            raise ValueError("a SimEngine without a SimVm cannot migrate")
        t0 = time.perf_counter()
        blob = save_vm(self.transports())
        mems = [self.memory(i) for i in range(self.nr_vcpus)]
        dest = SimEngine(self.programs, vm=SimVm(self.nr_vcpus, host=self.vm.host), load=False)
        restore_vm(dest.transports(), blob)
        for v, m in zip(dest.vcpus, mems, strict=True):
            v.guest.mem[:] = m
        return dest, Migration(len(blob.reg_ids), len(blob.to_bytes()), sum(map(len, mems)),
                               time.perf_counter() - t0, blob)

    def close(self) -> None:
        pass


_CORE: Final = (*((ids.core_reg(f"x{n}"), f"x{n}") for n in range(31)),
                (ids.core_reg("sp"), "sp_el0"), (ids.core_reg("pc"), "pc"),
                (ids.core_reg("pstate"), "pstate"), (ids.core_reg("sp_el1"), "sp_el1"))
_SYS: Final = (SysReg.ELR_EL1, SysReg.SPSR_EL1, SysReg.SCTLR_EL1, SysReg.ESR_EL1,
               SysReg.FAR_EL1, SysReg.VBAR_EL1, SysReg.TPIDR_EL1, SysReg.TPIDR_EL0,
               SysReg.TPIDRRO_EL0)


def _sys_id(key: int) -> int:
    if key == SysReg.ELR_EL1:
        return ids.core_reg("elr_el1")
    if key == SysReg.SPSR_EL1:
        return ids.core_reg("spsr_el1")
    return ids.sys_reg(key >> 14 & 3, key >> 11 & 7, key >> 7 & 15, key >> 3 & 15, key & 7)


_SYS_IDS: Final = {_sys_id(k): k for k in _SYS}
_FW_GROUPS: Final = (ids.KVM_REG_ARM_FW, ids.KVM_REG_ARM_FW_FEAT_BMAP)
_CORE_IDS: Final = dict(_CORE)


class GuestCpuTransport:
    """``RegTransport`` of a simulated vCPU running guest code: the ``GuestCpu`` holds the
    core registers (``sp`` is SP_EL0, ``sp_el1`` listed apart, as KVM has them) and the system
    registers it keeps; the ``SimVcpu`` holds the firmware and SDEI registers, served by the
    same machine. It lists them as KVM does: core, firmware (SDEI block included), system."""

    def __init__(self, vcpu: SimVcpu, cpu: GuestCpu) -> None:
        self.vcpu = vcpu
        self.cpu = cpu
        self._fw = tuple(r for r in vcpu.reg_list()
                         if r & ids.KVM_REG_ARM_COPROC_MASK in _FW_GROUPS)

    @property
    def host(self) -> HostFirmware:
        return self.vcpu.host

    @property
    def has_run(self) -> bool:
        return self.vcpu.has_run

    @property
    def psci_0_2(self) -> bool:
        return self.vcpu.psci_0_2

    def reg_list(self) -> tuple[int, ...]:
        return (*_CORE_IDS, *self._fw, *_SYS_IDS)

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        fw = [r for r in reg_ids if r not in _CORE_IDS and r not in _SYS_IDS]
        got = dict(zip(fw, self.vcpu.get_regs(fw), strict=True))
        c = self.cpu
        for r in reg_ids:
            if r in _CORE_IDS:
                name = _CORE_IDS[r]
                got[r] = c.x[int(name[1:])] if name[0] == "x" else getattr(c, name)
            elif r in _SYS_IDS:
                got[r] = c.sys.get(_SYS_IDS[r], 0)
        return [got[r] for r in reg_ids]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        c = self.cpu
        for r, v in items:
            if r in _CORE_IDS:
                name = _CORE_IDS[r]
                if name[0] == "x":
                    c.x[int(name[1:])] = v
                else:
                    setattr(c, name, v)
            elif r in _SYS_IDS:
                c.sys[_SYS_IDS[r]] = v
            else:
                self.vcpu.set_reg(r, v)
