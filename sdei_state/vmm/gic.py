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

``GicLayout`` (``sdei_state.kvm.gic_layout``, re-exported here) is the frozen value a VMM
builds its device tree from (the ``reg`` pairs of the ``arm,gic-v3`` node) and a migration
destination must reproduce.
"""

from __future__ import annotations

from typing import Literal

from ..kvm import Device, DeviceAttrError, DeviceType, Vm
from ..kvm import vgic as uapi
from ..kvm.gic_layout import (
    DEFAULT_DIST_BASE,
    DEFAULT_NR_IRQS,
    DEFAULT_REDIST_BASE,
    AttrReader,
    GicLayout,
    read_layout,
)

__all__ = ["DEFAULT_DIST_BASE", "DEFAULT_NR_IRQS", "DEFAULT_REDIST_BASE", "AttrReader",
           "GicLayout", "VgicV3", "read_layout"]

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
