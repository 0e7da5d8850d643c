"""``Kvm``: the ``/dev/kvm`` system fd."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..errors import KvmError
from . import ioctls
from ._fd import FdObject, check, uint_arg
from .ffi import FfiBackend, Mode, backend

if TYPE_CHECKING:
    from .vm import Vm

DEFAULT_PATH = "/dev/kvm"


class Kvm(FdObject):
    """An open ``/dev/kvm``. Closing it closes the VMs created from it.

    ``mode`` picks the cffi bindings (``"abi"``/``"api"``, default ``SDEI_STATE_CFFI`` or
    automatic); every object created from this one uses the same bindings.
    """

    def __init__(self, path: str = DEFAULT_PATH, *, mode: Mode | None = None) -> None:
        self.backend: FfiBackend = backend(mode)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as e:
            raise KvmError(e.errno or 0, f"open {path}") from None
        super().__init__(fd, "Kvm")
        self._mmap_size: int | None = None

    def __enter__(self) -> Kvm:
        return self

    def api_version(self) -> int:
        """``KVM_GET_API_VERSION`` (12 on every kernel since 2.6.22)."""
        return check(self.backend.ioctl_val(self.fd, ioctls.KVM_GET_API_VERSION, 0),
                     "KVM_GET_API_VERSION")

    def check_extension(self, cap: int) -> int:
        """``KVM_CHECK_EXTENSION``: 0 when absent, else 1 or a capability-specific value."""
        return check(self.backend.ioctl_val(self.fd, ioctls.KVM_CHECK_EXTENSION,
                                               uint_arg("KVM_CHECK_EXTENSION", "cap", cap, 32)),
                     "KVM_CHECK_EXTENSION")

    def vcpu_mmap_size(self) -> int:
        """``KVM_GET_VCPU_MMAP_SIZE``: bytes to map from a vCPU fd (``struct kvm_run`` and
        more). Cached: it is fixed for the host."""
        if self._mmap_size is None:
            self._mmap_size = check(
                self.backend.ioctl_val(self.fd, ioctls.KVM_GET_VCPU_MMAP_SIZE, 0),
                "KVM_GET_VCPU_MMAP_SIZE")
        return self._mmap_size

    def create_vm(self, machine_type: int = 0) -> Vm:
        """``KVM_CREATE_VM``. ``machine_type`` on arm64 carries the IPA size
        (``KVM_VM_TYPE_ARM_IPA_SIZE(bits)``); 0 is the 40-bit default."""
        from .vm import Vm

        machine_type = uint_arg("KVM_CREATE_VM", "machine_type", machine_type, 64)
        fd = check(self.backend.ioctl_val(self.fd, ioctls.KVM_CREATE_VM, machine_type),
                   "KVM_CREATE_VM")
        return Vm(self, fd)
