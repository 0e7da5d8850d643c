"""Fixtures for the tests that need real arm64 KVM (they run inside `sdei-state lab test`).

On any other host every test here is collected and skipped with the reason. Inside the lab
(``SDEI_STATE_LAB=1``, set by its /init) a missing /dev/kvm is a failure, not a skip, so a
broken lab cannot pass by skipping everything.
"""

from __future__ import annotations

import errno
import os
import platform
from collections.abc import Iterator

import pytest

from sdei_state.errors import KvmError
from sdei_state.kvm import Kvm, Vcpu, VcpuFeature
from sdei_state.kvm.arm64 import KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER

from .arm64_support import VcpuFactory


def _why_no_arm64_kvm() -> str | None:
    if platform.machine() != "aarch64":
        return (f"needs arm64 KVM: run `sdei-state lab test` (this host is "
                f"{platform.machine()})")
    if not os.path.exists("/dev/kvm"):
        return "needs arm64 KVM: no /dev/kvm"
    return None


@pytest.fixture(scope="session", autouse=True)
def _arm64_kvm() -> None:
    why = _why_no_arm64_kvm()
    if why:
        if os.environ.get("SDEI_STATE_LAB") == "1":
            pytest.fail(f"inside the lab, but {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def kvm(_arm64_kvm: None) -> Iterator[Kvm]:
    with Kvm() as k:
        yield k



@pytest.fixture
def make_vcpu(kvm: Kvm) -> Iterator[VcpuFactory]:
    """make_vcpu(features=(PSCI_0_2,), init=True): a vCPU 0 in a fresh VM, closed afterwards."""
    vms = []

    def make(features: tuple[int, ...] = (VcpuFeature.PSCI_0_2,), init: bool = True) -> Vcpu:
        vm = kvm.create_vm()
        vms.append(vm)
        vcpu = vm.create_vcpu(0)
        if init:
            vcpu.init(features)
        return vcpu

    yield make
    for vm in vms:
        vm.close()


@pytest.fixture
def vcpu(make_vcpu: VcpuFactory) -> Vcpu:
    return make_vcpu()


@pytest.fixture(scope="session")
def smccc_filter(kvm: Kvm) -> None:
    """Skip (with the reason) on kernels without the SMCCC filter (Linux < 6.4, e.g. 6.1)."""
    with kvm.create_vm() as vm:
        try:
            vm.has_device_attr(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER)
        except KvmError as e:
            if e.errno in (errno.EINVAL, errno.ENXIO):
                pytest.skip(f"no SMCCC filter on Linux {platform.release()}: "
                            f"KVM_HAS_DEVICE_ATTR(KVM_ARM_VM_SMCCC_CTRL, FILTER) gives "
                            f"{errno.errorcode[e.errno]} (the filter arrived in Linux 6.4)")
            raise
