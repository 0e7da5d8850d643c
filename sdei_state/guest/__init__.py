"""The guest CPU: an A64 encoder, a tiny assembler, a decoder/disassembler, the guest memory
layout and doorbell protocol of the selftest guests, and a pure-Python AArch64 interpreter.

It imports nothing of the SDEI model (only ``sdei_state.errors``): the programs that make
SDEI calls are built in ``sdei_state.selftest.programs``, and ``sdei_state.vmm`` makes the
interpreter look like a KVM vCPU. Nothing here touches KVM.

Modules: ``a64`` (encoder), ``disasm`` (decoder), ``asm`` (labels, fixups, ``Image``),
``layout`` (addresses, result records), ``doorbell`` (the MMIO reporting protocol),
``interpreter`` (``GuestCpu``). See docs/guest.md.
"""

from __future__ import annotations

from .asm import Asm, AsmError, Image
from .disasm import decode_insn, disassemble
from .doorbell import Bell, BellError, BellKind, bell_code, parse_code, parse_mmio
from .interpreter import CallStop, GuestCpu, SimError, Stop, StoreStop
from .layout import LAYOUT, FaultRecord, Layout, LayoutError, Record

__all__ = [
    "LAYOUT",
    "Asm",
    "AsmError",
    "Bell",
    "BellError",
    "BellKind",
    "CallStop",
    "FaultRecord",
    "GuestCpu",
    "Image",
    "Layout",
    "LayoutError",
    "Record",
    "SimError",
    "Stop",
    "StoreStop",
    "bell_code",
    "decode_insn",
    "disassemble",
    "parse_code",
    "parse_mmio",
]
