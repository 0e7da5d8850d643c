"""arm64 ``KVM_{GET,SET}_ONE_REG`` register ids: compose them and decode them.

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
Names of the SDEI block (FW regnos 0x100-0x1FF) come from its declaration in ``sdei_block``.
Printing and parsing are in ``id_names``; ``ids`` is the public face of both.

Pure: no I/O, nothing from ``sdei_state.kvm``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import ClassVar, Final

from ..errors import SdeiStateError
from ..state import U64_MAX
from . import sysregs
from .sdei_block import regno_name

# --- uapi constants --------------------------------------------------------------------------

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

_CORE_BY_OFFSET: Final = MappingProxyType({c.offset: c for c in CORE_MEMBERS})
# SP_EL0 is what KVM calls regs.sp ("sp = sp_el0" in the uapi header).
CORE_BY_KEY: Final = MappingProxyType(
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

# --- encoders --------------------------------------------------------------------------------


def norm_name(text: str) -> str:
    """A name as lookups key it: upper case, no blanks."""
    return re.sub(r"\s+", "", text).upper()


def _field(value: object, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} = {value!r} is out of range ({lo}..{hi})")
    return value


def compose(size: RegSize, group: Group, fields: int) -> int:
    return KVM_REG_ARM64 | size.bits | group.bits | fields


def core_reg(name: str) -> int:
    """The id of a core register by short name (``x0``, ``sp``, ``pc``, ``pstate``, ``sp_el1``,
    ``elr_el1``, ``spsr_el1``/``spsr_abt``/..., ``v0``-``v31``, ``fpsr``, ``fpcr``; also
    ``SP_EL0``) or ``struct kvm_regs`` member (``regs.regs[3]``, ``spsr[0]``,
    ``fp_regs.vregs[1]``), case-insensitive. ValueError names an unknown register."""
    c = CORE_BY_KEY.get(norm_name(name)) if isinstance(name, str) else None
    if c is None:
        raise ValueError(f"{name!r} is not a core register (x0-x30, sp, pc, pstate, sp_el1, "
                         "elr_el1, spsr_el1/abt/und/irq/fiq, v0-v31, fpsr, fpcr)")
    return compose(c.size, Group.CORE, c.offset)


def sys_reg(op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``ARM64_SYS_REG(op0, op1, CRn, CRm, op2)``; ValueError names a field out of range (the
    C macro would silently mask it)."""
    return compose(
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
    return compose(RegSize.U64, Group.FW, _field(regno, 0, 0xFFFF, "FW regno"))


def fw_feat_bmap_reg(regno: int) -> int:
    """``KVM_REG_ARM_FW_FEAT_BMAP_REG(regno)`` = 0x6030_0000_0016_<regno:16>."""
    return compose(RegSize.U64, Group.FW_FEAT_BMAP, _field(regno, 0, 0xFFFF, "bitmap regno"))


def demux_ccsidr(csselr: int) -> int:
    """The CCSIDR_EL1 value for cache selector ``csselr`` (U32 demux id)."""
    return compose(
        RegSize.U32, Group.DEMUX,
        KVM_REG_ARM_DEMUX_ID_CCSIDR | _field(csselr, 0, CSSELR_MAX - 1, "CSSELR"),
    )


def sve_zreg(n: int, slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_ZREG(n, slice)`` (U2048)."""
    n = _field(n, 0, KVM_ARM64_SVE_NUM_ZREGS - 1, "Z register")
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return compose(RegSize.U2048, Group.SVE, KVM_REG_ARM64_SVE_ZREG_BASE | n << 5 | i)


def sve_preg(n: int, slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_PREG(n, slice)`` (U256)."""
    n = _field(n, 0, KVM_ARM64_SVE_NUM_PREGS - 1, "P register")
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return compose(RegSize.U256, Group.SVE, KVM_REG_ARM64_SVE_PREG_BASE | n << 5 | i)


def sve_ffr(slice: int = 0) -> int:
    """``KVM_REG_ARM64_SVE_FFR(slice)`` (U256)."""
    i = _field(slice, 0, KVM_ARM64_SVE_MAX_SLICES - 1, "slice")
    return compose(RegSize.U256, Group.SVE, KVM_REG_ARM64_SVE_FFR_BASE | i)


KVM_REG_ARM64_SVE_VLS: Final = compose(RegSize.U512, Group.SVE, _SVE_VLS_FIELDS)
"""0x606000000015ffff: the set of vector lengths (a bitmap of VQs), settable before finalize."""

CORE_REG_IDS: Final[tuple[int, ...]] = tuple(
    compose(c.size, Group.CORE, c.offset) for c in CORE_MEMBERS
)
"""Ids of all 75 core registers, in ``struct kvm_regs`` order."""

KVM_SPSR_EL1: Final = 0
"""Index of SPSR_EL1 in ``struct kvm_regs.spsr[]`` (``KVM_SPSR_EL1`` in the arm64 uapi)."""

# The registers the VMM side reads and writes on every SDEI exit, by name once here.
REG_X: Final[tuple[int, ...]] = tuple(core_reg(f"x{n}") for n in range(31))
REG_SP_EL0: Final = core_reg("sp")
REG_PC: Final = core_reg("pc")
REG_PSTATE: Final = core_reg("pstate")
REG_SP_EL1: Final = core_reg("sp_el1")
REG_ELR_EL1: Final = core_reg("elr_el1")
REG_SPSR_EL1: Final = core_reg(f"spsr[{KVM_SPSR_EL1}]")
REG_VBAR_EL1: Final = sys_reg(*sysregs.ENCODING_BY_NAME["VBAR_EL1"])


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


def try_decode(reg_id: int) -> RegId | str:
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
    result = try_decode(_check_u64(reg_id))
    if isinstance(result, str):
        raise InvalidRegId(reg_id, result)
    return result


def is_valid(reg_id: int) -> bool:
    """True if ``decode`` accepts ``reg_id``."""
    try:
        return not isinstance(try_decode(_check_u64(reg_id)), str)
    except InvalidRegId:
        return False
