"""The SDEI pseudo-register block: table, declarations vs fast path, checks, codec.

Expected ids and rules are written here straight from DESIGN section 4 (not read back from the
module), so a wrong table or a wrong check fails."""

from __future__ import annotations

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.cpu import CpuReg, MemoryCpu
from sdei_state.events import EVENTS
from sdei_state.machine import Machine, affinity_of
from sdei_state.regs import sdei
from sdei_state.regs.sdei import (
    LAYOUTS,
    SDEI_REG_BY_ID,
    SDEI_REG_IDS,
    SDEI_REGS,
    VCPU_STATE_ID,
    SdeiReg,
    SdeiRegisterError,
    SdeiRegKind,
    check_value,
    context_id,
    decode,
    describe_value,
    encode,
    encode_map,
    ep_addr_id,
    ep_arg_id,
    event_state_id,
    regno_name,
    vcpu_problems,
)
from sdei_state.spec import Function, Priority
from sdei_state.state import RESET_STATE, Context, EventState, VcpuState
from sdei_state.testing.strategies import (
    canonical_vcpu_states,
    event_states,
    reg_values,
    u64s,
    vcpu_states,
)

U64 = (1 << 64) - 1
# Twice the profile's examples (200 dev, 2,000 ci; tests/conftest.py): each is microseconds.
fast = settings(max_examples=settings().max_examples * 2)


def fw(regno: int) -> int:
    """KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | regno, from the uapi constants."""
    return 0x6000000000000000 | 0x0030000000000000 | (0x0014 << 16) | regno


def expected_table() -> list[tuple[int, str, int]]:
    """(regno, name, reset) exactly as DESIGN section 4 lays the block out."""
    out = [(0x100, "SDEI_VCPU_STATE", 1)]
    out += [(0x110 + i, f"SDEI_EVENT_STATE({i})", 0) for i in range(len(EVENTS))]
    for i in range(len(EVENTS)):
        out += [(0x120 + 2 * i, f"SDEI_EVENT_EP_ADDR({i})", 0),
                (0x121 + 2 * i, f"SDEI_EVENT_EP_ARG({i})", 0)]
    out += [(0x140 + 0x20 * c + r, f"SDEI_CONTEXT({c}, {r})", 0)
            for c in (0, 1) for r in range(20)]
    return sorted(out)


def design_ok(reg: SdeiReg, v: int) -> bool:
    """The DESIGN section 4 SET_ONE_REG rules, written independently of the module."""
    if isinstance(v, bool) or not 0 <= v <= U64:
        return False
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return v >> 1 == 0
    if reg.kind is SdeiRegKind.EVENT_STATE:
        reg_, ena, run = v & 1, v >> 1 & 1, v >> 2 & 1
        pend, rel = v >> 3 & 1, v >> 4 & 1
        return (v >> 5 == 0 and (run << 2 | ena << 1 | reg_) in {0b000, 0b001, 0b011, 0b100,
                                                                   0b101, 0b111}
                and bool(reg_ or not (pend or rel)))
    if reg.kind is SdeiRegKind.EP_ADDR:
        return v & 3 == 0
    if reg.kind is SdeiRegKind.CONTEXT and reg.r == 19:
        return v & 0x1F in {0b00000, 0b00100, 0b00101, 0b10000}
    return True


# --- the table ---------------------------------------------------------------------------------


def test_table_is_design_section_4() -> None:
    assert len(SDEI_REGS) == 47
    assert [(r.regno, r.name, r.reset) for r in SDEI_REGS] == expected_table()
    assert [r.id for r in SDEI_REGS] == [fw(regno) for regno, _, _ in expected_table()]
    assert list(SDEI_REG_IDS) == sorted(SDEI_REG_IDS)
    assert tuple(r.id for r in SDEI_REGS) == SDEI_REG_IDS
    assert all(SDEI_REG_BY_ID[r.id] is r for r in SDEI_REGS)


def test_spot_ids() -> None:
    assert SDEI_REGS[0].id == 0x6030000000140100
    assert SDEI_REG_BY_ID[0x6030000000140173].name == "SDEI_CONTEXT(1, 19)"
    assert sdei.SDEI_REG_BY_NAME["SDEI_EVENT_EP_ADDR(1)"].id == 0x6030000000140122
    assert event_state_id(1) == 0x6030000000140111
    assert ep_arg_id(0) == 0x6030000000140121
    assert context_id(0, 18) == 0x6030000000140152


