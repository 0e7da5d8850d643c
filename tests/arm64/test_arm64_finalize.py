"""``Vcpu.finalize`` (KVM_ARM_VCPU_FINALIZE) on real arm64 KVM: an SVE vCPU lists its
registers only once finalized (what the stock-vmm suite's preflight destination needs to
match QEMU's ``-cpu host``), and finalizing a feature the vCPU was not initialised with is
refused (EINVAL; a second finalize EPERM)."""

from __future__ import annotations

import errno

import pytest

from sdei_state.errors import KvmError
from sdei_state.kvm import Cap, Kvm, VcpuFeature

SVE_VLS = 0x606000000015FFFF  # KVM_REG_ARM64_SVE_VLS (U512)
ZCR_EL1 = 0x603000000013C090


def test_an_sve_vcpu_lists_its_registers_once_finalized(kvm: Kvm) -> None:
    if not kvm.check_extension(Cap.ARM_SVE):
        pytest.skip("this host has no SVE (KVM_CAP_ARM_SVE is 0)")
    with kvm.create_vm() as vm:
        v = vm.create_vcpu(0)
        v.init((VcpuFeature.PSCI_0_2, VcpuFeature.SVE))
        with pytest.raises(KvmError) as e:
            v.reg_list()
        assert e.value.errno == errno.EPERM
        v.finalize(VcpuFeature.SVE)
        ids = set(v.reg_list())
        assert SVE_VLS in ids and ZCR_EL1 in ids
        with pytest.raises(KvmError) as e:
            v.finalize(VcpuFeature.SVE)  # once only (arch/arm64/kvm/reset.c)
        assert e.value.errno == errno.EPERM


def test_finalizing_a_feature_the_vcpu_lacks_is_refused(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        v = vm.create_vcpu(0)
        v.init((VcpuFeature.PSCI_0_2,))
        with pytest.raises(KvmError) as e:
            v.finalize(VcpuFeature.SVE)
        assert e.value.errno == errno.EINVAL
        assert "KVM_ARM_VCPU_FINALIZE" in str(e.value)
