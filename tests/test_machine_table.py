"""The handler-state table, cell by cell.

Three layers, each against an expectation written out here rather than derived from the code:
``transitions.TRANSITIONS`` against TF-A's ``sdei_state_table`` and the check marks of DEN0054C
Table 14 (reference/SDEI.md 2.4 and 3.2); then every (state, call) pair on a real ``Machine``,
for both events, with the exact x0 and the exact resulting state; then the dispatch column.
The state diagram and the permitted-calls tables in docs/state-machine.md are generated here
and must appear there verbatim, so the document cannot drift from the code it describes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest
from helpers import (
    ALL_EVENTS,
    ARG,
    EP,
    INTERRUPTED,
    RUNNING_STATES,
    U64,
    Vm,
    make_pending,
    reach,
    signed,
)

from sdei_state.cpu import CONTEXT_GPRS, CpuReg
from sdei_state.events import Event
from sdei_state.spec import CompleteStatus, Function, Ret
from sdei_state.state import EventState, HandlerState, handler_entry_pstate
from sdei_state.transitions import TRANSITIONS, Action, transition

S = HandlerState
ORDER: Final = (
    S.UNREGISTERED,
    S.UNREGISTER_PENDING,
    S.REGISTERED,
    S.REGISTERED_RUNNING,
    S.ENABLED,
    S.ENABLED_RUNNING,
)
"""Row order of DEN0054C Table 14 and of TF-A's table."""

SPEC_NAMES: Final = {
    S.UNREGISTERED: "handler-unregistered",
    S.UNREGISTER_PENDING: "handler-unregister-pending",
    S.REGISTERED: "handler-registered",
    S.REGISTERED_RUNNING: "handler-registered + running",
    S.ENABLED: "handler-enabled",
    S.ENABLED_RUNNING: "handler-enabled + running",
}

CALLS: Final = (
    Action.REGISTER,
    Action.RELEASE,
    Action.ENABLE,
    Action.DISABLE,
    Action.UNREGISTER,
    Action.ROUTING_SET,
    Action.CONTEXT,
    Action.COMPLETE,
    Action.COMPLETE_AND_RESUME,
)
"""The nine state-dependent calls of Table 14, in its column order."""

CALL_FUNCTION: Final = {
    Action.REGISTER: Function.EVENT_REGISTER,
    Action.RELEASE: Function.INTERRUPT_RELEASE,
    Action.ENABLE: Function.EVENT_ENABLE,
    Action.DISABLE: Function.EVENT_DISABLE,
    Action.UNREGISTER: Function.EVENT_UNREGISTER,
    Action.ROUTING_SET: Function.EVENT_ROUTING_SET,
    Action.CONTEXT: Function.EVENT_CONTEXT,
    Action.COMPLETE: Function.EVENT_COMPLETE,
    Action.COMPLETE_AND_RESUME: Function.EVENT_COMPLETE_AND_RESUME,
}

# -- layer 1: TRANSITIONS against the reference tables ---------------------------------------

# TF-A services/std_svc/sdei/sdei_state.c as reproduced in reference/SDEI.md 3.2.
# X = forbidden, NOP = permitted without change, else the next state (R E G, capital = set).
TFA_TABLE: Final = """
state  REG  REL  ENA  DISA  UREG  ROUT  CTX  COMP  COMPR  DISP
reg    reG  NOP  X    X     X     X     X    X     X      X
Reg    X    X    X    X     X     X     NOP  reg   reg    X
reG    X    X    rEG  NOP   reg   NOP   X    X     X      X
ReG    X    X    REG  NOP   Reg   X     NOP  reG   reG    X
rEG    X    X    NOP  reG   reg   X     X    X     X      REG
REG    X    X    NOP  ReG   Reg   X     NOP  rEG   rEG    X
"""

