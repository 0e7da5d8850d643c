"""The simulated guest as a KVM vCPU: ``GuestVcpu`` over the interpreter (``guest.GuestCpu``).

``run(immediate_exit=...)`` returns the bindings' typed exits, with KVM's semantics, so the
VMM loop, the provider and the selftest engines drive it as they drive a real ``kvm.Vcpu``:

- ``hvc``/``smc`` -> ``HypercallExit`` (``nr`` = w0, no arguments: they are in x1.., ``flags``
  with ``SMC`` for smc), PC past the instruction, as the SMCCC filter's ``FWD_TO_USER``;
- a doorbell store -> ``MmioExit`` (a write), PC left at the store until the next ``run``
  completes it, with or without ``immediate_exit``;
- ``immediate_exit`` (the argument or the flag) -> ``KvmError(EINTR)`` without running.

``cpu`` is the model's ``CpuRegs`` view of the interpreter's registers (``GuestRegs``).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence
from typing import Final

from ..cpu import CpuReg, TupleReadCpu
from ..errors import KvmError
from ..guest.a64 import U64_MASK, SysReg
from ..guest.asm import Image
from ..guest.interpreter import CallStop, GuestCpu
from ..guest.layout import Layout
from ..kvm.exits import Exit, ExitReason, HypercallExit, HypercallFlags, MmioExit
from ..machine import affinity_of

_SYS: Final[Mapping[CpuReg, int]] = {CpuReg.ELR_EL1: SysReg.ELR_EL1,
                                     CpuReg.SPSR_EL1: SysReg.SPSR_EL1,
                                     CpuReg.VBAR_EL1: SysReg.VBAR_EL1,
                                     CpuReg.SCTLR_EL1: SysReg.SCTLR_EL1}
"""The CpuRegs the interpreter keeps among its system registers."""


class GuestRegs(TupleReadCpu):
    """``CpuRegs`` over a ``GuestCpu``: core registers as KVM names them (``SP`` is SP_EL0,
    KVM's core ``sp``; SP_EL1 is the interpreter's ``sp_el1``)."""

    __slots__ = ("guest",)

    def __init__(self, guest: GuestCpu) -> None:
        self.guest = guest

    def _values(self, regs: Sequence[CpuReg]) -> tuple[int, ...]:
        return tuple(self._get(CpuReg(r)) for r in regs)

    def write(self, values: Mapping[CpuReg, int]) -> None:
        """All values checked first, then written."""
        for reg, v in values.items():
            if not isinstance(v, int) or not 0 <= v <= U64_MASK:
                raise ValueError(f"{CpuReg(reg).key} = {v!r} is not a u64")
        for reg, v in values.items():
            self._set(CpuReg(reg), v)

    def _get(self, r: CpuReg) -> int:
        g = self.guest
        if r <= CpuReg.X30:
            return g.x[r]
        if r in _SYS:
            return g.sys.get(_SYS[r], 0)
        return {CpuReg.SP: g.sp_el0, CpuReg.PC: g.pc, CpuReg.PSTATE: g.pstate}[r]

    def _set(self, r: CpuReg, v: int) -> None:
        g = self.guest
        if r <= CpuReg.X30:
            g.x[r] = v
        elif r in _SYS:
            g.sys[_SYS[r]] = v
        elif r is CpuReg.SP:  # KVM's core register "sp" is SP_EL0; SP_EL1 is separate
            g.sp_el0 = v
        elif r is CpuReg.PC:
            g.pc = v
        else:
            g.pstate = v


class GuestVcpu:
    """vCPU ``index`` of a simulated VM: the interpreter behind KVM's run interface."""

    def __init__(self, layout: Layout, index: int = 0, image: Image | None = None) -> None:
        self.index = index
        self.guest = GuestCpu(layout, image, affinity=affinity_of(index))
        self.cpu = GuestRegs(self.guest)
        self.immediate_exit = False
        """KVM's ``immediate_exit`` flag: set by a kick from another thread, cleared by the loop."""
        self._store_pc: int | None = None  # a doorbell store KVM has not completed yet

    def run(self, immediate_exit: bool = False) -> Exit:
        """``KVM_RUN``: complete a pending store, then run to the next exit (``SimError``
        for what the interpreter cannot run)."""
        g = self.guest
        if self._store_pc is not None:
            g.pc, self._store_pc = self._store_pc + 4, None
        if immediate_exit or self.immediate_exit:
            raise KvmError(errno.EINTR, "KVM_RUN")
        stop = g.run()
        if isinstance(stop, CallStop):
            return HypercallExit(int(ExitReason.HYPERCALL), g.x[0] & 0xFFFF_FFFF, (0,) * 6,
                                 int(HypercallFlags.SMC) if stop.smc else 0)
        g.pc = self._store_pc = stop.insn_pc  # PC stays at the store until KVM completes it
        return MmioExit(int(ExitReason.MMIO), stop.phys_addr,
                        stop.data.to_bytes(stop.length, "little"), True)

    def memory(self) -> bytes:
        """A copy of the memslot."""
        return bytes(self.guest.mem)
