"""arm64 ``KVM_{GET,SET}_ONE_REG`` register ids: the uapi layout and the decoded forms.

Layout of an id (``include/uapi/linux/kvm.h`` and ``arch/arm64/include/uapi/asm/kvm.h``)::

    63..56 arch   KVM_REG_ARM64 = 0x60
    55..52 size   KVM_REG_SIZE_U8 .. U2048 = 0..8, the register is (1 << size) bytes
    51..28 zero   (KVM's get/set_reg refuse any bit here: "(id & ~KVM_REG_SIZE_MASK) >> 32")
    27..16 group  KVM_REG_ARM_COPROC_MASK: CORE 0x10, DEMUX 0x11, SYSREG 0x13, FW 0x14,
                  SVE 0x15, FW_FEAT_BMAP 0x16
    15..0  fields of the group

Group fields, as api.rst documents them:

- CORE ``0x60x0 0000 0010 <index:16>``: index of the member in ``struct kvm_regs`` seen as an
  array of u32; the size must be the member's (x0-x30, sp, pc, pstate, sp_el1, elr_el1,
  spsr[5] U64; fp_regs.vregs[32] U128; fp_regs.fpsr/fpcr U32) and the index must be where a
  member starts (``core_reg_size_from_offset`` in ``arch/arm64/kvm/guest.c``).
- DEMUX ``0x6020 0000 0011 00 <csselr:8>``: CCSIDR_EL1 demultiplexed by CSSELR value (U32).
- SYSREG ``0x6030 0000 0013 <op0:2> <op1:3> <crn:4> <crm:4> <op2:3>`` (U64).
- FW ``0x6030 0000 0014 <regno:16>`` and FW_FEAT_BMAP ``0x6030 0000 0016 <regno:16>`` (U64:
  ``KVM_REG_ARM_FW_REG()`` builds U64 only, and ``kvm_arm_set_fw_reg()`` answers ENOENT for
  any other size).
- SVE: ``KVM_REG_ARM64_SVE_ZREG(n, i)`` (U2048; n 0-31 in bits 9:5, slice i 0-31 in 4:0),
  ``_PREG(n, i)`` (U256; 0x400 | n 0-15 << 5 | i), ``_FFR(i)`` (U256; 0x600 | i) and
  ``KVM_REG_ARM64_SVE_VLS`` (U512, fields 0xffff).

``id_codec.decode_id`` turns an id into one of the frozen ``RegId`` values declared here, or
raises ``InvalidRegId`` with the reason.
Names of the SDEI block (FW regnos 0x100-0x1FF) come from its declaration in ``sdei_block``.
Printing and parsing are in ``id_names``; ``ids`` is the public face of both.

Pure: no I/O, nothing from ``sdei_state.kvm``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import ClassVar, Final

from ..errors import SdeiStateError
from . import sysregs
from .sdei_block import regno_name

# --- uapi constants --------------------------------------------------------------------------

KVM_REG_ARCH_MASK: Final = 0xFF00_0000_0000_0000
KVM_REG_ARM64: Final = 0x6000_0000_0000_0000
KVM_REG_SIZE_SHIFT: Final = 52
KVM_REG_SIZE_MASK: Final = 0x00F0_0000_0000_0000
KVM_REG_ARM_COPROC_SHIFT: Final = 16
KVM_REG_ARM_COPROC_MASK: Final = 0x0000_0000_0FFF_0000
ZERO_MASK: Final = 0x000F_FFFF_F000_0000  # bits 51..28: no arm64 id sets them
FIELDS_MASK: Final = 0xFFFF

KVM_REG_ARM_DEMUX_ID_MASK: Final = 0xFF00
KVM_REG_ARM_DEMUX_ID_SHIFT: Final = 8
KVM_REG_ARM_DEMUX_ID_CCSIDR: Final = 0x00 << KVM_REG_ARM_DEMUX_ID_SHIFT
KVM_REG_ARM_DEMUX_VAL_MASK: Final = 0xFF
CSSELR_MAX: Final = 14
"""CSSELR values 0..13 select a cache (Level-1 in bits 3:1 for levels 1-7, InD in bit 0); the
kernel's ``CSSELR_MAX`` bounds the demux index the same way."""

