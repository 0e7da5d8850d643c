"""The selftest guest programs are well-formed images: every word is an instruction of the
subset, every branch stays inside the code, the vectors and handlers sit where the layout
says, and every SDEI call site is described correctly. GNU binutils, where installed, agree
with the decoder on every word."""

from __future__ import annotations

from typing import Final

import binutils
import pytest

from sdei_state.events import ASYNC_PF, SW_SIGNALED
from sdei_state.guest import a64 as A
from sdei_state.guest.disasm import BRANCHES, Op, decode_insn, disassemble
from sdei_state.guest.doorbell import BellKind, bell_code
from sdei_state.guest.layout import LAYOUT, MAX_MAIN_CALLS
from sdei_state.selftest.programs import program as B
from sdei_state.selftest.programs.builder import build
from sdei_state.selftest.programs.catalog import PROGRAMS
from sdei_state.selftest.programs.program import GuestProgram
from sdei_state.spec import Function, RegisterFlags

BUILT: Final = {name: make() for name, make in PROGRAMS.items()}


def programs() -> list[GuestProgram]:
    return list(BUILT.values())


@pytest.fixture(params=sorted(BUILT), name="prog")
def _prog(request: pytest.FixtureRequest) -> GuestProgram:
    return BUILT[request.param]


def test_program_names_match_the_registry() -> None:
    assert {n: p.name for n, p in BUILT.items()} == {n: n for n in BUILT}
    assert PROGRAMS["nested"]().image == BUILT["nested"].image  # building is deterministic


def test_image_sits_in_the_code_regions(prog: GuestProgram) -> None:
    lay = prog.layout
    assert prog.image.base == lay.base and prog.entry == lay.entry == lay.base
    assert prog.image.end <= lay.code_end
    for lo, hi in prog.image.code:
        assert lay.base <= lo < hi <= lay.code_end
    main_end = max(hi for lo, hi in prog.image.code if lo < lay.vectors)
    assert main_end <= lay.vectors, "main and the resume stub overlap the vectors"


def test_every_code_word_is_in_the_subset(prog: GuestProgram) -> None:
    for addr, word in prog.image.code_words():
        insn = decode_insn(word)
        assert insn is not None, f"{addr:#x}: {word:#010x} is not an instruction of the subset"
        assert insn.encode() == word
        # No indirect branches: every control transfer is checkable below.
        assert insn.op not in (Op.BR, Op.BLR, Op.RET), f"{addr:#x}: {disassemble(word, addr)}"


def test_branch_targets_are_instructions_of_the_image(prog: GuestProgram) -> None:
    img = prog.image
    for addr, word in img.code_words():
        insn = decode_insn(word)
        assert insn is not None
        target = insn.target(addr)
        if insn.op in BRANCHES:
            assert target is not None and img.is_code(target), \
                f"{addr:#x}: {disassemble(word, addr)} leaves the code"
        elif insn.op is Op.ADR:
            assert target is not None and img.is_code(target), \
                f"{addr:#x}: {disassemble(word, addr)} does not point at code"
        else:
            assert insn.op not in (Op.ADRP, Op.LDR_LIT)


def test_vectors_are_aligned_and_complete(prog: GuestProgram) -> None:
    tables = [(B.VECTORS, prog.layout.vectors)]
    if B.ALT_VECTORS in prog.image.symbols:
        tables.append((B.ALT_VECTORS, prog.layout.alt_vectors))
    for label, base in tables:
        assert prog.symbol(label) == base and base % 0x800 == 0
        for v in range(16):
            entry = prog.symbol(f"{label}.{v}")
            assert entry == base + 0x80 * v
            assert prog.image.is_code(entry)
            ends = [hi for lo, hi in prog.image.code if lo <= entry < hi]
            assert ends and ends[0] <= entry + 0x80, f"{label}.{v} spills into the next entry"


def test_handlers_are_aligned_and_where_the_layout_says(prog: GuestProgram) -> None:
    lay = prog.layout
    assert [h.slot for h in prog.handlers] == list(range(len(prog.handlers)))
    for h in prog.handlers:
        assert h.address % 4 == 0 and prog.image.is_code(h.address)
        assert h.address == prog.symbol(B.handler_label(h.name))
        lo, hi = ((lay.handlers, lay.alt_vectors) if h.region is B.Region.PRIMARY
                  else (lay.alt_handlers, lay.code_end))
        assert lo <= h.address < hi
        assert h.record == lay.handler_record(h.slot)
        assert prog.handler_at(h.address) is h
        assert prog.image.word(h.finish_hvc) == (A.smc(0) if prog.spec.conduit is B.Conduit.SMC
                                                else A.hvc(0))


