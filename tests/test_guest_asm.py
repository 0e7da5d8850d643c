"""The assembler: labels, forward and backward fixups, data, errors, and the Image."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from sdei_state.guest import a64 as A
from sdei_state.guest.a64 import Cond, EncodeError
from sdei_state.guest.asm import Asm, AsmError, Image
from sdei_state.guest.disasm import decode_insn, disassemble

BASE = 0x4000_0000


def test_forward_and_backward_branches_resolve() -> None:
    a = Asm(BASE)
    top = a.label("top")
    a.b("end")                      # forward, 3 words ahead
    a.cbz(3, "top")                 # backward
    a.b_cond(Cond.NE, "end")
    a.label("end")
    a.bl(top)                       # an absolute address works too
    img = a.assemble()
    assert img.word(BASE) == A.b(12)
    assert img.word(BASE + 4) == A.cbz(3, -4)
    assert img.word(BASE + 8) == A.b_cond(Cond.NE, 4)
    assert img.word(BASE + 12) == A.bl(-12)
    assert img.symbol("end") == BASE + 12
    assert img.symbols == {"top": BASE, "end": BASE + 12}


def test_adr_ldr_literal_mov_addr_and_quad() -> None:
    a = Asm(BASE)
    a.adr(1, "data")
    a.ldr_literal(2, "data")
    a.mov_addr(3, "data", minus="start", addend=-8)
    a.align(8)
    a.label("data")
    a.quad_addr("start")
    a.label("start")
    img = a.assemble()
    data = img.symbol("data")
    assert data == BASE + 0x18
    assert img.word(BASE) == A.adr(1, 0x18)
    assert img.word(BASE + 4) == A.ldr_literal(2, 0x14)
    value = (data - img.symbol("start") - 8) & A.U64_MASK
    assert [img.word(BASE + 8 + 4 * n) for n in range(4)] == list(A.mov_imm64_fixed(3, value))
    assert img.word(BASE + 0x18) | img.word(BASE + 0x1C) << 32 == img.symbol("start")


def test_code_ranges_exclude_data_and_padding() -> None:
    a = Asm(BASE)
    a.emit(A.nop(), A.mov_imm64(0, 0x1234_5678))
    a.words(0xDEADBEEF)
    a.quad(1)
    a.org(BASE + 0x40)
    a.emit(A.eret())
    a.bytes(b"\x01\x02")
    img = a.assemble()
    assert img.code == ((BASE, BASE + 12), (BASE + 0x40, BASE + 0x44))
    assert [w for _, w in img.code_words()] == [A.NOP, *A.mov_imm64(0, 0x1234_5678), A.ERET]
    assert img.is_code(BASE + 8) and not img.is_code(BASE + 12) and not img.is_code(BASE + 0x20)
    assert img.end == BASE + 0x46
    assert img.data[12:24] == struct.pack("<IQ", 0xDEADBEEF, 1)


def test_listing_shows_labels_and_absolute_targets() -> None:
    a = Asm(BASE)
    a.label("loop")
    a.emit(A.hvc(0))
    a.b("loop")
    text = a.assemble().listing()
    assert text.splitlines() == ["loop:", f"  {BASE:#010x}:  d4000002  hvc #0x0",
                                 f"  {BASE + 4:#010x}:  17ffffff  b {BASE:#x}"]


def test_emit_accepts_sequences_and_returns_the_first_address() -> None:
    a = Asm(BASE)
    a.emit(A.nop())
    assert a.emit(A.mov_imm64(5, 1 << 40), A.isb()) == BASE + 4
    assert a.pc == BASE + 12


@pytest.mark.parametrize(("build", "message"), [
    (lambda a: (a.label("x"), a.label("x")), "label 'x' defined twice"),
    (lambda a: a.label(""), "label name '' is not a non-empty string"),
    (lambda a: (a.b("nowhere"), a.assemble()), "undefined label 'nowhere' (used at 0x40000000)"),
    (lambda a: (a.mov_addr(0, "x", minus="y"), a.label("x"), a.assemble()),
     "undefined label 'y'"),
    (lambda a: (a.emit(A.nop()), a.org(BASE)), "org 0x40000000: already at 0x40000004"),
    (lambda a: a.align(12), "align 12: not a power of two"),
    (lambda a: a.emit(1 << 32), "instruction word 4294967296 at 0x40000000 is not a u32"),
    (lambda a: a.emit(True), "instruction word True"),
    (lambda a: (a.bytes(b"\x00"), a.emit(A.nop())), "instruction at unaligned address"),
    (lambda a: a.words(-1), "data word -1 at 0x40000000 is not a u32"),
    (lambda a: a.quad(1 << 64), "is not a u64"),
    (lambda a: a.b_cond(16, "x"), "b.cond: cond = 0x10"),  # checked where the mistake is
    (lambda a: a.cbz(40, "x"), "cbz: rt = 40"),
    (lambda a: a.b(2.5), "target 2.5 is not a label or an address"),
    (lambda a: (a.b_cond(Cond.EQ, "far"), a.org(BASE + (1 << 20)), a.label("far"),
                a.assemble()),
     "b.cond at 0x40000000 to 'far' (0x40100000): b.cond: offset = 1048576 is outside"),
    (lambda a: (a.adr(0, BASE - 0x100001), a.assemble()), "adr at 0x40000000"),
])
def test_mistakes_are_named(build: Callable[[Asm], object], message: str) -> None:
    a = Asm(BASE)
    with pytest.raises(EncodeError) as e:  # AsmError, or the encoder's own operand check
        build(a)
    assert message in str(e.value)


def test_bad_base() -> None:
    with pytest.raises(AsmError, match="base = 2 is not a 4-byte aligned address"):
        Asm(2)


def test_image_word_outside_is_an_error() -> None:
    img = Image(BASE, bytes(8))
    assert img.word(BASE + 4) == 0
    for bad in (BASE - 4, BASE + 8, BASE + 2):
        with pytest.raises(ValueError, match="no word at"):
            img.word(bad)
    with pytest.raises(KeyError, match="no symbol 'x' in the image"):
        img.symbol("x")


def test_assemble_is_repeatable_and_does_not_freeze_the_assembler() -> None:
    a = Asm(BASE)
    a.b("later")
    a.label("later")
    first = a.assemble()
    assert a.assemble() == first
    a.emit(A.nop())
    second = a.assemble()
    assert second.data[:4] == first.data[:4] and len(second.data) == 8
    insn = decode_insn(second.word(BASE))
    assert insn is not None and insn.target(BASE) == BASE + 4
    assert disassemble(second.word(BASE + 4)) == "nop"