def test_ids_agree_with_the_id_module() -> None:
    from sdei_state.regs import ids

    for reg in SDEI_REGS:
        assert ids.fw_reg(reg.regno) == reg.id
        assert reg.name in ids.describe(reg.id)


def test_every_id_is_u64_fw_in_the_block() -> None:
    for reg in SDEI_REGS:
        assert reg.id >> 56 == 0x60                     # KVM_REG_ARM64
        assert (reg.id >> 52) & 0xF == 3                # KVM_REG_SIZE_U64
        assert (reg.id >> 16) & 0xFFF == 0x14           # KVM_REG_ARM_FW
        assert 0x100 <= reg.id & 0xFFFF <= 0x1FF


def test_register_attributes() -> None:
    for reg in SDEI_REGS:
        if reg.kind in (SdeiRegKind.EVENT_STATE, SdeiRegKind.EP_ADDR, SdeiRegKind.EP_ARG):
            assert reg.event_index is not None and reg.cls is None and reg.r is None
            assert reg.event is EVENTS[reg.event_index]
        elif reg.kind is SdeiRegKind.CONTEXT:
            assert reg.event_index is None and reg.cls in tuple(Priority)
            assert reg.r is not None and context_id(reg.cls, reg.r) == reg.id
        else:
            assert (reg.event_index, reg.cls, reg.r) == (None, None, None)
        assert reg.fields() == reg.layout.fields
        assert check_value(reg.id, reg.reset) is None


def test_id_helpers_refuse_out_of_range() -> None:
    with pytest.raises(IndexError, match="event index 2"):
        event_state_id(2)
    with pytest.raises(IndexError, match="class 2"):
        context_id(2, 0)
    with pytest.raises(IndexError, match="context register 20"):
        context_id(0, 20)


def test_regno_name() -> None:
    assert regno_name(0x100) == "SDEI_VCPU_STATE"
    assert regno_name(0x111) == "SDEI_EVENT_STATE(1)"
    assert regno_name(0x153) == "SDEI_CONTEXT(0, 19)"
    for regno in (0, 3, 0xFF, 0x101, 0x112, 0x124, 0x154, 0x174, 0x1FF, 0x10000):
        assert regno_name(regno) is None
    assert sum(regno_name(n) is not None for n in range(0x100, 0x200)) == 47


# --- declarations --------------------------------------------------------------------------


def fields_of(layout: sdei.RegLayout) -> list[tuple[str, int, int, str]]:
    return [(f.name, f.msb, f.lsb, f.kind) for f in layout.fields]


def test_layouts_are_design_section_4() -> None:
    assert fields_of(sdei.VCPU_STATE_LAYOUT) == [("RES0", 63, 1, "res0"), ("MASKED", 0, 0, "flag")]
    assert fields_of(sdei.EVENT_STATE_LAYOUT) == [
        ("RES0", 63, 5, "res0"), ("RELATIVE", 4, 4, "flag"), ("PENDING", 3, 3, "flag"),
        ("RUNNING", 2, 2, "flag"), ("ENABLED", 1, 1, "flag"), ("REGISTERED", 0, 0, "flag"),
    ]
    assert fields_of(sdei.EP_ADDR_LAYOUT) == [("ADDR", 63, 2, "uint"), ("RES0", 1, 0, "res0")]
    assert fields_of(sdei.EP_ARG_LAYOUT) == [("ARG", 63, 0, "uint")]
    assert fields_of(sdei.CONTEXT_PSTATE_LAYOUT) == [("OTHER", 63, 5, "uint"),
                                                      ("M", 4, 0, "uint")]
    kinds = {r.r: r.layout for r in SDEI_REGS if r.kind is SdeiRegKind.CONTEXT}
    assert kinds[0] is kinds[17] is sdei.CONTEXT_X_LAYOUT
    assert kinds[18] is sdei.CONTEXT_PC_LAYOUT and kinds[19] is sdei.CONTEXT_PSTATE_LAYOUT


