"""arm64 ``KVM_{GET,SET}_ONE_REG`` register ids: encode, decode, name, print and parse.

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

``decode`` turns an id into a frozen ``RegId`` or raises ``InvalidRegId`` with the reason.
``describe`` prints an id the way the kernel's ``get-reg-list`` selftest does, with the name as
a C comment; ``parse`` reads that output back, and also short names, macro expressions and
numbers. Names of the SDEI block (FW regnos 0x100-0x1FF) come from ``sdei_state.regs.sdei``.

Pure: no I/O, nothing from ``sdei_state.kvm``.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import ClassVar, Final

from ..errors import SdeiStateError
from . import sysregs

# --- uapi constants --------------------------------------------------------------------------

U64_MAX: Final = (1 << 64) - 1

KVM_REG_ARCH_MASK: Final = 0xFF00_0000_0000_0000
KVM_REG_ARM64: Final = 0x6000_0000_0000_0000
KVM_REG_SIZE_SHIFT: Final = 52
KVM_REG_SIZE_MASK: Final = 0x00F0_0000_0000_0000
KVM_REG_ARM_COPROC_SHIFT: Final = 16
KVM_REG_ARM_COPROC_MASK: Final = 0x0000_0000_0FFF_0000
_ZERO_MASK: Final = 0x000F_FFFF_F000_0000  # bits 51..28: no arm64 id sets them
_FIELDS_MASK: Final = 0xFFFF

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
_SVE_VLS_FIELDS: Final = 0xFFFF


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

_CORE_BY_OFFSET: Final = MappingProxyType({c.offset: c for c in CORE_MEMBERS})
# SP_EL0 is what KVM calls regs.sp ("sp = sp_el0" in the uapi header).
_CORE_BY_KEY: Final = MappingProxyType(
    {k.upper(): c for c in CORE_MEMBERS for k in (c.name, c.member)}
    | {"SP_EL0": _CORE_BY_OFFSET[62]}
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
        return _CORE_BY_OFFSET[self.offset]

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
        if SDEI_FIRST_REGNO <= self.regno <= SDEI_LAST_REGNO:
            return _sdei_regno_name(self.regno)
        return None


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

SDEI_FIRST_REGNO: Final = 0x0100
SDEI_LAST_REGNO: Final = 0x01FF
"""The FW regno block DESIGN section 4 gives SDEI; names come from ``sdei_state.regs.sdei``."""

def _sdei_regno_name(regno: int) -> str | None:
    from . import sdei  # lazy: sdei.py builds on this module

    return sdei.regno_name(regno)


_sdei_index_cache: dict[str, int] | None = None


def _sdei_index() -> dict[str, int]:
    """Normalised SDEI register name -> regno (built once; the block is static)."""
    global _sdei_index_cache
    if _sdei_index_cache is None:
        from . import sdei

        _sdei_index_cache = {_norm(r.name): r.regno for r in sdei.SDEI_REGS}
    return _sdei_index_cache


# --- encoders --------------------------------------------------------------------------------


def _field(value: object, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} = {value!r} is out of range ({lo}..{hi})")
    return value


def _compose(size: RegSize, group: Group, fields: int) -> int:
    return KVM_REG_ARM64 | size.bits | group.bits | fields


def core_reg(name: str) -> int:
    """The id of a core register by short name (``x0``, ``sp``, ``pc``, ``pstate``, ``sp_el1``,
    ``elr_el1``, ``spsr_el1``/``spsr_abt``/..., ``v0``-``v31``, ``fpsr``, ``fpcr``; also
    ``SP_EL0``) or ``struct kvm_regs`` member (``regs.regs[3]``, ``spsr[0]``,
    ``fp_regs.vregs[1]``), case-insensitive. ValueError names an unknown register."""
    c = _CORE_BY_KEY.get(_norm(name)) if isinstance(name, str) else None
    if c is None:
        raise ValueError(f"{name!r} is not a core register (x0-x30, sp, pc, pstate, sp_el1, "
                         "elr_el1, spsr_el1/abt/und/irq/fiq, v0-v31, fpsr, fpcr)")
    return _compose(c.size, Group.CORE, c.offset)


def sys_reg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``; ValueError names a field out of range (the
    C macro would silently mask it)."""
    return _compose(
        RegSize.U64,
        Group.SYSREG,
        _field(op0, 0, 3, "op0") << 14
        | _field(op1, 0, 7, "op1") << 11
        | _field(crn, 0, 15, "CRn") << 7
        | _field(crm, 0, 15, "CRm") << 3
        | _field(op2, 0, 7, "op2"),
    )