# DEN0054C Table 14 (reference/SDEI.md 2.4): the calls with a check mark per state.
TABLE_14: Final[dict[HandlerState, frozenset[Action]]] = {
    S.UNREGISTERED: frozenset({Action.REGISTER, Action.RELEASE}),
    S.UNREGISTER_PENDING: frozenset(
        {Action.CONTEXT, Action.COMPLETE, Action.COMPLETE_AND_RESUME}
    ),
    S.REGISTERED: frozenset(
        {Action.ENABLE, Action.DISABLE, Action.UNREGISTER, Action.ROUTING_SET}
    ),
    S.REGISTERED_RUNNING: frozenset(
        {Action.ENABLE, Action.DISABLE, Action.UNREGISTER, Action.CONTEXT, Action.COMPLETE,
         Action.COMPLETE_AND_RESUME}
    ),
    S.ENABLED: frozenset({Action.ENABLE, Action.DISABLE, Action.UNREGISTER}),
    S.ENABLED_RUNNING: frozenset(
        {Action.ENABLE, Action.DISABLE, Action.UNREGISTER, Action.CONTEXT, Action.COMPLETE,
         Action.COMPLETE_AND_RESUME}
    ),
}

BY_MNEMONIC: Final = {s.mnemonic: s for s in HandlerState}


def _parse_tfa() -> dict[tuple[HandlerState, Action], HandlerState | None]:
    lines = [ln.split() for ln in TFA_TABLE.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert len(header) == 1 + len(Action)
    cells: dict[tuple[HandlerState, Action], HandlerState | None] = {}
    for row in rows:
        state = BY_MNEMONIC[row[0]]
        for action, cell in zip(Action, row[1:], strict=True):
            cells[state, action] = (
                None if cell == "X" else state if cell == "NOP" else BY_MNEMONIC[cell]
            )
    return cells


TFA: Final = _parse_tfa()


def test_tfa_table_parsed_completely() -> None:
    assert len(TFA) == 6 * 10


def test_transitions_has_exactly_the_six_legal_states_and_ten_actions() -> None:
    assert set(TRANSITIONS) == set(HandlerState)
    assert {int(s) for s in TRANSITIONS} == {0b000, 0b001, 0b011, 0b100, 0b101, 0b111}
    for row in TRANSITIONS.values():
        assert list(row) == list(Action)


@pytest.mark.parametrize("undefined", [0b010, 0b110])
def test_undefined_state_vectors_are_not_states(undefined: int) -> None:
    with pytest.raises(ValueError):
        HandlerState(undefined)


@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.name)
@pytest.mark.parametrize("state", ORDER, ids=lambda s: s.mnemonic)
def test_transition_cell_matches_tfa(state: HandlerState, action: Action) -> None:
    assert TRANSITIONS[state][action] == TFA[state, action]
    assert transition(state, action) == TFA[state, action]


@pytest.mark.parametrize("action", CALLS, ids=lambda a: a.name)
@pytest.mark.parametrize("state", ORDER, ids=lambda s: s.mnemonic)
def test_permitted_cell_matches_table_14(state: HandlerState, action: Action) -> None:
    assert (TRANSITIONS[state][action] is not None) == (action in TABLE_14[state])


def test_dispatch_only_from_enabled_and_not_running() -> None:
    permitted = {s for s in HandlerState if TRANSITIONS[s][Action.DISPATCH] is not None}
    assert permitted == {S.ENABLED}
    assert TRANSITIONS[S.ENABLED][Action.DISPATCH] == S.ENABLED_RUNNING


# -- layer 2: every (state, call) on a real machine ------------------------------------------

CTX: Final = "ctx"  # CONTEXT returns the saved x[CTX_INDEX]
DONE: Final = "done"  # a completion: no return value, the interrupted context comes back
CTX_INDEX: Final = 2

Result = tuple[Ret | str, HandlerState]
_D, _I, _P, _OK = Ret.DENIED, Ret.INVALID_PARAMETERS, Ret.PENDING, Ret.SUCCESS