def test_layout_refuses_a_bad_declaration() -> None:
    with pytest.raises(ValueError, match="64 bits"):
        sdei.RegLayout("X", "", cs.BitStruct("a" / cs.BitsInteger(8)))
    with pytest.raises(ValueError, match="RES0"):
        sdei.RegLayout("X", "", cs.BitStruct("a" / cs.Const(1, cs.BitsInteger(64))))
    with pytest.raises(ValueError, match="rules must follow"):
        sdei.RegLayout("X", "", cs.BitStruct(
            "a" / cs.BitsInteger(32),
            sdei.Rule(("a",), lambda t: None),
            "b" / cs.BitsInteger(32)))


def _reference(layout: sdei.RegLayout, v: int) -> tuple[dict[str, int | bool] | None, str | None]:
    """(fields, None) if the construct declaration accepts v, else (None, failing field)."""
    try:
        return layout.parse(v), None
    except sdei.RuleError as e:
        return None, e.field
    except cs.ConstError:
        return None, "RES0"


def _agree(layout: sdei.RegLayout, v: int) -> None:
    ref, bad_field = _reference(layout, v)
    p = layout.problem(v)
    if ref is None:
        assert p is not None and p.field == bad_field, (layout, hex(v), p)
        return
    assert p is None, (layout, hex(v), p)
    assert layout.unpack(v) == ref
    assert layout.pack(ref) == v
    assert layout.build(ref) == v
    assert layout.build(layout.unpack(v)) == v


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.title)
@fast
@given(v=u64s())
def test_fast_path_equals_declaration(layout: sdei.RegLayout, v: int) -> None:
    _agree(layout, v)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: lay.title)
