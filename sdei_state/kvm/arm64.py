"""The arm64 uapi numbers the bindings themselves need: vCPU features, the SMCCC filter
attribute, core-register ids for ``KvmCpu``, and ``KVM_REG_SIZE``.

The full register-id vocabulary (names, decoding, every group) is ``sdei_state.regs.ids``;
this module holds only what the kernel boundary uses, so it depends on nothing.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

# <linux/kvm.h>, generic ONE_REG encoding
KVM_REG_ARCH_MASK: Final = 0xFF00_0000_0000_0000
KVM_REG_ARM64: Final = 0x6000_0000_0000_0000
KVM_REG_SIZE_SHIFT: Final = 52
KVM_REG_SIZE_MASK: Final = 0x00F0_0000_0000_0000
KVM_REG_SIZE_U32: Final = 0x0020_0000_0000_0000
KVM_REG_SIZE_U64: Final = 0x0030_0000_0000_0000
KVM_REG_SIZE_U128: Final = 0x0040_0000_0000_0000


def reg_size(reg_id: int) -> int:
    """``KVM_REG_SIZE(id)``: the value's width in bytes (1 .. 32768)."""
    return 1 << ((reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)


# <asm/kvm.h> (arm64) register groups
KVM_REG_ARM_COPROC_SHIFT: Final = 16
KVM_REG_ARM_CORE: Final = 0x0010 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM64_SYSREG: Final = 0x0013 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM_FW: Final = 0x0014 << KVM_REG_ARM_COPROC_SHIFT
KVM_REG_ARM_FW_FEAT_BMAP: Final = 0x0016 << KVM_REG_ARM_COPROC_SHIFT

# struct kvm_regs byte offsets (cdefs/kvm.h struct kvm_regs_core; checked by a test)
_OFF_X0: Final = 0
_OFF_SP_EL0: Final = 248  # regs.sp
_OFF_PC: Final = 256
_OFF_PSTATE: Final = 264
_OFF_SP_EL1: Final = 272
_OFF_ELR_EL1: Final = 280
_OFF_SPSR: Final = 288
KVM_SPSR_EL1: Final = 0  # index into kvm_regs.spsr[]


def core_reg(byte_offset: int, size: int = KVM_REG_SIZE_U64) -> int:
    """``KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(field)``, given
    ``offsetof(struct kvm_regs, field)``."""
    return KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | byte_offset // 4


def sys_reg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``ARM64_SYS_REG(op0, op1, crn, crm, op2)``."""
    return (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM64_SYSREG
            | op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2)


def fw_reg(regno: int) -> int:
    """``KVM_REG_ARM_FW_REG(r)``."""
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | (regno & 0xFFFF)


def fw_feat_bmap_reg(regno: int) -> int:
    """``KVM_REG_ARM_FW_FEAT_BMAP_REG(r)``."""
    return KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP | (regno & 0xFFFF)


REG_X: Final = tuple(core_reg(_OFF_X0 + 8 * n) for n in range(31))
REG_SP_EL0: Final = core_reg(_OFF_SP_EL0)
REG_PC: Final = core_reg(_OFF_PC)
REG_PSTATE: Final = core_reg(_OFF_PSTATE)
REG_SP_EL1: Final = core_reg(_OFF_SP_EL1)
REG_ELR_EL1: Final = core_reg(_OFF_ELR_EL1)
REG_SPSR_EL1: Final = core_reg(_OFF_SPSR + 8 * KVM_SPSR_EL1)
REG_VBAR_EL1: Final = sys_reg(3, 0, 12, 0, 0)

REG_PSCI_VERSION: Final = fw_reg(0)
REG_STD_BMAP: Final = fw_feat_bmap_reg(0)


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
