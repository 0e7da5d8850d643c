"""An in-kernel GICv3 for a VM: where it sits in the guest's physical address space, and its
creation (``KVM_CREATE_DEVICE`` of ``KVM_DEV_TYPE_ARM_VGIC_V3``) in the order KVM wants.

The order (Linux ``Documentation/virt/kvm/devices/arm-vgic-v3.rst``):

1. create the device (before any vCPU has run);
2. set the distributor base (``KVM_VGIC_V3_ADDR_TYPE_DIST``) and the redistributors' base:
   one region of ``nr_vcpus`` redistributors (``KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION``, so the
   region is exactly as large as the device tree says), or on a kernel without regions the
   legacy ``KVM_VGIC_V3_ADDR_TYPE_REDIST`` base; both 64 KiB aligned;
3. set the number of interrupts (``KVM_DEV_ARM_VGIC_GRP_NR_IRQS``, 64..1024 by 32);
4. create every vCPU, then ``KVM_DEV_ARM_VGIC_CTRL_INIT`` ("Must be called after all VCPUs
   have been created").

``GicLayout`` is the frozen value a VMM builds its device tree from (the ``reg`` pairs of the
``arm,gic-v3`` node) and a migration destination must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

from ..kvm import Device, DeviceAttrError, DeviceType, Vm
from ..kvm import vgic as uapi

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


class VgicV3:
    """A VM's in-kernel GICv3: its device fd and its layout. Create it with ``create``
    before the vCPUs, call ``init`` once they all exist."""

    def __init__(self, device: Device, layout: GicLayout) -> None:
        self.device = device
        self.layout = layout

    @classmethod
    def create(cls, vm: Vm, layout: GicLayout) -> VgicV3:
        """Steps 1-3 of the module docstring. ``DeviceAttrError`` names the step that KVM
        refused (the device is closed again)."""
        dev = vm.create_device(DeviceType.ARM_VGIC_V3)
        try:
            gic = cls(dev, layout)
            gic._set(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_DIST, layout.dist_base, 64,
                     f"distributor base {layout.dist_base:#x}")
            if dev.has_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION):
                gic._set(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION,
                         uapi.redist_region(layout.redist_base, layout.nr_vcpus), 64,
                         f"redistributor region {layout.redist_base:#x} x {layout.nr_vcpus}")
            else:
                gic._set(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST, layout.redist_base,
                         64, f"redistributor base {layout.redist_base:#x}")
            gic._set(uapi.GRP_NR_IRQS, 0, layout.nr_irqs, 32,
                     f"number of interrupts {layout.nr_irqs}")
        except BaseException:
            dev.close()
            raise
        return gic

    def init(self) -> None:
        """``KVM_DEV_ARM_VGIC_CTRL_INIT``: after every vCPU exists, before any runs."""
        self._set(uapi.GRP_CTRL, uapi.KVM_DEV_ARM_VGIC_CTRL_INIT, 0, 0, "CTRL_INIT")

    def read_layout(self) -> GicLayout:
        """The layout as KVM holds it (``read_layout``)."""
        return read_layout(self.device, self.layout.nr_vcpus)

    def close(self) -> None:
        self.device.close()

    def _set(self, group: int, attr: int, value: int, width: Literal[0, 32, 64],
             what: str) -> None:
        try:
            self.device.set_attr(group, attr, value, width)
        except DeviceAttrError as e:
            raise DeviceAttrError(e.errno or 0, e.op, e.device, group, attr,
                                  f"vGICv3 {what}: {uapi.GROUP_NAMES.get(group, group)}"
                                  ) from None
