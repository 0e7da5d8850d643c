"""``KvmCpu``: the ``sdei_state.cpu.CpuRegs`` interface over ONE_REG ids, batched.

A view over any ``RegTransport`` (a real ``kvm.Vcpu``, the provider's register view), so it
lives with the transports, not in the bindings.

Mapping (arm64 ids, ``sdei_state.regs.ids``):

=========== =============================================================================
CpuReg      KVM register
=========== =============================================================================
X0..X30     core ``regs.regs[n]``
PC, PSTATE  core ``regs.pc``, ``regs.pstate``
ELR_EL1     core ``elr_el1``
SPSR_EL1    core ``spsr[KVM_SPSR_EL1]``
VBAR_EL1    ``ARM64_SYS_REG(3, 0, 12, 0, 0)``
SCTLR_EL1   ``ARM64_SYS_REG(3, 0, 1, 0, 0)`` (read at dispatch for the entry PSTATE)
SP          the *current* stack pointer, chosen by PSTATE as the CPU does (see below)
=========== =============================================================================

``SP`` is the *current* stack pointer, the one PSTATE selects (``sp_bank.SP_BY_MODE``, the
rule the simulated vCPU follows too): a read fetches PSTATE, SP_EL0 and SP_EL1 in the same
batch; a write uses the PSTATE written with it, else the current one (one extra GET).
EL2h/EL3h have no core-register SP, so SP is refused there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from ..cpu import CpuReg, TupleReadCpu, plain_u64s
from ..regs.ids import (
    REG_ELR_EL1,
    REG_PC,
    REG_PSTATE,
    REG_SP_EL0,
    REG_SP_EL1,
    REG_SPSR_EL1,
    REG_VBAR_EL1,
    REG_X,
    sys_reg,
)
from ..state import U64_MAX
from .sp_bank import SP_BY_MODE, check_sp_alias, sp_reg_id
from .transport import RegTransport

__all__ = ["REG_IDS", "REG_SCTLR_EL1", "SP_BY_MODE", "KvmCpu", "sp_reg_id"]

REG_SCTLR_EL1: Final = sys_reg(3, 0, 1, 0, 0)

REG_IDS: Final[Mapping[CpuReg, int]] = {
    **{CpuReg(n): REG_X[n] for n in range(31)},
    CpuReg.PC: REG_PC,
    CpuReg.PSTATE: REG_PSTATE,
    CpuReg.ELR_EL1: REG_ELR_EL1,
    CpuReg.SPSR_EL1: REG_SPSR_EL1,
    CpuReg.VBAR_EL1: REG_VBAR_EL1,
    CpuReg.SCTLR_EL1: REG_SCTLR_EL1,
}
"""Every CpuReg except SP, whose register depends on PSTATE (``sp_reg_id``)."""

_IDS_CACHE_MAX: Final = 256
_ids_of: dict[tuple[int, ...], tuple[int, ...]] = {}
"""Register tuple -> id tuple, for the few fixed tuples the machine reads (x1, x1-x2, the
dispatch context, ...), so a read maps no register one by one. Bounded: other callers'
tuples beyond ``_IDS_CACHE_MAX`` are mapped each time."""


def _ids(regs: tuple[int, ...]) -> tuple[int, ...]:
    """The ids of ``regs`` (none of them SP); KeyError for a value that is no CpuReg."""
    ids = _ids_of.get(regs)
    if ids is None:
        ids = tuple(REG_IDS[CpuReg(r)] for r in regs)
        if len(_ids_of) < _IDS_CACHE_MAX:
            _ids_of[regs] = ids
    return ids


class KvmCpu(TupleReadCpu):
    """``CpuRegs`` over any ``RegTransport`` (normally a ``Vcpu``): each ``read``/``write`` is
    one batched transport call (plus one PSTATE read for an SP write without PSTATE)."""

    __slots__ = ("transport",)

    def __init__(self, transport: RegTransport) -> None:
        self.transport = transport

    def _values(self, regs: Sequence[CpuReg]) -> tuple[int, ...]:
        key = tuple(regs)
        ids = _ids_of.get(key)
        if ids is None:
            if CpuReg.SP in key:
                return self._read_with_sp(key)
            ids = _ids(key)
        return tuple(self.transport.get_regs(ids))

    def _read_with_sp(self, key: tuple[int, ...]) -> tuple[int, ...]:
        regs = tuple(CpuReg(r) for r in key)
        ids = [REG_IDS[r] for r in regs if r != CpuReg.SP]
        head = self.transport.get_regs([REG_PSTATE, REG_SP_EL0, REG_SP_EL1, *ids])
        pstate = head[0]
        sp_id = sp_reg_id(pstate)
        sp = {REG_SP_EL0: head[1], REG_SP_EL1: head[2]}.get(sp_id)
        if sp is None:  # AArch32: the banked SP lives in an x register
            sp = self.transport.get_regs([sp_id])[0]
        rest = iter(head[3:])
        return tuple(sp if r == CpuReg.SP else next(rest) for r in regs)

    def _write_values(self, regs: tuple[CpuReg, ...], values: tuple[int, ...]) -> None:
        if not regs:  # as write({}): no transport call
            return
        ids = _ids_of.get(regs)
        if ids is None:
            if CpuReg.SP in regs:  # SP's register depends on PSTATE: write() finds it
                self.write(dict(zip(regs, values, strict=True)))
                return
            ids = _ids(regs)
        self.transport.set_regs(list(zip(ids, values, strict=True)))

    def write(self, values: Mapping[CpuReg, int]) -> None:
        if not values:
            return
        # One quick pass for the common case (every value a plain int in range); the per-value
        # loop runs only to accept int subclasses or to name the register that is wrong.
        if not plain_u64s(values.values()):
            for reg, v in values.items():
                if not isinstance(v, int) or not 0 <= v <= U64_MAX:
                    raise ValueError(f"{CpuReg(reg).key} = {v!r} is not an unsigned 64-bit "
                                     "value")
        if CpuReg.SP not in values:
            try:
                items = [(REG_IDS[r], v) for r, v in values.items()]
            except KeyError:  # not a CpuReg: let the conversion below name it
                items = [(REG_IDS[CpuReg(r)], v) for r, v in values.items()]
            self.transport.set_regs(items)
            return
        items = [(REG_IDS[CpuReg(r)], v) for r, v in values.items() if r != CpuReg.SP]
        pstate = values.get(CpuReg.PSTATE)
        if pstate is None:
            pstate = self.transport.get_regs([REG_PSTATE])[0]
        sp_id = sp_reg_id(pstate)
        check_sp_alias(values, sp_id, pstate)
        items.append((sp_id, values[CpuReg.SP]))
        self.transport.set_regs(items)
