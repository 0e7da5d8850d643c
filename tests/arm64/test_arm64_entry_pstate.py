"""The model's handler-entry PSTATE rule against KVM's own exception entry.

DESIGN section 5 says the SDEI handler's PSTATE is what ``AArch64.TakeException()`` gives for
an exception taken to EL1, as KVM's ``enter_exception64()`` (arch/arm64/kvm/hyp/exception.c)
computes it. Here real KVM computes it: the guest reads PMCR_EL0 on a vCPU without a PMU, KVM
traps the access (MDCR_EL2.TPM), finds the register hidden and injects an UNDEF with
``enter_exception64()``; the vector stores to MMIO so the test can read the result. The PSTATE
KVM entered the vector with must equal ``handler_entry_pstate()`` of the interrupted PSTATE
(which KVM saved in SPSR_EL1) with the SCTLR_EL1 the test set.
"""

from __future__ import annotations

from typing import Final

import pytest

from sdei_state.kvm import Kvm, MmioExit
from sdei_state.regs.ids import REG_PC, REG_PSTATE, REG_SPSR_EL1, REG_VBAR_EL1, sys_reg
from sdei_state.state import handler_entry_pstate

from .arm64_support import B_SELF, GPA, MMIO, guest, mov_imm32, str_x

REG_SCTLR_EL1: Final = sys_reg(3, 0, 1, 0, 0)
MRS_X0_PMCR_EL0: Final = 0xD53B9C00  # trapped; hidden without KVM_ARM_VCPU_PMU_V3: UNDEF
VBAR: Final = GPA + 0x800  # 2 KiB aligned
SYNC_CURRENT_SPX: Final = 0x200  # vector offset: synchronous, current EL, SP_ELx
RESET_SCTLR: Final = 0x00C5_0078
SPAN: Final = 1 << 23
DSSBS: Final = 1 << 44


def _code() -> list[int]:
    vector = [*mov_imm32(2, MMIO), str_x(0, 2), B_SELF]
    pad = (VBAR + SYNC_CURRENT_SPX - GPA) // 4 - 1
    return [MRS_X0_PMCR_EL0, *[B_SELF] * pad, *vector]


# (interrupted PSTATE, SCTLR_EL1): EL1h with DAIF set so nothing else interrupts; NZCV, DIT
# (24), UAO (23), PAN (22), SSBS (12) in several combinations.
CASES: Final = [
    (0x0000_03C5, RESET_SCTLR),
    (0xF1C0_13C5, RESET_SCTLR),  # NZCV, DIT, UAO, PAN, SSBS: UAO and SSBS go
    (0x6000_03C5, RESET_SCTLR & ~SPAN),  # SPAN 0: PAN set
    (0x9080_13C5, RESET_SCTLR | DSSBS),  # SSBS from DSSBS; UAO goes
    (0xF1C0_13C5, (RESET_SCTLR & ~SPAN) | DSSBS),
]


@pytest.mark.parametrize(("pstate", "sctlr"), CASES, ids=lambda v: hex(v))
def test_kvm_exception_entry_equals_the_model(kvm: Kvm, pstate: int, sctlr: int) -> None:
    with guest(kvm, _code()) as g:
        g.vcpu.set_regs([(REG_PSTATE, pstate), (REG_SCTLR_EL1, sctlr), (REG_VBAR_EL1, VBAR)])
        ex = g.vcpu.run()
        assert isinstance(ex, MmioExit), ex
        assert g.vcpu.get_reg(REG_PC) == VBAR + SYNC_CURRENT_SPX + 2 * 4  # at the store
        interrupted, entered = g.vcpu.get_regs([REG_SPSR_EL1, REG_PSTATE])
        assert interrupted == pstate, "the CPU does not hold every PSTATE bit of the case"
        assert hex(entered) == hex(handler_entry_pstate(interrupted, sctlr))
