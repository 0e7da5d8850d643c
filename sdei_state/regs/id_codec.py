"""arm64 ``KVM_{GET,SET}_ONE_REG`` register ids: compose them and decode them.

The encoders (``core_reg``, ``sys_reg``, ``fw_reg``, ...) refuse a field out of range where the
C macros would silently mask it; ``decode_id`` turns an id into a ``RegId`` (``id_layout``) or
raises ``InvalidRegId`` naming the field that is wrong. Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Final

from ..state import U64_MAX
from . import sysregs
from .id_layout import (
    CORE_BY_KEY,
    CORE_BY_OFFSET,
    CORE_MEMBERS,
    CSSELR_MAX,
    FIELDS_MASK,
    KVM_ARM64_SVE_MAX_SLICES,
    KVM_ARM64_SVE_NUM_PREGS,
    KVM_ARM64_SVE_NUM_ZREGS,
    KVM_REG_ARCH_MASK,
    KVM_REG_ARM64,
    KVM_REG_ARM64_SVE_FFR_BASE,
    KVM_REG_ARM64_SVE_PREG_BASE,
    KVM_REG_ARM64_SVE_ZREG_BASE,
    KVM_REG_ARM_COPROC_MASK,
    KVM_REG_ARM_COPROC_SHIFT,
    KVM_REG_ARM_DEMUX_ID_CCSIDR,
    KVM_REG_ARM_DEMUX_ID_MASK,
    KVM_REG_ARM_DEMUX_ID_SHIFT,
    KVM_REG_ARM_DEMUX_VAL_MASK,
    KVM_REG_SIZE_MASK,
    KVM_REG_SIZE_SHIFT,
    SVE_VLS_FIELDS,
    ZERO_MASK,
    CoreRegId,
    DemuxRegId,
    FwFeatBmapRegId,
    FwRegId,
    Group,
    InvalidRegId,
    RegId,
    RegSize,
    SveKind,
    SveRegId,
    SysRegId,
)

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


KVM_REG_ARM64_SVE_VLS: Final = compose(RegSize.U512, Group.SVE, SVE_VLS_FIELDS)
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
    if reg_id & ZERO_MASK:
        return f"bits 51..28 must be zero (set: {reg_id & ZERO_MASK:#x})"
    coproc = (reg_id & KVM_REG_ARM_COPROC_MASK) >> KVM_REG_ARM_COPROC_SHIFT
    f = reg_id & FIELDS_MASK
    if coproc == Group.CORE:
        c = CORE_BY_OFFSET.get(f)
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
    if f == SVE_VLS_FIELDS:
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


def decode_id(reg_id: int) -> RegId:
    """Decode a register id; ``InvalidRegId`` (a ValueError) says what is malformed: wrong
    arch, bits set outside the group's fields, unknown group, a core index that is not a
    member boundary, a size that is not the register's, ..."""
    result = try_decode(_check_u64(reg_id))
    if isinstance(result, str):
        raise InvalidRegId(reg_id, result)
    return result


def is_valid(reg_id: int) -> bool:
    """True if ``decode_id`` accepts ``reg_id``."""
    try:
        return not isinstance(try_decode(_check_u64(reg_id)), str)
    except InvalidRegId:
        return False