# The guest-visible result of each call in each state, as DESIGN section 5 specifies it for
# KVM's two private events. Columns in CALLS order.
CALL_RESULTS: Final[dict[HandlerState, tuple[Result, ...]]] = {
    S.UNREGISTERED: (
        (_OK, S.REGISTERED), (_I, S.UNREGISTERED), (_D, S.UNREGISTERED),
        (_D, S.UNREGISTERED), (_D, S.UNREGISTERED), (_I, S.UNREGISTERED),
        (_D, S.UNREGISTERED), (_D, S.UNREGISTERED), (_D, S.UNREGISTERED),
    ),
    S.UNREGISTER_PENDING: (
        (_D, S.UNREGISTER_PENDING), (_I, S.UNREGISTER_PENDING), (_D, S.UNREGISTER_PENDING),
        (_D, S.UNREGISTER_PENDING), (_P, S.UNREGISTER_PENDING), (_I, S.UNREGISTER_PENDING),
        (CTX, S.UNREGISTER_PENDING), (DONE, S.UNREGISTERED), (DONE, S.UNREGISTERED),
    ),
    S.REGISTERED: (
        (_D, S.REGISTERED), (_I, S.REGISTERED), (_OK, S.ENABLED),
        (_OK, S.REGISTERED), (_OK, S.UNREGISTERED), (_I, S.REGISTERED),
        (_D, S.REGISTERED), (_D, S.REGISTERED), (_D, S.REGISTERED),
    ),
    S.REGISTERED_RUNNING: (
        (_D, S.REGISTERED_RUNNING), (_I, S.REGISTERED_RUNNING), (_OK, S.ENABLED_RUNNING),
        (_OK, S.REGISTERED_RUNNING), (_P, S.UNREGISTER_PENDING), (_I, S.REGISTERED_RUNNING),
        (CTX, S.REGISTERED_RUNNING), (DONE, S.REGISTERED), (DONE, S.REGISTERED),
    ),
    S.ENABLED: (
        (_D, S.ENABLED), (_I, S.ENABLED), (_OK, S.ENABLED),
        (_OK, S.REGISTERED), (_OK, S.UNREGISTERED), (_I, S.ENABLED),
        (_D, S.ENABLED), (_D, S.ENABLED), (_D, S.ENABLED),
    ),
    S.ENABLED_RUNNING: (
        (_D, S.ENABLED_RUNNING), (_I, S.ENABLED_RUNNING), (_OK, S.ENABLED_RUNNING),
        (_OK, S.REGISTERED_RUNNING), (_P, S.UNREGISTER_PENDING), (_I, S.ENABLED_RUNNING),
        (CTX, S.ENABLED_RUNNING), (DONE, S.ENABLED), (DONE, S.ENABLED),
    ),
}

NEW_EP: Final = 0x0000_0000_8080_2000
NEW_ARG: Final = 0x1234_5678
RESUME: Final = 0xFFFF_8000_0801_0280


def _args(action: Action, ev: Event) -> tuple[int, ...]:
    if action == Action.REGISTER:
        return (ev.number, NEW_EP, NEW_ARG, 0, 0)
    if action == Action.ROUTING_SET:
        return (ev.number, 0, 0)
    if action == Action.CONTEXT:
        return (CTX_INDEX,)
    if action == Action.COMPLETE:
        return (int(CompleteStatus.EV_HANDLED),)
    if action == Action.COMPLETE_AND_RESUME:
        return (RESUME,)
    return (ev.number,)


def test_call_results_agree_with_transitions() -> None:
    """The results table and TRANSITIONS say the same thing about every cell: a forbidden
    call changes nothing, a permitted one moves to the table's next state."""
    for state in ORDER:
        for action, (ret, nxt) in zip(CALLS, CALL_RESULTS[state], strict=True):
            expected = TRANSITIONS[state][action]
            if action in (Action.RELEASE, Action.ROUTING_SET):
                # Permitted by Table 14 in some states, but KVM's events are private and
                # nothing is bound: INVALID_PARAMETERS whatever the state.
                assert (ret, nxt) == (Ret.INVALID_PARAMETERS, state)
            elif expected is None:
                assert nxt == state
                assert ret in (Ret.DENIED, Ret.PENDING)
            else:
                assert nxt == expected


