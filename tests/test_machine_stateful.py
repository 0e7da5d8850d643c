"""Random guest and hypervisor activity on a 3-vCPU VM, checked after every step.

Rules make every SDEI call (plausible and random arguments, random function ids) from random
vCPUs, signal random MPIDRs, inject, dispatch and scramble CPU registers. Each call's result
and state change is compared with an independent oracle written from DESIGN section 5, and
every completion with a shadow stack of the contexts saved at dispatch. Invariants: the six
legal states, PENDING implies REGISTERED, one running handler per class, STATUS equals the
state bits, the canonical encoding, and the shadow stack matching what the model holds.

SDEI_STATEFUL_EXAMPLES raises the example count (default 200 x 50 steps, for CI).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Final

from helpers import EP, U64, Vm, signed
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sdei_state.cpu import CONTEXT_GPRS, CpuReg, MemoryCpu
from sdei_state.events import ASYNC_PF, EVENTS, SW_SIGNALED, Event
from sdei_state.machine import affinity_of
from sdei_state.spec import Function, Priority, Ret
from sdei_state.state import (
    LEGAL_STATUS,
    Context,
    EventState,
    VcpuState,
    handler_entry_pstate,
)

NR: Final = 3
EXAMPLES: Final = int(os.environ.get("SDEI_STATEFUL_EXAMPLES", "200"))
CLIENT_MODES: Final = frozenset({0b00000, 0b00100, 0b00101, 0b10000})

# -- the oracle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """What a dispatch interrupted, as the test saw it: the shadow of the model's context."""

    event: Event
    x: tuple[int, ...]
    pc: int
    pstate: int


States = tuple[VcpuState, ...]
COMPLETED: Final = None


def _event(number: int) -> Event | None:
    for ev in EVENTS:
        if ev.number == number:
            return ev
    return None


def _target(mpidr: int) -> int | None:
    for v in range(NR):
        if affinity_of(v) == mpidr & 0xFF00_FFFF_FF:
            return v
    return None


def predict(
    states: States, v: int, fid: int, a: tuple[int, ...], shadow: list[Frame]
) -> tuple[int | None, States, list[int]]:
    """(x0 result or COMPLETED, the states after the call, the vCPUs to be kicked)."""
    fid &= 0xFFFF_FFFF
    new = list(states)
    st_v = states[v]

    def put(vcpu: int, ev: Event, es: EventState) -> None:
        new[vcpu] = new[vcpu].with_event(ev, es)

    inv, den = int(Ret.INVALID_PARAMETERS), int(Ret.DENIED)
    ret: int | None
    kicks: list[int] = []
    ev = _event(a[0])
    es = st_v.event(ev) if ev is not None else EventState()
    if fid == Function.VERSION:
        ret = 0x0001_0001_564B_CAA9
    elif fid == Function.EVENT_REGISTER:
        if ev is None or a[3] > 3 or a[1] == 0 or a[1] % 4:
            ret = inv
        elif es.status:
            ret = den
        else:
            put(v, ev, EventState(registered=True, relative=bool(a[3] & 2), ep_addr=a[1],
                                  ep_arg=a[2]))
            ret = 0
    elif fid in (Function.EVENT_ENABLE, Function.EVENT_DISABLE):
        if ev is None:
            ret = inv
        elif not es.registered:
            ret = den
        else:
            put(v, ev, replace(es, enabled=fid == Function.EVENT_ENABLE))
            ret = 0
    elif fid == Function.EVENT_UNREGISTER:
        if ev is None:
            ret = inv
        elif es.status == 0b100:
            ret = int(Ret.PENDING)
        elif not es.registered:
            ret = den
        else:
            put(v, ev, EventState(running=es.running))
            ret = int(Ret.PENDING) if es.running else 0
    elif fid == Function.EVENT_CONTEXT:
        ret = inv if a[0] >= 18 else den if not shadow else shadow[-1].x[a[0]]
    elif fid in (Function.EVENT_COMPLETE, Function.EVENT_COMPLETE_AND_RESUME):
        if not shadow:
            ret = den
        elif fid == Function.EVENT_COMPLETE_AND_RESUME and a[0] % 4:
            ret = inv
        else:
            done = shadow[-1].event
            put(v, done, replace(st_v.event(done), running=False))
            contexts = list(new[v].contexts)
            contexts[done.priority] = Context()
            new[v] = replace(new[v], contexts=(contexts[0], contexts[1]))
            ret = COMPLETED
    elif fid == Function.EVENT_STATUS:
        ret = inv if ev is None else es.status
    elif fid == Function.EVENT_GET_INFO:
        if ev is None or a[1] > 2:
            ret = inv
        else:
            ret = (0, 0 if ev is SW_SIGNALED else 1, int(ev.priority))[a[1]]
    elif fid in (Function.EVENT_ROUTING_SET, Function.INTERRUPT_RELEASE):
        ret = inv
    elif fid == Function.PE_MASK:
        ret = 0 if st_v.masked else 1
        new[v] = replace(new[v], masked=True)
    elif fid == Function.PE_UNMASK:
        ret = 0
        new[v] = replace(new[v], masked=False)
    elif fid == Function.INTERRUPT_BIND:
        ret = int(Ret.OUT_OF_RESOURCE) if 16 <= a[0] <= 1019 else inv
    elif fid == Function.EVENT_SIGNAL:
        t = _target(a[1])
        if a[0] != 0 or t is None or not states[t].event(SW_SIGNALED).registered:
            ret = inv
        else:
            tes = states[t].event(SW_SIGNALED)
            if not tes.pending:
                kicks.append(t)
            put(t, SW_SIGNALED, replace(tes, pending=True))
            ret = 0
    elif fid == Function.FEATURES:
        ret = {0: 0, 1: 1}.get(a[0], inv)
    elif fid == Function.PRIVATE_RESET:
        ret = 0
        for e in EVENTS:
            s = st_v.event(e)
            if s.running:
                ret = den
            put(v, e, EventState(running=s.running))
    elif fid == Function.SHARED_RESET:
        ret = 0
    else:
        ret = int(Ret.NOT_SUPPORTED)
    return ret, tuple(new), kicks


