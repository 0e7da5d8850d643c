"""The vGICv3 state a migration carries, declared once as a table; the order of the table is
the order of restore. ``accesses`` expands it, for a VM's interrupt count and vCPU MPIDRs, into
the device attributes ``vgic`` reads on save and writes on restore.

Sources: the GICv3 architecture (Arm IHI 0069) for the register map, and Linux's
``Documentation/virt/kvm/devices/arm-vgic-v3.rst`` with ``arch/arm64/kvm/vgic/vgic-mmio-v3.c``
and ``arch/arm64/kvm/vgic-sys-reg-v3.c`` (6.12) for what userspace access does. The order
rules, each from those sources:

1. ``GICD_IIDR`` before every other register: "Userspace should set GICD_IIDR before setting
   any other registers to ensure the expected behavior" (arm-vgic-v3.rst, GRP_DIST_REGS). Its
   Revision field selects the implementation revision KVM emulates.
2. Identification registers are compared, never written: ``GICD_TYPER``, ``GICD_TYPER2``,
   ``GICD_PIDR2``, ``GICR_IIDR`` and ``GICR_TYPER`` describe the destination's GIC (interrupt
   count, vCPU to redistributor association, ``Last``); userspace writes to them are ignored
   (``GICR_TYPER``), or refused with ``EINVAL`` unless equal (``GICD_TYPER2``). A difference
   means the destination is not the same GIC, and restore refuses before writing.
3. Configuration before pending state: ``GICD_ICFGR``/``GICR_ICFGR0/1`` (edge or level) and the
   line levels (``KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO``) before ``ISPENDR``: for a level-triggered
   interrupt KVM keeps the pending latch apart from the line level ("the entire GIC internal
   state ... is defined by the combination of the current input line level and the latch
   state"), so both are restored, the configuration first (QEMU's ``kvm_arm_gicv3_put`` uses
   the same order).
4. ``ISPENDR`` writes from userspace set the latch to exactly the value written (set bits
   pending, clear bits not: ``vgic_v3_uaccess_write_pending``); ``ICPENDR`` is RAZ/WI for
   userspace, so it is not used. ``ISENABLER``/``ISACTIVER`` only set bits: their clear twins
   (``ICENABLER``/``ICACTIVER``) are written with all ones first, so the result does not depend
   on what the destination held.
5. ``GICR_PROPBASER``/``GICR_PENDBASER`` before ``GICR_CTLR``: once ``EnableLPIs`` is set the
   base registers ignore writes (``vgic_mmio_write_propbase``: "Storing a value with LPIs
   already enabled is undefined"). Both are carried only when the GIC has LPIs (``lpis``).
6. ``GICD_CTLR`` last of the distributor: the groups are enabled once every interrupt's state
   is in place.
7. CPU interface (``KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS``): ``ICC_SRE_EL1`` first (KVM refuses
   one without SRE: the system-register interface is the only one a GICv3 vCPU has), then
   ``ICC_CTLR_EL1``, whose PRIbits field sets how many priority bits the vCPU implements and so
   which ``ICC_AP0R<n>``/``ICC_AP1R<n>`` exist (``set_gic_ctlr``, ``vgic_v3_max_apr_idx``),
   then the priority mask, binary points and active priorities, and the group enables last.

The distributor's per-interrupt registers cover the SPIs (INTID 32 .. nr_irqs - 1); with
affinity routing (always on in KVM's GICv3) SGIs and PPIs live in each vCPU's redistributor.
No ITS: without one there are no LPIs, and nothing of the GIC lives in guest memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Literal

from ..kvm import vgic as uapi


class Scope(Enum):
    """Where a register lives: once per VM, or once per vCPU."""

    DIST = "distributor"
    VCPU = "vCPU"


class Role(Enum):
    STATE = "state"
    """Saved and written back."""
    IDENT = "ident"
    """Saved and compared with the destination's value; never written."""


@dataclass(frozen=True, slots=True)
class VgicReg:
    """One register, or one array of per-interrupt registers, of the vGICv3."""

    name: str
    group: int
    offset: int
    """Byte offset from the [re]distributor base (the SGI_base frame is at +64 KiB); for a
    CPU interface register, its ``Op0 Op1 CRn CRm Op2`` encoding; for line levels, 0."""
    scope: Scope
    bits: int = 32
    """The register's width: 64-bit [re]distributor registers travel as two u32 halves."""
    per_irq: int = 0
    """Bits per interrupt of a per-interrupt array (0: a single register)."""
    clear: int | None = None
    """Offset of the clear twin written with all ones before this set-only register."""
    role: Role = Role.STATE
    optional: bool = False
    """May be absent: KVM answers ``EINVAL`` on GET (an active-priority register beyond the
    vCPU's priority bits), or the register belongs to LPIs (``lpis``)."""
    lpis: bool = False
    """Carried only when the GIC has LPIs (``GICD_TYPER.LPIS``, i.e. an ITS): without them the
    LPI tables' base registers mean nothing, and KVM sanitises what is written to them (0 reads
    back as 0x180), so writing a fresh source's 0 would change the destination."""