@pytest.mark.parametrize("action", CALLS, ids=lambda a: a.name)
@pytest.mark.parametrize("state", ORDER, ids=lambda s: s.mnemonic)
@pytest.mark.parametrize("ev", ALL_EVENTS, ids=lambda e: e.name)
def test_call_in_state(ev: Event, state: HandlerState, action: Action) -> None:
    vm = Vm(2)
    reach(vm, 0, ev, state)
    before = vm.state(0)
    other = vm.state(1)
    regs = vm.snapshot(0)
    ret, nxt = CALL_RESULTS[state][CALLS.index(action)]

    out = vm.call(0, CALL_FUNCTION[action], *_args(action, ev))
    after = vm.snapshot(0)

    assert vm.hs(0, ev) == nxt
    assert vm.state(1) == other
    if ret == DONE:
        assert out.completed == ev
        assert out.ret == 0
        # The interrupted context comes back exactly (COMPLETE) or as a resume (RESUME).
        for r in CONTEXT_GPRS:
            assert after[r] == INTERRUPTED[r], r.key
        if action == Action.COMPLETE:
            assert after[CpuReg.PC] == INTERRUPTED[CpuReg.PC]
            assert after[CpuReg.PSTATE] == INTERRUPTED[CpuReg.PSTATE]
        else:
            assert after[CpuReg.PC] == RESUME
            assert after[CpuReg.ELR_EL1] == INTERRUPTED[CpuReg.PC]
            assert after[CpuReg.SPSR_EL1] == INTERRUPTED[CpuReg.PSTATE]
            assert after[CpuReg.PSTATE] == handler_entry_pstate(INTERRUPTED[CpuReg.PSTATE])
        assert vm.state(0).contexts[ev.priority].is_zero
        return

    assert out.completed is None
    expected_ret = INTERRUPTED[CpuReg(CTX_INDEX)] if ret == CTX else int(ret)
    assert out.ret == expected_ret
    assert after[CpuReg.X0] == expected_ret & U64
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    for r in CpuReg:
        if r not in (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5):
            assert after[r] == regs[r], r.key  # x1..x5 were loaded with the arguments
    if nxt == state:
        assert vm.state(0) == before, "a call that changes no state must change nothing"
    es = vm.ev(0, ev)
    if action == Action.REGISTER and ret == Ret.SUCCESS:
        assert es == EventState(registered=True, ep_addr=NEW_EP, ep_arg=NEW_ARG)
    if action == Action.UNREGISTER and ret in (Ret.SUCCESS, Ret.PENDING):
        # Entry point, argument and pending trigger go at once; RUNNING stays.
        assert es == EventState(running=state in RUNNING_STATES)
    if action in (Action.ENABLE, Action.DISABLE) and ret == Ret.SUCCESS:
        assert (es.ep_addr, es.ep_arg) == (EP, ARG)


@pytest.mark.parametrize("state", ORDER, ids=lambda s: s.mnemonic)
@pytest.mark.parametrize("ev", ALL_EVENTS, ids=lambda e: e.name)
def test_dispatch_column(ev: Event, state: HandlerState) -> None:
    """A trigger is taken only in handler-enabled; in every other registered state it stays
    pending, and an unregistered (or unregister-pending) event cannot be triggered at all."""
    vm = Vm(1)
    reach(vm, 0, ev, state)
    vm.ret(0, Function.PE_UNMASK)
    if vm.ev(0, ev).registered:
        make_pending(vm, 0, ev)
    else:
        assert not vm.inject(0, ev.number)
        if ev.signalable:
            assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(0)) == Ret.INVALID_PARAMETERS
    before = vm.state(0)
    regs = vm.snapshot(0)
    taken = vm.dispatch(0)
    if state == S.ENABLED:
        assert taken == ev
        assert vm.hs(0, ev) == S.ENABLED_RUNNING
        assert not vm.ev(0, ev).pending
    else:
        assert taken is None
        assert vm.state(0) == before
        assert vm.snapshot(0) == regs


# -- the tables of docs/state-machine.md -----------------------------------------------------

COLUMN_NAMES: Final = {
    Action.REGISTER: "REGISTER",
    Action.RELEASE: "INTERRUPT_RELEASE",
    Action.ENABLE: "ENABLE",
    Action.DISABLE: "DISABLE",
    Action.UNREGISTER: "UNREGISTER",
    Action.ROUTING_SET: "ROUTING_SET",
    Action.CONTEXT: "CONTEXT",
    Action.COMPLETE: "COMPLETE",
    Action.COMPLETE_AND_RESUME: "COMPLETE_AND_RESUME",
    Action.DISPATCH: "dispatch",
}


