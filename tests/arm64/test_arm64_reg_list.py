"""get-reg-list, the kernel selftest's way: blessed registers as data (sublists), vCPU
configurations as lists of sublists, one generic checker.

Per configuration: the listed registers must include every blessed one (missing = failure;
extra ones are reported, since a newer kernel may add registers); every listed register must
read, and writing back the value read must succeed.
"""

from __future__ import annotations

import errno

import pytest

from sdei_state.errors import KvmError, RegError
from sdei_state.kvm import Kvm, Vcpu, VcpuFeature
from sdei_state.regs.ids import REG_PC
from sdei_state.selftest import fw_suite
from sdei_state.selftest.fw_suite import Sublist

from .arm64_support import VcpuFactory, name

# The blessed sublists and configurations are the selftest's own (one copy of the data).
BASE, CONFIGS = fw_suite.BASE, fw_suite.CONFIGS


def _features(config: tuple[Sublist, ...]) -> tuple[int, ...]:
    return (VcpuFeature.PSCI_0_2, *(f for s in config for f in s.features))


def _require_caps(kvm: Kvm, config: tuple[Sublist, ...]) -> None:
    for s in config:
        for cap in s.caps:
            if kvm.check_extension(cap) <= 0:
                pytest.skip(f"sublist {s.name}: {cap.macro} is 0 on this host")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_blessed_registers_are_listed(kvm: Kvm, make_vcpu: VcpuFactory, config: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    subs = CONFIGS[config]
    _require_caps(kvm, subs)
    listed = make_vcpu(_features(subs)).reg_list()
    assert len(set(listed)) == len(listed), "KVM_GET_REG_LIST repeats an id"
    blessed = {r for s in subs for r in s.regs}
    missing = [name(r) for r in sorted(blessed - set(listed))]
    assert not missing, f"config {config}: blessed registers not listed:\n  " + \
        "\n  ".join(missing)
    extra = len(set(listed) - blessed)
    with capsys.disabled():
        print(f"\n  [{config}] {len(listed)} registers listed, {len(blessed)} blessed, "
              f"{extra} more (not blessed, still read and written back below)")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_listed_register_reads_and_writes_back(kvm: Kvm, make_vcpu: VcpuFactory,
                                                     config: str) -> None:
    subs = CONFIGS[config]
    _require_caps(kvm, subs)
    failures = fw_suite.read_write_back(make_vcpu(_features(subs)))
    assert not failures, f"config {config}:\n  " + "\n  ".join(failures)


def test_batched_equals_single(vcpu: Vcpu) -> None:
    ids = [r for r in vcpu.reg_list() if (r >> 16) & 0xFFF in (0x10, 0x14, 0x16)]
    assert len(ids) > 80
    assert vcpu.get_regs(ids) == [vcpu.get_reg(r) for r in ids]
    vcpu.set_regs(list(zip(ids, vcpu.get_regs(ids), strict=True)))


def test_reg_list_before_init_is_enoexec(make_vcpu: VcpuFactory) -> None:
    vcpu = make_vcpu(init=False)
    with pytest.raises(KvmError) as ei:
        vcpu.reg_list()
    assert (ei.value.errno, ei.value.what) == (errno.ENOEXEC, "KVM_GET_REG_LIST")
    with pytest.raises(RegError) as er:
        vcpu.get_reg(REG_PC)
    assert er.value.errno == errno.ENOEXEC and er.value.reg_id == REG_PC
