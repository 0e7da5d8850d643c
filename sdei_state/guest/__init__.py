"""Guest code for the SDEI selftests: an A64 encoder, a tiny assembler, the guest memory
layout and doorbell protocol, the selftest programs, and a pure-Python vCPU that runs them
against the reference model. Nothing here touches KVM.

Modules: ``a64`` (encoder), ``disasm`` (decoder), ``asm`` (labels, fixups, ``Image``),
``layout`` (addresses, result records), ``doorbell`` (the MMIO reporting protocol),
``builder`` (``ProgramSpec`` -> ``GuestProgram``), ``programs`` (the selftest programs),
``sim`` (``GuestCpu`` and ``simulate``). See docs/guest.md.
"""

from __future__ import annotations

from .asm import Asm, AsmError, Image
from .builder import CallSite, GuestProgram, HandlerInfo, ProgramError, ProgramSpec, build
from .disasm import decode, decode_insn
from .doorbell import Bell, BellError, BellKind, bell_code, parse_code, parse_mmio
from .layout import LAYOUT, FaultRecord, Layout, LayoutError, Record
from .programs import PROGRAMS

__all__ = [
    "LAYOUT",
    "PROGRAMS",
    "Asm",
    "AsmError",
    "Bell",
    "BellError",
    "BellKind",
    "CallSite",
    "FaultRecord",
    "GuestProgram",
    "HandlerInfo",
    "Image",
    "Layout",
    "LayoutError",
    "ProgramError",
    "ProgramSpec",
    "Record",
    "bell_code",
    "build",
    "decode",
    "decode_insn",
    "parse_code",
    "parse_mmio",
]
