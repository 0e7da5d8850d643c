"""The reference VMM's guest-physical memory map, and where the boot loader puts things.

The map follows the shape of QEMU's ``virt`` board (GIC at 128 MiB, UART at 144 MiB, RAM from
1 GiB) so a reader who knows that board finds nothing new; only what the guest needs exists.
Every address the device tree, the boot loader and the MMIO bus use comes from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MIB: Final = 1 << 20

# The GICv3 sits where ``sdei_state.vmm.gic.GicLayout.default`` puts it (QEMU virt's 0x0800_0000
# distributor, redistributors from 0x080A_0000, room for 123 vCPUs before the UART).
UART_BASE: Final = 0x0900_0000
UART_SIZE: Final = 0x1000
UART_SPI: Final = 1  # GIC SPI number of the UART (INTID 33)
RAM_BASE: Final = 0x4000_0000

MAX_VCPUS: Final = 123
"""The redistributors (128 KiB each from 0x080A_0000) must not run into the UART."""
MIN_RAM: Final = 64 * MIB
MAX_RAM: Final = 16 * 1024 * MIB


def check_machine(nr_vcpus: int, ram_size: int) -> None:
    """ValueError naming the bad value unless the map can hold this machine."""
    if not isinstance(nr_vcpus, int) or not 1 <= nr_vcpus <= MAX_VCPUS:
        raise ValueError(f"vcpus {nr_vcpus!r}: expected 1..{MAX_VCPUS}")
    if not isinstance(ram_size, int) or not MIN_RAM <= ram_size <= MAX_RAM \
            or ram_size % (2 * MIB):
        raise ValueError(f"memory {ram_size!r} bytes: expected a multiple of 2 MiB in "
                         f"{MIN_RAM >> 20}..{MAX_RAM >> 20} MiB")


@dataclass(frozen=True)
class BootLayout:
    """Where the kernel, the device tree and the initramfs sit in guest RAM."""

    kernel: int
    """The Image's load address (its first byte; the entry point)."""
    kernel_end: int
    """End of the kernel's memory footprint (``image_size`` from its header, bss included)."""
    dtb: int
    initrd: int
    initrd_end: int
    ram_end: int


def align_up(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def place(text_offset: int, image_size: int, dtb_size: int, initrd_size: int,
          ram_size: int) -> BootLayout:
    """Place the pieces per Linux's Documentation/arch/arm64/booting.rst: the Image at
    ``text_offset`` from a 2 MiB aligned base at the start of RAM; the device tree (at most
    2 MiB, 8-byte aligned) in a 2 MiB block of its own after the kernel's footprint, so the
    kernel's early block mapping of it covers nothing else; the initramfs right after it.
    ValueError naming the piece that does not fit."""
    if dtb_size > 2 * MIB:
        raise ValueError(f"device tree of {dtb_size} bytes: the boot protocol allows 2 MiB")
    kernel = RAM_BASE + text_offset
    kernel_end = kernel + image_size
    dtb = align_up(kernel_end, 2 * MIB)
    initrd = dtb + 2 * MIB
    initrd_end = initrd + initrd_size
    ram_end = RAM_BASE + ram_size
    if initrd_end > ram_end:
        raise ValueError(f"kernel ({image_size} bytes) + device tree + initramfs "
                         f"({initrd_size} bytes) need {(initrd_end - RAM_BASE) >> 20} MiB of "
                         f"RAM; the VM has {ram_size >> 20} MiB")
    return BootLayout(kernel, kernel_end, dtb, initrd, initrd_end, ram_end)

DOORBELL_BASE: Final = 0x0901_0000
"""The test module's doorbell (``doorbell.py``); not in the device tree: the module is told
its address as a parameter."""
