"""rust-vmm kvm-ioctls' register names work on the real and the simulated vCPU, and are the
same methods as the library's own names (so they cannot drift apart)."""

from __future__ import annotations

import pytest

from sdei_state.kvm.vcpu import Vcpu
from sdei_state.regs.sdei import VCPU_STATE_ID as VCPU_STATE
from sdei_state.vcpu.sim import SimVcpu, SimVm

NAMES = (("get_one_reg", "get_reg"), ("set_one_reg", "set_reg"), ("get_reg_list", "reg_list"))


@pytest.mark.parametrize("cls", [Vcpu, SimVcpu])
@pytest.mark.parametrize(("rust", "ours"), NAMES)
def test_rust_vmm_name_is_the_same_method(cls: type, rust: str, ours: str) -> None:
    assert getattr(cls, rust) is getattr(cls, ours)


def test_rust_vmm_names_work_on_a_simulated_vcpu() -> None:
    v = SimVm(1).vcpus[0]
    ids = v.get_reg_list()
    assert VCPU_STATE in ids and ids == v.reg_list()
    v.set_one_reg(VCPU_STATE, 1)  # masked
    assert v.get_one_reg(VCPU_STATE) == 1 == v.get_reg(VCPU_STATE)
