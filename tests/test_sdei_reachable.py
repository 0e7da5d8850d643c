"""Restore accepts a register set exactly when the model can reach it, and the fast codec is
the construct declarations.

Reachability, both ways:

- *reachable => accepted*: the machine is driven with random call sequences (dispatch of both
  classes, COMPLETE, UNREGISTER while running, injections, PSTATE changes, ...) and the
  registers of every state it reaches pass ``vcpu_problems`` and ``restore``;
- *accepted => reachable*: for an arbitrary register set that ``vcpu_problems`` accepts, a
  call sequence is built from the set itself (register, enable, inject, dispatch with the
  saved context loaded in the CPU, disable, unregister while running, mask) and run on a fresh
  machine; the registers it ends with must be exactly the set. This is the exact and cheap
  form of "equals the encoding of some reachable state": the witness is constructed, not
  searched for, so any accepted set the model cannot produce fails here.

Together with the per-register tests this pins ``vcpu_problems`` (and so ``restore``) to the
model's reachable states.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdei_state.cpu import CpuReg, MemoryCpu
from sdei_state.errors import RestoreError
from sdei_state.events import EVENTS
from sdei_state.machine import Machine
from sdei_state.migration import restore_vcpu, save_vcpu
from sdei_state.regs import sdei_codec
from sdei_state.regs.sdei import (
    SDEI_REG_IDS,
    SDEI_REGS,
    SdeiRegisterError,
    decode,
    decode_values,
    encode,
    encode_map,
    reference_decode,
    reference_encode,
    vcpu_problems,
)
from sdei_state.spec import CONTEXT_REGS, Function, Priority, Ret
from sdei_state.state import VcpuState
from sdei_state.testing.strategies import canonical_vcpu_states, reg_values, u64s, vcpu_states
from sdei_state.vcpu.sim import SimVm

HEAVY = os.environ.get("SDEI_HEAVY") == "1"
EXAMPLES = 2000 if HEAVY else 100
prop = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# --- accepted => reachable: a witness built from the set ----------------------------------------


class Witness:
    """One vCPU driven through the machine's own calls, the way a guest and a VMM would."""

    def __init__(self) -> None:
        self.machine = Machine(1)
        self.cpu = MemoryCpu()

    def call(self, fid: Function, *args: int) -> int:
        return self.machine.call(0, fid, list(args), self.cpu).ret

    def register(self, i: int, ep: int, arg: int, relative: bool) -> None:
        ev = EVENTS[i]
        assert self.call(Function.EVENT_REGISTER, ev.number, ep, arg, 2 if relative else 0,
                         0) == Ret.SUCCESS

    def enter(self, i: int, x: tuple[int, ...], pc: int, pstate: int) -> None:
        """Take event ``i`` from the interrupted context (x0..x17, PC, PSTATE)."""
        ev = EVENTS[i]
        assert self.call(Function.EVENT_ENABLE, ev.number) == Ret.SUCCESS
        assert self.call(Function.PE_UNMASK) in (0, 1)
        assert self.machine.inject(0, ev.number)
        self.cpu.write({**{CpuReg(n): x[n] for n in range(CONTEXT_REGS)},
                        CpuReg.PC: pc, CpuReg.PSTATE: pstate})
        assert self.machine.dispatch(0, self.cpu) is ev


def reach(target: VcpuState) -> VcpuState:
    """The state the machine ends in after the calls that should produce ``target``."""
    w = Witness()
    running = [ev for cls in Priority for ev in EVENTS  # normal first: critical preempts it
               if ev.priority == cls and target.events[ev.index].running]
    for ev in running:
        es, ctx = target.events[ev.index], target.contexts[ev.priority]
        # An unregister-pending handler was registered once: any entry point serves.
        w.register(ev.index, es.ep_addr if es.registered else 4, es.ep_arg, es.relative)
        w.enter(ev.index, ctx.x, ctx.pc, ctx.pstate)
    for ev in EVENTS:
        es = target.events[ev.index]
        if not es.running and es.registered:
            w.register(ev.index, es.ep_addr, es.ep_arg, es.relative)
        if es.enabled and not es.running:
            assert w.call(Function.EVENT_ENABLE, ev.number) == Ret.SUCCESS
        if es.running and es.registered and not es.enabled:
            assert w.call(Function.EVENT_DISABLE, ev.number) == Ret.SUCCESS
        if es.running and not es.registered:
            assert w.call(Function.EVENT_UNREGISTER, ev.number) == Ret.PENDING
        if es.pending:
            assert w.machine.inject(0, ev.number)
    w.call(Function.PE_MASK if target.masked else Function.PE_UNMASK)
    return w.machine.state(0)


@st.composite
def register_sets(draw: st.DrawFn) -> dict[int, int]:
    """Arbitrary register sets near the reachable ones: a state (canonical or not) with a few
    registers replaced by any u64, 0, or a value the register accepts on its own."""
    state = draw(st.one_of(canonical_vcpu_states(), vcpu_states()))
    values = encode_map(state)
    for reg in draw(st.lists(st.sampled_from(SDEI_REGS), max_size=3)):
        values[reg.id] = draw(st.one_of(u64s(), st.just(0), reg_values(reg)))
    return values


