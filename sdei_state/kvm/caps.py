"""KVM capabilities (``KVM_CHECK_EXTENSION`` arguments), values from ``<linux/kvm.h>``.

Only the generic and arm64 ones this library or a VMM using it asks about. Note that
``EXIT_HYPERCALL`` is an x86 capability: it reads 0 on arm64, where hypercall exits come from
the SMCCC filter (probe that with ``Vm.has_device_attr``).
"""

from __future__ import annotations

from enum import IntEnum


class Cap(IntEnum):
    """``KVM_CAP_*`` numbers."""

    IRQCHIP = 0
    USER_MEMORY = 3
    NR_VCPUS = 9
    NR_MEMSLOTS = 10
    MP_STATE = 14
    SYNC_MMU = 16
    MAX_VCPUS = 66
    ONE_REG = 70
    ARM_PSCI = 87
    ARM_SET_DEVICE_ADDR = 88
    DEVICE_CTRL = 89
    ARM_EL1_32BIT = 93
    ARM_PSCI_0_2 = 102
    CHECK_EXTENSION_VM = 105
    ARM_PMU_V3 = 126
    VCPU_ATTRIBUTES = 127
    MAX_VCPU_ID = 128
    IMMEDIATE_EXIT = 136
    ARM_USER_IRQ = 144
    ARM_INJECT_SERROR_ESR = 158
    ARM_VM_IPA_SIZE = 165
    ARM_SVE = 170
    ARM_PTRAUTH_ADDRESS = 171
    ARM_PTRAUTH_GENERIC = 172
    ARM_IRQ_LINE_LAYOUT_2 = 174
    ARM_NISV_TO_USER = 177
    ARM_INJECT_EXT_DABT = 178
    EXIT_HYPERCALL = 201
    ARM_MTE = 205
    ARM_SYSTEM_SUSPEND = 216
    COUNTER_OFFSET = 227
    ARM_EAGER_SPLIT_CHUNK_SIZE = 228
    ARM_SUPPORTED_BLOCK_SIZES = 229
    ARM_SUPPORTED_REG_MASK_RANGES = 230

    @property
    def macro(self) -> str:
        """The C name, e.g. ``KVM_CAP_ONE_REG``."""
        return f"KVM_CAP_{self.name}"