def test_idle_loop_is_a_doorbell_and_a_branch_back(prog: GuestProgram) -> None:
    assert prog.interrupt_point == prog.idle + 4
    assert prog.image.word(prog.idle) == A.str_x(0, B.MAIN_BELL_REG, 8 * bell_code(BellKind.IDLE))
    assert prog.image.word(prog.interrupt_point) == A.b(-4)


def test_call_sites_describe_the_code(prog: GuestProgram) -> None:
    conduit = A.smc(0) if prog.spec.conduit is B.Conduit.SMC else A.hvc(0)
    calls_in_image = {a for a, w in prog.image.code_words() if w == conduit}
    finishes = {h.finish_hvc for h in prog.handlers}
    assert calls_in_image == {s.hvc for s in prog.calls} | finishes
    assert len({s.site for s in prog.calls}) == len(prog.calls)
    for n, s in enumerate(prog.main_calls):
        assert s.site == f"main.{n}" and s.index == n
        assert s.result == prog.layout.main_result(n)
        assert s.bell == bell_code(BellKind.MAIN_CALL, index=n)
    for n, s in enumerate(prog.resume_calls):
        assert s.bell == bell_code(BellKind.RESUME_CALL, index=n)
        assert s.result == prog.layout.resume_record + 0x100 + 8 * n
    for h in prog.handlers:
        for n, s in enumerate(h.calls):
            assert s.site == f"handler.{h.name}.{n}"
            assert s.bell == bell_code(BellKind.HANDLER_CALL, h.slot, n)
            assert s.result == h.record + 0x100 + 8 * n
    for s in prog.calls:
        assert prog.call_returning_to(s.return_pc) is s
        # x0 is loaded with the function id right before the arguments
        assert prog.image.word(s.hvc) == conduit
    assert prog.call_returning_to(prog.entry) is None


def test_call_sites_resolve_labels() -> None:
    calls = BUILT["calls"]
    tour = calls.handler("tour").address
    registers = [s for s in calls.main_calls if s.function_id == Function.EVENT_REGISTER]
    assert [s.args[1] for s in registers] == [0, tour + 2, tour, tour, tour, tour]
    assert registers[-2].args == (SW_SIGNALED.number, tour, B.EP_ARG_BASE, 0, 0)
    resumes = [s for s in calls.main_calls if s.function_id == Function.EVENT_COMPLETE_AND_RESUME]
    assert [s.args[0] for s in resumes] == [calls.resume, calls.resume + 2]
    assert calls.main_calls[1].function_id == 0xFFFF_FFFF_0000_0000 | Function.VERSION

    rel = BUILT["relative-vbar-switch"]
    reg = rel.main_calls[0]
    offset = rel.handler("rel").address - rel.symbol(B.VECTORS)
    assert reg.args[:4] == (SW_SIGNALED.number, offset, B.EP_ARG_BASE, RegisterFlags.RELATIVE)
    assert rel.handler("rel_alt").address == rel.symbol(B.ALT_VECTORS) + offset

    nested = BUILT["nested"]
    assert nested.handler("critical").event == ASYNC_PF.number
    assert [t.event for t in nested.triggers] == [SW_SIGNALED.number, ASYNC_PF.number]
    assert nested.triggers[1].bell == bell_code(BellKind.HANDLER_CALL, 0, 0)


def test_finish_of_each_handler() -> None:
    h = BUILT["dispatch-resume"].handler("sdei")
    assert h.finish_function == Function.EVENT_COMPLETE_AND_RESUME
    assert h.finish_x1 == BUILT["dispatch-resume"].resume
    h = BUILT["dispatch-complete"].handler("sdei")
    assert (h.finish_function, h.finish_x1) == (Function.EVENT_COMPLETE, 0)


def test_lookups_name_what_is_missing() -> None:
    prog = BUILT["calls"]
    with pytest.raises(KeyError, match="program 'calls' has no handler 'x' \\(have tour\\)"):
        prog.handler("x")
    with pytest.raises(KeyError, match="program 'calls' has no symbol 'x'"):
        prog.symbol("x")