KVM_REG_ARM64_SVE_ZREG_BASE: Final = 0x000
KVM_REG_ARM64_SVE_PREG_BASE: Final = 0x400
KVM_REG_ARM64_SVE_FFR_BASE: Final = 0x600
KVM_ARM64_SVE_NUM_ZREGS: Final = 32
KVM_ARM64_SVE_NUM_PREGS: Final = 16
KVM_ARM64_SVE_MAX_SLICES: Final = 32
SVE_VLS_FIELDS: Final = 0xFFFF


class RegSize(IntEnum):
    """The size field (bits 55..52): ``KVM_REG_SIZE_<name>``; the register is 1 << value bytes."""

    U8 = 0
    U16 = 1
    U32 = 2
    U64 = 3
    U128 = 4
    U256 = 5
    U512 = 6
    U1024 = 7
    U2048 = 8

    @property
    def nbytes(self) -> int:
        """Bytes a GET/SET of this size transfers."""
        return 1 << self.value

    @property
    def bits(self) -> int:
        """The field placed in an id: ``KVM_REG_SIZE_<name>``."""
        return self.value << KVM_REG_SIZE_SHIFT

    @property
    def macro(self) -> str:
        """``KVM_REG_SIZE_U64`` ..."""
        return f"KVM_REG_SIZE_{self.name}"


class Group(IntEnum):
    """The arm64 register groups (``KVM_REG_ARM_COPROC_MASK`` field, bits 27..16)."""

    CORE = 0x10
    DEMUX = 0x11
    SYSREG = 0x13
    FW = 0x14
    SVE = 0x15
    FW_FEAT_BMAP = 0x16

    @property
    def bits(self) -> int:
        """The field placed in an id: ``KVM_REG_ARM_CORE`` = 0x100000, ..."""
        return self.value << KVM_REG_ARM_COPROC_SHIFT

    @property
    def macro(self) -> str:
        """The uapi macro naming the group."""
        return _GROUP_MACRO[self]


_GROUP_MACRO: Final = MappingProxyType(
    {
        Group.CORE: "KVM_REG_ARM_CORE",
        Group.DEMUX: "KVM_REG_ARM_DEMUX",
        Group.SYSREG: "KVM_REG_ARM64_SYSREG",
        Group.FW: "KVM_REG_ARM_FW",
        Group.SVE: "KVM_REG_ARM64_SVE",
        Group.FW_FEAT_BMAP: "KVM_REG_ARM_FW_FEAT_BMAP",
    }
)

KVM_REG_SIZE_U32: Final = RegSize.U32.bits
KVM_REG_SIZE_U64: Final = RegSize.U64.bits
KVM_REG_SIZE_U128: Final = RegSize.U128.bits

KVM_REG_ARM_CORE: Final = Group.CORE.bits
KVM_REG_ARM_DEMUX: Final = Group.DEMUX.bits
KVM_REG_ARM64_SYSREG: Final = Group.SYSREG.bits
KVM_REG_ARM_FW: Final = Group.FW.bits
KVM_REG_ARM64_SVE: Final = Group.SVE.bits
KVM_REG_ARM_FW_FEAT_BMAP: Final = Group.FW_FEAT_BMAP.bits


class InvalidRegId(SdeiStateError, ValueError):
    """An integer that is not a well-formed arm64 ONE_REG id; ``reason`` says which field."""

    def __init__(self, reg_id: object, reason: str) -> None:
        self.reg_id = reg_id
        self.reason = reason
        shown = f"{reg_id:#018x}" if isinstance(reg_id, int) else repr(reg_id)
        super().__init__(f"{shown} is not a valid arm64 register id: {reason}")


# --- struct kvm_regs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreMember:
    """One member of ``struct kvm_regs`` (arch/arm64/include/uapi/asm/kvm.h)."""

    offset: int
    """``KVM_REG_ARM_CORE_REG(member)``: offsetof / sizeof(__u32)."""
    member: str
    """The C member, as the selftest prints it: ``regs.regs[0]``, ``spsr[1]``, ..."""
    name: str
    """Short name: ``x0``, ``sp``, ``pc``, ``pstate``, ``spsr_abt``, ``v31``, ``fpcr`` ..."""
    size: RegSize