def predict_dispatch(st: VcpuState, pstate: int) -> Event | None:
    if st.masked or pstate & 0x1F not in CLIENT_MODES:
        return None
    running = {e.priority for e, s in st.pairs() if s.running}
    for ev in (ASYNC_PF, SW_SIGNALED):  # critical first
        s = st.event(ev)
        if s.pending and s.enabled and not s.running and (
            Priority.CRITICAL not in running if ev.priority == Priority.CRITICAL
            else not running
        ):
            return ev
    return None


# -- strategies ---------------------------------------------------------------------------------

u64 = st.integers(0, U64)
vcpus = st.integers(0, NR - 1)
events = st.sampled_from(EVENTS)
mpidrs = st.builds(
    lambda v, junk: affinity_of(v) | junk,
    st.integers(0, NR),  # NR: a vCPU that does not exist
    st.sampled_from([0, 1 << 31, 1 << 30 | 1 << 31, 1 << 24, 0xFFFF_FF00_0000_0000, 1 << 32]),
)
plausible = st.one_of(
    st.sampled_from([0, 1, 2, 3, 4, 16, 17, 18, 32, 1019, 1020, ASYNC_PF.number, EP, EP + 2,
                     0x280, 1 << 32]),
    mpidrs,
)
args5 = st.lists(st.one_of(plausible, u64), min_size=5, max_size=5).map(tuple)
function_ids = st.one_of(
    st.sampled_from(list(Function)),
    st.sampled_from([0x84000020, 0x84000031, 0xC4000033, 0xC400003F, 0xC400001F,
                     (1 << 32) | Function.VERSION]),
    u64,
)
entry_points = st.one_of(st.sampled_from([EP, 0x400, 0, 2, U64 - 3]), u64)
pstates = st.builds(
    lambda mode, high: (high & ~0x1F) | mode,
    # Mostly modes SDEI may interrupt; now and then EL2h or AArch32 SVC, which defer dispatch.
    st.sampled_from([0b00101] * 5 + [0b00100, 0b00000, 0b10000] * 2 + [0b01001, 0b10011]),
    st.one_of(st.just(0), st.sampled_from([0x3C0, 0xF000_0000, 0x0030_0C00]), u64),
)
numbers = st.sampled_from([0, 0, ASYNC_PF.number, ASYNC_PF.number, 1])
plausible_calls = st.one_of(
    st.tuples(st.just(Function.EVENT_REGISTER), st.tuples(
        numbers, entry_points, u64, st.sampled_from([0, 1, 2, 3, 3, 4, 1 << 63]),
        st.one_of(st.just(0), u64))),
    st.tuples(st.sampled_from([Function.EVENT_ENABLE, Function.EVENT_ENABLE,
                               Function.EVENT_DISABLE, Function.EVENT_UNREGISTER,
                               Function.EVENT_STATUS]), st.tuples(numbers)),
    st.tuples(st.just(Function.EVENT_GET_INFO), st.tuples(numbers, st.integers(0, 6))),
    st.tuples(st.just(Function.EVENT_CONTEXT), st.tuples(st.integers(0, 19))),
    st.tuples(st.just(Function.EVENT_COMPLETE), st.tuples(st.sampled_from([0, 1, 7]))),
    st.tuples(st.just(Function.EVENT_COMPLETE_AND_RESUME), st.tuples(
        st.one_of(st.sampled_from([0x280, 0xFFFF_8000_0801_0280, 0x1002]), u64))),
    st.tuples(st.sampled_from([Function.PE_MASK, Function.PE_UNMASK, Function.PE_UNMASK,
                               Function.PRIVATE_RESET, Function.SHARED_RESET]), st.just(())),
    st.tuples(st.just(Function.EVENT_SIGNAL), st.tuples(numbers, mpidrs)),
)
"""One call the way a guest would make it, with mostly sensible arguments."""
scramble_regs = st.dictionaries(
    st.sampled_from([r for r in CpuReg if r != CpuReg.PSTATE]), u64, max_size=8
)


