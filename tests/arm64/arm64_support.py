"""Shared data and helpers of the arm64 lab tests: register ids, guest code, a tiny guest.

Imported by the test modules beside it (pytest puts this directory on sys.path).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from sdei_state.kvm import Kvm, Vcpu, VcpuFeature, Vm
from sdei_state.regs.ids import REG_PC, fw_feat_bmap_reg, fw_reg

_describe: Callable[[int], str] | None
try:
    from sdei_state.regs.ids import describe as _describe
except ImportError:  # pragma: no cover - the names are a nicety
    _describe = None


VcpuFactory = Callable[..., Vcpu]
"""make_vcpu(features=(PSCI_0_2,), init=True) -> a vCPU 0 in a fresh VM (conftest)."""


def name(reg_id: int) -> str:
    """The id the way the kernel's get-reg-list selftest prints it."""
    if _describe is not None:
        try:
            return f"{_describe(reg_id)} ({reg_id:#018x})"
        except Exception:
            pass
    return f"{reg_id:#018x}"


# -- register ids -----------------------------------------------------------------------------

PSCI_VERSION: Final = fw_reg(0)
WORKAROUND_1: Final = fw_reg(1)
WORKAROUND_2: Final = fw_reg(2)
WORKAROUND_3: Final = fw_reg(3)
STD_BMAP: Final = fw_feat_bmap_reg(0)
STD_HYP_BMAP: Final = fw_feat_bmap_reg(1)
VENDOR_HYP_BMAP: Final = fw_feat_bmap_reg(2)
FW_REGS: Final = (PSCI_VERSION, WORKAROUND_1, WORKAROUND_2, WORKAROUND_3)
BMAP_REGS: Final = (STD_BMAP, STD_HYP_BMAP, VENDOR_HYP_BMAP)


def is_firmware(reg_id: int) -> bool:
    return (reg_id >> 16) & 0xFFF in (0x14, 0x16)


# -- guest code (A64 encodings) ---------------------------------------------------------------

def movz(rd: int, imm16: int, hw: int = 0) -> int:
    return 0xD2800000 | hw << 21 | imm16 << 5 | rd


def movk(rd: int, imm16: int, hw: int = 0) -> int:
    return 0xF2800000 | hw << 21 | imm16 << 5 | rd


def mov_imm32(rd: int, value: int) -> list[int]:
    return [movz(rd, value >> 16, 1), movk(rd, value & 0xFFFF, 0)]


def hvc(imm16: int = 0) -> int:
    return 0xD4000002 | imm16 << 5


def smc(imm16: int = 0) -> int:
    return 0xD4000003 | imm16 << 5


def str_x(rt: int, rn: int) -> int:
    return 0xF9000000 | rn << 5 | rt


B_SELF: Final = 0x14000000  # b .

GPA: Final = 0x4000_0000  # code at the start of RAM
MMIO: Final = 0x1000_0000  # outside every memslot: a store there exits with KVM_EXIT_MMIO


def call_then_report(function_id: int, conduit: Callable[[int], int] = hvc) -> list[int]:
    """x0 = function_id; hvc/smc #0; store x0 to MMIO (exits with x0 as data); spin."""
    return [*mov_imm32(0, function_id), conduit(0), *mov_imm32(2, MMIO), str_x(0, 2), B_SELF]


@dataclass
class Guest:
    """A one-vCPU VM running ``code`` at ``GPA`` in EL1h with interrupts masked."""

    vm: Vm
    vcpu: Vcpu


@contextmanager
def guest(kvm: Kvm, code: list[int], *, before_run: Callable[[Guest], None] | None = None,
          features: tuple[int, ...] = (VcpuFeature.PSCI_0_2,)) -> Iterator[Guest]:
    with kvm.create_vm() as vm:
        mem = vm.add_memory(0, GPA, 0x10000)
        mem.write(0, struct.pack(f"<{len(code)}I", *code))
        vcpu = vm.create_vcpu(0)
        vcpu.init(features)
        vcpu.set_reg(REG_PC, GPA)  # the reset PSTATE is EL1h with DAIF masked
        g = Guest(vm, vcpu)
        if before_run is not None:
            before_run(g)
        yield g
