"""MMIO dispatch: which device answers an access outside guest RAM.

A vCPU thread's ``KVM_EXIT_MMIO`` names a guest-physical address and the bytes of the access;
``MmioBus.handle`` finds the device whose window holds it and returns the bytes a load reads
(None for a store). An address no device claims reads as zeros and ignores stores, as an
unassigned address on QEMU's ``virt`` board does; each is counted so a test sees them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from ...kvm.exits import MmioExit


class MmioDevice(Protocol):
    """A device's registers; ``vcpu`` is the index of the vCPU making the access."""

    def read(self, vcpu: int, offset: int, size: int) -> int: ...

    def write(self, vcpu: int, offset: int, size: int, value: int) -> None: ...


@dataclass(frozen=True)
class Window:
    base: int
    size: int
    device: MmioDevice
    name: str


class MmioBus:
    """Devices by address window. Thread-safe: vCPU threads dispatch concurrently, and one
    lock per bus keeps a device's register updates whole (a UART is not a hot path)."""

    def __init__(self) -> None:
        self.windows: list[Window] = []
        self.unclaimed: list[int] = []
        """Addresses of accesses no device claimed (at most 64 kept)."""
        self._lock = threading.Lock()

    def add(self, base: int, size: int, device: MmioDevice, name: str) -> None:
        for w in self.windows:
            if base < w.base + w.size and w.base < base + size:
                raise ValueError(f"MMIO window {name} [{base:#x}, +{size:#x}) overlaps "
                                 f"{w.name} [{w.base:#x}, +{w.size:#x})")
        self.windows.append(Window(base, size, device, name))

    def handle(self, vcpu: int, exit_: MmioExit) -> bytes | None:
        """Perform vCPU ``vcpu``'s access; the bytes for a load (give them to
        ``set_mmio_data``)."""
        size = len(exit_.data)
        with self._lock:
            for w in self.windows:
                off = exit_.phys_addr - w.base
                if 0 <= off < w.size:
                    if exit_.is_write:
                        w.device.write(vcpu, off, size, exit_.value)
                        return None
                    return w.device.read(vcpu, off, size).to_bytes(size, "little")
            if len(self.unclaimed) < 64:
                self.unclaimed.append(exit_.phys_addr)
        return None if exit_.is_write else bytes(size)
