"""KVM ioctl numbers, in one place, computed from ``_IOC`` as ``<asm-generic/ioctl.h>`` does.

``_IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr`` with ``_IOC_NONE`` 0,
``_IOC_WRITE`` 1, ``_IOC_READ`` 2 (the layout x86_64 and arm64 share). Each entry records the
struct whose size goes into the number; tests compare every ``size`` with ``ffi.sizeof`` of
the cdef in ``cdefs/kvm.h`` and every ``number`` with what the C headers give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

KVMIO: Final = 0xAE
IOC_NONE: Final = 0
IOC_WRITE: Final = 1
IOC_READ: Final = 2


def ioc(direction: int, type_: int, nr: int, size: int) -> int:
    """``_IOC(dir, type, nr, size)``."""
    if not (0 <= direction <= 3 and 0 <= type_ <= 0xFF and 0 <= nr <= 0xFF
            and 0 <= size < 1 << 14):
        raise ValueError(f"_IOC({direction}, {type_:#x}, {nr:#x}, {size}) out of range")
    return direction << 30 | size << 16 | type_ << 8 | nr


@dataclass(frozen=True)
class Ioctl:
    """One KVM ioctl: its name, ``_IOC`` fields and the struct (cdef name) sized into it."""

    name: str
    direction: int
    nr: int
    struct: str | None = None  # None: no argument struct (_IO), size 0
    size: int = 0

    @property
    def number(self) -> int:
        return ioc(self.direction, KVMIO, self.nr, self.size)


def _io(name: str, nr: int) -> Ioctl:
    return Ioctl(name, IOC_NONE, nr)


def _iow(name: str, nr: int, struct: str, size: int) -> Ioctl:
    return Ioctl(name, IOC_WRITE, nr, struct, size)


def _ior(name: str, nr: int, struct: str, size: int) -> Ioctl:
    return Ioctl(name, IOC_READ, nr, struct, size)


def _iowr(name: str, nr: int, struct: str, size: int) -> Ioctl:
    return Ioctl(name, IOC_READ | IOC_WRITE, nr, struct, size)


IOCTLS: Final = (
    # /dev/kvm
    _io("KVM_GET_API_VERSION", 0x00),
    _io("KVM_CREATE_VM", 0x01),
    _io("KVM_CHECK_EXTENSION", 0x03),  # also on the VM fd
    _io("KVM_GET_VCPU_MMAP_SIZE", 0x04),
    # VM fd
    _io("KVM_CREATE_VCPU", 0x41),
    _iow("KVM_SET_USER_MEMORY_REGION", 0x46, "struct kvm_userspace_memory_region", 32),
    _ior("KVM_ARM_PREFERRED_TARGET", 0xAF, "struct kvm_vcpu_init", 32),
    _iowr("KVM_CREATE_DEVICE", 0xE0, "struct kvm_create_device", 12),
    _iow("KVM_SET_DEVICE_ATTR", 0xE1, "struct kvm_device_attr", 24),  # also vCPU / device fd
    _iow("KVM_GET_DEVICE_ATTR", 0xE2, "struct kvm_device_attr", 24),
    _iow("KVM_HAS_DEVICE_ATTR", 0xE3, "struct kvm_device_attr", 24),
    # vCPU fd
    _io("KVM_RUN", 0x80),
    _ior("KVM_GET_MP_STATE", 0x98, "struct kvm_mp_state", 4),
    _iow("KVM_SET_MP_STATE", 0x99, "struct kvm_mp_state", 4),
    _iow("KVM_GET_ONE_REG", 0xAB, "struct kvm_one_reg", 16),  # _IOW, not _IOWR: see uapi
    _iow("KVM_SET_ONE_REG", 0xAC, "struct kvm_one_reg", 16),
    _iow("KVM_ARM_VCPU_INIT", 0xAE, "struct kvm_vcpu_init", 32),
    _iow("KVM_ARM_VCPU_FINALIZE", 0xC2, "int", 4),
    _iowr("KVM_GET_REG_LIST", 0xB0, "struct kvm_reg_list", 8),
)

BY_NAME: Final = {i.name: i for i in IOCTLS}

KVM_GET_API_VERSION: Final = BY_NAME["KVM_GET_API_VERSION"].number
KVM_CREATE_VM: Final = BY_NAME["KVM_CREATE_VM"].number
KVM_CHECK_EXTENSION: Final = BY_NAME["KVM_CHECK_EXTENSION"].number
KVM_GET_VCPU_MMAP_SIZE: Final = BY_NAME["KVM_GET_VCPU_MMAP_SIZE"].number
KVM_CREATE_VCPU: Final = BY_NAME["KVM_CREATE_VCPU"].number
KVM_SET_USER_MEMORY_REGION: Final = BY_NAME["KVM_SET_USER_MEMORY_REGION"].number
KVM_ARM_PREFERRED_TARGET: Final = BY_NAME["KVM_ARM_PREFERRED_TARGET"].number
KVM_CREATE_DEVICE: Final = BY_NAME["KVM_CREATE_DEVICE"].number
KVM_SET_DEVICE_ATTR: Final = BY_NAME["KVM_SET_DEVICE_ATTR"].number
KVM_GET_DEVICE_ATTR: Final = BY_NAME["KVM_GET_DEVICE_ATTR"].number
KVM_HAS_DEVICE_ATTR: Final = BY_NAME["KVM_HAS_DEVICE_ATTR"].number
KVM_RUN: Final = BY_NAME["KVM_RUN"].number
KVM_GET_MP_STATE: Final = BY_NAME["KVM_GET_MP_STATE"].number
KVM_SET_MP_STATE: Final = BY_NAME["KVM_SET_MP_STATE"].number
KVM_GET_ONE_REG: Final = BY_NAME["KVM_GET_ONE_REG"].number
KVM_SET_ONE_REG: Final = BY_NAME["KVM_SET_ONE_REG"].number
KVM_ARM_VCPU_INIT: Final = BY_NAME["KVM_ARM_VCPU_INIT"].number
KVM_GET_REG_LIST: Final = BY_NAME["KVM_GET_REG_LIST"].number
KVM_ARM_VCPU_FINALIZE: Final = BY_NAME["KVM_ARM_VCPU_FINALIZE"].number
