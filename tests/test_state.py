"""The immutable state values of sdei_state.state: what they accept, what they refuse (with a
message naming the field and value), and the helpers the machine builds on."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.events import ASYNC_PF, EVENTS, SW_SIGNALED
from sdei_state.spec import Priority, Status
from sdei_state.state import (
    CONTEXT_MODES,
    LEGAL_STATUS,
    PSTATE_DAIF,
    PSTATE_MODE_MASK,
    RESET_STATE,
    U64_MAX,
    Context,
    EventState,
    HandlerState,
    Mode,
    StateError,
    VcpuState,
    handler_entry_pstate,
    pstate_mode_ok,
)

S = HandlerState

# -- HandlerState --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "value", "reg", "ena", "run", "mnemonic"),
    [
        (S.UNREGISTERED, 0, False, False, False, "reg"),
        (S.REGISTERED, 1, True, False, False, "reG"),
        (S.ENABLED, 3, True, True, False, "rEG"),
        (S.UNREGISTER_PENDING, 4, False, False, True, "Reg"),
        (S.REGISTERED_RUNNING, 5, True, False, True, "ReG"),
        (S.ENABLED_RUNNING, 7, True, True, True, "REG"),
    ],
)
def test_handler_states(
    state: HandlerState, value: int, reg: bool, ena: bool, run: bool, mnemonic: str
) -> None:
    assert int(state) == value
    assert (state.registered, state.enabled, state.running) == (reg, ena, run)
    assert state.mnemonic == mnemonic
    assert bool(state & Status.REGISTERED) == reg


def test_legal_status_is_table_13() -> None:
    assert frozenset({0, 1, 3, 4, 5, 7}) == LEGAL_STATUS
    assert len(HandlerState) == 6


# -- EventState ---------------------------------------------------------------------------------


def test_event_state_defaults() -> None:
    es = EventState()
    assert (es.status, es.handler_state) == (0, S.UNREGISTERED)
    assert (es.pending, es.relative, es.ep_addr, es.ep_arg) == (False, False, 0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"enabled": True}, r"\(0,1,0\) is not one of the six handler states of DEN0054C"),
        ({"enabled": True, "running": True}, r"\(0,1,1\) is not one of the six"),
        ({"pending": True}, "PENDING set on an event that is not REGISTERED"),
        ({"pending": True, "running": True}, "PENDING set on an event that is not REGISTERED"),
        ({"relative": True}, "RELATIVE set on an event that is not REGISTERED"),
        ({"ep_addr": -4}, "ep_addr = -4 is not an unsigned 64-bit value"),
        ({"ep_arg": 1 << 64}, "ep_arg = 18446744073709551616 is not an unsigned 64-bit"),
        ({"ep_arg": -1}, "ep_arg = -1 is not"),
        ({"ep_arg": True}, "ep_arg = True is not"),
        ({"ep_addr": 4.0}, "ep_addr = 4.0 is not"),
    ],
    ids=str,
)
def test_event_state_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StateError, match=message):
        EventState(**kwargs)


def test_state_error_is_value_error() -> None:
    assert issubclass(StateError, ValueError)


@pytest.mark.parametrize("hs", list(HandlerState), ids=lambda s: s.mnemonic)
def test_event_state_each_legal_state(hs: HandlerState) -> None:
    es = EventState(registered=hs.registered, enabled=hs.enabled, running=hs.running)
    assert es.status == int(hs)
    assert es.handler_state == hs


def test_with_handler_state_keeps_the_rest() -> None:
    es = EventState(registered=True, pending=True, relative=True, ep_addr=U64_MAX - 3,
                    ep_arg=U64_MAX)
    out = es.with_handler_state(S.ENABLED_RUNNING)
    assert out == dataclasses.replace(es, enabled=True, running=True)
    with pytest.raises(StateError, match="PENDING"):
        es.with_handler_state(S.UNREGISTER_PENDING)  # pending must go first


def test_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EventState().registered = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        VcpuState().masked = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        Context().pc = 1  # type: ignore[misc]


# -- Context and PSTATE modes ------------------------------------------------------------------


def test_context_default_is_zero() -> None:
    c = Context()
    assert c.is_zero
    assert c.x == (0,) * 18
    assert not Context(pc=4).is_zero
    assert not Context(pstate=Mode.EL1H).is_zero
    assert not Context(x=(0,) * 17 + (1,)).is_zero


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": (0,) * 17}, "context holds 17 registers, not x0..x17"),
        ({"x": (0,) * 19}, "context holds 19 registers"),
        ({"x": (0,) * 5 + (-1,) + (0,) * 12}, "x5 = -1 is not an unsigned 64-bit value"),
        ({"pc": 1 << 64}, "pc = 18446744073709551616 is not"),
        ({"pstate": -1}, "pstate = -1 is not"),
        ({"pstate": 0x3C9},
         r"pstate = 0x3c9: PSTATE M\[4:0\] = 0b01001 \(EL2h\) is not AArch64 EL0t, EL1t, EL1h"),
        ({"pstate": 0x1D3}, r"0b10011 \(AArch32 Supervisor\) is not"),
    ],
    ids=str,
)
def test_context_refuses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StateError, match=message):
        Context(**kwargs)


CLIENT_MODE_VALUES: Final = {0b00000, 0b00100, 0b00101, 0b10000}


@pytest.mark.parametrize("mode", range(32))
def test_pstate_mode_ok_exactly_el0t_el1t_el1h_aarch32_user(mode: int) -> None:
    ok = mode in CLIENT_MODE_VALUES
    for high in (0, 0x3C0, 0xF000_0000, U64_MAX & ~0x1F):
        assert pstate_mode_ok(high | mode) is ok
    if ok:
        assert Context(pstate=0xF000_03C0 | mode).pstate & 0x1F == mode
    else:
        with pytest.raises(StateError):
            Context(pstate=mode)


def test_context_modes_constant() -> None:
    assert {int(m) for m in CONTEXT_MODES} == CLIENT_MODE_VALUES


# -- handler_entry_pstate (exact dispatch values are in test_machine_dispatch.py) ----------------


RESET_SCTLR: Final = 0x00C5_0078  # KVM's reset SCTLR_EL1: SPAN (bit 23) set, DSSBS (bit 44) 0
NO_SPAN: Final = RESET_SCTLR & ~(1 << 23)
DSSBS: Final = RESET_SCTLR | 1 << 44
# AArch64 EL0t with N, V, SSBS (12), ALLINT (13), BTYPE 3, IL, SS, PAN, UAO, DIT, TCO (25) set.
BUSY_A64: Final = 0x9000_0000 | 1 << 12 | 1 << 13 | 0b11 << 10 | 1 << 20 | 1 << 21 | 1 << 22 \
    | 1 << 23 | 1 << 24 | 1 << 25
# AArch32 User with N, Z, Q, IT, GE, E, T, SSBS (23 in AArch32), PAN and DIT set.
BUSY_A32: Final = 0x6000_0000 | 1 << 27 | 0b11 << 25 | 0xF << 16 | 0x3F << 10 | 1 << 9 \
    | 1 << 5 | 1 << 23 | 1 << 22 | 1 << 24 | 0b10000


# (interrupted PSTATE, SCTLR_EL1, entry PSTATE): worked out by hand from DEN0054C section 6.4
# (the handler is entered as an exception taken to EL1) and AArch64.TakeException(): EL1h, DAIF
# set (0x3C5); NZCV, DIT, PAN kept; PAN set when SPAN is 0; SSBS = DSSBS; everything else 0.
@pytest.mark.parametrize(("interrupted", "sctlr", "entry"), [
    (0x5, RESET_SCTLR, 0x3C5),
    (0x0, RESET_SCTLR, 0x3C5),  # EL0t
    (0x4, RESET_SCTLR, 0x3C5),  # EL1t
    (0x40_0005, RESET_SCTLR, 0x40_03C5),  # PAN kept with SPAN 1
    (0x5, NO_SPAN, 0x40_03C5),  # SPAN 0: PAN set
    (0x40_0005, NO_SPAN, 0x40_03C5),
    (0x5, DSSBS, 0x13C5),  # SSBS from DSSBS
    (0x1005, RESET_SCTLR, 0x3C5),  # SSBS of the interrupted state is not kept
    (0x80_0005, RESET_SCTLR, 0x3C5),  # UAO set in the source: 0 on entry
    (0x2_0000_0005, RESET_SCTLR, 0x3C5),  # RES0/ALLINT-style high bits dropped
    (BUSY_A64, RESET_SCTLR, 0x9140_03C5),  # NZCV, DIT, PAN only
    (BUSY_A64, NO_SPAN | 1 << 44, 0x9140_13C5),
    (BUSY_A32, RESET_SCTLR, 0x6140_03C5),  # AArch32: NZCV, DIT, PAN; Q, IT, GE, E, T, SSBS go
    (0x10, NO_SPAN | 1 << 44, 0x40_13C5),  # AArch32 User, both SCTLR rules
    (0x8000_0000_0000_03C5, RESET_SCTLR, 0x3C5),
])
def test_entry_pstate_exact(interrupted: int, sctlr: int, entry: int) -> None:
    assert handler_entry_pstate(interrupted, sctlr) == entry


def test_entry_pstate_default_sctlr_is_kvm_reset() -> None:
    assert handler_entry_pstate(BUSY_A64) == handler_entry_pstate(BUSY_A64, RESET_SCTLR)


@settings(max_examples=300)
@given(st.integers(0, U64_MAX), st.integers(0, U64_MAX))
def test_entry_pstate_rule(interrupted: int, sctlr: int) -> None:
    out = handler_entry_pstate(interrupted, sctlr)
    assert out & PSTATE_MODE_MASK == Mode.EL1H
    assert out & PSTATE_DAIF == PSTATE_DAIF
    assert out & ~(0xF000_0000 | 1 << 24 | 1 << 22 | 1 << 12 | PSTATE_DAIF | 0x1F) == 0
    assert out & 0xF100_0000 == interrupted & 0xF100_0000  # NZCV, DIT
    assert bool(out & 1 << 22) == bool(interrupted & 1 << 22 or not sctlr & 1 << 23)
    assert bool(out & 1 << 12) == bool(sctlr & 1 << 44)
    assert handler_entry_pstate(out, sctlr) == out  # entering again from the handler: same


# -- VcpuState --------------------------------------------------------------------------------


def test_vcpu_reset_state() -> None:
    st_ = VcpuState()
    assert st_ == RESET_STATE
    assert st_.masked is True
    assert st_.events == (EventState(), EventState())
    assert st_.contexts == (Context(), Context())
    assert st_.canonical_problems() == []
    assert st_.innermost_running() is None


def test_vcpu_state_refuses_wrong_shapes() -> None:
    with pytest.raises(StateError, match="1 event states for 2 events"):
        VcpuState(events=(EventState(),))
    with pytest.raises(StateError, match="3 event states for 2 events"):
        VcpuState(events=(EventState(),) * 3)
    with pytest.raises(StateError, match="1 contexts for 2 classes"):
        VcpuState(contexts=(Context(),))  # type: ignore[arg-type]


def test_vcpu_state_accessors() -> None:
    es = EventState(registered=True, enabled=True, running=True, ep_addr=0x1000)
    ctx = Context(pc=0x40, pstate=Mode.EL1H)
    st_ = VcpuState().with_event(ASYNC_PF, es).with_context(Priority.CRITICAL, ctx)
    assert st_.event(ASYNC_PF) == es
    assert st_.event(SW_SIGNALED) == EventState()
    assert st_.contexts == (Context(), ctx)
    assert list(st_.pairs()) == [(SW_SIGNALED, EventState()), (ASYNC_PF, es)]
    assert st_.running_event(Priority.CRITICAL) == ASYNC_PF
    assert st_.running_event(Priority.NORMAL) is None
    assert st_.innermost_running() == ASYNC_PF
    assert st_.canonical_problems() == []
    assert VcpuState() == RESET_STATE  # with_* returned new values


def test_innermost_running_prefers_critical() -> None:
    run = EventState(running=True)
    st_ = VcpuState(events=(run, run))
    assert st_.innermost_running() == ASYNC_PF
    assert VcpuState(events=(run, EventState())).innermost_running() == SW_SIGNALED


def test_canonical_problems() -> None:
    st_ = VcpuState(
        events=(EventState(running=True, ep_addr=0x2000, ep_arg=7), EventState()),
        contexts=(Context(pc=4), Context(x=(1,) + (0,) * 17)),
    )
    assert st_.canonical_problems() == [
        ("context", Priority.CRITICAL,
         "a non-zero critical context, but no critical handler is running"),
        ("ep_addr", 0, "a non-zero entry point for event 0 (SW_SIGNALED), which is not "
                       "REGISTERED"),
        ("ep_arg", 0, "a non-zero argument for event 0 (SW_SIGNALED), which is not REGISTERED"),
    ]
    # The same facts while registered and running are canonical.
    ok = VcpuState(
        events=(EventState(registered=True, running=True, ep_addr=0x2000, ep_arg=7),
                EventState()),
        contexts=(Context(pc=4), Context()),
    )
    assert ok.canonical_problems() == []


def test_canonical_problems_normal_context_idle() -> None:
    st_ = VcpuState(contexts=(Context(pstate=Mode.EL1T), Context()))
    assert [p.text for p in st_.canonical_problems()] == [
        "a non-zero normal context, but no normal handler is running"
    ]


def test_canonical_problems_registered_entry_point_zero() -> None:
    # REGISTER refuses an entry point of 0, so no call sequence reaches it (DESIGN section 4).
    st_ = VcpuState(events=(EventState(), EventState(registered=True, relative=True)))
    assert st_.canonical_problems() == [
        ("ep_addr", 1, "entry point 0 for event 1 (ASYNC_PF), which is REGISTERED: REGISTER "
                       "refuses 0"),
    ]
    assert VcpuState(events=(EventState(), EventState(registered=True, ep_addr=4))
                     ).canonical_problems() == []


def test_entry_point_alignment_is_the_encodings_rule() -> None:
    # The model states the flag rules; EP_ADDR bits[1:0] are RES0 in the register layout, and
    # REGISTER refuses an unaligned entry point, so the state value itself does not repeat it.
    assert EventState(registered=True, ep_addr=0x1002).ep_addr == 0x1002


def test_one_event_per_class_in_the_table() -> None:
    """With one event per class, two running handlers of a class cannot be built; the
    per-class check in VcpuState guards a future table with more events."""
    assert [e.priority for e in EVENTS] == [Priority.NORMAL, Priority.CRITICAL]
