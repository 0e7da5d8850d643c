"""The arm64 uapi numbers that only the bindings use: vCPU init features and the SMCCC filter
VM device attribute (Linux >= 6.4).

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


# VM device attributes: the SMCCC filter (Linux >= 6.4)
KVM_ARM_VM_SMCCC_CTRL: Final = 0
KVM_ARM_VM_SMCCC_FILTER: Final = 0


class SmcccFilterAction(IntEnum):
    """``enum kvm_smccc_filter_action``."""

    HANDLE = 0
    DENY = 1
    FWD_TO_USER = 2
