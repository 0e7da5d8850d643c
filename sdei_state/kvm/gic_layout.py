"""Where a vCPU's in-kernel GICv3 sits (``GicLayout``: what the device tree's ``arm,gic-v3``
node says and what KVM is told) and reading it back from the device.

A value of the bindings layer, so that a VMM (``sdei_state.vmm.gic`` creates the vGIC) and a
migration (``sdei_state.migration.vgic`` checks that a destination reproduces it) share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from . import vgic as uapi

DEFAULT_DIST_BASE: Final = 0x0800_0000
"""Where QEMU's ``virt`` machine puts the distributor; below RAM at 1 GiB, and well clear of
the project's guest programs' MMIO doorbell page (0x1000_0000)."""
DEFAULT_REDIST_BASE: Final = 0x080A_0000
"""QEMU ``virt``'s redistributor base: room for 123 vCPUs before 0x0900_0000."""
DEFAULT_NR_IRQS: Final = 128
"""SGIs, PPIs and 96 SPIs: enough for a UART and a few devices."""


@dataclass(frozen=True, slots=True)
class GicLayout:
    """Where a GICv3 sits and how many interrupts it has: what the device tree says
    (``reg = <dist_base dist_size redist_base redist_size>``) and what KVM is told."""

    dist_base: int
    redist_base: int
    nr_vcpus: int
    nr_irqs: int = DEFAULT_NR_IRQS

    def __post_init__(self) -> None:
        for name in ("dist_base", "redist_base", "nr_vcpus", "nr_irqs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"GicLayout.{name} = {v!r} is not a non-negative integer")
        for name, base in (("distributor", self.dist_base),
                           ("redistributor", self.redist_base)):
            if base % 0x1_0000 or base >= 1 << 48:
                raise ValueError(f"GICv3 {name} base {base:#x} is not 64 KiB aligned below "
                                 "2**48")
        if not 1 <= self.nr_vcpus < 1 << 12:
            raise ValueError(f"GicLayout.nr_vcpus = {self.nr_vcpus}: 1 .. 4095 (one "
                             "redistributor region)")
        if self.nr_irqs % 32 or not uapi.MIN_NR_IRQS <= self.nr_irqs <= uapi.MAX_NR_IRQS:
            raise ValueError(f"GicLayout.nr_irqs = {self.nr_irqs}: 64 .. 1024 in steps of 32 "
                             "(KVM_DEV_ARM_VGIC_GRP_NR_IRQS)")
        d, r = self.dist, self.redist
        if d[0] < r[0] + r[1] and r[0] < d[0] + d[1]:
            raise ValueError(f"GICv3 distributor [{d[0]:#x}, +{d[1]:#x}) overlaps the "
                             f"redistributors [{r[0]:#x}, +{r[1]:#x})")

    @classmethod
    def default(cls, nr_vcpus: int, nr_irqs: int = DEFAULT_NR_IRQS) -> GicLayout:
        """QEMU ``virt``'s addresses for ``nr_vcpus`` vCPUs."""
        return cls(DEFAULT_DIST_BASE, DEFAULT_REDIST_BASE, nr_vcpus, nr_irqs)

    @property
    def dist(self) -> tuple[int, int]:
        """(base, size) of the distributor."""
        return self.dist_base, uapi.KVM_VGIC_V3_DIST_SIZE

    @property
    def redist(self) -> tuple[int, int]:
        """(base, size) of the redistributors: two 64 KiB frames per vCPU, contiguous."""
        return self.redist_base, uapi.KVM_VGIC_V3_REDIST_SIZE * self.nr_vcpus

    @property
    def reg(self) -> tuple[int, int, int, int]:
        """The device tree's ``reg`` of the ``arm,gic-v3`` node: distributor then
        redistributor (base, size) pairs."""
        return (*self.dist, *self.redist)

    @property
    def nr_spis(self) -> int:
        return self.nr_irqs - uapi.NR_PRIVATE_IRQS

    def redist_frame(self, vcpu_index: int) -> int:
        """Base of vCPU ``vcpu_index``'s redistributor (KVM fills the region in vCPU order)."""
        if not 0 <= vcpu_index < self.nr_vcpus:
            raise ValueError(f"vCPU {vcpu_index} outside the layout's {self.nr_vcpus}")
        return self.redist_base + vcpu_index * uapi.KVM_VGIC_V3_REDIST_SIZE


class AttrReader(Protocol):
    """What ``read_layout`` needs of a device (``sdei_state.kvm.Device`` has it)."""

    def has_attr(self, group: int, attr: int) -> bool: ...

    def get_attr(self, group: int, attr: int, width: Literal[32, 64] = 64) -> int: ...


def read_layout(device: AttrReader, nr_vcpus: int) -> GicLayout:
    """The layout a vGICv3 device holds: its distributor base and redistributor base
    (``GRP_ADDR``; of region 0 when the kernel has regions, as ``VgicV3.create`` sets them) and
    its interrupt count (``GRP_NR_IRQS``), for ``nr_vcpus`` vCPUs."""
    dist = device.get_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_DIST)
    if device.has_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION):
        # GET reads the region whose index the payload holds: the buffer starts at 0, index 0.
        region = device.get_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION)
        redist = region & 0x000F_FFFF_FFFF_0000
    else:
        redist = device.get_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST)
    return GicLayout(dist, redist, nr_vcpus, device.get_attr(uapi.GRP_NR_IRQS, 0, 32))