def _sys(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2


_D, _V = Scope.DIST, Scope.VCPU
_DIST, _REDIST = uapi.GRP_DIST_REGS, uapi.GRP_REDIST_REGS
_SYSREG, _LEVEL = uapi.GRP_CPU_SYSREGS, uapi.GRP_LEVEL_INFO
_SGI: Final = 0x1_0000  # the redistributor's SGI_base frame
GICD_TYPER: Final = 0x0004
GICD_TYPER_LPIS: Final = 1 << 17

VGIC_REGS: Final[tuple[VgicReg, ...]] = (
    # -- distributor, once per VM -------------------------------------------------------
    VgicReg("GICD_IIDR", _DIST, 0x0008, _D),
    VgicReg("GICD_TYPER", _DIST, GICD_TYPER, _D, role=Role.IDENT),
    VgicReg("GICD_TYPER2", _DIST, 0x000C, _D, role=Role.IDENT),
    VgicReg("GICD_PIDR2", _DIST, 0xFFE8, _D, role=Role.IDENT),
    VgicReg("GICD_IGROUPR", _DIST, 0x0080, _D, per_irq=1),
    VgicReg("GICD_ICFGR", _DIST, 0x0C00, _D, per_irq=2),
    VgicReg("LINE_LEVEL", _LEVEL, 0, _D, per_irq=1),
    VgicReg("GICD_IPRIORITYR", _DIST, 0x0400, _D, per_irq=8),
    VgicReg("GICD_IROUTER", _DIST, 0x6000, _D, bits=64, per_irq=64),
    VgicReg("GICD_ISENABLER", _DIST, 0x0100, _D, per_irq=1, clear=0x0180),
    VgicReg("GICD_ISPENDR", _DIST, 0x0200, _D, per_irq=1),
    VgicReg("GICD_ISACTIVER", _DIST, 0x0300, _D, per_irq=1, clear=0x0380),
    VgicReg("GICD_CTLR", _DIST, 0x0000, _D),
    # -- redistributor, per vCPU ---------------------------------------------------------
    VgicReg("GICR_IIDR", _REDIST, 0x0004, _V, role=Role.IDENT),
    VgicReg("GICR_TYPER", _REDIST, 0x0008, _V, bits=64, role=Role.IDENT),
    VgicReg("GICR_PROPBASER", _REDIST, 0x0070, _V, bits=64, optional=True, lpis=True),
    VgicReg("GICR_PENDBASER", _REDIST, 0x0078, _V, bits=64, optional=True, lpis=True),
    VgicReg("GICR_CTLR", _REDIST, 0x0000, _V),
    VgicReg("GICR_IGROUPR", _REDIST, _SGI + 0x0080, _V, per_irq=1),
    VgicReg("GICR_ICFGR", _REDIST, _SGI + 0x0C00, _V, per_irq=2),
    VgicReg("LINE_LEVEL", _LEVEL, 0, _V, per_irq=1),
    VgicReg("GICR_IPRIORITYR", _REDIST, _SGI + 0x0400, _V, per_irq=8),
    VgicReg("GICR_ISENABLER", _REDIST, _SGI + 0x0100, _V, per_irq=1, clear=_SGI + 0x0180),
    VgicReg("GICR_ISPENDR", _REDIST, _SGI + 0x0200, _V, per_irq=1),
    VgicReg("GICR_ISACTIVER", _REDIST, _SGI + 0x0300, _V, per_irq=1, clear=_SGI + 0x0380),
    # -- CPU interface, per vCPU ---------------------------------------------------------
    VgicReg("ICC_SRE_EL1", _SYSREG, _sys(3, 0, 12, 12, 5), _V, bits=64),
    VgicReg("ICC_CTLR_EL1", _SYSREG, _sys(3, 0, 12, 12, 4), _V, bits=64),
    VgicReg("ICC_PMR_EL1", _SYSREG, _sys(3, 0, 4, 6, 0), _V, bits=64),
    VgicReg("ICC_BPR0_EL1", _SYSREG, _sys(3, 0, 12, 8, 3), _V, bits=64),
    VgicReg("ICC_BPR1_EL1", _SYSREG, _sys(3, 0, 12, 12, 3), _V, bits=64),
    *(VgicReg(f"ICC_AP0R{n}_EL1", _SYSREG, _sys(3, 0, 12, 8, 4 + n), _V, bits=64,
              optional=n > 0) for n in range(4)),
    *(VgicReg(f"ICC_AP1R{n}_EL1", _SYSREG, _sys(3, 0, 12, 9, n), _V, bits=64,
              optional=n > 0) for n in range(4)),
    VgicReg("ICC_IGRPEN0_EL1", _SYSREG, _sys(3, 0, 12, 12, 6), _V, bits=64),
    VgicReg("ICC_IGRPEN1_EL1", _SYSREG, _sys(3, 0, 12, 12, 7), _V, bits=64),
)
"""Every register a vGICv3 migration carries, in restore order (module docstring)."""


@dataclass(frozen=True, slots=True)
class Access:
    """One device attribute of one register: what save reads and restore writes."""

    reg: VgicReg
    name: str
    """The register as messages name it: ``GICD_ISENABLER1 (INTID 32-63)``,
    ``GICR_CTLR of vCPU 1``."""
    group: int
    attr: int
    width: Literal[32, 64]
    clear_attr: int | None = None


def _payload_width(group: int) -> Literal[32, 64]:
    # arm-vgic-v3.rst: [re]distributor registers and line levels are __u32, CPU interface
    # registers __u64.
    return 64 if group == uapi.GRP_CPU_SYSREGS else 32


def _irq_range(reg: VgicReg, nr_irqs: int) -> range:
    return range(uapi.NR_PRIVATE_IRQS, nr_irqs) if reg.scope is Scope.DIST \
        else range(uapi.NR_PRIVATE_IRQS)


def _expand(reg: VgicReg, nr_irqs: int, mpidr: int, who: str) -> list[Access]:
    width = _payload_width(reg.group)
    if reg.group == uapi.GRP_CPU_SYSREGS:
        op = [int(x) for x in (reg.offset >> 14, reg.offset >> 11 & 7, reg.offset >> 7 & 15,
                               reg.offset >> 3 & 15, reg.offset & 7)]
        return [Access(reg, f"{reg.name}{who}", reg.group,
                       uapi.sysreg_attr(mpidr, *op), width)]
    if reg.group == uapi.GRP_LEVEL_INFO:
        irqs = _irq_range(reg, nr_irqs)
        return [Access(reg, f"line levels of INTID {i}-{i + 31}{who}", reg.group,
                       uapi.level_attr(mpidr, i), width) for i in irqs[::32]]
    out: list[Access] = []
    if reg.per_irq:
        irqs = _irq_range(reg, nr_irqs)
        per_word = 32 // min(reg.per_irq, 32)
        halves = max(1, reg.per_irq // 32)
        for first in irqs[::per_word]:
            off = first * reg.per_irq // 8
            last = min(first + per_word, irqs.stop) - 1
            for h in range(halves):
                n = first * reg.per_irq // 32 + h
                part = "" if halves == 1 else ("[31:0]", "[63:32]")[h]
                span = f"INTID {first}" if first == last else f"INTID {first}-{last}"
                clear = None if reg.clear is None else reg.clear + off + 4 * h
                out.append(Access(
                    reg, f"{reg.name}{n if halves == 1 else first}{part} ({span}){who}",
                    reg.group, uapi.regs_attr(mpidr, reg.offset + off + 4 * h), width,
                    None if clear is None else uapi.regs_attr(mpidr, clear)))
        return out
    for h in range(reg.bits // 32):
        part = "" if reg.bits == 32 else ("[31:0]", "[63:32]")[h]
        out.append(Access(reg, f"{reg.name}{part}{who}", reg.group,
                          uapi.regs_attr(mpidr, reg.offset + 4 * h), width))
    return out


def accesses(nr_irqs: int, mpidrs: Sequence[int]) -> tuple[Access, ...]:
    """Every attribute of ``VGIC_REGS`` for a GIC of ``nr_irqs`` interrupts and vCPUs with
    these MPIDRs, in restore order: the distributor's, then each vCPU's."""
    if nr_irqs % 32 or not uapi.MIN_NR_IRQS <= nr_irqs <= uapi.MAX_NR_IRQS:
        raise ValueError(f"nr_irqs {nr_irqs}: 64 .. 1024 in steps of 32")
    first = mpidrs[0] if mpidrs else 0
    out: list[Access] = []
    for reg in VGIC_REGS:
        if reg.scope is Scope.DIST:
            out += _expand(reg, nr_irqs, first, "")
    for i, mpidr in enumerate(mpidrs):
        for reg in VGIC_REGS:
            if reg.scope is Scope.VCPU:
                out += _expand(reg, nr_irqs, mpidr, f" of vCPU {i}")
    return tuple(out)
