"""``Vm``: a VM fd, its guest memory and its vCPUs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import KvmError
from . import ioctls
from ._fd import FdObject, check, uint_arg
from .arm64 import KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER, SmcccFilterAction

if TYPE_CHECKING:
    from .device import Device
    from .system import Kvm
    from .vcpu import Vcpu


@dataclass(frozen=True)
class VcpuInit:
    """``struct kvm_vcpu_init`` (arm64): a target and seven feature words."""

    target: int
    features: tuple[int, ...] = (0,) * 7

    def with_features(self, *bits: int) -> VcpuInit:
        """This init with feature ``bits`` (``VcpuFeature`` values) set."""
        words = list(self.features)
        for b in bits:
            if not 0 <= b < 32 * len(words):
                raise ValueError(f"vCPU feature bit {b} outside kvm_vcpu_init.features")
            words[b // 32] |= 1 << (b % 32)
        return VcpuInit(self.target, tuple(words))


class GuestMemory:
    """Anonymous host memory backing one memslot; unmapped when its VM closes."""

    def __init__(self, vm: Vm, slot: int, guest_phys_addr: int, size: int) -> None:
        # The bindings, not the VM: the VM lists its memory, a back reference would be a cycle
        # that keeps a dropped VM (fd and mappings) alive until the cycle collector runs.
        self._backend = vm.backend
        self.slot = slot
        self.guest_phys_addr = guest_phys_addr
        self.size = size
        self._ptr: Any = vm.backend.mmap_anonymous(size)  # char *, never handed out

    @property
    def userspace_addr(self) -> int:
        return int(self._backend.ffi.cast("uintptr_t", self._ptr))

    def write(self, offset: int, data: bytes) -> None:
        """Copy ``data`` to guest-physical ``guest_phys_addr + offset``."""
        self._bounds(offset, len(data))
        self._backend.ffi.memmove(self._ptr + offset, data, len(data))

    def read(self, offset: int, length: int) -> bytes:
        self._bounds(offset, length)
        return bytes(self._backend.ffi.buffer(self._ptr + offset, length))

    def _bounds(self, offset: int, length: int) -> None:
        if self._ptr is None:
            raise ValueError(f"memslot {self.slot}: memory already released (VM closed)")
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ValueError(f"memslot {self.slot}: [{offset:#x}, +{length:#x}) outside "
                             f"its {self.size:#x} bytes")

    def release(self) -> None:
        if self._ptr is not None:
            self._backend.munmap(self._ptr, self.size)
            self._ptr = None


class Vm(FdObject):
    """A VM fd (from ``Kvm.create_vm``). Closing it closes its vCPUs, then unmaps its guest
    memory."""

    def __init__(self, kvm: Kvm, fd: int) -> None:
        super().__init__(fd, "Vm", kvm)
        self.kvm = kvm
        self.backend = kvm.backend
        self.memory: list[GuestMemory] = []

    def __enter__(self) -> Vm:
        return self

    def check_extension(self, cap: int) -> int:
        """``KVM_CHECK_EXTENSION`` on the VM fd (per-VM answers, e.g. the IPA size)."""
        return check(self.backend.ioctl_val(self.fd, ioctls.KVM_CHECK_EXTENSION,
                                               uint_arg("KVM_CHECK_EXTENSION", "cap", cap, 32)),
                     "KVM_CHECK_EXTENSION")

    def create_vcpu(self, index: int = 0) -> Vcpu:
        """``KVM_CREATE_VCPU`` with vCPU id ``index``."""
        from .vcpu import Vcpu

        index = uint_arg("KVM_CREATE_VCPU", "index", index, 32)
        fd = check(self.backend.ioctl_val(self.fd, ioctls.KVM_CREATE_VCPU, index),
                   "KVM_CREATE_VCPU")
        return Vcpu(self, fd, index)

    def create_device(self, type_: int) -> Device:
        """``KVM_CREATE_DEVICE`` of ``type_`` (a ``DeviceType``): the new device's fd, closed
        with this VM."""
        from .device import Device

        return Device(self, self._create_device(type_, 0), type_)

    def check_device(self, type_: int) -> None:
        """``KVM_CREATE_DEVICE`` with ``KVM_CREATE_DEVICE_TEST``: returns if a device of
        ``type_`` could be created (nothing is), else ``KvmError`` says why not."""
        from .device import KVM_CREATE_DEVICE_TEST

        self._create_device(type_, KVM_CREATE_DEVICE_TEST)

    def _create_device(self, type_: int, flags: int) -> int:
        uint_arg("KVM_CREATE_DEVICE", "type", type_, 32)
        cd = self.backend.ffi.new("struct kvm_create_device *", {"type": type_, "flags": flags})
        check(self.backend.ioctl(self.fd, ioctls.KVM_CREATE_DEVICE, cd),
              f"KVM_CREATE_DEVICE(type {type_}{', TEST' if flags else ''})")
        return int(cd.fd)

    def preferred_target(self) -> VcpuInit:
        """``KVM_ARM_PREFERRED_TARGET`` (arm64): the target for ``Vcpu.init``, no features."""
        kvi = self.backend.ffi.new("struct kvm_vcpu_init *")
        check(self.backend.ioctl(self.fd, ioctls.KVM_ARM_PREFERRED_TARGET, kvi),
              "KVM_ARM_PREFERRED_TARGET")
        return VcpuInit(int(kvi.target), tuple(int(w) for w in kvi.features))

    def set_user_memory_region(self, slot: int, guest_phys_addr: int, memory_size: int,
                               userspace_addr: int, flags: int = 0) -> None:
        """``KVM_SET_USER_MEMORY_REGION``. The caller keeps ``userspace_addr`` mapped for as
        long as the slot exists (``add_memory`` does that for you)."""
        _check_region(slot, guest_phys_addr, memory_size, userspace_addr, flags)
        region = self.backend.ffi.new("struct kvm_userspace_memory_region *", {
            "slot": slot, "flags": flags, "guest_phys_addr": guest_phys_addr,
            "memory_size": memory_size, "userspace_addr": userspace_addr})
        check(self.backend.ioctl(self.fd, ioctls.KVM_SET_USER_MEMORY_REGION, region),
              "KVM_SET_USER_MEMORY_REGION")

    def add_memory(self, slot: int, guest_phys_addr: int, size: int) -> GuestMemory:
        """Map ``size`` bytes of anonymous memory and make it memslot ``slot`` at
        ``guest_phys_addr``. The VM owns the memory; it is unmapped when the VM closes."""
        _check_region(slot, guest_phys_addr, size)  # before anything is mapped
        try:
            mem = GuestMemory(self, slot, guest_phys_addr, size)
        except OSError as e:
            raise KvmError(e.errno or 0, f"mmap of {size:#x} bytes for memslot {slot}") from None
        try:
            self.set_user_memory_region(slot, guest_phys_addr, size, mem.userspace_addr)
        except KvmError:
            mem.release()
            raise
        self.memory.append(mem)
        return mem

    def has_device_attr(self, group: int, attr: int) -> None:
        """``KVM_HAS_DEVICE_ATTR`` on the VM fd; returns if supported, else raises KvmError
        (``ENXIO`` for an unknown attribute; ``EINVAL`` where the VM fd has no attributes at
        all, e.g. arm64 before 6.4)."""
        _check_attr("KVM_HAS_DEVICE_ATTR", group, attr)
        a = self.backend.ffi.new("struct kvm_device_attr *", {"group": group, "attr": attr})
        check(self.backend.ioctl(self.fd, ioctls.KVM_HAS_DEVICE_ATTR, a), "KVM_HAS_DEVICE_ATTR")

    def set_device_attr(self, group: int, attr: int, data: bytes | int, flags: int = 0) -> None:
        """``KVM_SET_DEVICE_ATTR`` on the VM fd. ``data`` is the attribute's payload: the bytes
        of its struct (``set_smccc_filter`` builds one), or an int for an attribute that takes
        a ``__u64``; it is copied into a buffer that lives for the duration of the ioctl."""
        ffi = self.backend.ffi
        _check_attr("KVM_SET_DEVICE_ATTR", group, attr, flags)
        if isinstance(data, int):
            buf = ffi.new("uint64_t *", uint_arg("KVM_SET_DEVICE_ATTR", "value", data, 64))
        elif isinstance(data, bytes | bytearray):
            buf = ffi.new("char[]", bytes(data) or b"\0")
        else:
            raise TypeError(f"device attribute {group:#x}/{attr:#x}: data must be bytes or an "
                            f"int, not {type(data).__name__}")
        a = ffi.new("struct kvm_device_attr *", {
            "flags": flags, "group": group, "attr": attr,
            "addr": int(ffi.cast("uintptr_t", buf))})
        check(self.backend.ioctl(self.fd, ioctls.KVM_SET_DEVICE_ATTR, a), "KVM_SET_DEVICE_ATTR")

    def set_smccc_filter(self, base: int, nr_functions: int,
                         action: SmcccFilterAction) -> None:
        """Install an SMCCC filter range (arm64, Linux >= 6.4): ``KVM_SET_DEVICE_ATTR`` with
        ``KVM_ARM_VM_SMCCC_CTRL`` / ``KVM_ARM_VM_SMCCC_FILTER``. Only before the VM first runs
        (``EBUSY`` after); overlapping ranges give ``EEXIST``."""
        ffi = self.backend.ffi
        uint_arg("KVM_ARM_VM_SMCCC_FILTER", "base", base, 32)
        uint_arg("KVM_ARM_VM_SMCCC_FILTER", "nr_functions", nr_functions, 32)
        f = ffi.new("struct kvm_smccc_filter *", {
            "base": base, "nr_functions": nr_functions, "action": int(action)})
        try:
            self.set_device_attr(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER,
                                 bytes(ffi.buffer(f)))
        except KvmError as e:
            raise KvmError(e.errno or 0, "KVM_SET_DEVICE_ATTR(KVM_ARM_VM_SMCCC_FILTER "
                           f"base={base:#x} nr={nr_functions} {action.name})") from None

    def close(self) -> None:
        """Close the vCPUs and the VM fd, then unmap the guest memory."""
        if self.closed:
            return
        super().close()
        for mem in self.memory:
            mem.release()
        self.memory.clear()


def _check_region(slot: int, guest_phys_addr: int, memory_size: int, userspace_addr: int = 0,
                  flags: int = 0) -> None:
    """The fields of ``struct kvm_userspace_memory_region``, each checked for its width."""
    what = "KVM_SET_USER_MEMORY_REGION"
    for name, value, bits in (("slot", slot, 32), ("flags", flags, 32),
                              ("guest_phys_addr", guest_phys_addr, 64),
                              ("memory_size", memory_size, 64),
                              ("userspace_addr", userspace_addr, 64)):
        uint_arg(what, name, value, bits)


def _check_attr(what: str, group: int, attr: int, flags: int = 0) -> None:
    """The fields of ``struct kvm_device_attr`` (``group`` and ``flags`` u32, ``attr`` u64)."""
    uint_arg(what, "group", group, 32)
    uint_arg(what, "attr", attr, 64)
    uint_arg(what, "flags", flags, 32)
