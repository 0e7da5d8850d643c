"""The A64 encoder and decoder: exact words, operand errors, round trips, and (where GNU
binutils for AArch64 is installed) agreement with GNU as and objdump.

The exact words below were produced by GNU as 2.40 from the text next to them and agree with
the encoding diagrams of the Arm ARM (DDI 0487, C6); they run everywhere.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Final

import binutils
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.guest import a64 as A
from sdei_state.guest.a64 import SP, XZR, Cond, EncodeError, SysReg, sysreg
from sdei_state.guest.disasm import Op, decode_insn, disassemble

EXACT: Final[tuple[tuple[Callable[..., int], tuple[Any, ...], str, int], ...]] = (
    (A.movz, (0, 0x8400, 16), "movz x0, #0x8400, lsl #16", 0xD2B08000),
    (A.movz, (28, 0x1000, 16), "movz x28, #0x1000, lsl #16", 0xD2A2001C),
    (A.movz, (5, 0xffff, 48), "movz x5, #0xffff, lsl #48", 0xD2FFFFE5),
    (A.movk, (0, 0x20), "movk x0, #0x20", 0xF2800400),
    (A.movk, (30, 0xc400, 16), "movk x30, #0xc400, lsl #16", 0xF2B8801E),
    (A.movk, (1, 0x1234, 32), "movk x1, #0x1234, lsl #32", 0xF2C24681),
    (A.movn, (2, 0x0), "movn x2, #0x0", 0x92800002),
    (A.movn, (7, 0xedcb, 16), "movn x7, #0xedcb, lsl #16", 0x92BDB967),
    (A.mov, (1, 2), "mov x1, x2", 0xAA0203E1),
    (A.mov, (3, XZR), "mov x3, xzr", 0xAA1F03E3),
    (A.orr, (1, 2, 3), "orr x1, x2, x3", 0xAA030041),
    (A.and_, (4, 5, 6), "and x4, x5, x6", 0x8A0600A4),
    (A.eor, (7, 8, 9), "eor x7, x8, x9", 0xCA090107),
    (A.add_imm, (SP, 9, 0), "add sp, x9, #0x0", 0x9100013F),
    (A.add_imm, (0, SP, 16), "add x0, sp, #0x10", 0x910043E0),
    (A.add_imm, (1, 2, 0xfff, True), "add x1, x2, #0xfff, lsl #12", 0x917FFC41),
    (A.adds_imm, (3, 4, 1), "adds x3, x4, #0x1", 0xB1000483),
    (A.sub_imm, (SP, SP, 160), "sub sp, sp, #0xa0", 0xD10283FF),
    (A.subs_imm, (5, 6, 7), "subs x5, x6, #0x7", 0xF1001CC5),
    (A.cmp_imm, (0, 5), "cmp x0, #0x5", 0xF100141F),
    (A.cmp_imm, (SP, 1, True), "cmp sp, #0x1, lsl #12", 0xF14007FF),
    (A.add_reg, (0, 1, 2), "add x0, x1, x2", 0x8B020020),
    (A.sub_reg, (3, 4, 5), "sub x3, x4, x5", 0xCB050083),
    (A.subs_reg, (6, 7, 8), "subs x6, x7, x8", 0xEB0800E6),
    (A.cmp_reg, (9, 10), "cmp x9, x10", 0xEB0A013F),
    (A.ldr_x, (0, 16), "ldr x0, [x16]", 0xF9400200),
    (A.ldr_x, (1, SP, 8), "ldr x1, [sp, #8]", 0xF94007E1),
    (A.ldr_x, (30, 2, 32760), "ldr x30, [x2, #32760]", 0xF97FFC5E),
    (A.str_x, (0, 2), "str x0, [x2]", 0xF9000040),
    (A.str_x, (0, 28, 0x800), "str x0, [x28, #2048]", 0xF9040380),
    (A.str_x, (17, 16, 0x7878), "str x17, [x16, #30840]", 0xF93C3E11),
    (A.ldr_w, (3, 4, 4), "ldr w3, [x4, #4]", 0xB9400483),
    (A.str_w, (XZR, SP, 16380), "str wzr, [sp, #16380]", 0xB93FFFFF),
    (A.ldr_x_pre, (0, SP, -16), "ldr x0, [sp, #-16]!", 0xF85F0FE0),
    (A.ldr_x_post, (1, SP, 16), "ldr x1, [sp], #16", 0xF84107E1),
    (A.str_x_pre, (2, 3, -256), "str x2, [x3, #-256]!", 0xF8100C62),
    (A.str_x_post, (4, 5, 255), "str x4, [x5], #255", 0xF80FF4A4),
    (A.ldp, (0, 1, SP, 16), "ldp x0, x1, [sp, #16]", 0xA94107E0),
    (A.ldp_pre, (2, 3, 4, -512), "ldp x2, x3, [x4, #-512]!", 0xA9E00C82),
    (A.ldp_post, (0, 1, SP, 160), "ldp x0, x1, [sp], #160", 0xA8CA07E0),
    (A.stp, (14, 15, 16, 112), "stp x14, x15, [x16, #112]", 0xA9073E0E),
    (A.stp_pre, (16, 17, SP, -16), "stp x16, x17, [sp, #-16]!", 0xA9BF47F0),
    (A.stp_post, (29, 30, SP, 504), "stp x29, x30, [sp], #504", 0xA89FFBFD),
    (A.ldr_literal, (0, 8), "ldr x0, .+8", 0x58000040),
    (A.ldr_literal, (5, -1048576), "ldr x5, .-1048576", 0x58800005),
    (A.adr, (9, 0), "adr x9, .", 0x10000009),
    (A.adr, (2, 0x27fc), "adr x2, .+10236", 0x10013FE2),
    (A.adr, (17, -1), "adr x17, .-1", 0x70FFFFF1),
    (A.adr, (0, 1048575), "adr x0, .+1048575", 0x707FFFE0),
    (A.b, (0,), "b .", 0x14000000),
    (A.b, (-4,), "b .-4", 0x17FFFFFF),
    (A.b, (134217724,), "b .+134217724", 0x15FFFFFF),
    (A.bl, (-134217728,), "bl .-134217728", 0x96000000),
    (A.b_cond, (Cond.EQ, 8), "b.eq .+8", 0x54000040),
    (A.b_cond, (Cond.NE, -8), "b.ne .-8", 0x54FFFFC1),
    (A.b_cond, (Cond.HS, 4), "b.cs .+4", 0x54000022),
    (A.b_cond, (Cond.LT, 1048572), "b.lt .+1048572", 0x547FFFEB),
    (A.b_cond, (Cond.NV, 0), "b.nv .", 0x5400000F),
    (A.cbz, (0, 8), "cbz x0, .+8", 0xB4000040),
    (A.cbnz, (30, -1048576), "cbnz x30, .-1048576", 0xB580001E),
    (A.br, (1,), "br x1", 0xD61F0020),
    (A.blr, (16,), "blr x16", 0xD63F0200),
    (A.ret, (), "ret", 0xD65F03C0),
    (A.ret, (2,), "ret x2", 0xD65F0040),
    (A.hvc, (0,), "hvc #0x0", 0xD4000002),
    (A.hvc, (0xffff,), "hvc #0xffff", 0xD41FFFE2),
    (A.smc, (0,), "smc #0x0", 0xD4000003),
    (A.svc, (1,), "svc #0x1", 0xD4000021),
    (A.brk, (0x3e8,), "brk #0x3e8", 0xD4207D00),
    (A.nop, (), "nop", 0xD503201F),
    (A.isb, (), "isb", 0xD5033FDF),
    (A.dsb_sy, (), "dsb sy", 0xD5033F9F),
    (A.wfi, (), "wfi", 0xD503207F),
    (A.eret, (), "eret", 0xD69F03E0),
    (A.msr, (SysReg.VBAR_EL1, 9), "msr vbar_el1, x9", 0xD518C009),
    (A.mrs, (0, SysReg.VBAR_EL1), "mrs x0, vbar_el1", 0xD538C000),
    (A.mrs, (17, SysReg.ESR_EL1), "mrs x17, esr_el1", 0xD5385211),
    (A.mrs, (17, SysReg.ELR_EL1), "mrs x17, elr_el1", 0xD5384031),
    (A.msr, (SysReg.ELR_EL1, 1), "msr elr_el1, x1", 0xD5184021),
    (A.mrs, (2, SysReg.SPSR_EL1), "mrs x2, spsr_el1", 0xD5384002),
    (A.msr, (SysReg.SPSR_EL1, 3), "msr spsr_el1, x3", 0xD5184003),
    (A.mrs, (0, SysReg.FAR_EL1), "mrs x0, far_el1", 0xD5386000),
    (A.mrs, (0, SysReg.DAIF), "mrs x0, daif", 0xD53B4220),
    (A.msr, (SysReg.DAIF, 0), "msr daif, x0", 0xD51B4220),
    (A.mrs, (0, SysReg.NZCV), "mrs x0, nzcv", 0xD53B4200),
    (A.msr, (SysReg.NZCV, 9), "msr nzcv, x9", 0xD51B4209),
    (A.mrs, (0, SysReg.CURRENTEL), "mrs x0, currentel", 0xD5384240),
    (A.mrs, (0, SysReg.SPSEL), "mrs x0, spsel", 0xD5384200),
    (A.msr, (SysReg.SPSEL, 1), "msr spsel, x1", 0xD5184201),
    (A.mrs, (4, SysReg.SP_EL0), "mrs x4, sp_el0", 0xD5384104),
    (A.msr, (SysReg.SP_EL0, 4), "msr sp_el0, x4", 0xD5184104),
    (A.mrs, (5, SysReg.TPIDR_EL1), "mrs x5, tpidr_el1", 0xD538D085),
    (A.msr, (SysReg.TPIDR_EL1, 5), "msr tpidr_el1, x5", 0xD518D085),
    (A.mrs, (6, SysReg.TPIDR_EL0), "mrs x6, tpidr_el0", 0xD53BD046),
    (A.mrs, (6, SysReg.TPIDRRO_EL0), "mrs x6, tpidrro_el0", 0xD53BD066),
    (A.mrs, (7, SysReg.MPIDR_EL1), "mrs x7, mpidr_el1", 0xD53800A7),
    (A.mrs, (7, SysReg.MIDR_EL1), "mrs x7, midr_el1", 0xD5380007),
    (A.mrs, (8, SysReg.SCTLR_EL1), "mrs x8, sctlr_el1", 0xD5381008),
    (A.mrs, (8, SysReg.CNTVCT_EL0), "mrs x8, cntvct_el0", 0xD53BE048),
    (A.mrs, (8, SysReg.CNTFRQ_EL0), "mrs x8, cntfrq_el0", 0xD53BE008),
    (A.msr, (SysReg.VBAR_EL1, XZR), "msr vbar_el1, xzr", 0xD518C01F),
    (A.mrs, (1, sysreg(3, 0, 15, 2, 1)), "mrs x1, s3_0_c15_c2_1", 0xD538F221),
    (A.msr_daifset, (0xf,), "msr daifset, #0xf", 0xD5034FDF),
    (A.msr_daifclr, (0xf,), "msr daifclr, #0xf", 0xD5034FFF),
    (A.msr_daifclr, (2,), "msr daifclr, #0x2", 0xD50342FF),
    (A.msr_spsel, (1,), "msr spsel, #0x1", 0xD50041BF),
    (A.msr_spsel, (0,), "msr spsel, #0x0", 0xD50040BF),
)

LAB_WORDS: Final = (0xD2B08000, 0xD4000002, 0xD2A20002, 0xF9000040, 0x14000000)
"""The lab's KVM_RUN guest (lab README section 5): movz x0, #0x8400, lsl #16; hvc #0;
movz x2, #0x1000, lsl #16; str x0, [x2]; b ."""


