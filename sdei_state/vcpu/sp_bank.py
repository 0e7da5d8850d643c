"""Which register is a vCPU's *current* stack pointer: one rule for real and simulated vCPUs.

KVM has no "current SP" register: its ONE_REG core ``regs.sp`` is SP_EL0 and core ``sp_el1``
is SP_EL1 (``struct kvm_regs`` in the arm64 uapi header). ``CpuReg.SP`` is the one the
interrupted code was using, as DESIGN's ``cpu.sp`` means, selected by PSTATE.M[4:0] as the CPU
selects it (Arm ARM, "Stack pointer register selection"): SP_EL1 in EL1h; SP_EL0 in EL0t, EL1t
and EL2t; for AArch32 modes the banked R13 of that mode as AArch64 sees it (Arm ARM, "Mapping of
the AArch32 registers to AArch64": x13 for User/System, x17 IRQ, x19 SVC, x21 Abort, x23 Undef,
x29 FIQ, x15 Hyp). EL2h and EL3h use SP_EL2 and SP_EL3, which are not core registers.

``KvmCpu`` (a real vCPU) and ``BankedCpu`` (the simulated vCPU's register file) both follow
``SP_BY_MODE``, so a PSTATE change (a dispatch into EL1h, a COMPLETE back) switches which
register ``CpuReg.SP`` means on both alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ..cpu import CpuReg, MemoryCpu
from ..regs.ids import REG_SP_EL0, REG_SP_EL1, REG_X

SP_BY_MODE: Final[Mapping[int, int]] = {
    0b00000: REG_SP_EL0,  # EL0t
    0b00100: REG_SP_EL0,  # EL1t
    0b00101: REG_SP_EL1,  # EL1h
    0b01000: REG_SP_EL0,  # EL2t
    0b10000: REG_X[13],  # AArch32 User
    0b11111: REG_X[13],  # AArch32 System
    0b10001: REG_X[29],  # AArch32 FIQ
    0b10010: REG_X[17],  # AArch32 IRQ
    0b10011: REG_X[19],  # AArch32 Supervisor
    0b10111: REG_X[21],  # AArch32 Abort
    0b11011: REG_X[23],  # AArch32 Undefined
    0b11010: REG_X[15],  # AArch32 Hyp
}
"""PSTATE.M[4:0] -> the KVM core register holding that mode's stack pointer."""

_X_BY_ID: Final[Mapping[int, CpuReg]] = {rid: CpuReg(n) for n, rid in enumerate(REG_X)}
_MODE_MASK: Final = 0x1F
_SP: Final = CpuReg.SP  # module constants: BankedCpu's reads and writes run on every call
_PSTATE: Final = CpuReg.PSTATE


def sp_reg_id(pstate: int) -> int:
    """The KVM register id of the current SP for ``pstate``; ValueError if it has none."""
    try:
        return SP_BY_MODE[pstate & _MODE_MASK]
    except KeyError:
        raise ValueError(f"PSTATE {pstate:#x}: mode M[4:0]={pstate & _MODE_MASK:#07b} has no "
                         "stack pointer among the KVM core registers") from None


def check_sp_alias(values: Mapping[CpuReg, int], sp_id: int, pstate: int) -> None:
    """ValueError if ``values`` writes SP and, in an AArch32 mode, also the x register that SP
    is there (``sp_id``), with another value: which one would win is not the caller's intent."""
    x = _X_BY_ID.get(sp_id)
    if x is not None and x in values and values[x] != values[CpuReg.SP]:
        raise ValueError(f"sp and the register it maps to in mode {pstate & _MODE_MASK:#x} "
                         f"({x.key}) were given different values")


_memory_write: Final = MemoryCpu.write


class BankedCpu(MemoryCpu):
    """A simulated vCPU's registers with SP banked as KVM holds it: SP_EL0 and SP_EL1 apart
    (``banked``, keyed by their core register ids), ``CpuReg.SP`` the one PSTATE selects.

    In EL2h, EL3h and reserved modes (KVM refuses them for the vCPUs this library makes, but
    a scenario's ``cpu`` step may set them on the model) SP is one more register of its own,
    reachable only as ``CpuReg.SP``: the model never fails for want of a stack pointer."""

    __slots__ = ("banked",)

    def __init__(self, values: Mapping[CpuReg, int] | None = None) -> None:
        self.banked: dict[int, int] = {REG_SP_EL0: 0, REG_SP_EL1: 0}
        """SP_EL0 and SP_EL1 by ONE_REG id (core ``sp`` and core ``sp_el1``)."""
        super().__init__(values)

    def _sp(self) -> int:
        home = SP_BY_MODE.get(self._r[CpuReg.PSTATE] & _MODE_MASK)
        if home is None:
            return self._r[CpuReg.SP]
        sp = self.banked.get(home)
        return self._r[_X_BY_ID[home]] if sp is None else sp

    def _values(self, regs: Sequence[CpuReg]) -> tuple[int, ...]:
        if _SP in regs:
            sp = self._sp()
            return tuple(sp if r == _SP else self._r[r] for r in regs)
        return tuple(map(self._r.__getitem__, regs))

    def write(self, values: Mapping[CpuReg, int]) -> None:
        if _SP in values:
            self._write_with_sp(values)
        else:
            _memory_write(self, values)

    def _write_with_sp(self, values: Mapping[CpuReg, int]) -> None:
        pstate = values.get(_PSTATE, self._r[_PSTATE])
        home = SP_BY_MODE.get(pstate & _MODE_MASK)
        if home is not None:
            check_sp_alias(values, home, pstate)
        kept = self._r[_SP]
        _memory_write(self, values)  # checks every value first: a refused write stores nothing
        if home is None:
            return
        sp, self._r[_SP] = self._r[_SP], kept
        if home in self.banked:
            self.banked[home] = sp
        else:
            self._r[_X_BY_ID[home]] = sp

    def __getitem__(self, reg: CpuReg) -> int:
        return self._values((reg,))[0]

    def snapshot(self) -> dict[CpuReg, int]:
        return self.read(tuple(CpuReg))

    def as_json(self) -> dict[str, object]:
        out = super().as_json()
        out["sp"] = self._sp()
        return out

    def __repr__(self) -> str:
        nz = ", ".join(f"{reg.key}={v:#x}" for reg, v in self.snapshot().items() if v)
        return f"BankedCpu({nz}, sp_el0={self.banked[REG_SP_EL0]:#x}, " \
               f"sp_el1={self.banked[REG_SP_EL1]:#x})"