def fw_reg(regno: int) -> int:
    """``KVM_REG_ARM_FW_REG(regno)`` = 0x6030_0000_0014_<regno:16>."""
    return _compose(RegSize.U64, Group.FW, _field(regno, 0, 0xFFFF, "FW regno"))


def fw_feat_bmap_reg(regno: int) -> int:
    """``KVM_REG_ARM_FW_FEAT_BMAP_REG(regno)`` = 0x6030_0000_0016_<regno:16>."""
    return _compose(RegSize.U64, Group.FW_FEAT_BMAP, _field(regno, 0, 0xFFFF, "bitmap regno"))


def demux_ccsidr(csselr: int) -> int:
    """The CCSIDR_EL1 value for cache selector ``csselr`` (U32 demux id)."""
    return _compose(
        RegSize.U32, Group.DEMUX,
        KVM_REG_ARM_DEMUX_ID_CCSIDR | _field(csselr, 0, CSSELR_MAX - 1, "CSSELR"),
    )


def sve_zreg(n: int, slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_ZREG(n, slice)`` (U2048)."""
    n = _field(n, 0, KVM_ARM64_SVE_NUM_ZREGS - 1, "Z register")
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return _compose(RegSize.U2048, Group.SVE, KVM_REG_ARM64_SVE_ZREG_BASE | n << 5 | i)


def sve_preg(n: int, slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_PREG(n, slice)`` (U256)."""
    n = _field(n, 0, KVM_ARM64_SVE_NUM_PREGS - 1, "P register")
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return _compose(RegSize.U256, Group.SVE, KVM_REG_ARM64_SVE_PREG_BASE | n << 5 | i)


def sve_ffr(slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_FFR(slice)`` (U256)."""
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return _compose(RegSize.U256, Group.SVE, KVM_REG_ARM64_SVE_FFR_BASE | i)


KVM_REG_ARM64_SVE_VLS: Final = _compose(RegSize.U512, Group.SVE, _SVE_VLS_FIELDS)
"""0x606000000015ffff: the set of vector lengths (a bitmap of VQs), settable before finalize."""

CORE_REG_IDS: Final[tuple[int, ...]] = tuple(
    _compose(c.size, Group.CORE, c.offset) for c in CORE_MEMBERS
)
"""Ids of all 75 core registers, in ``struct kvm_regs`` order."""


# --- decoding --------------------------------------------------------------------------------


def reg_size(reg_id: int) -> int:
    """``KVM_REG_SIZE(id)``: bytes a GET/SET of ``reg_id`` transfers, from the size field alone
    (as the kernel macro computes it, so it also sizes buffers for ids KVM will refuse)."""
    _check_u64(reg_id)
    return 1 << ((reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT)


def _check_u64(reg_id: object) -> int:
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        raise InvalidRegId(reg_id, "a register id is an unsigned 64-bit integer")
    return reg_id


def _size_mismatch(what: str, want: RegSize, got: RegSize) -> str:
    return f"{what} is {want.name} but the size field says {got.name}"


def _decode(reg_id: int) -> RegId | str:
    """The decoded id, or the reason it is malformed."""
    arch = reg_id & KVM_REG_ARCH_MASK
    if arch != KVM_REG_ARM64:
        return f"arch field {arch >> 56:#04x} is not KVM_REG_ARM64 (0x60)"
    size_field = (reg_id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT
    if size_field > RegSize.U2048:
        return f"size field {size_field} is not a KVM_REG_SIZE_* value (0 = U8 .. 8 = U2048)"
    size = RegSize(size_field)
    if reg_id & _ZERO_MASK:
        return f"bits 51..28 must be zero (set: {reg_id & _ZERO_MASK:#x})"
    coproc = (reg_id & KVM_REG_ARM_COPROC_MASK) >> KVM_REG_ARM_COPROC_SHIFT
    f = reg_id & _FIELDS_MASK
    if coproc == Group.CORE:
        c = _CORE_BY_OFFSET.get(f)
        if c is None:
            return (f"core index {f:#x} is not where a struct kvm_regs member starts "
                    f"(x0 0x0 .. x30 0x3c step 2, sp 0x3e, pc 0x40, pstate 0x42, sp_el1 0x44, "
                    f"elr_el1 0x46, spsr 0x48-0x50, vregs 0x54-0xd0 step 4, fpsr 0xd4, fpcr 0xd5)")
        if size != c.size:
            return _size_mismatch(f"core register {c.member} ({c.name})", c.size, size)
        return CoreRegId(reg_id, size, f)
    if coproc == Group.DEMUX:
        demux = (f & KVM_REG_ARM_DEMUX_ID_MASK) >> KVM_REG_ARM_DEMUX_ID_SHIFT
        if demux != KVM_REG_ARM_DEMUX_ID_CCSIDR:
            return f"demux id {demux:#x} is not KVM_REG_ARM_DEMUX_ID_CCSIDR (0)"
        val = f & KVM_REG_ARM_DEMUX_VAL_MASK
        if val >= CSSELR_MAX:
            return f"CSSELR value {val} selects no cache (0..{CSSELR_MAX - 1})"
        if size != RegSize.U32:
            return _size_mismatch("CCSIDR (demux)", RegSize.U32, size)
        return DemuxRegId(reg_id, size, val)
    if coproc == Group.SYSREG:
        if size != RegSize.U64:
            return _size_mismatch("a system register (ARM64_SYS_REG)", RegSize.U64, size)
        return SysRegId(reg_id, size, f >> 14, (f >> 11) & 7, (f >> 7) & 15, (f >> 3) & 15, f & 7)
    if coproc in (Group.FW, Group.FW_FEAT_BMAP):
        grp = Group(coproc)
        if size != RegSize.U64:
            macro = "KVM_REG_ARM_FW_REG" if grp is Group.FW else "KVM_REG_ARM_FW_FEAT_BMAP_REG"
            return (_size_mismatch(f"{grp.macro} register ({macro})", RegSize.U64, size)
                    + " (kvm_arm_set_fw_reg() answers ENOENT)")
        if grp is Group.FW:
            return FwRegId(reg_id, size, f)
        return FwFeatBmapRegId(reg_id, size, f)
    if coproc == Group.SVE:
        return _decode_sve(reg_id, size, f)
    return (f"group {coproc:#x} is not an arm64 register group (CORE 0x10, DEMUX 0x11, "
            f"SYSREG 0x13, FW 0x14, SVE 0x15, FW_FEAT_BMAP 0x16)")


def _decode_sve(reg_id: int, size: RegSize, f: int) -> RegId | str:
    if f == _SVE_VLS_FIELDS:
        kind, n, i, want = SveKind.VLS, 0, 0, RegSize.U512
    elif f < KVM_REG_ARM64_SVE_PREG_BASE:  # bits 15..10 clear: ZREG
        kind, n, i, want = SveKind.ZREG, f >> 5, f & 31, RegSize.U2048
    elif f < KVM_REG_ARM64_SVE_FFR_BASE:  # 0x400 | n(4 bits) << 5 | slice
        kind, n, i, want = SveKind.PREG, (f >> 5) & 15, f & 31, RegSize.U256
    elif f < KVM_REG_ARM64_SVE_FFR_BASE + KVM_ARM64_SVE_MAX_SLICES:
        kind, n, i, want = SveKind.FFR, 0, f & 31, RegSize.U256
    else:
        return (f"SVE fields {f:#06x} are not a ZREG (0x000-0x3ff), PREG (0x400-0x5ff), "
                f"FFR (0x600-0x61f) or VLS (0xffff) encoding")
    if size != want:
        return _size_mismatch(f"SVE {kind.value}", want, size)
    return SveRegId(reg_id, size, kind, n, i)


def decode(reg_id: int) -> RegId:
    """Decode a register id; ``InvalidRegId`` (a ValueError) says what is malformed: wrong
    arch, bits set outside the group's fields, unknown group, a core index that is not a
    member boundary, a size that is not the register's, ..."""
    result = _decode(_check_u64(reg_id))
    if isinstance(result, str):
        raise InvalidRegId(reg_id, result)
    return result


def is_valid(reg_id: int) -> bool:
    """True if ``decode`` accepts ``reg_id``."""
    try:
        return not isinstance(_decode(_check_u64(reg_id)), str)
    except InvalidRegId:
        return False


def describe(reg_id: int) -> str:
    """One printer line, as the kernel's get-reg-list prints ids, with the name as a comment:

    ``KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION */``,
    ``ARM64_SYS_REG(3, 0, 12, 0, 0)  /* VBAR_EL1 */``,
    ``KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.regs[0])``.

    Core and SVE lines carry no comment (the member already names the register) except
    ``spsr[i]``, whose comment gives the mode. Never raises for an int: a malformed id prints
    as hex with the reason (``0x...  /* invalid: ... */``), so error messages can always name
    what they were given. ``parse`` reads every line back.
    """
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return f"{reg_id!r}  /* invalid: not an unsigned 64-bit register id */"
    r = _decode(reg_id)
    if isinstance(r, str):
        return f"{reg_id:#018x}  /* invalid: {r} */"
    name = r.name
    if isinstance(r, CoreRegId):
        return f"{r.expr}  /* {name} */" if r.member.member.startswith("spsr") else r.expr
    if isinstance(r, SveRegId) or name is None:
        return r.expr
    return f"{r.expr}  /* {name} */"


def short_name(reg_id: int) -> str:
    """The register's short name: ``PSCI_VERSION``, ``SDEI_EVENT_STATE(0)``, ``VBAR_EL1``,
    ``x0``, ``CCSIDR(1)``, ``Z3``; the macro expression when it has no name
    (``ARM64_SYS_REG(3, 0, 0, 3, 3)``); the hex id when it is malformed. ``parse`` inverts it."""
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return repr(reg_id)
    r = _decode(reg_id)
    if isinstance(r, str):
        return f"{reg_id:#018x}"
    return r.name or r.expr


def name_of(reg_id: int) -> str | None:
    """The short name of a well-formed id, or None when it has none (or is malformed)."""
    if isinstance(reg_id, bool) or not isinstance(reg_id, int) or not 0 <= reg_id <= U64_MAX:
        return None
    r = _decode(reg_id)
    return None if isinstance(r, str) else r.name


# --- parsing ---------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", "", text).upper()


def _named_ids() -> dict[str, int]:
    pairs: list[tuple[str, int]] = [
        (key, _compose(c.size, Group.CORE, c.offset)) for key, c in _CORE_BY_KEY.items()
    ]
    pairs += [(name, sys_reg(*enc)) for name, enc in sysregs.ENCODING_BY_NAME.items()]
    pairs += [(a, sys_reg(*sysregs.ENCODING_BY_NAME[t])) for a, t in sysregs.ALIASES.items()]
    for regno, name in FW_NAMES.items():
        pairs += [(name, fw_reg(regno)), ("KVM_REG_ARM_" + name, fw_reg(regno))]
    for regno, name in FW_FEAT_BMAP_NAMES.items():
        bmap = fw_feat_bmap_reg(regno)
        pairs += [(name, bmap), ("KVM_REG_ARM_" + name, bmap)]
    pairs += [(f"Z{n}", sve_zreg(n)) for n in range(KVM_ARM64_SVE_NUM_ZREGS)]
    pairs += [(f"P{n}", sve_preg(n)) for n in range(KVM_ARM64_SVE_NUM_PREGS)]
    pairs += [("FFR", sve_ffr()), ("SVE_VLS", KVM_REG_ARM64_SVE_VLS)]
    pairs += [("KVM_REG_ARM64_SVE_VLS", KVM_REG_ARM64_SVE_VLS)]
    out: dict[str, int] = {}
    for key, reg_id in pairs:
        if out.setdefault(key, reg_id) != reg_id:  # import-time guard against a clash
            raise AssertionError(f"ids: name {key} given to two registers")
    return out


_NAMED: Final = MappingProxyType(_named_ids())
"""Normalised (upper-case, no blanks) name -> id, SDEI names excepted (looked up lazily)."""

_CONSTANTS: Final = MappingProxyType(
    {"KVM_REG_ARM64": KVM_REG_ARM64, "KVM_REG_ARM_DEMUX_ID_CCSIDR": KVM_REG_ARM_DEMUX_ID_CCSIDR}
    | {s.macro: s.bits for s in RegSize}
    | {g.macro: g.bits for g in Group}
)
"""Macro names that are parts of an id, for ``|`` expressions."""

_CALL = re.compile(r"^([A-Z0-9_]+)\((.*)\)$")
_SYSREG_ASM = re.compile(r"^S([0-3])_([0-7])_C([0-9]|1[0-5])_C([0-9]|1[0-5])_([0-7])$")


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def _args(arg_text: str, count: int, macro: str) -> list[int]:
    parts = [p for p in arg_text.split(",")] if arg_text else []
    if len(parts) != count:
        raise ValueError(f"{macro}() takes {count} argument(s), got {len(parts)}")
    return [_int(p, f"{macro}() argument") for p in parts]


def _call_value(macro: str, arg_text: str) -> int | None:
    """Value of a function-like macro or call-style name, None if ``macro`` is not one."""
    if macro == "KVM_REG_ARM_CORE_REG":
        c = _CORE_BY_KEY.get(arg_text)
        if c is None:
            raise ValueError(f"KVM_REG_ARM_CORE_REG({arg_text.lower()}): not a struct kvm_regs "
                             "member (regs.regs[0..30], regs.sp, regs.pc, regs.pstate, sp_el1, "
                             "elr_el1, spsr[0..4], fp_regs.vregs[0..31], fp_regs.fpsr/fpcr)")
        return c.offset
    if macro == "ARM64_SYS_REG":
        return sys_reg(*_args(arg_text, 5, macro))
    if macro == "KVM_REG_ARM_FW_REG":
        return fw_reg(*_args(arg_text, 1, macro))
    if macro == "KVM_REG_ARM_FW_FEAT_BMAP_REG":
        return fw_feat_bmap_reg(*_args(arg_text, 1, macro))
    if macro == "KVM_REG_ARM64_SVE_ZREG":
        return sve_zreg(*_args(arg_text, 2, macro))
    if macro == "KVM_REG_ARM64_SVE_PREG":
        return sve_preg(*_args(arg_text, 2, macro))
    if macro == "KVM_REG_ARM64_SVE_FFR":
        return sve_ffr(*_args(arg_text, 1, macro))
    if macro == "CCSIDR":
        return demux_ccsidr(*_args(arg_text, 1, "CCSIDR"))
    return None


def _lookup(term: str, original: str) -> tuple[int, bool] | None:
    """(value, is_plain_number) of one normalised ``|`` operand, None if it names nothing.
    ValueError for a name that is a trap or a macro with bad arguments."""
    if term[:1].isdigit() or term[:1] in "+-":
        value = _int(term, f"{original.strip()!r}")
        if not 0 <= value <= U64_MAX:
            raise ValueError(f"{original.strip()!r}: {term.lower()} is not an unsigned "
                             "64-bit register id")
        return value, True
    if term in sysregs.AMBIGUOUS:
        raise ValueError(f"{term} is ambiguous for KVM: {sysregs.AMBIGUOUS[term]}")
    if term in _NAMED:
        return _NAMED[term], False
    if term in _CONSTANTS:
        return _CONSTANTS[term], False
    sdei = _sdei_index()
    if term in sdei:
        return fw_reg(sdei[term]), False
    m = _SYSREG_ASM.match(term)
    if m:
        return sys_reg(*(int(g) for g in m.groups())), False
    m = _CALL.match(term)
    if m:
        try:
            called = _call_value(m.group(1), m.group(2))
        except ValueError as e:
            raise ValueError(f"{original.strip()!r}: {e}") from None
        if called is not None:
            return called, False
    return None


def _term(term: str, original: str) -> tuple[int, bool]:
    if not term:
        raise ValueError(f"{original.strip()!r}: empty operand in a '|' expression")
    found = _lookup(term, original)
    if found is None:
        raise ValueError(_unknown_message(term, original))
    return found


def _unknown_message(term: str, original: str) -> str:
    pool = list(_NAMED) + list(_sdei_index())
    close = difflib.get_close_matches(term, pool, n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (f"unknown register {original.strip()!r}: expected a register name (VBAR_EL1, x0, "
            f"PSCI_VERSION, SDEI_EVENT_STATE(0), ...), a macro expression "
            f"(ARM64_SYS_REG(3, 0, 12, 0, 0), KVM_REG_ARM_FW_REG(0), ...) or a number{hint}")


def _split_comment(text: str) -> tuple[str, str | None]:
    if "/*" not in text:
        return text, None
    expr, _, rest = text.partition("/*")
    comment, closed, tail = rest.partition("*/")
    if not closed or tail.strip(" \t,"):
        raise ValueError(f"{text!r}: malformed /* comment */")
    return expr, comment.strip()


def parse(text: str) -> int:
    """A register id from text; ValueError names what is wrong.

    Accepts: short names, case-insensitive (``VBAR_EL1``, ``x0``, ``pc``, ``pstate``,
    ``SP_EL0``, ``PSCI_VERSION``, ``KVM_REG_ARM_STD_BMAP``, ``SDEI_EVENT_STATE(0)``,
    ``CCSIDR(2)``, ``Z0``, ``S3_0_C12_C0_0``); every line ``describe`` prints, including its
    ``/* name */`` comment (which must not name a different register) and a trailing comma;
    ``|`` expressions of the uapi macros (``KVM_REG_ARM64 | KVM_REG_SIZE_U64 |
    KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc)``); numbers (``0x6030000000140000``,
    ``0x6030_0000_0014_0000``, decimal).

    A name or expression must build a well-formed id (``decode`` accepts it). A plain number is
    returned as given, well-formed or not, so that tests can name ids KVM must refuse; use
    ``decode`` to validate it.
    """
    if not isinstance(text, str):
        raise ValueError(f"register must be given as text, not {type(text).__name__}")
    expr, comment = _split_comment(text)
    expr = expr.strip().rstrip(",").strip()
    if not expr:
        raise ValueError(f"{text!r}: no register given")
    terms = [_norm(t) for t in expr.split("|")]
    values = [_term(t, text) for t in terms]
    reg_id = 0
    for v, _ in values:
        reg_id |= v
    if not (len(values) == 1 and values[0][1]):
        reason = _decode(reg_id)
        if isinstance(reason, str):
            raise ValueError(f"{text.strip()!r} builds {reg_id:#018x}, which is not a valid "
                             f"arm64 register id: {reason}")
    if comment:
        _check_comment(comment, reg_id, text)
    return reg_id


def _check_comment(comment: str, reg_id: int, text: str) -> None:
    # A comment naming a register must agree with the expression; free text is ignored.
    try:
        found = _lookup(_norm(comment), comment) if comment[:1].isalpha() else None
    except ValueError:
        return
    named = found[0] if found is not None else None
    if named is not None and named != reg_id:
        raise ValueError(f"{text.strip()!r}: the comment names {short_name(named)} "
                         f"({named:#018x}) but the expression is {short_name(reg_id)} "
                         f"({reg_id:#018x})")
