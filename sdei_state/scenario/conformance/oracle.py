"""The conformance oracle's vocabulary, written out by hand from the specifications.

Return codes (DEN0054C Table 6), event numbers, the SDEI_VERSION value, PSTATE values and the
ONE_REG ids of the SDEI and upstream firmware registers (DESIGN section 4, the kernel's
``arch/arm64/include/uapi/asm/kvm.h``) are literals here, on purpose: this package imports
nothing of ``sdei_state.spec`` or ``sdei_state.regs``, so a wrong constant or a wrong id
formula in the library cannot make its own expectation, and a bug in the encoding cannot hide
in both the code and its check. tests/test_conformance.py compares these literals with the
library's once, so the two are written independently and agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

SUCCESS: Final = 0
NOT_SUPPORTED: Final = -1
INVALID: Final = -2
DENIED: Final = -3
PENDING: Final = -5
OUT_OF_RESOURCE: Final = -10
"""DEN0054C Table 6 return codes."""

EV0: Final = 0x0000_0000
"""SW_SIGNALED: private, normal, signalable (DESIGN section 3, index 0)."""
EV1: Final = 0x4040_0000
"""ASYNC_PF: private, critical, not signalable (DESIGN section 3, index 1)."""

VERSION_1_1_KVM: Final = 0x0001_0001_564B_CAA9
"""SDEI_VERSION result: major 1 (bits[62:48]), minor 1 (bits[47:32]), vendor 0x564bcaa9."""

ALL_ONES: Final = 0xFFFF_FFFF_FFFF_FFFF
"""An all-ones 64-bit register value (written out here, like every literal of the oracle)."""
EL1H: Final = 0x5
"""PSTATE of a fresh vCPU (EL1h, DAIF clear)."""
EL1H_DAIF: Final = 0x3C5
"""Handler-entry PSTATE from an EL1h/EL1t/EL0t context without other bits: EL1h + DAIF."""

FW: Final = 0x6030_0000_0014_0000
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW: firmware regno 0."""
BMAP: Final = 0x6030_0000_0016_0000
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW_FEAT_BMAP: bitmap regno 0."""
U32_SIZE_FW: Final = 0x6020_0000_0014_0000
U128_SIZE_FW: Final = 0x6040_0000_0014_0000

NR_EVENTS: Final = 2
CONTEXT_REGS: Final = 20  # x0..x17, PC, PSTATE


def _sdei_ids() -> dict[str, int]:
    """The 47 SDEI register names of DESIGN section 4 and their ids."""
    out = {"SDEI_VCPU_STATE": FW | 0x100}
    for i in range(NR_EVENTS):
        out[f"SDEI_EVENT_STATE({i})"] = FW | (0x110 + i)
    for i in range(NR_EVENTS):
        out[f"SDEI_EVENT_EP_ADDR({i})"] = FW | (0x120 + 2 * i)
        out[f"SDEI_EVENT_EP_ARG({i})"] = FW | (0x121 + 2 * i)
    for c in range(2):
        for r in range(CONTEXT_REGS):
            out[f"SDEI_CONTEXT({c}, {r})"] = FW | (0x140 + 0x20 * c + r)
    return out


SDEI_IDS: Final[Mapping[str, int]] = MappingProxyType(_sdei_ids())
"""SDEI register name -> ONE_REG id, ascending by id (DESIGN section 4)."""

FIRMWARE_IDS: Final[Mapping[str, int]] = MappingProxyType({
    "KVM_REG_ARM_PSCI_VERSION": FW | 0,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1": FW | 1,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2": FW | 2,
    "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3": FW | 3,
    "KVM_REG_ARM_STD_BMAP": BMAP | 0,
    "KVM_REG_ARM_STD_HYP_BMAP": BMAP | 1,
    "KVM_REG_ARM_VENDOR_HYP_BMAP": BMAP | 2,
    "KVM_REG_ARM_VENDOR_HYP_BMAP_2": BMAP | 3,
})
"""The upstream firmware registers (uapi names) and their ids."""

SYSTEM_IDS: Final[Mapping[str, int]] = MappingProxyType({
    "SCTLR_EL1": 0x6030_0000_0013_C080,  # ARM64_SYS_REG(3, 0, 1, 0, 0)
})
"""System registers the scenarios read (the model reads SCTLR_EL1 at dispatch)."""

CORE_IDS: Final[Mapping[str, int]] = MappingProxyType({
    "SP_EL0": 0x6030_0000_0010_003E,  # KVM_REG_ARM_CORE_REG(regs.sp): KVM's core "sp"
    "SP_EL1": 0x6030_0000_0010_0044,  # KVM_REG_ARM_CORE_REG(sp_el1)
})
"""The banked stack pointers as KVM's core registers hold them (``cpu.sp`` is the one PSTATE
selects: SP_EL1 in EL1h, SP_EL0 in EL0t and EL1t)."""

REG_IDS: Final[Mapping[str, int]] = MappingProxyType({**SDEI_IDS, **FIRMWARE_IDS, **SYSTEM_IDS,
                                                      **CORE_IDS})
_NAME_BY_ID: Final[Mapping[int, str]] = MappingProxyType({v: k for k, v in REG_IDS.items()})

CPU_KEYS: Final = (*(f"x{n}" for n in range(31)), "sp", "pc", "pstate", "elr_el1", "spsr_el1",
                   "vbar_el1")
"""The fields of a result's ``final[].cpu`` object, as ``final_expect`` names them."""


def reg_name(rid: int) -> str:
    """Name of a register these scenarios know, else the id in hex."""
    return _NAME_BY_ID.get(rid, f"{rid:#018x}")


def reg_id(reg: str | int) -> int:
    """The id of a register given by its oracle name (``REG_IDS``) or already as an id."""
    return REG_IDS[reg] if isinstance(reg, str) else reg