class SdeiStateMachine(RuleBasedStateMachine):
    """Drives one Vm against the oracle; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.vm = Vm(NR)
        self.shadow: list[list[Frame]] = [[] for _ in range(NR)]

    # -- the checked operations -----------------------------------------------------------------

    def do_call(self, v: int, fid: int, args: tuple[int, ...]) -> None:
        vm = self.vm
        a = tuple(x & U64 for x in args) + (0,) * (5 - len(args))
        before_states = vm.machine.states()
        all_regs = [vm.snapshot(i) for i in range(NR)]
        regs = all_regs[v]
        ret, expected_states, expected_kicks = predict(before_states, v, fid, a, self.shadow[v])
        vm.kicked.clear()

        out = vm.call(v, fid, *a)
        after = vm.snapshot(v)

        assert vm.machine.states() == expected_states, (hex(fid), a)
        assert vm.kicked == expected_kicks
        for other in range(NR):
            if other != v:
                assert vm.snapshot(other) == all_regs[other]
        if ret is COMPLETED:
            event(f"completed {'nested' if len(self.shadow[v]) == 2 else 'outer'} handler")
            frame = self.shadow[v].pop()
            assert out.completed == frame.event
            assert out.ret == 0
            for r in CONTEXT_GPRS:
                assert after[r] == frame.x[r], r.key
            if fid & 0xFFFF_FFFF == Function.EVENT_COMPLETE:
                assert (after[CpuReg.PC], after[CpuReg.PSTATE]) == (frame.pc, frame.pstate)
                kept: tuple[CpuReg, ...] = (CpuReg.ELR_EL1, CpuReg.SPSR_EL1)
            else:
                assert after[CpuReg.PC] == a[0]
                assert after[CpuReg.ELR_EL1] == frame.pc
                assert after[CpuReg.SPSR_EL1] == frame.pstate
                # SCTLR_EL1 as it is at the call (the rule's own cases: test_state.py).
                assert after[CpuReg.PSTATE] == handler_entry_pstate(frame.pstate,
                                                                    regs[CpuReg.SCTLR_EL1])
                kept = ()
            for r in (*[CpuReg(n) for n in range(18, 31)], CpuReg.SP, CpuReg.VBAR_EL1,
                      CpuReg.SCTLR_EL1, *kept):
                assert after[r] == regs[r], r.key
            return
        assert out.completed is None
        assert out.ret == signed(ret & U64), (hex(fid), a, out.ret, ret)
        assert after[CpuReg.X0] == ret & U64
        assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
        assert (after[CpuReg.X4], after[CpuReg.X5]) == (a[3], a[4])
        for r in CpuReg:
            if r >= CpuReg.X6:
                assert after[r] == regs[r], r.key

    # -- rules: random calls -----------------------------------------------------------------------

    @rule(v=vcpus, fid=function_ids, args=args5)
    def random_call(self, v: int, fid: int, args: tuple[int, ...]) -> None:
        self.do_call(v, fid, args)

    @rule(v=vcpus, fn=st.sampled_from(list(Function)), args=args5)
    def random_args(self, v: int, fn: Function, args: tuple[int, ...]) -> None:
        self.do_call(v, fn, args)

    # -- rules: what a guest plausibly does --------------------------------------------------------

    @rule(v=vcpus, call=plausible_calls)
    def guest_call(self, v: int, call: tuple[Function, tuple[int, ...]]) -> None:
        self.do_call(v, *call)

    # -- rules: the hypervisor ---------------------------------------------------------------------

    @rule(v=vcpus, number=st.sampled_from([0, ASYNC_PF.number, ASYNC_PF.number, 1]))
    def inject(self, v: int, number: int) -> None:
        self.do_inject(v, number)

    @rule(v=vcpus)
    def dispatch(self, v: int) -> None:
        self.do_dispatch(v)

    # Rule choice is uniform, so the rules that carry events through arm, trigger, dispatch
    # and completion are registered twice each: deep states (nesting, unregister-pending
    # handlers, retriggers while running) then show up in most examples.

    @rule(pick=st.integers(0, 2 * NR - 1), src=vcpus)
    def trigger_and_dispatch(self, pick: int, src: int) -> None:
        self.do_trigger_and_dispatch(pick, src)

    @rule(pick=st.integers(0, 2 * NR - 1), src=vcpus)
    def trigger_and_dispatch_again(self, pick: int, src: int) -> None:
        self.do_trigger_and_dispatch(pick, src)

    @rule(v=vcpus, ev=events, ep=st.sampled_from([EP, 0x400, U64 - 3]), arg=u64,
          flags=st.integers(0, 3))
    def guest_arms(self, v: int, ev: Event, ep: int, arg: int, flags: int) -> None:
        self.do_arm(v, ev, ep, arg, flags)

    @rule(v=vcpus, ev=events, ep=st.sampled_from([EP, 0x400, U64 - 3]), arg=u64,
          flags=st.integers(0, 3))
    def guest_arms_again(self, v: int, ev: Event, ep: int, arg: int, flags: int) -> None:
        self.do_arm(v, ev, ep, arg, flags)

    @rule(pick=st.integers(0, NR - 1), resume=st.booleans())
    def finish_a_handler(self, pick: int, resume: bool) -> None:
        self.do_finish(pick, resume)

    @rule(pick=st.integers(0, NR - 1), resume=st.booleans())
    def finish_a_handler_again(self, pick: int, resume: bool) -> None:
        self.do_finish(pick, resume)

    @rule(pick=st.integers(0, NR - 1), call=st.one_of(
        st.tuples(st.sampled_from([Function.EVENT_DISABLE, Function.EVENT_UNREGISTER,
                                   Function.EVENT_ENABLE]), st.tuples(numbers)),
        st.tuples(st.just(Function.EVENT_CONTEXT), st.tuples(st.integers(0, 17))),
        st.tuples(st.sampled_from([Function.PRIVATE_RESET, Function.PE_MASK]), st.just(())),
    ))
    def inside_a_handler(self, pick: int, call: tuple[Function, tuple[int, ...]]) -> None:
        """What a running handler calls (disable or unregister itself, read its context,
        reset, mask), on a vCPU that runs one if there is one."""
        busy = [i for i in range(NR) if self.shadow[i]] or list(range(NR))
        self.do_call(busy[pick % len(busy)], *call)

    def do_arm(self, v: int, ev: Event, ep: int, arg: int, flags: int) -> None:
        """What a guest does to receive an event: register, enable, unmask."""
        self.do_call(v, Function.EVENT_REGISTER, (ev.number, ep, arg, flags, 0))
        self.do_call(v, Function.EVENT_ENABLE, (ev.number,))
        self.do_call(v, Function.PE_UNMASK, ())

    def do_trigger_and_dispatch(self, pick: int, src: int) -> None:
        """A signal from ``src`` (event 0) or an injection, then the entry check, preferably
        where the event is enabled and the vCPU unmasked (random sequences rarely line up)."""
        pairs = [(v, ev) for v in range(NR) for ev in EVENTS]
        enabled = [(v, ev) for v, ev in pairs if self.vm.ev(v, ev).enabled]
        armed = [(v, ev) for v, ev in enabled if not self.vm.state(v).masked] or enabled or pairs
        v, ev = armed[pick % len(armed)]
        if ev.signalable:
            self.do_call(src, Function.EVENT_SIGNAL, (0, affinity_of(v) | 1 << 31))
        else:
            self.do_inject(v, ev.number)
        self.do_dispatch(v)

    def do_finish(self, pick: int, resume: bool) -> None:
        """Complete on a vCPU that runs a handler, if there is one, so sequences keep cycling
        through dispatch and completion instead of piling up running handlers."""
        busy = [i for i in range(NR) if self.shadow[i]] or list(range(NR))
        fn = Function.EVENT_COMPLETE_AND_RESUME if resume else Function.EVENT_COMPLETE
        self.do_call(busy[pick % len(busy)], fn, (0x4000,))

    def do_inject(self, v: int, number: int) -> None:
        vm = self.vm
        before = vm.machine.states()
        ev = _event(number)
        ok = ev is not None and before[v].event(ev).registered
        newly = ok and ev is not None and not before[v].event(ev).pending
        vm.kicked.clear()
        assert vm.inject(v, number) == ok
        assert vm.kicked == ([v] if newly else [])
        if ok and ev is not None:
            expected = before[v].with_event(ev, replace(before[v].event(ev), pending=True))
            assert vm.state(v) == expected
        else:
            assert vm.machine.states() == before

    def do_dispatch(self, v: int) -> None:
        vm = self.vm
        st_before = vm.state(v)
        regs = vm.snapshot(v)
        expected = predict_dispatch(st_before, regs[CpuReg.PSTATE])
        taken = vm.dispatch(v)
        after = vm.snapshot(v)
        assert taken == expected
        event(f"dispatch took {taken.name if taken else None}"
              f"{' (nested)' if taken and self.shadow[v] else ''}")
        if taken is None:
            assert vm.state(v) == st_before
            assert after == regs
            return
        # Never while masked, never into a class that is running, never normal over critical.
        assert not st_before.masked
        assert st_before.running_event(taken.priority) is None
        if taken.priority == Priority.NORMAL:
            assert st_before.running_event(Priority.CRITICAL) is None
        es = st_before.event(taken)
        frame = Frame(taken, tuple(regs[r] for r in CONTEXT_GPRS), regs[CpuReg.PC],
                      regs[CpuReg.PSTATE])
        self.shadow[v].append(frame)
        entry = (regs[CpuReg.VBAR_EL1] + es.ep_addr) & U64 if es.relative else es.ep_addr
        assert after[CpuReg.PC] == entry
        assert after[CpuReg.PSTATE] == handler_entry_pstate(frame.pstate, regs[CpuReg.SCTLR_EL1])
        assert (after[CpuReg.X0], after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (
            taken.number, es.ep_arg, frame.pc, frame.pstate
        )
        for r in CpuReg:
            if r not in (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.PC, CpuReg.PSTATE):
                assert after[r] == regs[r], r.key
        assert vm.state(v) == st_before.with_event(
            taken, replace(es, running=True, pending=False)
        ).with_context(taken.priority, Context(frame.x, frame.pc, frame.pstate))

    @rule(v=vcpus, regs=scramble_regs, pstate=st.one_of(st.none(), st.none(), pstates))
    def scramble(self, v: int, regs: dict[CpuReg, int], pstate: int | None) -> None:
        """Guest code runs between the steps: any register may change (the handler's too)."""
        values = dict(regs)
        if pstate is not None:
            values[CpuReg.PSTATE] = pstate
        before = self.vm.machine.states()
        self.vm.cpus[v].write(values)
        assert self.vm.machine.states() == before

    # -- invariants --------------------------------------------------------------------------------

    @invariant()
    def states_are_legal_and_canonical(self) -> None:
        for st_v in self.vm.machine.states():
            for _ev, es in st_v.pairs():
                assert es.status in LEGAL_STATUS
                assert not es.pending or es.registered
                assert not es.relative or es.registered
            for cls in Priority:
                assert sum(1 for e, s in st_v.pairs() if s.running and e.priority == cls) <= 1
            assert st_v.canonical_problems() == []

    @invariant()
    def shadow_matches_the_model(self) -> None:
        for v, st_v in enumerate(self.vm.machine.states()):
            stack = self.shadow[v]
            assert {f.event for f in stack} == {e for e, s in st_v.pairs() if s.running}
            assert len(stack) <= 2
            if len(stack) == 2:
                assert [f.event.priority for f in stack] == [Priority.NORMAL, Priority.CRITICAL]
            for cls in Priority:
                frames = [f for f in stack if f.event.priority == cls]
                expected = (
                    Context(frames[0].x, frames[0].pc, frames[0].pstate) if frames else Context()
                )
                assert st_v.contexts[cls] == expected

    @invariant()
    def status_call_equals_state_bits(self) -> None:
        before = self.vm.machine.states()
        scratch = MemoryCpu()
        for v, st_v in enumerate(before):
            for ev, es in st_v.pairs():
                out = self.vm.machine.call(v, Function.EVENT_STATUS, [ev.number], scratch)
                assert out.ret == es.status == int(es.handler_state)
        assert self.vm.machine.states() == before


SdeiStateMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSdeiStateMachine = SdeiStateMachine.TestCase