@pytest.mark.parametrize(("encoder", "args", "text", "word"), EXACT,
                         ids=[t for _, _, t, _ in EXACT])
def test_exact_word_and_text(encoder: Callable[..., int], args: tuple[Any, ...], text: str,
                             word: int) -> None:
    assert encoder(*args) == word
    assert disassemble(word) == text
    insn = decode_insn(word)
    assert insn is not None and insn.encode() == word


def test_lab_program_words() -> None:
    code = (A.movz(0, 0x8400, 16), A.hvc(0), A.movz(2, 0x1000, 16), A.str_x(0, 2), A.b(0))
    assert code == LAB_WORDS


def test_cmp_is_subs_to_xzr() -> None:
    assert A.cmp_imm(3, 9) == A.subs_imm(XZR, 3, 9)
    assert A.cmp_reg(3, 4) == A.subs_reg(XZR, 3, 4)
    assert A.mov(5, 6) == A.orr(5, XZR, 6)


# -- operand errors ------------------------------------------------------------------------

BAD: Final[tuple[tuple[Callable[..., object], tuple[Any, ...], str], ...]] = (
    (A.movz, (32, 0), "movz: rd = 32 is not a register number 0..31"),
    (A.movz, (0, 0x10000), "movz: imm16 = 0x10000 does not fit 16 unsigned bits"),
    (A.movk, (0, 1, 8), "movk: shift = 8 is not 0, 16, 32 or 48"),
    (A.movn, (-1, 0), "movn: rd = -1"),
    (A.movz, (True, 0), "movz: rd = True is not an integer"),
    (A.add_imm, (0, 1, 4096), "add: imm12 = 0x1000 does not fit 12 unsigned bits"),
    (A.add_imm, (0, 1, 1, 1), "add: shift12 = 1 is not a bool"),
    (A.ldr_x, (0, 1, 4), "ldr: offset = 4 is not a multiple of 8"),
    (A.ldr_x, (0, 1, 32768), "ldr: offset = 32768 is outside 0..32760"),
    (A.str_x, (0, 1, -8), "str: offset = -8 is outside 0..32760"),
    (A.ldr_w, (0, 1, 2), "ldr: offset = 2 is not a multiple of 4"),
    (A.ldr_x_pre, (0, 1, 256), "ldr: offset = 256 is outside -256..255"),
    (A.str_x_post, (3, 3, 8), "str: rt = rn = x3 with writeback is unpredictable"),
    (A.ldp, (1, 1, 2), "ldp: rt = rt2 = x1 is unpredictable"),
    (A.stp_pre, (1, 2, 2, -16), "stp: base x2 is also a transfer register with writeback"),
    (A.stp, (0, 1, SP, 4), "stp: offset = 4 is not a multiple of 8"),
    (A.ldp, (0, 1, SP, 512), "ldp: offset = 512 is outside -512..504"),
    (A.b, (2,), "b: offset = 2 is not a multiple of 4"),
    (A.b, (1 << 27,), "b: offset = 134217728 is outside -134217728..134217724"),
    (A.b_cond, (16, 0), "b.cond: cond = 0x10 does not fit 4 unsigned bits"),
    (A.cbz, (0, 1 << 20), "cbz: offset = 1048576 is outside -1048576..1048572"),
    (A.adr, (0, 1 << 20), "adr: offset = 1048576 is outside -1048576..1048575"),
    (A.adrp, (0, 100), "adrp: offset = 100 is not a multiple of 4096"),
    (A.br, (31,), "br: rn = 31 (sp/xzr) is not allowed here"),
    (A.ret, (32,), "ret: rn = 32 is not a register number"),
    (A.hvc, (0x10000,), "hvc: imm16 = 0x10000 does not fit 16 unsigned bits"),
    (A.msr, (SysReg.CURRENTEL, 0), "msr: currentel (0xc212) is read-only"),
    (A.msr, (SysReg.MPIDR_EL1, 0), "msr: mpidr_el1 (0xc005) is read-only"),
    (A.mrs, (0, 0x1234), "mrs: sysreg = 0x1234 is not a key made by sysreg()"),
    (A.msr_daifset, (16,), "msr daifset: imm = 0x10 does not fit 4 unsigned bits"),
    (A.msr_spsel, (2,), "msr spsel: imm = 0x2 does not fit 1 unsigned bits"),
    (A.mov_imm64, (0, 1 << 64), "mov_imm64: value = 0x10000000000000000 does not fit 64 bits"),
    (A.mov_imm64_fixed, (0, -(1 << 63) - 1), "does not fit 64 bits"),
    (sysreg, (1, 0, 0, 0, 0), "sysreg: op0 = 1 is not a register access"),
    (sysreg, (3, 8, 0, 0, 0), "sysreg: op1 = 8 is outside 0..7"),
)


