"""The arm64 vGIC's device-attribute numbers (``arch/arm64/include/uapi/asm/kvm.h``) and the
encodings of its ``kvm_device_attr.attr`` fields (Linux
``Documentation/virt/kvm/devices/arm-vgic-v3.rst``). Numbers only: which registers to save and
in what order is ``sdei_state.migration.vgic``'s, where the GIC sits
``sdei_state.kvm.gic_layout``'s.
"""

from __future__ import annotations

from typing import Final

# Attribute groups (KVM_DEV_ARM_VGIC_GRP_*)
GRP_ADDR: Final = 0
GRP_DIST_REGS: Final = 1
GRP_CPU_REGS: Final = 2  # GICv2 only
GRP_NR_IRQS: Final = 3
GRP_CTRL: Final = 4
GRP_REDIST_REGS: Final = 5
GRP_CPU_SYSREGS: Final = 6
GRP_LEVEL_INFO: Final = 7
GRP_ITS_REGS: Final = 8

GROUP_NAMES: Final = {
    GRP_ADDR: "KVM_DEV_ARM_VGIC_GRP_ADDR", GRP_DIST_REGS: "KVM_DEV_ARM_VGIC_GRP_DIST_REGS",
    GRP_CPU_REGS: "KVM_DEV_ARM_VGIC_GRP_CPU_REGS", GRP_NR_IRQS: "KVM_DEV_ARM_VGIC_GRP_NR_IRQS",
    GRP_CTRL: "KVM_DEV_ARM_VGIC_GRP_CTRL", GRP_REDIST_REGS: "KVM_DEV_ARM_VGIC_GRP_REDIST_REGS",
    GRP_CPU_SYSREGS: "KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS",
    GRP_LEVEL_INFO: "KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO",
    GRP_ITS_REGS: "KVM_DEV_ARM_VGIC_GRP_ITS_REGS",
}

# GRP_ADDR attributes (u64 guest-physical addresses)
KVM_VGIC_V3_ADDR_TYPE_DIST: Final = 2
KVM_VGIC_V3_ADDR_TYPE_REDIST: Final = 3
KVM_VGIC_ITS_ADDR_TYPE: Final = 4
KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION: Final = 5
KVM_VGIC_V3_DIST_SIZE: Final = 0x1_0000  # SZ_64K
KVM_VGIC_V3_REDIST_SIZE: Final = 0x2_0000  # 2 * SZ_64K per vCPU: RD_base and SGI_base frames

# GRP_CTRL attributes (no payload)
KVM_DEV_ARM_VGIC_CTRL_INIT: Final = 0
KVM_DEV_ARM_ITS_SAVE_TABLES: Final = 1
KVM_DEV_ARM_ITS_RESTORE_TABLES: Final = 2
KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES: Final = 3

# attr field layouts
KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT: Final = 32
KVM_DEV_ARM_VGIC_OFFSET_MASK: Final = 0xFFFF_FFFF
KVM_DEV_ARM_VGIC_SYSREG_INSTR_MASK: Final = 0xFFFF
KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT: Final = 10
KVM_DEV_ARM_VGIC_LINE_LEVEL_INTID_MASK: Final = 0x3FF
VGIC_LEVEL_INFO_LINE_LEVEL: Final = 0

NR_PRIVATE_IRQS: Final = 32  # SGIs 0-15 and PPIs 16-31, banked per vCPU
MIN_NR_IRQS: Final = 64
MAX_NR_IRQS: Final = 1024


def attr_mpidr(mpidr: int) -> int:
    """The attr's mpidr field (bits 63..32): ``Aff3:Aff2:Aff1:Aff0`` packed into 32 bits, from
    an MPIDR_EL1 value (Aff3 is MPIDR bits 39..32, the others bits 23..0)."""
    return ((mpidr >> 32) & 0xFF) << 24 | (mpidr & 0xFF_FFFF)


def regs_attr(mpidr: int, offset: int) -> int:
    """GRP_DIST_REGS / GRP_REDIST_REGS attr: ``mpidr`` (ignored for the distributor) and the
    byte offset from the [re]distributor base (the redistributor's SGI_base frame at +64 KiB)."""
    return attr_mpidr(mpidr) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT | offset & \
        KVM_DEV_ARM_VGIC_OFFSET_MASK


def sysreg_attr(mpidr: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """GRP_CPU_SYSREGS attr: ``mpidr`` and the register's A64 encoding (``Op0 Op1 CRn CRm Op2``
    in bits 15..0, as ``ARM64_SYS_REG`` lays it out)."""
    instr = op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2
    return attr_mpidr(mpidr) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT | instr


def level_attr(mpidr: int, intid: int) -> int:
    """GRP_LEVEL_INFO attr: the line levels of the 32 interrupts from ``intid`` (a multiple of
    32) as seen by ``mpidr`` (PPIs are per vCPU, SPIs the same for every mpidr)."""
    if intid % 32 or not 0 <= intid < MAX_NR_IRQS:
        raise ValueError(f"LEVEL_INFO vINTID {intid} is not a multiple of 32 below 1024")
    return (attr_mpidr(mpidr) << KVM_DEV_ARM_VGIC_V3_MPIDR_SHIFT
            | VGIC_LEVEL_INFO_LINE_LEVEL << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT | intid)


def redist_region(base: int, count: int, index: int = 0) -> int:
    """The u64 payload of ``KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION``: count (bits 63..52), base
    bits 51..16, flags 0 (15..12), index (11..0)."""
    if base & 0xFFFF or not 0 <= base < 1 << 52:
        raise ValueError(f"redistributor region base {base:#x} is not a 64 KiB aligned "
                         "address below 2**52")
    if not 0 < count < 1 << 12 or not 0 <= index < 1 << 12:
        raise ValueError(f"redistributor region count {count} / index {index} out of range")
    return count << 52 | base | index
