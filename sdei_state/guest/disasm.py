"""Decoder for the A64 subset that ``a64`` encodes: words back to fields and GNU syntax.

``disassemble(word)`` gives GNU assembler text (``.inst 0x...`` for anything outside the subset);
``decode_insn(word)`` gives an ``Insn`` whose ``encode()`` calls the ``a64`` encoder for the
same fields, so the two modules check each other. Guest-image checks and listings use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final

from .a64 import (
    DSB_SY,
    ERET,
    ISB,
    LR,
    NOP,
    PAIR_OPCODES,
    READ_ONLY,
    U64_MASK,
    WFI,
    Cond,
    Index,
    add_imm,
    add_reg,
    adds_imm,
    adr,
    adrp,
    and_,
    b,
    b_cond,
    bl,
    blr,
    br,
    brk,
    cbnz,
    cbz,
    eor,
    hvc,
    ldr_literal,
    ldr_w,
    ldr_x,
    ldr_x_post,
    ldr_x_pre,
    movk,
    movn,
    movz,
    mrs,
    msr,
    msr_daifclr,
    msr_daifset,
    msr_spsel,
    orr,
    pair,
    ret,
    sign_extend,
    smc,
    str_w,
    str_x,
    str_x_post,
    str_x_pre,
    sub_imm,
    sub_reg,
    subs_imm,
    subs_reg,
    svc,
    sysreg_name,
)


class Op(Enum):
    """The instructions of the subset: value = (form name, GNU mnemonic shared between forms)."""

    MOVZ = ("movz", "movz")
    MOVK = ("movk", "movk")
    MOVN = ("movn", "movn")
    ORR = ("orr", "orr")
    AND = ("and", "and")
    EOR = ("eor", "eor")
    ADD_IMM = ("add_imm", "add")
    ADDS_IMM = ("adds_imm", "adds")
    SUB_IMM = ("sub_imm", "sub")
    SUBS_IMM = ("subs_imm", "subs")
    ADD_REG = ("add_reg", "add")
    SUB_REG = ("sub_reg", "sub")
    SUBS_REG = ("subs_reg", "subs")
    LDR_X = ("ldr_x", "ldr")
    STR_X = ("str_x", "str")
    LDR_W = ("ldr_w", "ldr")
    STR_W = ("str_w", "str")
    LDP = ("ldp", "ldp")
    STP = ("stp", "stp")
    LDR_LIT = ("ldr_lit", "ldr")
    ADR = ("adr", "adr")
    ADRP = ("adrp", "adrp")
    B = ("b", "b")
    BL = ("bl", "bl")
    B_COND = ("b_cond", "b.cond")
    CBZ = ("cbz", "cbz")
    CBNZ = ("cbnz", "cbnz")
    BR = ("br", "br")
    BLR = ("blr", "blr")
    RET = ("ret", "ret")
    HVC = ("hvc", "hvc")
    SMC = ("smc", "smc")
    SVC = ("svc", "svc")
    BRK = ("brk", "brk")
    NOP = ("nop", "nop")
    WFI = ("wfi", "wfi")
    ISB = ("isb", "isb")
    DSB_SY = ("dsb_sy", "dsb sy")
    ERET = ("eret", "eret")
    MSR = ("msr", "msr")
    MRS = ("mrs", "mrs")
    MSR_DAIFSET = ("msr_daifset", "msr daifset")
    MSR_DAIFCLR = ("msr_daifclr", "msr daifclr")
    MSR_SPSEL = ("msr_spsel", "msr spsel")

    @property
    def mnemonic(self) -> str:
        """The GNU mnemonic (``add`` for both ADD_IMM and ADD_REG)."""
        return str(self.value[1])


BRANCHES: Final = frozenset({Op.B, Op.BL, Op.B_COND, Op.CBZ, Op.CBNZ})
"""Direct branches: their target is ``pc + imm``."""
PC_RELATIVE: Final = BRANCHES | {Op.ADR, Op.ADRP, Op.LDR_LIT}


@dataclass(frozen=True, slots=True)
class Insn:
    """One decoded instruction of the subset.

    ``rd`` is the destination, or the transfer register (Rt) of loads, stores, ``cbz`` and
    ``msr``/``mrs``; ``rt2`` the second register of a pair; ``imm`` the immediate, the byte
    offset of a load/store, or the byte offset from the instruction of a PC-relative form
    (``adrp``: from its 4 KiB page); ``shift`` the ``lsl`` of move-wide (0/16/32/48) or 12 for
    an add/sub immediate; ``sysreg`` the ``sysreg()`` key.
    """

    op: Op
    rd: int = 0
    rn: int = 0
    rm: int = 0
    rt2: int = 0
    imm: int = 0
    shift: int = 0
    cond: int = 0
    index: Index = Index.OFFSET
    sysreg: int = 0

    def encode(self) -> int:
        """The instruction word (the encoder functions' result for these fields)."""
        return _ENCODE[self.op](self)

    def target(self, pc: int) -> int | None:
        """The address a PC-relative instruction at ``pc`` refers to, else None."""
        if self.op is Op.ADRP:
            return ((pc & ~0xFFF) + self.imm) & U64_MASK
        if self.op in PC_RELATIVE:
            return (pc + self.imm) & U64_MASK
        return None

    def text(self, pc: int | None = None) -> str:
        """GNU syntax. PC-relative operands print as ``.+off`` without ``pc``, else absolute."""
        return _format(self, pc)


def _x(r: int, *, sp: bool = False) -> str:
    return ("sp" if sp else "xzr") if r == 31 else f"x{r}"


def _w(r: int) -> str:
    return "wzr" if r == 31 else f"w{r}"


def _rel(insn: Insn, pc: int | None) -> str:
    if pc is not None:
        return f"{insn.target(pc):#x}"
    if insn.op is Op.ADRP:
        return f".+{insn.imm:#x}" if insn.imm >= 0 else f".-{-insn.imm:#x}"
    return "." if insn.imm == 0 else (f".+{insn.imm}" if insn.imm > 0 else f".-{-insn.imm}")


def _mem(insn: Insn) -> str:
    base = _x(insn.rn, sp=True)
    if insn.index is Index.PRE:
        return f"[{base}, #{insn.imm}]!"
    if insn.index is Index.POST:
        return f"[{base}], #{insn.imm}"
    return f"[{base}, #{insn.imm}]" if insn.imm else f"[{base}]"


def _format(i: Insn, pc: int | None) -> str:
    op = i.op
    if op in (Op.MOVZ, Op.MOVK, Op.MOVN):
        lsl = f", lsl #{i.shift}" if i.shift else ""
        return f"{op.mnemonic} {_x(i.rd)}, #{i.imm:#x}{lsl}"
    if op is Op.ORR and i.rn == 31:
        return f"mov {_x(i.rd)}, {_x(i.rm)}"
    if op in (Op.ORR, Op.AND, Op.EOR, Op.ADD_REG, Op.SUB_REG, Op.SUBS_REG):
        if op is Op.SUBS_REG and i.rd == 31:
            return f"cmp {_x(i.rn)}, {_x(i.rm)}"
        return f"{op.mnemonic} {_x(i.rd)}, {_x(i.rn)}, {_x(i.rm)}"
    if op in (Op.ADD_IMM, Op.ADDS_IMM, Op.SUB_IMM, Op.SUBS_IMM):
        lsl = ", lsl #12" if i.shift else ""
        if op is Op.SUBS_IMM and i.rd == 31:
            return f"cmp {_x(i.rn, sp=True)}, #{i.imm:#x}{lsl}"
        dest_sp = op in (Op.ADD_IMM, Op.SUB_IMM)
        return f"{op.mnemonic} {_x(i.rd, sp=dest_sp)}, {_x(i.rn, sp=True)}, #{i.imm:#x}{lsl}"
    if op in (Op.LDR_X, Op.STR_X):
        return f"{op.mnemonic} {_x(i.rd)}, {_mem(i)}"
    if op in (Op.LDR_W, Op.STR_W):
        return f"{op.mnemonic} {_w(i.rd)}, {_mem(i)}"
    if op in (Op.LDP, Op.STP):
        return f"{op.mnemonic} {_x(i.rd)}, {_x(i.rt2)}, {_mem(i)}"
    if op is Op.LDR_LIT:
        return f"ldr {_x(i.rd)}, {_rel(i, pc)}"
    if op in (Op.ADR, Op.ADRP):
        return f"{op.mnemonic} {_x(i.rd)}, {_rel(i, pc)}"
    if op in (Op.B, Op.BL):
        return f"{op.mnemonic} {_rel(i, pc)}"
    if op is Op.B_COND:
        return f"b.{Cond(i.cond).name.lower()} {_rel(i, pc)}"
    if op in (Op.CBZ, Op.CBNZ):
        return f"{op.mnemonic} {_x(i.rd)}, {_rel(i, pc)}"
    if op in (Op.BR, Op.BLR):
        return f"{op.mnemonic} {_x(i.rn)}"
    if op is Op.RET:
        return "ret" if i.rn == LR else f"ret {_x(i.rn)}"
    if op in (Op.HVC, Op.SMC, Op.SVC, Op.BRK):
        return f"{op.mnemonic} #{i.imm:#x}"
    if op is Op.MSR:
        return f"msr {sysreg_name(i.sysreg)}, {_x(i.rd)}"
    if op is Op.MRS:
        return f"mrs {_x(i.rd)}, {sysreg_name(i.sysreg)}"
    if op in (Op.MSR_DAIFSET, Op.MSR_DAIFCLR, Op.MSR_SPSEL):
        return f"{op.mnemonic}, #{i.imm:#x}"
    return op.mnemonic  # nop, wfi, isb, dsb sy, eret


_EXACT: Final = {NOP: Op.NOP, WFI: Op.WFI, ISB: Op.ISB, DSB_SY: Op.DSB_SY, ERET: Op.ERET}
# (mask, value, op) for the fixed-field groups, most specific first.
_MASKED: Final = (
    (0xFF800000, 0xD2800000, Op.MOVZ), (0xFF800000, 0xF2800000, Op.MOVK),
    (0xFF800000, 0x92800000, Op.MOVN),
    (0xFFE0FC00, 0xAA000000, Op.ORR), (0xFFE0FC00, 0x8A000000, Op.AND),
    (0xFFE0FC00, 0xCA000000, Op.EOR), (0xFFE0FC00, 0x8B000000, Op.ADD_REG),
    (0xFFE0FC00, 0xCB000000, Op.SUB_REG), (0xFFE0FC00, 0xEB000000, Op.SUBS_REG),
    (0xFF800000, 0x91000000, Op.ADD_IMM), (0xFF800000, 0xB1000000, Op.ADDS_IMM),
    (0xFF800000, 0xD1000000, Op.SUB_IMM), (0xFF800000, 0xF1000000, Op.SUBS_IMM),
    (0xFFC00000, 0xF9400000, Op.LDR_X), (0xFFC00000, 0xF9000000, Op.STR_X),
    (0xFFC00000, 0xB9400000, Op.LDR_W), (0xFFC00000, 0xB9000000, Op.STR_W),
    (0xFF000000, 0x58000000, Op.LDR_LIT),
    (0x9F000000, 0x10000000, Op.ADR), (0x9F000000, 0x90000000, Op.ADRP),
    (0xFC000000, 0x14000000, Op.B), (0xFC000000, 0x94000000, Op.BL),
    (0xFF000010, 0x54000000, Op.B_COND),
    (0xFF000000, 0xB4000000, Op.CBZ), (0xFF000000, 0xB5000000, Op.CBNZ),
    (0xFFFFFC1F, 0xD61F0000, Op.BR), (0xFFFFFC1F, 0xD63F0000, Op.BLR),
    (0xFFFFFC1F, 0xD65F0000, Op.RET),
    (0xFFE0001F, 0xD4000002, Op.HVC), (0xFFE0001F, 0xD4000003, Op.SMC),
    (0xFFE0001F, 0xD4000001, Op.SVC), (0xFFE0001F, 0xD4200000, Op.BRK),
    (0xFFFFF0FF, 0xD50340DF, Op.MSR_DAIFSET), (0xFFFFF0FF, 0xD50340FF, Op.MSR_DAIFCLR),
    (0xFFFFFEFF, 0xD50040BF, Op.MSR_SPSEL),
    (0xFFF00000, 0xD5100000, Op.MSR), (0xFFF00000, 0xD5300000, Op.MRS),
)
_LDST_WB: Final = {  # (mask 0xFFE00C00) -> (op, index)
    0xF8400C00: (Op.LDR_X, Index.PRE), 0xF8400400: (Op.LDR_X, Index.POST),
    0xF8000C00: (Op.STR_X, Index.PRE), 0xF8000400: (Op.STR_X, Index.POST),
}
_PAIR_DECODE: Final = {v: k for k, v in PAIR_OPCODES.items()}


def decode_insn(word: int) -> Insn | None:
    """The fields of a subset instruction word, or None if the word is outside the subset."""
    if not isinstance(word, int) or isinstance(word, bool) or not 0 <= word <= 0xFFFFFFFF:
        raise ValueError(f"disassemble: word = {word!r} is not a 32-bit instruction word")
    if word in _EXACT:
        return Insn(_EXACT[word])
    rd, rn, rm = word & 31, word >> 5 & 31, word >> 16 & 31
    wb = _LDST_WB.get(word & 0xFFE00C00)
    if wb is not None:
        return Insn(wb[0], rd=rd, rn=rn, imm=sign_extend(word >> 12 & 0x1FF, 9), index=wb[1])
    pair = _PAIR_DECODE.get(word & 0xFFC00000)
    if pair is not None:
        load, index = pair
        return Insn(Op.LDP if load else Op.STP, rd=rd, rt2=word >> 10 & 31, rn=rn,
                    imm=sign_extend(word >> 15 & 0x7F, 7) * 8, index=index)
    for mask, value, op in _MASKED:
        if word & mask == value:
            return _fields(op, word, rd, rn, rm)
    return None


def _fields(op: Op, word: int, rd: int, rn: int, rm: int) -> Insn | None:
    if op in (Op.MOVZ, Op.MOVK, Op.MOVN):
        return Insn(op, rd=rd, imm=word >> 5 & 0xFFFF, shift=(word >> 21 & 3) * 16)
    if op in (Op.ORR, Op.AND, Op.EOR, Op.ADD_REG, Op.SUB_REG, Op.SUBS_REG):
        return Insn(op, rd=rd, rn=rn, rm=rm)
    if op in (Op.ADD_IMM, Op.ADDS_IMM, Op.SUB_IMM, Op.SUBS_IMM):
        return Insn(op, rd=rd, rn=rn, imm=word >> 10 & 0xFFF, shift=12 * (word >> 22 & 1))
    if op in (Op.LDR_X, Op.STR_X, Op.LDR_W, Op.STR_W):
        size = 8 if op in (Op.LDR_X, Op.STR_X) else 4
        return Insn(op, rd=rd, rn=rn, imm=(word >> 10 & 0xFFF) * size)
    if op in (Op.LDR_LIT, Op.B_COND, Op.CBZ, Op.CBNZ):
        off = sign_extend(word >> 5 & 0x7FFFF, 19) * 4
        return Insn(op, rd=0 if op is Op.B_COND else rd, imm=off,
                    cond=word & 15 if op is Op.B_COND else 0)
    if op in (Op.ADR, Op.ADRP):
        imm = sign_extend((word >> 5 & 0x7FFFF) << 2 | word >> 29 & 3, 21)
        return Insn(op, rd=rd, imm=imm * (4096 if op is Op.ADRP else 1))
    if op in (Op.B, Op.BL):
        return Insn(op, imm=sign_extend(word & 0x3FFFFFF, 26) * 4)
    if op in (Op.BR, Op.BLR, Op.RET):
        return None if rn == 31 else Insn(op, rn=rn)
    if op in (Op.HVC, Op.SMC, Op.SVC, Op.BRK):
        return Insn(op, imm=word >> 5 & 0xFFFF)
    if op in (Op.MSR_DAIFSET, Op.MSR_DAIFCLR, Op.MSR_SPSEL):
        imm = word >> 8 & 15
        return None if op is Op.MSR_SPSEL and imm > 1 else Insn(op, imm=imm)
    key = (word >> 5 & 0x7FFF) | 0x8000  # bit 20 of the word is op0[1], always 1 here
    if op is Op.MSR and key in READ_ONLY:
        return None
    return Insn(op, rd=rd, sysreg=key)


def disassemble(word: int, pc: int | None = None) -> str:
    """GNU-syntax text of one word; ``.inst 0x........`` for words outside the subset.
    With ``pc``, PC-relative operands print as absolute addresses (a listing); without, as
    ``.+offset``, which GNU as assembles back to the same word."""
    insn = decode_insn(word)
    return f".inst {word:#010x}" if insn is None else insn.text(pc)


def _enc_pair(i: Insn) -> int:
    return pair(i.op is Op.LDP, i.index, i.rd, i.rt2, i.rn, i.imm)


def _enc_ldst_x(i: Insn) -> int:
    load = i.op is Op.LDR_X
    if i.index is Index.OFFSET:
        return (ldr_x if load else str_x)(i.rd, i.rn, i.imm)
    if i.index is Index.PRE:
        return (ldr_x_pre if load else str_x_pre)(i.rd, i.rn, i.imm)
    return (ldr_x_post if load else str_x_post)(i.rd, i.rn, i.imm)


_ENCODE: Final[Mapping[Op, Callable[[Insn], int]]] = {
    Op.MOVZ: lambda i: movz(i.rd, i.imm, i.shift),
    Op.MOVK: lambda i: movk(i.rd, i.imm, i.shift),
    Op.MOVN: lambda i: movn(i.rd, i.imm, i.shift),
    Op.ORR: lambda i: orr(i.rd, i.rn, i.rm),
    Op.AND: lambda i: and_(i.rd, i.rn, i.rm),
    Op.EOR: lambda i: eor(i.rd, i.rn, i.rm),
    Op.ADD_IMM: lambda i: add_imm(i.rd, i.rn, i.imm, bool(i.shift)),
    Op.ADDS_IMM: lambda i: adds_imm(i.rd, i.rn, i.imm, bool(i.shift)),
    Op.SUB_IMM: lambda i: sub_imm(i.rd, i.rn, i.imm, bool(i.shift)),
    Op.SUBS_IMM: lambda i: subs_imm(i.rd, i.rn, i.imm, bool(i.shift)),
    Op.ADD_REG: lambda i: add_reg(i.rd, i.rn, i.rm),
    Op.SUB_REG: lambda i: sub_reg(i.rd, i.rn, i.rm),
    Op.SUBS_REG: lambda i: subs_reg(i.rd, i.rn, i.rm),
    Op.LDR_X: _enc_ldst_x,
    Op.STR_X: _enc_ldst_x,
    Op.LDR_W: lambda i: ldr_w(i.rd, i.rn, i.imm),
    Op.STR_W: lambda i: str_w(i.rd, i.rn, i.imm),
    Op.LDP: _enc_pair,
    Op.STP: _enc_pair,
    Op.LDR_LIT: lambda i: ldr_literal(i.rd, i.imm),
    Op.ADR: lambda i: adr(i.rd, i.imm),
    Op.ADRP: lambda i: adrp(i.rd, i.imm),
    Op.B: lambda i: b(i.imm),
    Op.BL: lambda i: bl(i.imm),
    Op.B_COND: lambda i: b_cond(i.cond, i.imm),
    Op.CBZ: lambda i: cbz(i.rd, i.imm),
    Op.CBNZ: lambda i: cbnz(i.rd, i.imm),
    Op.BR: lambda i: br(i.rn),
    Op.BLR: lambda i: blr(i.rn),
    Op.RET: lambda i: ret(i.rn),
    Op.HVC: lambda i: hvc(i.imm),
    Op.SMC: lambda i: smc(i.imm),
    Op.SVC: lambda i: svc(i.imm),
    Op.BRK: lambda i: brk(i.imm),
    Op.NOP: lambda i: NOP,
    Op.WFI: lambda i: WFI,
    Op.ISB: lambda i: ISB,
    Op.DSB_SY: lambda i: DSB_SY,
    Op.ERET: lambda i: ERET,
    Op.MSR: lambda i: msr(i.sysreg, i.rd),
    Op.MRS: lambda i: mrs(i.rd, i.sysreg),
    Op.MSR_DAIFSET: lambda i: msr_daifset(i.imm),
    Op.MSR_DAIFCLR: lambda i: msr_daifclr(i.imm),
    Op.MSR_SPSEL: lambda i: msr_spsel(i.imm),
}