@pytest.mark.parametrize(("encoder", "args", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_operand_names_it(encoder: Callable[..., object], args: tuple[Any, ...],
                              message: str) -> None:
    with pytest.raises(EncodeError) as e:
        encoder(*args)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


# -- immediates ----------------------------------------------------------------------------

def _evaluate_moves(words: tuple[int, ...], rd: int) -> int:
    """What a movz/movn/movk sequence leaves in xd (an evaluator independent of the sim)."""
    value = 0
    for w in words:
        insn = decode_insn(w)
        assert insn is not None and insn.rd == rd
        chunk = insn.imm << insn.shift
        if insn.op is Op.MOVZ:
            value = chunk
        elif insn.op is Op.MOVN:
            value = ~chunk & A.U64_MASK
        else:
            assert insn.op is Op.MOVK
            value = (value & ~(0xFFFF << insn.shift)) | chunk
    return value


U64S = st.integers(0, A.U64_MASK) | st.sampled_from(
    [0, 1, 0xFFFF, 0x10000, A.U64_MASK, 0xFFFF_FFFF_0000_0000, 0xC400_0020, 1 << 63])


@settings(max_examples=300)
@given(value=U64S, rd=st.integers(0, 30))
def test_mov_imm64_sets_the_value_in_few_words(value: int, rd: int) -> None:
    words = A.mov_imm64(rd, value)
    assert _evaluate_moves(words, rd) == value
    chunks = [(value >> s) & 0xFFFF for s in (0, 16, 32, 48)]
    need = min(4 - chunks.count(0), 4 - chunks.count(0xFFFF))
    assert len(words) == max(need, 1)
    fixed = A.mov_imm64_fixed(rd, value)
    assert len(fixed) == 4 and _evaluate_moves(fixed, rd) == value


def test_mov_imm64_takes_negative_values_as_twos_complement() -> None:
    assert A.mov_imm64(3, -2) == A.mov_imm64(3, A.U64_MASK - 1) == (A.movn(3, 1),)


# -- decoding ------------------------------------------------------------------------------

R = st.integers(0, 31)
R30 = st.integers(0, 30)


def _writeback(f: Callable[[int, int, int], int]) -> st.SearchStrategy[int]:
    """Pre/post-index forms: the transfer register may not be the base."""
    return st.tuples(R30, R, st.integers(-256, 255)).filter(lambda t: t[0] != t[1]).map(
        lambda t: f(*t))


def _pairs(f: Callable[[int, int, int, int], int]) -> st.SearchStrategy[int]:
    """ldp/stp: two different registers, neither of them the base."""
    return st.tuples(R30, R30, R, st.integers(-64, 63).map(lambda n: 8 * n)).filter(
        lambda t: t[0] != t[1] and t[2] not in t[:2]).map(lambda t: f(*t))

ENCODED = st.one_of(
    st.builds(A.movz, R, st.integers(0, 0xFFFF), st.sampled_from([0, 16, 32, 48])),
    st.builds(A.movk, R, st.integers(0, 0xFFFF), st.sampled_from([0, 16, 32, 48])),
    st.builds(A.movn, R, st.integers(0, 0xFFFF), st.sampled_from([0, 16, 32, 48])),
    *(st.builds(f, R, R, R) for f in (A.orr, A.and_, A.eor, A.add_reg, A.sub_reg, A.subs_reg)),
    *(st.builds(f, R, R, st.integers(0, 4095), st.booleans())
      for f in (A.add_imm, A.adds_imm, A.sub_imm, A.subs_imm)),
    st.builds(A.ldr_x, R, R, st.integers(0, 4095).map(lambda n: 8 * n)),
    st.builds(A.str_x, R, R, st.integers(0, 4095).map(lambda n: 8 * n)),
    st.builds(A.ldr_w, R, R, st.integers(0, 4095).map(lambda n: 4 * n)),
    st.builds(A.str_w, R, R, st.integers(0, 4095).map(lambda n: 4 * n)),
    *(_writeback(f) for f in (A.ldr_x_pre, A.ldr_x_post, A.str_x_pre, A.str_x_post)),
    *(_pairs(f) for f in (A.ldp, A.ldp_pre, A.ldp_post, A.stp, A.stp_pre, A.stp_post)),
    st.builds(A.ldr_literal, R, st.integers(-(1 << 18), (1 << 18) - 1).map(lambda n: 4 * n)),
    st.builds(A.adr, R, st.integers(-(1 << 20), (1 << 20) - 1)),
    st.builds(A.adrp, R, st.integers(-(1 << 20), (1 << 20) - 1).map(lambda n: 4096 * n)),
    st.builds(A.b, st.integers(-(1 << 25), (1 << 25) - 1).map(lambda n: 4 * n)),
    st.builds(A.bl, st.integers(-(1 << 25), (1 << 25) - 1).map(lambda n: 4 * n)),
    st.builds(A.b_cond, st.integers(0, 15), st.integers(-(1 << 18), (1 << 18) - 1).map(
        lambda n: 4 * n)),
    st.builds(A.cbz, R, st.integers(-(1 << 18), (1 << 18) - 1).map(lambda n: 4 * n)),
    st.builds(A.cbnz, R, st.integers(-(1 << 18), (1 << 18) - 1).map(lambda n: 4 * n)),
    *(st.builds(f, R30) for f in (A.br, A.blr, A.ret)),
    *(st.builds(f, st.integers(0, 0xFFFF)) for f in (A.hvc, A.smc, A.svc, A.brk)),
    st.builds(A.msr_daifset, st.integers(0, 15)), st.builds(A.msr_daifclr, st.integers(0, 15)),
    st.builds(A.msr_spsel, st.integers(0, 1)),
    st.builds(A.mrs, R, st.sampled_from(list(SysReg))),
    st.builds(A.msr, st.sampled_from([s for s in SysReg if s not in A.READ_ONLY]), R),
    st.builds(A.mrs, R, st.builds(sysreg, st.integers(2, 3), st.integers(0, 7),
                                  st.integers(0, 15), st.integers(0, 15), st.integers(0, 7))),
    st.sampled_from([A.NOP, A.ISB, A.DSB_SY, A.WFI, A.ERET]),
)


@settings(max_examples=400)
@given(word=ENCODED)
def test_every_encoding_decodes_back_to_itself(word: int) -> None:
    insn = decode_insn(word)
    assert insn is not None, f"{word:#010x} not decoded"
    assert insn.encode() == word
    assert not disassemble(word).startswith(".inst")


@pytest.mark.parametrize("word", [0x00000000, 0xFFFFFFFF, 0xD61F03E0, 0xD5184240, 0xD50042BF,
                                  0x8B200000, 0xAA0204E1, 0x54000050])
def test_words_outside_the_subset_print_as_inst(word: int) -> None:
    # udf, all-ones, br xzr, msr currentel, msr spsel #2, add extended, orr shifted, b.cond o0=1
    assert decode_insn(word) is None
    assert disassemble(word) == f".inst {word:#010x}"


def test_decode_with_pc_prints_absolute_targets() -> None:
    pc = 0x4000_0100
    assert disassemble(A.b(-0x100), pc) == "b 0x40000000"
    assert disassemble(A.adr(2, 0x27FC), pc) == "adr x2, 0x400028fc"
    assert disassemble(A.adrp(0, 0x1000), pc + 4) == "adrp x0, 0x40001000"
    assert disassemble(A.cbz(1, 8), pc) == "cbz x1, 0x40000108"
    insn = decode_insn(A.b_cond(Cond.GE, -4))
    assert insn is not None and insn.target(pc) == pc - 4


@pytest.mark.parametrize("word", [-1, 1 << 32, True])
def test_decode_rejects_non_words(word: int) -> None:
    with pytest.raises(ValueError, match="is not a 32-bit instruction word"):
        disassemble(word)


# -- GNU binutils --------------------------------------------------------------------------

needs_binutils = pytest.mark.skipif(binutils.missing() is not None,
                                    reason=binutils.missing() or "")


@needs_binutils
def test_exact_table_agrees_with_gnu_as() -> None:
    words = binutils.assemble([text for _, _, text, _ in EXACT])
    for (encoder, args, text, _), got in zip(EXACT, words, strict=True):
        assert encoder(*args) == got, f"{text}: ours {encoder(*args):#010x}, as {got:#010x}"


@needs_binutils
def test_random_encodings_assemble_back_with_gnu_as() -> None:
    """disassemble() text of random encodings, assembled by GNU as, gives the same words (adrp
    is left out: as turns a page-relative target into a relocation)."""
    rnd = random.Random(5054)
    words = _seeded_words(rnd, 1500)
    got = binutils.assemble([disassemble(w) for w in words])
    bad = [(f"{w:#010x}", disassemble(w), f"{g:#010x}") for w, g in zip(words, got, strict=True)
           if w != g]
    assert not bad, bad[:10]


@needs_binutils
def test_adrp_agrees_with_objdump() -> None:
    vma = 0x4000_0000
    words = [A.adrp(n % 31, 4096 * off) for n, off in
             enumerate((0, 1, -1, 7, -7, (1 << 20) - 1, -(1 << 20), 0x12345))]
    ours = [disassemble(w, vma + 4 * n) for n, w in enumerate(words)]
    assert binutils.disassemble(words, vma) == ours


def _seeded_words(rnd: random.Random, n: int) -> list[int]:
    """``n`` valid encodings drawn with a seeded generator (deterministic across runs)."""
    def r() -> int:
        return rnd.randrange(32)

    def off(bits: int, scale: int = 4) -> int:
        return scale * rnd.randrange(-(1 << (bits - 1)), 1 << (bits - 1))

    makers: list[Callable[[], int]] = [
        lambda: A.movz(r(), rnd.randrange(1 << 16), 16 * rnd.randrange(4)),
        lambda: A.movk(r(), rnd.randrange(1 << 16), 16 * rnd.randrange(4)),
        lambda: A.movn(r(), rnd.randrange(1 << 16), 16 * rnd.randrange(4)),
        *(lambda f=f: f(r(), r(), r()) for f in (A.orr, A.and_, A.eor, A.add_reg, A.sub_reg,
                                                   A.subs_reg)),
        *(lambda f=f: f(r(), r(), rnd.randrange(4096), rnd.random() < 0.5)
          for f in (A.add_imm, A.adds_imm, A.sub_imm, A.subs_imm)),
        lambda: A.ldr_x(r(), r(), 8 * rnd.randrange(4096)),
        lambda: A.str_x(r(), r(), 8 * rnd.randrange(4096)),
        lambda: A.ldr_w(r(), r(), 4 * rnd.randrange(4096)),
        lambda: A.str_w(r(), r(), 4 * rnd.randrange(4096)),
        lambda: A.ldr_literal(r(), off(19)),
        lambda: A.adr(r(), off(21, 1)),
        lambda: A.b(off(26)), lambda: A.bl(off(26)),
        lambda: A.b_cond(rnd.randrange(16), off(19)),
        lambda: A.cbz(r(), off(19)), lambda: A.cbnz(r(), off(19)),
        *(lambda f=f: f(rnd.randrange(31)) for f in (A.br, A.blr, A.ret)),
        *(lambda f=f: f(rnd.randrange(1 << 16)) for f in (A.hvc, A.smc, A.svc, A.brk)),
        lambda: A.msr_daifset(rnd.randrange(16)), lambda: A.msr_daifclr(rnd.randrange(16)),
        lambda: A.msr_spsel(rnd.randrange(2)),
        lambda: A.mrs(r(), rnd.choice(list(SysReg))),
        lambda: A.msr(rnd.choice([s for s in SysReg if s not in A.READ_ONLY]), r()),
        lambda: A.mrs(r(), sysreg(3, rnd.randrange(8), rnd.randrange(16), rnd.randrange(16),
                                  rnd.randrange(8))),
        lambda: rnd.choice([A.NOP, A.ISB, A.DSB_SY, A.WFI, A.ERET]),
    ]
    words = [rnd.choice(makers)() for _ in range(n)]
    for _ in range(n // 10):  # writeback and pair forms, with their register constraints
        t1, t2, rn = rnd.sample(range(31), 3)
        base = rnd.choice((rn, SP))
        words.append(rnd.choice((A.ldr_x_pre, A.ldr_x_post, A.str_x_pre, A.str_x_post))(
            t1, base, rnd.randrange(-256, 256)))
        words.append(rnd.choice((A.ldp, A.ldp_pre, A.ldp_post, A.stp, A.stp_pre, A.stp_post))(
            t1, t2, base, 8 * rnd.randrange(-64, 64)))
    return words
