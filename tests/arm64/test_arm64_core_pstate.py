"""The simulated vCPU refuses exactly the core PSTATEs real KVM refuses.

``sdei_state.vcpu.core_rules`` states Linux 6.12 ``set_core_reg()`` (arch/arm64/kvm/guest.c)
for an AArch64-EL1 vCPU without nested virtualization; here the real kernel answers every
mode field value, and each answer must equal the simulated vCPU's.
"""

from __future__ import annotations

import errno

import pytest

from sdei_state.errors import RegError
from sdei_state.kvm import Vcpu
from sdei_state.regs.ids import REG_PSTATE
from sdei_state.vcpu.core_rules import PSTATE_ID, core_value_problem
from sdei_state.vcpu.sim import SimVm


@pytest.mark.parametrize("mode", range(32), ids=lambda m: f"M={m:#07b}")
def test_real_kvm_and_the_simulated_vcpu_refuse_the_same_pstates(vcpu: Vcpu, mode: int) -> None:
    assert REG_PSTATE == PSTATE_ID
    value = 0x6000_03C0 | mode
    sim = SimVm(1).vcpus[0]
    want_refused = core_value_problem(PSTATE_ID, value) is not None
    for target in (vcpu, sim):
        before = target.get_reg(REG_PSTATE)
        try:
            target.set_reg(REG_PSTATE, value)
        except RegError as e:
            assert e.errno == errno.EINVAL and want_refused, (type(target).__name__, e)
            assert target.get_reg(REG_PSTATE) == before
        else:
            assert not want_refused, f"{type(target).__name__} accepted {value:#x}"
            assert target.get_reg(REG_PSTATE) == value
