"""A small AArch64 (A64) encoder and decoder for the instructions the guest programs use.

Every encoder returns one instruction word (``int``, 0..2**32-1) and checks its operands:
a bad operand raises ``EncodeError`` naming the instruction, the operand and the value.
Registers are plain numbers 0..31; 31 means XZR or SP as the instruction defines it (the
constants ``XZR`` and ``SP`` only make call sites readable). All data-processing forms are the
64-bit (``sf = 1``) ones, except ``ldr_w``/``str_w``. Encodings are those of the Arm ARM
(DDI 0487, chapter C6); tests compare them with GNU binutils where it is installed.

``disasm`` decodes these words back (tests check each direction against the other).
"""

from __future__ import annotations

from enum import Enum
from typing import Final

# The shared vocabulary (``arch``), re-exported: ``a64.SysReg``, ``a64.SP`` read as part of the
# encoder's interface.
from .arch import LR as LR
from .arch import READ_ONLY as READ_ONLY
from .arch import SP as SP
from .arch import U32_MAX as U32_MAX
from .arch import U64_MASK as U64_MASK
from .arch import XZR as XZR
from .arch import Cond as Cond
from .arch import EncodeError as EncodeError
from .arch import SysReg as SysReg
from .arch import check_int
from .arch import sysreg as sysreg
from .arch import sysreg_name as sysreg_name

NOP: Final = 0xD503201F
WFI: Final = 0xD503207F
ISB: Final = 0xD5033FDF
DSB_SY: Final = 0xD5033F9F
ERET: Final = 0xD69F03E0


def _reg(insn: str, operand: str, r: int, *, allow31: bool = True) -> int:
    check_int(insn, operand, r)
    if not 0 <= r <= 31:
        raise EncodeError(f"{insn}: {operand} = {r} is not a register number 0..31")
    if r == 31 and not allow31:
        raise EncodeError(f"{insn}: {operand} = 31 (sp/xzr) is not allowed here")
    return r


def _uimm(insn: str, operand: str, v: int, bits: int) -> int:
    check_int(insn, operand, v)
    if not 0 <= v < 1 << bits:
        raise EncodeError(f"{insn}: {operand} = {v:#x} does not fit {bits} unsigned bits")
    return v


def _scaled(insn: str, operand: str, v: int, scale: int, lo: int, hi: int) -> int:
    """A byte offset that must be a multiple of ``scale`` and in lo..hi; returns v // scale."""
    check_int(insn, operand, v)
    if v % scale:
        raise EncodeError(f"{insn}: {operand} = {v} is not a multiple of {scale}")
    if not lo <= v <= hi:
        raise EncodeError(f"{insn}: {operand} = {v} is outside {lo}..{hi}")
    return v // scale


def _field(v: int, bits: int) -> int:
    """Two's complement of a (checked) signed value in ``bits`` bits."""
    return v & ((1 << bits) - 1)


def sign_extend(v: int, bits: int) -> int:
    """The signed value of a ``bits``-bit two's-complement field."""
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


def _pcrel(insn: str, offset: int, bits: int, scale: int = 4) -> int:
    """A PC-relative byte offset encoded in a signed ``bits``-bit field of ``scale`` units."""
    span = scale << (bits - 1)
    return _field(_scaled(insn, "offset", offset, scale, -span, span - scale), bits)


# -- move wide -----------------------------------------------------------------------------

