"""The arm64 ``Image`` boot protocol (Linux Documentation/arch/arm64/booting.rst).

The header is 64 bytes at the start of the Image: two code words, ``text_offset``,
``image_size``, ``flags``, three reserved words, the magic ``ARM\\x64`` at byte 56. The boot
loader places the Image, the device tree and the initramfs (``layout.place``) and starts the
boot vCPU at the Image's first byte with x0 = the device tree's address and x1-x3 = 0, MMU
off, in EL1h with D, A, I, F masked (KVM's vCPU reset state gives all of that but x0 and PC).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from ...cpu import CpuReg
from .layout import BootLayout, place

HEADER: Final = struct.Struct("<IIQQQQQQII")  # code0 code1 text_offset image_size flags
MAGIC: Final = 0x644D_5241  # "ARM\x64", little-endian
FLAG_BE: Final = 1 << 0
MAX_IMAGE: Final = 512 << 20
"""A decompressed kernel larger than this is refused (bounded work on a bad file)."""


class GuestRam(Protocol):
    """Guest RAM as the boot loader writes it (``kvm.GuestMemory``)."""

    guest_phys_addr: int

    def write(self, offset: int, data: bytes) -> None: ...


@dataclass(frozen=True)
class ImageHeader:
    text_offset: int
    image_size: int
    flags: int


def read_image(data: bytes, what: str = "kernel") -> bytes:
    """The raw Image from ``data`` (a gzip-compressed one, as some distributions ship
    ``vmlinuz``, is decompressed, at most ``MAX_IMAGE`` bytes). ValueError naming ``what``."""
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            raw = d.decompress(data, MAX_IMAGE)
        except zlib.error as e:
            raise ValueError(f"{what}: bad gzip data ({e})") from None
        if d.unconsumed_tail:
            raise ValueError(f"{what}: decompresses to more than {MAX_IMAGE >> 20} MiB")
        return raw
    return data


def parse_header(image: bytes, what: str = "kernel") -> ImageHeader:
    """The Image header; ValueError naming the field that is wrong."""
    if len(image) < HEADER.size:
        raise ValueError(f"{what}: {len(image)} bytes, shorter than the 64-byte arm64 Image "
                         "header")
    _c0, _c1, text_offset, image_size, flags, _r2, _r3, _r4, magic, _r5 = HEADER.unpack_from(image)
    if magic != MAGIC:
        raise ValueError(f"{what}: magic {magic:#010x} at byte 56 is not the arm64 Image "
                         f"magic {MAGIC:#010x} (\"ARM\\x64\")")
    if flags & FLAG_BE:
        raise ValueError(f"{what}: flags {flags:#x}: a big-endian kernel (bit 0); this VMM "
                         "boots little-endian kernels")
    if image_size == 0:  # kernels before 3.17: the protocol says assume 0x80000, size unknown
        text_offset, image_size = 0x80000, 0
    return ImageHeader(text_offset, max(image_size, len(image)), flags)


def load(ram: GuestRam, ram_size: int, image: bytes, dtb: bytes, initrd: bytes) -> BootLayout:
    """Write the pieces into ``ram`` where ``layout.place`` puts them; returns the layout.
    The device tree must already name the initramfs range (``chosen_initrd``) the layout
    gives: build it with ``plan`` first."""
    hdr = parse_header(image)
    lay = place(hdr.text_offset, hdr.image_size, len(dtb), len(initrd), ram_size)
    base = ram.guest_phys_addr
    ram.write(lay.kernel - base, image)
    ram.write(lay.dtb - base, dtb)
    if initrd:
        ram.write(lay.initrd - base, initrd)
    return lay


def plan(image: bytes, initrd_size: int, ram_size: int, dtb_budget: int = 64 << 10) -> BootLayout:
    """The layout ``load`` will use, before the device tree exists (its size only moves
    nothing as long as it stays within its own 2 MiB block)."""
    hdr = parse_header(image)
    return place(hdr.text_offset, hdr.image_size, dtb_budget, initrd_size, ram_size)


def entry_registers(lay: BootLayout) -> Mapping[CpuReg, int]:
    """The boot vCPU's registers on entry: PC at the Image, x0 = device tree, x1-x3 = 0."""
    return {CpuReg.PC: lay.kernel, CpuReg.X0: lay.dtb, CpuReg.X1: 0, CpuReg.X2: 0,
            CpuReg.X3: 0}


__all__ = ["HEADER", "MAGIC", "BootLayout", "ImageHeader", "entry_registers", "load",
           "parse_header", "plan", "read_image"]