def _core_members() -> tuple[CoreMember, ...]:
    # struct user_pt_regs { u64 regs[31]; u64 sp; u64 pc; u64 pstate; } at 0, then u64 sp_el1,
    # u64 elr_el1, u64 spsr[KVM_NR_SPSR = 5] (KVM_SPSR_EL1, ABT, UND, IRQ, FIQ), then
    # struct user_fpsimd_state { __uint128_t vregs[32]; u32 fpsr; u32 fpcr; } 16-byte aligned
    # at byte 336 (u32 index 84). api.rst lists the same indexes (x0 0x00 .. FPCR 0xd5).
    m = [CoreMember(2 * i, f"regs.regs[{i}]", f"x{i}", RegSize.U64) for i in range(31)]
    m += [
        CoreMember(62, "regs.sp", "sp", RegSize.U64),
        CoreMember(64, "regs.pc", "pc", RegSize.U64),
        CoreMember(66, "regs.pstate", "pstate", RegSize.U64),
        CoreMember(68, "sp_el1", "sp_el1", RegSize.U64),
        CoreMember(70, "elr_el1", "elr_el1", RegSize.U64),
    ]
    spsr_names = ("spsr_el1", "spsr_abt", "spsr_und", "spsr_irq", "spsr_fiq")
    m += [CoreMember(72 + 2 * i, f"spsr[{i}]", n, RegSize.U64) for i, n in enumerate(spsr_names)]
    m += [CoreMember(84 + 4 * i, f"fp_regs.vregs[{i}]", f"v{i}", RegSize.U128) for i in range(32)]
    m += [
        CoreMember(212, "fp_regs.fpsr", "fpsr", RegSize.U32),
        CoreMember(213, "fp_regs.fpcr", "fpcr", RegSize.U32),
    ]
    return tuple(m)


CORE_MEMBERS: Final[tuple[CoreMember, ...]] = _core_members()
"""The 75 core registers in ``struct kvm_regs`` order (what KVM_GET_REG_LIST lists for a vCPU
without SVE)."""

CORE_BY_OFFSET: Final = MappingProxyType({c.offset: c for c in CORE_MEMBERS})
# SP_EL0 is what KVM calls regs.sp ("sp = sp_el0" in the uapi header).
CORE_BY_KEY: Final = MappingProxyType(
    {k.upper(): c for c in CORE_MEMBERS for k in (c.name, c.member)}
    | {"SP_EL0": CORE_BY_OFFSET[62]}
)

# --- decoded ids -----------------------------------------------------------------------------


class SveKind(Enum):
    """Which SVE register an SVE-group id names."""

    ZREG = "ZREG"
    PREG = "PREG"
    FFR = "FFR"
    VLS = "VLS"


@dataclass(frozen=True, slots=True)
class RegId(ABC):
    """A decoded, well-formed arm64 register id. Subclasses carry the group's fields."""

    GROUP: ClassVar[Group]

    id: int
    size: RegSize

    @property
    def group(self) -> Group:
        """The register group."""
        return self.GROUP

    @property
    def nbytes(self) -> int:
        """``KVM_REG_SIZE(id)``."""
        return self.size.nbytes

    @property
    @abstractmethod
    def expr(self) -> str:
        """The C expression that builds the id, as the kernel's get-reg-list prints it."""

    @property
    @abstractmethod
    def name(self) -> str | None:
        """The short name (``VBAR_EL1``, ``x0``, ``PSCI_VERSION``), or None if it has none."""


@dataclass(frozen=True, slots=True)
class CoreRegId(RegId):
    """``KVM_REG_ARM64 | size | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(member)``."""

    GROUP: ClassVar[Group] = Group.CORE
    offset: int

    @property
    def member(self) -> CoreMember:
        """The ``struct kvm_regs`` member."""
        return CORE_BY_OFFSET[self.offset]

    @property
    def expr(self) -> str:
        return (
            f"KVM_REG_ARM64 | {self.size.macro} | KVM_REG_ARM_CORE | "
            f"KVM_REG_ARM_CORE_REG({self.member.member})"
        )

    @property
    def name(self) -> str:
        return self.member.name


@dataclass(frozen=True, slots=True)
class DemuxRegId(RegId):
    """CCSIDR_EL1 for one cache: ``... | KVM_REG_ARM_DEMUX_ID_CCSIDR | csselr``."""

    GROUP: ClassVar[Group] = Group.DEMUX
    csselr: int

    @property
    def expr(self) -> str:
        return (
            f"KVM_REG_ARM64 | {self.size.macro} | KVM_REG_ARM_DEMUX | "
            f"KVM_REG_ARM_DEMUX_ID_CCSIDR | {self.csselr}"
        )

    @property
    def name(self) -> str:
        return f"CCSIDR({self.csselr})"


