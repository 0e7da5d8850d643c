"""The arm64 uapi numbers that only the bindings use: vCPU init features, the power states of
``KVM_{GET,SET}_MP_STATE`` and the SMCCC filter VM device attribute (Linux >= 6.4).

Register ids are not here: every id (core, system, firmware, SDEI) comes from
``sdei_state.regs.ids``, the one register-id vocabulary of the package.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class VcpuFeature(IntEnum):
    """``KVM_ARM_VCPU_*`` bits of ``kvm_vcpu_init.features``."""

    POWER_OFF = 0
    EL1_32BIT = 1
    PSCI_0_2 = 2
    PMU_V3 = 3
    SVE = 4
    PTRAUTH_ADDRESS = 5
    PTRAUTH_GENERIC = 6
    HAS_EL2 = 7


class MpState(IntEnum):
    """The ``KVM_MP_STATE_*`` values arm64 KVM uses (``struct kvm_mp_state``): the others of
    ``include/uapi/linux/kvm.h`` are x86 and s390 states, which arm64 answers ``EINVAL``."""

    RUNNABLE = 0
    STOPPED = 5  # powered off: PSCI CPU_OFF, KVM_ARM_VCPU_POWER_OFF, or never turned on
    SUSPENDED = 10  # PSCI SYSTEM_SUSPEND taken (KVM_CAP_ARM_SYSTEM_SUSPEND), waiting to wake


# VM device attributes: the SMCCC filter (Linux >= 6.4)
KVM_ARM_VM_SMCCC_CTRL: Final = 0
KVM_ARM_VM_SMCCC_FILTER: Final = 0


class SmcccFilterAction(IntEnum):
    """``enum kvm_smccc_filter_action``."""

    HANDLE = 0
    DENY = 1
    FWD_TO_USER = 2