# -- specs that cannot be built ------------------------------------------------------------

def _spec(**kw: object) -> B.ProgramSpec:
    fields: dict[str, object] = {"name": "t", "description": "", "main": ()}
    fields.update(kw)
    return B.ProgramSpec(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: build(_spec(handlers=tuple(B.Handler(f"h{n}", 0) for n in range(5)))),
     "program 't', handlers: 5 handlers, at most 4"),
    (lambda: build(_spec(handlers=(B.Handler("h", 0), B.Handler("h", 0)))),
     "two handlers share a name"),
    (lambda: build(_spec(handlers=(B.Handler("h", 0, (B.Fill(15, (1, 2)),)),))),
     "handler 'h' step 0: Fill x15..x16 outside x0..x15"),
    (lambda: build(_spec(main=(B.Fill(26, (1, 2)),))),
     "main step 0: Fill x26..x27 outside x0..x26"),
    (lambda: build(_spec(main=(B.Fill(3, ()),))), "main step 0: Fill with no values"),
    (lambda: build(_spec(main=(B.Fill(3, (1 << 64,)),))),
     "program 't', assembly: mov_imm64: value = 0x10000000000000000 does not fit 64 bits"),
    (lambda: build(_spec(main=(B.SetVbar("nowhere"),))), "undefined label 'nowhere'"),
    (lambda: build(_spec(main=(B.Call(0xC4000020, (B.Addr("nowhere"),)),))),
     "program 't', assembly: undefined label 'nowhere'"),
    (lambda: build(_spec(main=(B.Call(0xC4000020),) * (MAX_MAIN_CALLS + 1))),
     "main step 128: more than 128 main calls"),
    (lambda: build(_spec(main=(B.Fill(0, (0x1234_5678_9ABC_DEF0,) * 27),) * 30)),
     "org 0x40002000 for vectors: already at"),
    (lambda: B.Call(0xC4000020, (1, 2, 3, 4, 5, 6)), "VERSION: 6 arguments, at most 5"),
    (lambda: B.Call(0xC4000020, ("1",)),  # type: ignore[arg-type]
     "VERSION: x1 = '1' is not an int, Addr or Offset"),
    (lambda: B.Call(0xC4000021, (-1,)), "EVENT_REGISTER: x1 = -0x1 is not a u64"),
    (lambda: B.Call(1 << 64), "call function id 18446744073709551616 is not a u64"),
    (lambda: B.Handler("a.b", 0), "handler name 'a.b': use letters, digits, _ and -"),
])
def test_bad_specs_are_named(make: object, message: str) -> None:
    with pytest.raises(B.ProgramError) as e:
        make()  # type: ignore[operator]
    assert message in str(e.value)


def test_smc_conduit_uses_smc_everywhere() -> None:
    hvc, smc = BUILT["calls"], BUILT["calls-smc"]
    words_hvc = [w for _, w in hvc.image.code_words()]
    words_smc = [w for _, w in smc.image.code_words()]
    assert words_hvc.count(A.hvc(0)) == words_smc.count(A.smc(0)) == len(hvc.calls) + 1
    assert A.hvc(0) not in words_smc


# -- GNU binutils --------------------------------------------------------------------------

needs_binutils = pytest.mark.skipif(binutils.missing() is not None,
                                    reason=binutils.missing() or "")


@needs_binutils
def test_gnu_as_assembles_every_listing_line_back_to_the_image() -> None:
    words = [w for p in programs() for _, w in p.image.code_words()]
    got = binutils.assemble([disassemble(w) for w in words])
    bad = [(f"{w:#010x}", disassemble(w)) for w, g in zip(words, got, strict=True) if w != g]
    assert not bad, bad[:10]


@needs_binutils
def test_objdump_knows_every_word_of_every_image() -> None:
    for p in programs():
        for lo, hi in p.image.code:
            words = [p.image.word(a) for a in range(lo, hi, 4)]
            texts = binutils.disassemble(words, lo)
            unknown = [(f"{lo + 4 * n:#x}", t) for n, t in enumerate(texts)
                       if t.startswith((".inst", "udf"))]
            assert not unknown, f"{p.name}: {unknown[:5]}"


def test_layout_default_is_used() -> None:
    assert all(p.layout == LAYOUT for p in programs())