def _row_label(state: HandlerState) -> str:
    return f"{SPEC_NAMES[state]} `{state.mnemonic}` ({int(state)})"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def permitted_calls_markdown() -> str:
    """DEN0054C Table 14 plus dispatch, generated from ``transitions.TRANSITIONS``."""
    rows = []
    for state in ORDER:
        cells = [_row_label(state)]
        for action in Action:
            nxt = TRANSITIONS[state][action]
            cells.append("✗" if nxt is None else "✓" if nxt == state else f"→ `{nxt.mnemonic}`")
        rows.append(cells)
    return _table(["state (STATUS)"] + [COLUMN_NAMES[a] for a in Action], rows)


def call_results_markdown() -> str:
    """What each call returns in each state for KVM's events, generated from CALL_RESULTS
    (which ``test_call_in_state`` checks against the machine)."""
    rows = []
    for state in ORDER:
        cells = [_row_label(state)]
        for ret, nxt in CALL_RESULTS[state]:
            word = (
                "saved x[n]" if ret == CTX
                else "completes" if ret == DONE
                else Ret(int(ret)).name
            )
            cells.append(word if nxt == state else f"{word} → `{nxt.mnemonic}`")
        rows.append(cells)
    return _table(["state (STATUS)"] + [COLUMN_NAMES[a] for a in CALLS], rows)


MERMAID_IDS: Final = {
    S.UNREGISTERED: "unregistered",
    S.UNREGISTER_PENDING: "unregister_pending",
    S.REGISTERED: "registered",
    S.REGISTERED_RUNNING: "registered_running",
    S.ENABLED: "enabled",
    S.ENABLED_RUNNING: "enabled_running",
}


def state_diagram_mermaid() -> str:
    """The six states and every state-changing cell of ``transitions.TRANSITIONS`` as a mermaid
    state diagram (cells that keep the state are in the tables, not drawn)."""
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f'    state "{SPEC_NAMES[s]} ({int(s)})" as {MERMAID_IDS[s]}' for s in ORDER]
    lines.append(f"    [*] --> {MERMAID_IDS[S.UNREGISTERED]}")
    edges: dict[tuple[HandlerState, HandlerState], list[str]] = {}
    for state in ORDER:
        for action in Action:
            nxt = TRANSITIONS[state][action]
            if nxt is not None and nxt != state:
                edges.setdefault((state, nxt), []).append(COLUMN_NAMES[action])
    lines += [
        f"    {MERMAID_IDS[a]} --> {MERMAID_IDS[b]}: {' / '.join(names)}"
        for (a, b), names in edges.items()
    ]
    lines.append("```")
    return "\n".join(lines)


DOC: Final = Path(__file__).resolve().parent.parent / "docs" / "state-machine.md"


def test_doc_contains_generated_state_diagram() -> None:
    assert state_diagram_mermaid() in DOC.read_text(encoding="utf-8")


def test_doc_contains_generated_permitted_calls_table() -> None:
    assert permitted_calls_markdown() in DOC.read_text(encoding="utf-8")


def test_doc_contains_generated_call_results_table() -> None:
    assert call_results_markdown() in DOC.read_text(encoding="utf-8")


def test_reach_really_gets_there_for_every_state() -> None:
    """The harness itself: each state, both events, through calls only, with the context the
    running states interrupted saved for their class."""
    for ev in ALL_EVENTS:
        for state in ORDER:
            vm = Vm(1)
            reach(vm, 0, ev, state)
            es = vm.ev(0, ev)
            assert es.handler_state == state
            assert es.pending is False
            ctx = vm.state(0).contexts[ev.priority]
            if state in RUNNING_STATES:
                assert ctx.x == tuple(INTERRUPTED[r] for r in CONTEXT_GPRS)
                assert (ctx.pc, ctx.pstate) == (
                    INTERRUPTED[CpuReg.PC], INTERRUPTED[CpuReg.PSTATE]
                )
                if state == S.ENABLED_RUNNING:  # the others made one more call since
                    assert signed(vm.cpus[0][CpuReg.X0]) == ev.number
            else:
                assert ctx.is_zero
