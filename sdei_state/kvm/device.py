"""``Device``: a KVM device fd (from ``Vm.create_device``) and its attributes.

The device control API (``Documentation/virt/kvm/devices/``) is three ioctls on the device fd,
``KVM_{HAS,GET,SET}_DEVICE_ATTR``, each taking a ``struct kvm_device_attr`` whose ``addr``
points at the attribute's payload. Every attribute this library uses carries a ``__u32`` or a
``__u64`` (the vGIC's distributor and redistributor registers are u32, its CPU interface
registers and addresses u64, its control attributes none), so payloads are integers here and
the caller says the width. No policy lives here: which attributes exist and what they mean is
the caller's (``sdei_state.vmm.gic``, ``sdei_state.migration.vgic``).

A ``Device`` is not thread-safe: it reuses one attribute struct and one payload buffer (KVM
takes the VM's locks for every vGIC attribute anyway).
"""

from __future__ import annotations

import errno as errno_
from enum import IntEnum
from typing import TYPE_CHECKING, Final, Literal

from ..errors import KvmError
from . import ioctls
from ._fd import FdObject

if TYPE_CHECKING:
    from .vm import Vm

Width = Literal[0, 32, 64]
"""Payload width in bits; 0 for an attribute without payload (``addr`` is not read)."""
KVM_CREATE_DEVICE_TEST: Final = 1


class DeviceType(IntEnum):
    """``enum kvm_device_type`` (``<linux/kvm.h>``): the arm64 ones."""

    ARM_VGIC_V2 = 5
    ARM_VGIC_V3 = 7
    ARM_VGIC_ITS = 8
    ARM_PV_TIME = 10

    @property
    def macro(self) -> str:
        return f"KVM_DEV_TYPE_{self.name}"


class DeviceAttrError(KvmError):
    """A device attribute ioctl failed: carries errno, the ioctl, the device type, the group
    and the attribute, e.g. ``KVM_SET_DEVICE_ATTR KVM_DEV_TYPE_ARM_VGIC_V3 group 1 attr
    0x0000000000000008: EINVAL (Invalid argument)``."""

    def __init__(self, err: int, op: str, device: str, group: int, attr: int,
                 reason: str = "") -> None:
        self.op = op
        self.device = device
        self.group = group
        self.attr = attr
        why = f" ({reason})" if reason else ""
        super().__init__(err, f"{op} {device} group {group} attr {attr:#018x}{why}")


class Device(FdObject):
    """A KVM device fd. Closed with its VM (before the VM's vCPUs are gone, as KVM allows)."""

    def __init__(self, vm: Vm, fd: int, type_: int) -> None:
        super().__init__(fd, f"Device {type_}", vm)
        self.vm = vm
        self.backend = vm.backend
        self.type = type_
        try:
            self.name = DeviceType(type_).macro
        except ValueError:
            self.name = f"device type {type_}"
        ffi = self.backend.ffi
        self._payload = ffi.new("uint64_t *")
        self._attr = ffi.new("struct kvm_device_attr *")
        self._addr = int(ffi.cast("uintptr_t", self._payload))

    def __enter__(self) -> Device:
        return self

    def _ioctl(self, request: int, op: str, group: int, attr: int, addr: int) -> int:
        a = self._attr
        try:
            a.flags, a.group, a.attr, a.addr = 0, group, attr, addr
        except (OverflowError, TypeError):
            raise DeviceAttrError(errno_.EINVAL, op, self.name, group if isinstance(
                group, int) else -1, attr if isinstance(attr, int) else -1,
                "group must be a u32 and attr a u64; not sent to KVM") from None
        return self.backend.ioctl(self.fd, request, a)

    def has_attr(self, group: int, attr: int) -> bool:
        """``KVM_HAS_DEVICE_ATTR``: True if the device has the attribute, False when KVM
        answers ``ENXIO`` (no such attribute); any other error raises ``DeviceAttrError``."""
        r = self._ioctl(ioctls.KVM_HAS_DEVICE_ATTR, "KVM_HAS_DEVICE_ATTR", group, attr, 0)
        if r == -errno_.ENXIO:
            return False
        if r < 0:
            raise DeviceAttrError(-r, "KVM_HAS_DEVICE_ATTR", self.name, group, attr)
        return True

    def get_attr(self, group: int, attr: int, width: Width = 64) -> int:
        """``KVM_GET_DEVICE_ATTR``: the attribute's ``width``-bit payload (32 or 64)."""
        if width not in (32, 64):
            raise ValueError(f"{self.name} group {group} attr {attr:#x}: a payload is 32 or 64 "
                             f"bits wide, not {width!r}")
        self._payload[0] = 0
        r = self._ioctl(ioctls.KVM_GET_DEVICE_ATTR, "KVM_GET_DEVICE_ATTR", group, attr,
                        self._addr)
        if r < 0:
            raise DeviceAttrError(-r, "KVM_GET_DEVICE_ATTR", self.name, group, attr)
        # Host order: a u32 payload is the buffer's first four bytes, i.e. the low half of the
        # u64 on a little-endian host (arm64 and x86_64 both are).
        value = int(self._payload[0])
        return value & 0xFFFF_FFFF if width == 32 else value

    def set_attr(self, group: int, attr: int, value: int = 0, width: Width = 64) -> None:
        """``KVM_SET_DEVICE_ATTR`` with a ``width``-bit payload ``value``; ``width`` 0 sends
        no payload (``addr`` 0, e.g. ``KVM_DEV_ARM_VGIC_CTRL_INIT``). A value that does not
        fit is refused before the ioctl (``ERANGE``)."""
        if width not in (0, 32, 64):
            raise ValueError(f"{self.name} group {group} attr {attr:#x}: a payload is 0, 32 or "
                             f"64 bits wide, not {width!r}")
        if width:
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value < 1 << width:
                raise DeviceAttrError(errno_.ERANGE, "KVM_SET_DEVICE_ATTR", self.name, group,
                                      attr if isinstance(attr, int) else -1,
                                      f"value {value!r} is not a u{width}; not sent to KVM")
            self._payload[0] = value
        r = self._ioctl(ioctls.KVM_SET_DEVICE_ATTR, "KVM_SET_DEVICE_ATTR", group, attr,
                        self._addr if width else 0)
        if r < 0:
            raise DeviceAttrError(-r, "KVM_SET_DEVICE_ATTR", self.name, group, attr)