@dataclass(frozen=True, slots=True)
class SysRegId(RegId):
    """``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``."""

    GROUP: ClassVar[Group] = Group.SYSREG
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int

    @property
    def encoding(self) -> sysregs.Encoding:
        """(op0, op1, CRn, CRm, op2)."""
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    @property
    def expr(self) -> str:
        return f"ARM64_SYS_REG({self.op0}, {self.op1}, {self.crn}, {self.crm}, {self.op2})"

    @property
    def name(self) -> str | None:
        return sysregs.NAME_BY_ENCODING.get(self.encoding)


def _regno_text(regno: int) -> str:
    # The kernel prints regnos in decimal; identical below 10, and hex reads better for the
    # SDEI block (0x110 = SDEI_EVENT_STATE(0) in DESIGN section 4).
    return str(regno) if regno < 10 else f"{regno:#x}"


@dataclass(frozen=True, slots=True)
class FwRegId(RegId):
    """``KVM_REG_ARM_FW_REG(regno)``: a firmware pseudo-register (always U64)."""

    GROUP: ClassVar[Group] = Group.FW
    regno: int

    @property
    def expr(self) -> str:
        return f"KVM_REG_ARM_FW_REG({_regno_text(self.regno)})"

    @property
    def name(self) -> str | None:
        if self.regno in FW_NAMES:
            return FW_NAMES[self.regno]
        return regno_name(self.regno)


@dataclass(frozen=True, slots=True)
class FwFeatBmapRegId(RegId):
    """``KVM_REG_ARM_FW_FEAT_BMAP_REG(regno)``: a hypercall feature bitmap (always U64)."""

    GROUP: ClassVar[Group] = Group.FW_FEAT_BMAP
    regno: int

    @property
    def expr(self) -> str:
        return f"KVM_REG_ARM_FW_FEAT_BMAP_REG({_regno_text(self.regno)})"

    @property
    def name(self) -> str | None:
        return FW_FEAT_BMAP_NAMES.get(self.regno)


@dataclass(frozen=True, slots=True)
class SveRegId(RegId):
    """An SVE register: Zn/Pn/FFR slice, or the vector-length set ``KVM_REG_ARM64_SVE_VLS``."""

    GROUP: ClassVar[Group] = Group.SVE
    kind: SveKind
    n: int
    """Register number (Z 0-31, P 0-15; 0 for FFR and VLS)."""
    slice: int
    """Slice 0-31 (KVM implements slice 0 only); 0 for VLS."""

    @property
    def expr(self) -> str:
        if self.kind is SveKind.VLS:
            return "KVM_REG_ARM64_SVE_VLS"
        if self.kind is SveKind.FFR:
            return f"KVM_REG_ARM64_SVE_FFR({self.slice})"
        return f"KVM_REG_ARM64_SVE_{self.kind.value}({self.n}, {self.slice})"

    @property
    def name(self) -> str | None:
        if self.kind is SveKind.VLS:
            return "SVE_VLS"
        if self.slice:
            return None
        if self.kind is SveKind.FFR:
            return "FFR"
        return f"{'Z' if self.kind is SveKind.ZREG else 'P'}{self.n}"


# --- firmware names --------------------------------------------------------------------------

FW_NAMES: Final[MappingProxyType[int, str]] = MappingProxyType(
    {
        0: "PSCI_VERSION",
        1: "SMCCC_ARCH_WORKAROUND_1",
        2: "SMCCC_ARCH_WORKAROUND_2",
        3: "SMCCC_ARCH_WORKAROUND_3",
    }
)
"""Upstream ``KVM_REG_ARM_FW_REG`` regnos (uapi macro = ``KVM_REG_ARM_`` + name)."""

FW_FEAT_BMAP_NAMES: Final[MappingProxyType[int, str]] = MappingProxyType(
    {0: "STD_BMAP", 1: "STD_HYP_BMAP", 2: "VENDOR_HYP_BMAP", 3: "VENDOR_HYP_BMAP_2"}
)
"""Upstream ``KVM_REG_ARM_FW_FEAT_BMAP_REG`` regnos (uapi macro = ``KVM_REG_ARM_`` + name)."""