@prop
@given(values=register_sets())
def test_every_accepted_register_set_is_reached_by_calls(values: dict[int, int]) -> None:
    if vcpu_problems(values):
        return
    reached = reach(decode(values))
    assert encode_map(reached) == values


@prop
@given(state=canonical_vcpu_states())
def test_every_canonical_state_is_reachable(state: VcpuState) -> None:
    assert vcpu_problems(encode_map(state)) == []
    assert reach(state) == state


@settings(max_examples=40 if not HEAVY else 600, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(values=register_sets())
def test_restore_accepts_exactly_what_vcpu_problems_accepts(values: dict[int, int]) -> None:
    saved = dict(save_vcpu(SimVm(1).vcpus[0]).as_dict())
    saved.update(values)
    dst = SimVm(1).vcpus[0]
    try:
        restore_vcpu(dst, saved)
    except RestoreError:
        assert vcpu_problems(values) != []
        return
    assert vcpu_problems(values) == []
    assert encode_map(dst.state) == values  # what restore wrote is what the model holds


# --- reachable => accepted: the machine under random calls ----------------------------------

_NUMBERS = st.sampled_from([*(ev.number for ev in EVENTS), 1, 1 << 32])


@st.composite
def _step(draw: st.DrawFn) -> tuple[str, int, list[int]]:
    kind = draw(st.sampled_from(["call"] * 4 + ["dispatch"] * 2 + ["inject", "cpu"]))
    if kind == "call":
        fid = draw(st.sampled_from(list(Function)))
        args = [draw(_NUMBERS), draw(st.sampled_from([0, 4, 0x1000, 0x1002, 1 << 63])),
                draw(u64s()), draw(st.sampled_from([0, 1, 2, 3, 4])), 0]
        if fid is Function.EVENT_CONTEXT:
            args[0] = draw(st.integers(0, 18))
        if fid in (Function.EVENT_COMPLETE_AND_RESUME, Function.EVENT_COMPLETE):
            args[0] = draw(st.sampled_from([0, 0x3000, 0x3001]))
        return kind, int(fid), args
    if kind == "inject":
        return kind, draw(_NUMBERS), []
    if kind == "cpu":
        pstate = draw(st.sampled_from([5, 4, 0, 0x10, 9, 0xD, 0x13, 0x600003C5]))
        return kind, pstate, [draw(u64s()) for _ in range(3)]
    return kind, 0, []


@settings(max_examples=100 if not HEAVY else 1500, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_step(), max_size=50))
def test_every_reached_state_is_accepted(steps: list[tuple[str, int, list[int]]]) -> None:
    m = Machine(1)
    cpu = MemoryCpu()
    for kind, n, args in steps:
        if kind == "call":
            m.call(0, n, args, cpu)
        elif kind == "dispatch":
            m.dispatch(0, cpu)
        elif kind == "inject":
            m.inject(0, n)
        else:
            cpu.write({CpuReg.PSTATE: n, CpuReg.PC: args[0], CpuReg.X0: args[1],
                       CpuReg.X17: args[2]})
        regs = encode_map(m.state(0))
        assert vcpu_problems(regs) == [], (m.state(0), vcpu_problems(regs))


# --- the fast codec is the declarations -------------------------------------------------------


@prop
@given(state=vcpu_states())
def test_fast_encode_is_the_declarations(state: VcpuState) -> None:
    assert encode(state) == reference_encode(state)
    assert decode_values(encode(state)) == reference_decode(encode_map(state)) == state


def _outcome(decoder: object, values: Mapping[int, int]) -> VcpuState | tuple[int, str | None]:
    try:
        return decoder(values)  # type: ignore[operator, no-any-return]
    except SdeiRegisterError as e:
        return (e.reg_id, e.field)


@st.composite
def _any_sets(draw: st.DrawFn) -> dict[int, int]:
    values = draw(register_sets())
    if draw(st.booleans()):  # anything at all in one register: out of range, wrong type, gone
        reg = draw(st.sampled_from(SDEI_REGS))
        junk = draw(st.one_of(st.integers(-(1 << 70), 1 << 70), st.floats(), st.none(),
                              st.text(max_size=2), st.just("missing")))
        if junk == "missing":
            del values[reg.id]
        else:
            values[reg.id] = junk  # type: ignore[assignment]
    return values


@prop
@given(values=_any_sets())
def test_fast_decode_is_the_declarations(values: dict[int, int]) -> None:
    fast = _outcome(decode, values)
    assert fast == _outcome(reference_decode, values)
    # The generated decoder alone: a state exactly when the declarations accept the set.
    vals: tuple[Any, ...] = tuple(values.get(i) for i in SDEI_REG_IDS)
    generated = sdei_codec._decode_values(vals)
    assert (generated is None) == (not isinstance(fast, VcpuState))
    if generated is not None:
        assert generated == fast and hash(generated) == hash(fast)


def test_a_bool_value_decodes_as_its_int() -> None:
    # The codec's values are ints and a bool is one (True is 1); the type of a value is
    # refused where values enter: the SET check and the restore validation.
    values = encode_map(VcpuState())
    as_bool = {**values, SDEI_REG_IDS[0]: True}
    assert decode(as_bool) == decode(values)
    assert vcpu_problems(as_bool) == [(SDEI_REG_IDS[0], "value True is not an integer")]