@settings(max_examples=settings().max_examples // 2)
@given(high=u64s())
def test_fast_path_equals_declaration_on_every_low_pattern(layout: sdei.RegLayout,
                                                           high: int) -> None:
    # The rule table is keyed by the low bits the rules read: try all of them under any
    # high bits, with and without the RES0 bits cleared.
    for low in range(1 << 6):
        _agree(layout, (high & ~0x3F) | low)
        _agree(layout, ((high & ~0x3F) | low) & ~layout.res0_mask)


# --- per-register checks -------------------------------------------------------------------


@fast
@given(reg=st.sampled_from(SDEI_REGS), v=u64s())
def test_check_value_is_the_design_rule(reg: SdeiReg, v: int) -> None:
    reason = check_value(reg.id, v)
    assert (reason is None) == design_ok(reg, v), (reg.name, hex(v), reason)
    if reason is not None:
        assert f"{v:#x}" in reason


@pytest.mark.parametrize("reg", SDEI_REGS, ids=lambda r: r.name)
def test_every_low_pattern_of_every_register(reg: SdeiReg) -> None:
    for v in [*range(64), *(1 << b for b in range(64)), U64, U64 - 1, U64 & ~3, 0x3C5, 0x3C9]:
        assert (check_value(reg.id, v) is None) == design_ok(reg, v), (reg.name, hex(v))


@pytest.mark.parametrize("reg", SDEI_REGS, ids=lambda r: r.name)
def test_values_outside_u64_are_refused(reg: SdeiReg) -> None:
    for v in (-1, 1 << 64, (1 << 64) + 1, -(1 << 63), 1 << 100):
        reason = check_value(reg.id, v)
        assert reason is not None and "64-bit" in reason
    for junk in (True, 1.0, "1", None):
        reason = check_value(reg.id, junk)  # type: ignore[arg-type]
        assert reason is not None and "not an integer" in reason


@pytest.mark.parametrize(
    ("reg_id", "value", "words"),
    [
        (0x6030000000140100, 0x2, ["RES0", "bits[63:1]", "0x2"]),
        (0x6030000000140110, 0x2, ["(REGISTERED,ENABLED,RUNNING) = (0,1,0)", "Table 13"]),
        (0x6030000000140110, 0x6, ["(0,1,1)"]),
        (0x6030000000140110, 0x8, ["PENDING", "not REGISTERED"]),
        (0x6030000000140111, 0x14, ["RELATIVE", "not REGISTERED"]),
        (0x6030000000140111, 0x20, ["RES0", "bits[63:5]"]),
        (0x6030000000140120, 0x1002, ["bits[1:0]", "4-byte aligned", "0x1002"]),
        (0x6030000000140153, 0x9, ["M[4:0] = 0b01001", "EL2h", "EL2 or EL3"]),
        (0x6030000000140173, 0x3CD, ["EL3h"]),
        (0x6030000000140173, 0x13, ["AArch32 Supervisor"]),
    ],
)
def test_reasons_name_field_and_value(reg_id: int, value: int, words: list[str]) -> None:
    reason = check_value(reg_id, value)
    assert reason is not None
    for w in words:
        assert w in reason, reason


def test_valid_spec_values() -> None:
    for status in (0, 1, 3, 4, 5, 7):
        assert check_value(event_state_id(0), status) is None
    assert check_value(event_state_id(0), 0b11111) is None
    for mode in (0b00000, 0b00100, 0b00101, 0b10000):
        assert check_value(context_id(1, 19), 0xF0000000_000003C0 | mode) is None
    assert check_value(context_id(0, 18), 0x1001) is None   # a PC need not be aligned
    assert check_value(ep_arg_id(1), U64) is None


def test_check_value_unknown_id() -> None:
    with pytest.raises(KeyError, match="0x6030000000140101"):
        check_value(0x6030000000140101, 0)


# --- the codec -------------------------------------------------------------------------------


def test_reset() -> None:
    assert encode(RESET_STATE) == sdei.SDEI_RESET_VALUES
    assert tuple(reset for _, _, reset in expected_table()) == sdei.SDEI_RESET_VALUES
    assert decode(dict(zip(SDEI_REG_IDS, sdei.SDEI_RESET_VALUES, strict=True))) == RESET_STATE


@fast
@given(s=vcpu_states())
def test_decode_encode_roundtrip(s: VcpuState) -> None:
    assert decode(encode_map(s)) == s
    assert tuple(encode_map(s).values()) == encode(s)
    assert list(encode_map(s)) == list(SDEI_REG_IDS)


@fast
@given(s=vcpu_states())
def test_encode_places_every_field(s: VcpuState) -> None:
    m = encode_map(s)
    assert m[0x6030000000140100] == int(s.masked)
    for i, es in enumerate(s.events):
        w = m[fw(0x110 + i)]
        assert w & 7 == es.status  # bits[2:0] are exactly the EVENT_STATUS result
        assert (w >> 3 & 1, w >> 4 & 1, w >> 5) == (es.pending, es.relative, 0)
        assert m[fw(0x120 + 2 * i)] == es.ep_addr
        assert m[fw(0x121 + 2 * i)] == es.ep_arg
    for c, ctx in enumerate(s.contexts):
        assert [m[fw(0x140 + 0x20 * c + r)] for r in range(18)] == list(ctx.x)
        assert m[fw(0x140 + 0x20 * c + 18)] == ctx.pc
        assert m[fw(0x140 + 0x20 * c + 19)] == ctx.pstate


@fast
@given(data=st.data())
def test_encode_decode_roundtrip_of_valid_register_sets(data: st.DataObject) -> None:
    regs = {reg.id: data.draw(reg_values(reg), label=reg.name) for reg in SDEI_REGS}
    assert encode(decode(regs)) == tuple(regs[i] for i in SDEI_REG_IDS)


@fast
@given(es=event_states())
def test_event_state_word_matches_status(es: EventState) -> None:
    s = RESET_STATE.with_event(EVENTS[0], es)
    assert encode_map(s)[event_state_id(0)] & 7 == es.status


def test_decode_missing_and_invalid_and_extra() -> None:
    good = encode_map(RESET_STATE)
    missing = dict(good)
    del missing[context_id(1, 7)]
    with pytest.raises(SdeiRegisterError, match=r"SDEI_CONTEXT\(1, 7\) \(0x6030000000140167\)"):
        decode(missing)
    bad = {**good, event_state_id(1): 0x2}
    with pytest.raises(SdeiRegisterError) as ei:
        decode(bad)
    e = ei.value
    assert (e.reg_id, e.reg_name, e.field, e.value) == (
        0x6030000000140111, "SDEI_EVENT_STATE(1)", "ENABLED", 2)
    assert "SDEI_EVENT_STATE(1) (0x6030000000140111)" in str(e) and "0x2" in str(e)
    assert isinstance(e, ValueError)
    bad = {**good, context_id(0, 19): 0x3C9}
    with pytest.raises(SdeiRegisterError) as ei:
        decode(bad)
    assert ei.value.field == "M"
    # Ids that are not SDEI registers are ignored, so a whole register dump decodes.
    assert decode({**good, 0x6030000000140000: 0x10001, 0x6030000000100000: 7}) == RESET_STATE


# --- whole-vCPU validation -----------------------------------------------------------------


@fast
@given(s=vcpu_states())
def test_vcpu_problems_agree_with_canonical_problems(s: VcpuState) -> None:
    problems = vcpu_problems(encode_map(s))
    assert (problems == []) == (s.canonical_problems() == [])
    assert [p[0] for p in problems] == sorted(p[0] for p in problems)
    for reg_id, _ in problems:
        reg = SDEI_REG_BY_ID[reg_id]
        if reg.kind is SdeiRegKind.CONTEXT:
            assert reg.cls is not None and s.running_event(reg.cls) is None
        else:
            assert reg.kind in (SdeiRegKind.EP_ADDR, SdeiRegKind.EP_ARG)
            assert reg.event_index is not None
            es = s.events[reg.event_index]
            # an unregistered event with an entry point or argument, or a registered one at 0
            assert not es.registered or (reg.kind is SdeiRegKind.EP_ADDR and es.ep_addr == 0)


@fast
@given(s=canonical_vcpu_states())
def test_canonical_states_have_no_problems(s: VcpuState) -> None:
    assert s.canonical_problems() == []
    assert vcpu_problems(encode_map(s)) == []
    assert decode(encode_map(s)) == s


def test_vcpu_problems_examples() -> None:
    good = encode_map(RESET_STATE)
    assert vcpu_problems(good) == []
    # Context for an idle class, entry point and argument of an unregistered event.
    vals = {**good, context_id(1, 3): 5, context_id(1, 19): 0x3C5, ep_addr_id(0): 0x1000,
            ep_arg_id(0): 9}
    got = vcpu_problems(vals)
    assert [i for i, _ in got] == [ep_addr_id(0), ep_arg_id(0), context_id(1, 3),
                                   context_id(1, 19)]
    assert "not REGISTERED" in got[0][1] and "SW_SIGNALED" in got[0][1]
    assert "critical handler is running" in got[2][1] and "0x5" in got[2][1]
    # A running critical handler may have a context; the normal class still may not.
    vals[event_state_id(1)] = 0b101
    vals[ep_addr_id(1)] = 0x8000
    vals[context_id(0, 0)] = 1
    assert [i for i, _ in vcpu_problems(vals)] == [ep_addr_id(0), ep_arg_id(0),
                                                    context_id(0, 0)]
    # A registered event whose entry point is 0: REGISTER refuses 0 (DESIGN section 4).
    vals = {**good, event_state_id(1): 0b1}
    got = vcpu_problems(vals)
    assert [i for i, _ in got] == [ep_addr_id(1)]
    assert "value 0x0: entry point 0 for event 1 (ASYNC_PF), which is REGISTERED" in got[0][1]
    # Missing and per-register-invalid values are reported too, and an unknown or invalid
    # EVENT_STATE does not produce guesses about its class's context.
    vals = dict(good)
    del vals[VCPU_STATE_ID]
    vals[event_state_id(0)] = 0x40
    vals[context_id(0, 5)] = 1
    got = vcpu_problems(vals)
    assert [i for i, _ in got] == [VCPU_STATE_ID, event_state_id(0)]
    assert "missing" in got[0][1] and "RES0" in got[1][1]



def test_describe_value() -> None:
    assert describe_value(VCPU_STATE_ID, 1) == "MASKED"
    assert describe_value(VCPU_STATE_ID, 0) == "UNMASKED"
    assert describe_value(event_state_id(0), 0b1011) == "REGISTERED|ENABLED|PENDING"
    assert describe_value(event_state_id(0), 0) == "0"
    assert describe_value(event_state_id(0), 0b10101) == "REGISTERED|RUNNING|RELATIVE"
    assert describe_value(context_id(0, 19), 5) == "EL1h"
    assert describe_value(context_id(0, 19), 0x3C0) == "EL0t (other bits 0x3c0)"
    assert describe_value(context_id(1, 19), 0x10) == "AArch32 User"
    assert describe_value(ep_addr_id(1), 0x8040_1000) == "0x80401000"
    assert describe_value(context_id(0, 19), 9).startswith("EL2h (invalid: ")
    assert describe_value(event_state_id(0), 2).startswith("ENABLED (invalid: ")
    assert "invalid" in describe_value(ep_arg_id(0), -1)


# --- states the model produces -----------------------------------------------------------------

_EVENT_ARGS = st.sampled_from([0, 0x40400000, 1, 1 << 32])


@st.composite
def _step(draw: st.DrawFn) -> tuple[str, int, int, list[int]]:
    kind = draw(st.sampled_from(["call", "call", "call", "dispatch", "inject", "cpu"]))
    vcpu = draw(st.integers(0, 1))
    if kind == "call":
        fid = draw(st.sampled_from(list(Function)))
        ep = draw(st.sampled_from([0x1000, 0x2000, 0x1002, 0]))
        args = [draw(_EVENT_ARGS), ep, draw(u64s()), draw(st.sampled_from([0, 1, 2, 3, 4])),
                0]
        if fid is Function.EVENT_SIGNAL:
            args[1] = affinity_of(draw(st.integers(0, 1)))
        if fid is Function.EVENT_CONTEXT:
            args[0] = draw(st.integers(0, 18))
        if fid is Function.EVENT_COMPLETE_AND_RESUME:
            args[0] = draw(st.sampled_from([0x3000, 0x3001]))
        return kind, vcpu, int(fid), args
    if kind == "inject":
        return kind, vcpu, draw(_EVENT_ARGS), []
    if kind == "cpu":
        pstate = draw(st.sampled_from([5, 4, 0, 0x10, 9, 0x600003C5]))
        return kind, vcpu, pstate, [draw(u64s()) for _ in range(4)]
    return kind, vcpu, 0, []


@given(steps=st.lists(_step(), max_size=40))  # examples: the profile's
def test_every_state_the_machine_reaches_encodes_canonically(
    steps: list[tuple[str, int, int, list[int]]],
) -> None:
    m = Machine(2)
    cpus = [MemoryCpu(), MemoryCpu()]
    for kind, vcpu, n, args in steps:
        if kind == "call":
            m.call(vcpu, n, args, cpus[vcpu])
        elif kind == "dispatch":
            m.dispatch(vcpu, cpus[vcpu])
        elif kind == "inject":
            m.inject(vcpu, n)
        else:
            cpus[vcpu].write({CpuReg.PSTATE: n, CpuReg.PC: args[0], CpuReg.X0: args[1],
                              CpuReg.X17: args[2], CpuReg.VBAR_EL1: args[3]})
        for v in range(2):
            st_ = m.state(v)
            regs = encode_map(st_)
            assert vcpu_problems(regs) == [], (st_, vcpu_problems(regs))
            assert decode(regs) == st_


def test_a_dispatched_handler_state_in_registers() -> None:
    m = Machine(1)
    cpu = MemoryCpu({CpuReg.PC: 0x4000, CpuReg.X5: 55, CpuReg.PSTATE: 0x3C5})
    for fid, args in ((Function.EVENT_REGISTER, [0x40400000, 0x8000, 0x77, 2, 0]),
                      (Function.EVENT_ENABLE, [0x40400000]),
                      (Function.PE_UNMASK, [])):
        assert m.call(0, fid, args, cpu).ret == 0
    assert m.inject(0, 0x40400000)
    assert m.dispatch(0, cpu) is EVENTS[1]
    regs = encode_map(m.state(0))
    assert regs[VCPU_STATE_ID] == 0
    assert regs[event_state_id(1)] == 0b10111  # RELATIVE, RUNNING, ENABLED, REGISTERED
    assert describe_value(event_state_id(1), regs[event_state_id(1)]) == \
        "REGISTERED|ENABLED|RUNNING|RELATIVE"
    assert (regs[ep_addr_id(1)], regs[ep_arg_id(1)]) == (0x8000, 0x77)
    assert regs[context_id(1, 5)] == 55 and regs[context_id(1, 18)] == 0x4000
    assert regs[context_id(1, 19)] == 0x3C5
    assert all(regs[context_id(0, r)] == 0 for r in range(20))
    assert vcpu_problems(regs) == []
    assert decode(regs).contexts[1] == Context(tuple(0 if i != 5 else 55 for i in range(18)),
                                               0x4000, 0x3C5)