def _movw(base: int, insn: str, rd: int, imm16: int, shift: int) -> int:
    _reg(insn, "rd", rd)
    _uimm(insn, "imm16", imm16, 16)
    check_int(insn, "shift", shift)
    if shift not in (0, 16, 32, 48):
        raise EncodeError(f"{insn}: shift = {shift} is not 0, 16, 32 or 48")
    return base | (shift // 16) << 21 | imm16 << 5 | rd


def movz(rd: int, imm16: int, shift: int = 0) -> int:
    """``movz xd, #imm16, lsl #shift``."""
    return _movw(0xD2800000, "movz", rd, imm16, shift)


def movk(rd: int, imm16: int, shift: int = 0) -> int:
    """``movk xd, #imm16, lsl #shift`` (keeps the other bits of xd)."""
    return _movw(0xF2800000, "movk", rd, imm16, shift)


def movn(rd: int, imm16: int, shift: int = 0) -> int:
    """``movn xd, #imm16, lsl #shift``: xd = ~(imm16 << shift)."""
    return _movw(0x92800000, "movn", rd, imm16, shift)


def _u64(insn: str, value: int) -> int:
    check_int(insn, "value", value)
    if not -(1 << 63) <= value <= U64_MASK:
        raise EncodeError(f"{insn}: value = {value:#x} does not fit 64 bits")
    return value & U64_MASK


def mov_imm64(rd: int, value: int) -> tuple[int, ...]:
    """The shortest ``movz``/``movn`` + ``movk`` sequence that sets xd to ``value`` (1-4 words).
    Negative values are taken as two's complement."""
    v = _u64("mov_imm64", value)
    _reg("mov_imm64", "rd", rd)
    chunks = [(v >> (16 * i)) & 0xFFFF for i in range(4)]
    inverted = chunks.count(0xFFFF) > chunks.count(0)
    skip = 0xFFFF if inverted else 0
    todo = [i for i in range(4) if chunks[i] != skip] or [0]
    first = todo[0]
    words = [movn(rd, ~chunks[first] & 0xFFFF, 16 * first) if inverted
             else movz(rd, chunks[first], 16 * first)]
    words += [movk(rd, chunks[i], 16 * i) for i in todo[1:]]
    return tuple(words)


def mov_imm64_fixed(rd: int, value: int) -> tuple[int, int, int, int]:
    """Always four words (``movz`` + three ``movk``): for values known only after layout."""
    v = _u64("mov_imm64_fixed", value)
    return (movz(rd, v & 0xFFFF), movk(rd, v >> 16 & 0xFFFF, 16),
            movk(rd, v >> 32 & 0xFFFF, 32), movk(rd, v >> 48 & 0xFFFF, 48))


# -- data processing -----------------------------------------------------------------------

def _logical(base: int, insn: str, rd: int, rn: int, rm: int) -> int:
    return base | _reg(insn, "rm", rm) << 16 | _reg(insn, "rn", rn) << 5 | _reg(insn, "rd", rd)


def orr(rd: int, rn: int, rm: int) -> int:
    """``orr xd, xn, xm`` (register 31 is xzr in every operand)."""
    return _logical(0xAA000000, "orr", rd, rn, rm)


def and_(rd: int, rn: int, rm: int) -> int:
    """``and xd, xn, xm``."""
    return _logical(0x8A000000, "and", rd, rn, rm)


def eor(rd: int, rn: int, rm: int) -> int:
    """``eor xd, xn, xm``."""
    return _logical(0xCA000000, "eor", rd, rn, rm)


def mov(rd: int, rm: int) -> int:
    """``mov xd, xm`` (the ``orr xd, xzr, xm`` alias; 31 is xzr: use ``add_imm`` for sp)."""
    return orr(rd, XZR, rm)


def _addsub_imm(base: int, insn: str, rd: int, rn: int, imm: int, shift12: bool) -> int:
    _uimm(insn, "imm12", imm, 12)
    if not isinstance(shift12, bool):
        raise EncodeError(f"{insn}: shift12 = {shift12!r} is not a bool")
    return (base | int(shift12) << 22 | imm << 10 | _reg(insn, "rn", rn) << 5
            | _reg(insn, "rd", rd))


def add_imm(rd: int, rn: int, imm: int, shift12: bool = False) -> int:
    """``add xd|sp, xn|sp, #imm{, lsl #12}``; ``add_imm(rd, SP, 0)`` is ``mov xd, sp``."""
    return _addsub_imm(0x91000000, "add", rd, rn, imm, shift12)


def adds_imm(rd: int, rn: int, imm: int, shift12: bool = False) -> int:
    """``adds xd|xzr, xn|sp, #imm{, lsl #12}``."""
    return _addsub_imm(0xB1000000, "adds", rd, rn, imm, shift12)


def sub_imm(rd: int, rn: int, imm: int, shift12: bool = False) -> int:
    """``sub xd|sp, xn|sp, #imm{, lsl #12}``."""
    return _addsub_imm(0xD1000000, "sub", rd, rn, imm, shift12)


def subs_imm(rd: int, rn: int, imm: int, shift12: bool = False) -> int:
    """``subs xd|xzr, xn|sp, #imm{, lsl #12}``."""
    return _addsub_imm(0xF1000000, "subs", rd, rn, imm, shift12)


def cmp_imm(rn: int, imm: int, shift12: bool = False) -> int:
    """``cmp xn|sp, #imm`` (``subs xzr, xn, #imm``)."""
    return subs_imm(XZR, rn, imm, shift12)


def add_reg(rd: int, rn: int, rm: int) -> int:
    """``add xd, xn, xm`` (shifted-register form, no shift: 31 is xzr everywhere)."""
    return _logical(0x8B000000, "add", rd, rn, rm)


def sub_reg(rd: int, rn: int, rm: int) -> int:
    """``sub xd, xn, xm``."""
    return _logical(0xCB000000, "sub", rd, rn, rm)


def subs_reg(rd: int, rn: int, rm: int) -> int:
    """``subs xd, xn, xm``."""
    return _logical(0xEB000000, "subs", rd, rn, rm)


def cmp_reg(rn: int, rm: int) -> int:
    """``cmp xn, xm`` (``subs xzr, xn, xm``)."""
    return subs_reg(XZR, rn, rm)


# -- loads and stores ----------------------------------------------------------------------

def _ldst_uoff(base: int, insn: str, rt: int, rn: int, offset: int, size: int) -> int:
    imm = _scaled(insn, "offset", offset, size, 0, 4095 * size)
    return base | imm << 10 | _reg(insn, "rn", rn) << 5 | _reg(insn, "rt", rt)


def ldr_x(rt: int, rn: int, offset: int = 0) -> int:
    """``ldr xt, [xn|sp, #offset]``: unsigned offset, a multiple of 8 up to 32760."""
    return _ldst_uoff(0xF9400000, "ldr", rt, rn, offset, 8)


def str_x(rt: int, rn: int, offset: int = 0) -> int:
    """``str xt, [xn|sp, #offset]``: unsigned offset, a multiple of 8 up to 32760."""
    return _ldst_uoff(0xF9000000, "str", rt, rn, offset, 8)


def ldr_w(rt: int, rn: int, offset: int = 0) -> int:
    """``ldr wt, [xn|sp, #offset]``: unsigned offset, a multiple of 4 up to 16380."""
    return _ldst_uoff(0xB9400000, "ldr", rt, rn, offset, 4)


def str_w(rt: int, rn: int, offset: int = 0) -> int:
    """``str wt, [xn|sp, #offset]``: unsigned offset, a multiple of 4 up to 16380."""
    return _ldst_uoff(0xB9000000, "str", rt, rn, offset, 4)


def _ldst_wb(base: int, insn: str, rt: int, rn: int, offset: int) -> int:
    _reg(insn, "rt", rt)
    _reg(insn, "rn", rn)
    check_int(insn, "offset", offset)
    if not -256 <= offset <= 255:
        raise EncodeError(f"{insn}: offset = {offset} is outside -256..255")
    if rn == rt and rn != 31:
        # CONSTRAINED UNPREDICTABLE (Arm ARM C6.2): writeback into the transfer register.
        raise EncodeError(f"{insn}: rt = rn = x{rt} with writeback is unpredictable")
    return base | _field(offset, 9) << 12 | rn << 5 | rt


def ldr_x_pre(rt: int, rn: int, offset: int) -> int:
    """``ldr xt, [xn|sp, #offset]!`` (offset -256..255)."""
    return _ldst_wb(0xF8400C00, "ldr", rt, rn, offset)


def ldr_x_post(rt: int, rn: int, offset: int) -> int:
    """``ldr xt, [xn|sp], #offset``."""
    return _ldst_wb(0xF8400400, "ldr", rt, rn, offset)


def str_x_pre(rt: int, rn: int, offset: int) -> int:
    """``str xt, [xn|sp, #offset]!``."""
    return _ldst_wb(0xF8000C00, "str", rt, rn, offset)


def str_x_post(rt: int, rn: int, offset: int) -> int:
    """``str xt, [xn|sp], #offset``."""
    return _ldst_wb(0xF8000400, "str", rt, rn, offset)


class Index(Enum):
    """Addressing of a load/store: plain offset, pre-index (``!``) or post-index."""

    OFFSET = "offset"
    PRE = "pre"
    POST = "post"


PAIR_OPCODES: Final = {  # (load, index) -> opcode bits of the 64-bit ldp/stp forms
    (False, Index.POST): 0xA8800000, (False, Index.OFFSET): 0xA9000000,
    (False, Index.PRE): 0xA9800000, (True, Index.POST): 0xA8C00000,
    (True, Index.OFFSET): 0xA9400000, (True, Index.PRE): 0xA9C00000,
}


def pair(load: bool, index: Index, rt: int, rt2: int, rn: int, offset: int) -> int:
    """``ldp``/``stp`` of two x registers with any addressing; the named forms call this."""
    insn = "ldp" if load else "stp"
    _reg(insn, "rt", rt)
    _reg(insn, "rt2", rt2)
    _reg(insn, "rn", rn)
    imm = _scaled(insn, "offset", offset, 8, -512, 504)
    if load and rt == rt2:
        raise EncodeError(f"{insn}: rt = rt2 = x{rt} is unpredictable")
    if index is not Index.OFFSET and rn != 31 and rn in (rt, rt2):
        raise EncodeError(f"{insn}: base x{rn} is also a transfer register with writeback")
    return PAIR_OPCODES[load, index] | _field(imm, 7) << 15 | rt2 << 10 | rn << 5 | rt


def ldp(rt: int, rt2: int, rn: int, offset: int = 0) -> int:
    """``ldp xt, xt2, [xn|sp, #offset]`` (offset a multiple of 8 in -512..504)."""
    return pair(True, Index.OFFSET, rt, rt2, rn, offset)


def ldp_pre(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``ldp xt, xt2, [xn|sp, #offset]!``."""
    return pair(True, Index.PRE, rt, rt2, rn, offset)


def ldp_post(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``ldp xt, xt2, [xn|sp], #offset``."""
    return pair(True, Index.POST, rt, rt2, rn, offset)


def stp(rt: int, rt2: int, rn: int, offset: int = 0) -> int:
    """``stp xt, xt2, [xn|sp, #offset]``."""
    return pair(False, Index.OFFSET, rt, rt2, rn, offset)


def stp_pre(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``stp xt, xt2, [xn|sp, #offset]!``."""
    return pair(False, Index.PRE, rt, rt2, rn, offset)


def stp_post(rt: int, rt2: int, rn: int, offset: int) -> int:
    """``stp xt, xt2, [xn|sp], #offset``."""
    return pair(False, Index.POST, rt, rt2, rn, offset)


def ldr_literal(rt: int, offset: int) -> int:
    """``ldr xt, <pc + offset>`` (offset a multiple of 4 within +-1 MiB)."""
    return 0x58000000 | _pcrel("ldr (literal)", offset, 19) << 5 | _reg("ldr", "rt", rt)


def adr(rd: int, offset: int) -> int:
    """``adr xd, <pc + offset>`` (any byte offset within +-1 MiB)."""
    imm = _pcrel("adr", offset, 21, scale=1)
    return 0x10000000 | (imm & 3) << 29 | (imm >> 2) << 5 | _reg("adr", "rd", rd)


def adrp(rd: int, offset: int) -> int:
    """``adrp xd, <(pc & ~0xfff) + offset>``: offset a multiple of 4096 within +-4 GiB."""
    imm = _pcrel("adrp", offset, 21, scale=4096)
    return 0x90000000 | (imm & 3) << 29 | (imm >> 2) << 5 | _reg("adrp", "rd", rd)


# -- branches ------------------------------------------------------------------------------

def b(offset: int) -> int:
    """``b <pc + offset>`` (multiple of 4 within +-128 MiB)."""
    return 0x14000000 | _pcrel("b", offset, 26)


def bl(offset: int) -> int:
    """``bl <pc + offset>``."""
    return 0x94000000 | _pcrel("bl", offset, 26)


def b_cond(cond: Cond | int, offset: int) -> int:
    """``b.<cond> <pc + offset>`` (within +-1 MiB)."""
    _uimm("b.cond", "cond", int(cond) if isinstance(cond, Cond) else cond, 4)
    return 0x54000000 | _pcrel("b.cond", offset, 19) << 5 | int(cond)


def cbz(rt: int, offset: int) -> int:
    """``cbz xt, <pc + offset>``."""
    return 0xB4000000 | _pcrel("cbz", offset, 19) << 5 | _reg("cbz", "rt", rt)


def cbnz(rt: int, offset: int) -> int:
    """``cbnz xt, <pc + offset>``."""
    return 0xB5000000 | _pcrel("cbnz", offset, 19) << 5 | _reg("cbnz", "rt", rt)


def br(rn: int) -> int:
    """``br xn``."""
    return 0xD61F0000 | _reg("br", "rn", rn, allow31=False) << 5


def blr(rn: int) -> int:
    """``blr xn``."""
    return 0xD63F0000 | _reg("blr", "rn", rn, allow31=False) << 5


def ret(rn: int = LR) -> int:
    """``ret {xn}`` (x30 by default)."""
    return 0xD65F0000 | _reg("ret", "rn", rn, allow31=False) << 5


# -- exceptions and system -----------------------------------------------------------------

def hvc(imm16: int = 0) -> int:
    """``hvc #imm16``: the SMCCC/SDEI conduit the programs use by default."""
    return 0xD4000002 | _uimm("hvc", "imm16", imm16, 16) << 5


def smc(imm16: int = 0) -> int:
    """``smc #imm16``."""
    return 0xD4000003 | _uimm("smc", "imm16", imm16, 16) << 5


def svc(imm16: int = 0) -> int:
    """``svc #imm16``."""
    return 0xD4000001 | _uimm("svc", "imm16", imm16, 16) << 5


def brk(imm16: int = 0) -> int:
    """``brk #imm16``."""
    return 0xD4200000 | _uimm("brk", "imm16", imm16, 16) << 5


def nop() -> int:
    """``nop``."""
    return NOP


def isb() -> int:
    """``isb`` (needed after ``msr vbar_el1`` before an exception can use the new base)."""
    return ISB


def dsb_sy() -> int:
    """``dsb sy``."""
    return DSB_SY


def wfi() -> int:
    """``wfi``."""
    return WFI


def eret() -> int:
    """``eret``: PC = ELR_EL1, PSTATE = SPSR_EL1."""
    return ERET


def _sysreg_key(insn: str, reg: SysReg | int) -> int:
    check_int(insn, "sysreg", reg)
    if not 0 <= int(reg) <= 0xFFFF or int(reg) >> 14 < 2:
        raise EncodeError(f"{insn}: sysreg = {int(reg):#x} is not a key made by sysreg()")
    return int(reg)


def msr(reg: SysReg | int, rt: int) -> int:
    """``msr <reg>, xt`` (31 is xzr)."""
    key = _sysreg_key("msr", reg)
    if key in READ_ONLY:
        raise EncodeError(f"msr: {sysreg_name(key)} ({key:#06x}) is read-only")
    return 0xD5100000 | (key & 0x7FFF) << 5 | _reg("msr", "rt", rt)


def mrs(rt: int, reg: SysReg | int) -> int:
    """``mrs xt, <reg>`` (31 is xzr)."""
    key = _sysreg_key("mrs", reg)
    return 0xD5300000 | (key & 0x7FFF) << 5 | _reg("mrs", "rt", rt)


def _msr_imm(insn: str, op1: int, op2: int, imm: int, bits: int) -> int:
    return 0xD500401F | op1 << 16 | _uimm(insn, "imm", imm, bits) << 8 | op2 << 5


def msr_daifset(imm4: int) -> int:
    """``msr daifset, #imm4``: set (mask) D=8, A=4, I=2, F=1."""
    return _msr_imm("msr daifset", 3, 6, imm4, 4)


def msr_daifclr(imm4: int) -> int:
    """``msr daifclr, #imm4``: clear (unmask) D=8, A=4, I=2, F=1."""
    return _msr_imm("msr daifclr", 3, 7, imm4, 4)


def msr_spsel(imm1: int) -> int:
    """``msr spsel, #imm1``: 1 selects SP_ELx, 0 SP_EL0."""
    return _msr_imm("msr spsel", 0, 5, imm1, 1)
