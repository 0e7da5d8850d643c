"""The reference SDEI hypercall state machine: calls, dispatch into the guest, and completion.

The handler-state transitions are one table (``transitions.TRANSITIONS``, re-exported here);
the call handlers check arguments and apply side effects around it. Semantics are exactly
DESIGN section 5 (see docs/state-machine.md for the divergence table against the spec, TF-A
and the KVM v7 series).

A ``Machine`` is one VM: a list of immutable ``VcpuState`` values, one per vCPU, replaced
atomically under a lock, so vCPU threads may call, signal each other and dispatch concurrently.
The machine reaches a vCPU's registers only through ``CpuRegs`` (x0-x17, PC, PSTATE, ELR_EL1,
SPSR_EL1, VBAR_EL1, SCTLR_EL1; ``call_regs`` says which for each job), so the same code drives
an in-memory CPU or a real vCPU via ONE_REG.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import ne
from typing import Final

from . import call_regs
from . import events as _events
from .affinity import MPIDR_AFFINITY_MASK as MPIDR_AFFINITY_MASK  # re-exported: their home
from .affinity import affinity_of as affinity_of  # was here
from .cpu import CALL_ARGS, CpuRegs, read_values, write_values
from .events import EVENTS, Event
from .spec import (
    ARITY,
    CONTEXT_REGS,
    INTID_PPI_FIRST,
    INTID_SPI_LAST,
    REGISTER_FLAGS_VALID,
    VERSION_1_1_KVM,
    EventType,
    Feature,
    Function,
    Info,
    Priority,
    RegisterFlags,
    Ret,
)
from .state import (
    U64_MAX,
    ZERO_CONTEXT,
    Context,
    EventState,
    HandlerState,
    VcpuState,
    handler_entry_pstate,
    pstate_mode_ok,
)
from .transitions import TRANSITIONS as TRANSITIONS
from .transitions import Action as Action
from .transitions import transition as transition


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What one SDEI call did. ``ret`` is the signed x0 the guest sees, unless ``completed``."""

    function_id: int
    ret: int
    completed: Event | None = None
    """For a successful COMPLETE / COMPLETE_AND_RESUME: the event whose handler finished; the
    vCPU's registers then hold the restored (or resumed) context, not a return value."""


Args = tuple[int, int, int, int, int]
_Handler = Callable[["Machine", int, Args], int]

_W0: Final = 0xFFFFFFFF  # SMCCC: the function id is w0
_NO_ARGS: Final[Args] = (0, 0, 0, 0, 0)
_NOT_SUPPORTED: Final = int(Ret.NOT_SUPPORTED)
_COMPLETIONS: Final = frozenset((Function.EVENT_COMPLETE, Function.EVENT_COMPLETE_AND_RESUME))
_DISPATCH_ORDER: Final = tuple(sorted(EVENTS, key=lambda e: (-e.priority, e.index)))
"""Events in the order dispatch considers them: critical first, then by index."""
_UNREGISTERED: Final = (EventState(), EventState(running=True))
"""UNREGISTER's result, by whether the handler still runs."""

# Enum members used on every exit, as plain module constants: on Python 3.11 reading a member
# through its class (``Action.DISPATCH``) costs about 0.14 us, a module global about 0.01 us.
_DISPATCH: Final = Action.DISPATCH
_COMPLETE: Final = Action.COMPLETE
_COMPLETE_AND_RESUME: Final = Action.COMPLETE_AND_RESUME
_FN_RESUME: Final = Function.EVENT_COMPLETE_AND_RESUME
_NORMAL: Final = Priority.NORMAL
_CRITICAL: Final = Priority.CRITICAL
_DENIED: Final = int(Ret.DENIED)
_INVALID_PARAMETERS: Final = int(Ret.INVALID_PARAMETERS)


class Machine:
    """SDEI for one VM of any number of vCPUs, following DESIGN section 5."""

    def __init__(
        self,
        nr_vcpus: int,
        *,
        enabled: bool = True,
        on_pending: Callable[[int], None] | None = None,
    ) -> None:
        if nr_vcpus < 1:
            raise ValueError(f"a VM needs at least one vCPU, not {nr_vcpus}")
        self._states: list[VcpuState] = [VcpuState() for _ in range(nr_vcpus)]
        self._by_affinity = {affinity_of(i): i for i in range(nr_vcpus)}
        self._lock = threading.RLock()
        self.enabled = enabled
        """The feature gate (bit 1 of KVM_REG_ARM_STD_BMAP): off, every call is NOT_SUPPORTED
        and nothing is injected or dispatched, whatever state ONE_REG wrote (DESIGN section 4)."""
        self.has_run = False
        """True once any vCPU made a call or passed a dispatch check (the VM "has run")."""
        self.on_pending = on_pending
        """Called with a vCPU index each time a signal or injection makes an event pending there
        that was not pending (edge-triggered: a trigger on a pending event merges into it), so
        a VMM can kick that vCPU out of KVM_RUN. Called without the machine's lock held."""
        self._kicks: list[int] = []

    # -- state access ---------------------------------------------------------------------

    @property
    def nr_vcpus(self) -> int:
        return len(self._states)

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def state(self, vcpu: int) -> VcpuState:
        return self._states[self._check_vcpu(vcpu)]

    def set_state(self, vcpu: int, state: VcpuState) -> None:
        with self._lock:
            self._states[self._check_vcpu(vcpu)] = state

    def states(self) -> tuple[VcpuState, ...]:
        with self._lock:
            return tuple(self._states)

    def vcpu_by_mpidr(self, mpidr: int) -> int | None:
        """The vCPU whose affinity equals ``mpidr & 0xff00ffffff``, or None."""
        return self._by_affinity.get(mpidr & MPIDR_AFFINITY_MASK)

    def _check_vcpu(self, vcpu: int) -> int:
        if not 0 <= vcpu < len(self._states):
            raise IndexError(f"vCPU {vcpu} out of range 0..{len(self._states) - 1}")
        return vcpu

    # -- hypercalls -----------------------------------------------------------------------

    def hvc(self, vcpu: int, cpu: CpuRegs) -> CallOutcome:
        """Serve the SDEI call the guest made with x0 = function id and x1..x5 = arguments,
        writing the result the way KVM does (x0 = result, x1..x3 = 0, the rest unchanged; a
        successful COMPLETE / COMPLETE_AND_RESUME rewrites the context instead)."""
        x = read_values(cpu, CALL_ARGS)
        a: Args = (x[1], x[2], x[3], x[4], x[5])
        return self._serve(self._check_vcpu(vcpu), x[0] & _W0, a, 5, cpu)

    def serve(self, vcpu: int, function_id: int, cpu: CpuRegs) -> CallOutcome:
        """``hvc`` for a VMM at a hypercall exit, where each register costs an ioctl: reads
        only the arguments the function takes (``spec.ARITY``; none while the feature gate is
        off) and writes x0 and those of x1..x3 that were not read as 0 already."""
        self._check_vcpu(vcpu)
        fid = function_id & _W0
        n = ARITY.get(fid, 0)
        if not self.enabled:  # NOT_SUPPORTED whatever the arguments: read none
            return self._serve(vcpu, fid, None, 0, cpu)
        pad = call_regs.ARG_PAD[n]
        a = read_values(cpu, call_regs.ARG_REGS[n]) + pad if n else pad
        return self._serve(vcpu, fid, a, n, cpu)  # type: ignore[arg-type]

    def call(self, vcpu: int, function_id: int, args: Sequence[int], cpu: CpuRegs) -> CallOutcome:
        """Serve one call with explicit arguments (x1..x5; missing ones are 0)."""
        self._check_vcpu(vcpu)
        v5 = [int(v) & U64_MAX for v in args[:5]] + [0] * (5 - len(args[:5]))
        a: Args = (v5[0], v5[1], v5[2], v5[3], v5[4])
        return self._serve(vcpu, function_id & _W0, a, 0, cpu)

    def _serve(self, vcpu: int, fid: int, a: Args | None, known: int,
               cpu: CpuRegs) -> CallOutcome:
        """The call ``fid`` with arguments ``a`` (None: the gate was off when they would have
        been read); ``a[:known]`` are what x1.. hold, so a zero there needs no write."""
        with self._lock:
            if self._kicks:  # left by a call that raised
                self._kicks = []
            self.has_run = True
            x: Args = _NO_ARGS if a is None else a
            if a is None or not self.enabled:
                ret = _NOT_SUPPORTED
                known = 0
            elif fid in _COMPLETIONS:
                done = self._complete(vcpu, fid, x[0], cpu)
                if isinstance(done, CallOutcome):
                    return done
                ret = done
            else:
                handler = _HANDLERS.get(fid)
                ret = _NOT_SUPPORTED if handler is None else int(handler(self, vcpu, x))
            # x0 = the result; x1..x3 = 0, as smccc_set_retval() leaves them, unless read as 0.
            regs, zeros = call_regs.REPLY[(known < 1 or x[0] != 0) | (known < 2 or x[1] != 0) << 1
                                 | (known < 3 or x[2] != 0) << 2]
            write_values(cpu, regs, (ret & U64_MAX, *zeros))
            # Never alias the empty list: a later call appends to it (kicks sent twice).
            kicks: list[int] | tuple[()] = ()
            if self._kicks:
                kicks, self._kicks = self._kicks, []
        if kicks:
            self._kick(kicks)
        return CallOutcome(fid, ret - (1 << 64) if ret > 0 and ret >> 63 else ret)

    def _kick(self, vcpus: list[int]) -> None:
        if self.on_pending is not None:
            for v in vcpus:
                self.on_pending(v)

    # Each handler: (machine, vcpu, (x1..x5)) -> signed result; updates state on success.
    # The vCPU index was checked where the call came in (serve, call, hvc), and a target's
    # comes from the affinity table: handlers index the states directly.

    def _event_arg(self, number: int) -> Event | None:
        return _events.by_number(number)

    def _h_version(self, v: int, a: Args) -> int:
        return VERSION_1_1_KVM

    def _h_register(self, v: int, a: Args) -> int:
        number, ep, arg, flags, _affinity = a
        ev = self._event_arg(number)
        if ev is None or flags & ~REGISTER_FLAGS_VALID or ep == 0 or ep & 3:
            return Ret.INVALID_PARAMETERS
        st = self._states[v]
        es = st.event(ev)
        nxt = transition(es.handler_state, Action.REGISTER)
        if nxt is None:
            return Ret.DENIED
        # Routing mode and affinity are ignored for private events (all of KVM's events).
        # ep (non-zero, aligned) and arg (u64) are checked above: the new state is legal.
        es = EventState.trusted(bool(nxt & 1), bool(nxt & 2), bool(nxt & 4), False,
                                bool(flags & RegisterFlags.RELATIVE), ep, arg)
        self._states[v] = st.with_event(ev, es)
        return Ret.SUCCESS

    def _enable_disable(self, v: int, a: Args, action: Action) -> int:
        ev = self._event_arg(a[0])
        if ev is None:
            return Ret.INVALID_PARAMETERS
        st = self._states[v]
        es = st.event(ev)
        nxt = transition(es.handler_state, action)
        if nxt is None:
            return Ret.DENIED
        self._states[v] = st.with_event(ev, es.with_handler_state(nxt))
        return Ret.SUCCESS

    def _h_enable(self, v: int, a: Args) -> int:
        return self._enable_disable(v, a, Action.ENABLE)

    def _h_disable(self, v: int, a: Args) -> int:
        return self._enable_disable(v, a, Action.DISABLE)

    @staticmethod
    def _unregistered(es: EventState) -> EventState:
        """UNREGISTER's effect: entry point, argument, RELATIVE and a pending trigger go at
        once (canonical encoding); RUNNING stays until the handler completes."""
        return _UNREGISTERED[es.running]

    def _h_unregister(self, v: int, a: Args) -> int:
        ev = self._event_arg(a[0])
        if ev is None:
            return Ret.INVALID_PARAMETERS
        st = self._states[v]
        es = st.event(ev)
        if es.handler_state == HandlerState.UNREGISTER_PENDING:
            return Ret.PENDING  # "permitted and will return PENDING" (§5.1.8)
        if transition(es.handler_state, Action.UNREGISTER) is None:
            return Ret.DENIED
        self._states[v] = st.with_event(ev, self._unregistered(es))
        return Ret.PENDING if es.running else Ret.SUCCESS

    def _h_context(self, v: int, a: Args) -> int:
        if a[0] >= CONTEXT_REGS:  # parameter first, as TF-A
            return Ret.INVALID_PARAMETERS
        st = self._states[v]
        ev = st.innermost_running()
        if ev is None:
            return Ret.DENIED
        return st.contexts[ev.priority].x[a[0]]

    def _h_status(self, v: int, a: Args) -> int:
        ev = self._event_arg(a[0])
        if ev is None:
            return Ret.INVALID_PARAMETERS
        return self._states[v].event(ev).status

    def _h_get_info(self, v: int, a: Args) -> int:
        ev = self._event_arg(a[0])
        if ev is None:
            return Ret.INVALID_PARAMETERS
        info = a[1]
        if info == Info.EV_TYPE:
            return int(ev.type)
        if info == Info.EV_SIGNALED:
            return 0 if ev.signalable else 1  # spec polarity: 0 = can be signalled
        if info == Info.EV_PRIORITY:
            return int(ev.priority)
        # EV_ROUTING_MODE / EV_ROUTING_AFF exist only for shared events; others are reserved.
        return Ret.INVALID_PARAMETERS

    def _h_routing_set(self, v: int, a: Args) -> int:
        ev = self._event_arg(a[0])
        if ev is None or ev.type != EventType.SHARED:
            return Ret.INVALID_PARAMETERS
        raise AssertionError("the event table has no shared events")  # pragma: no cover

    def _h_pe_mask(self, v: int, a: Args) -> int:
        st = self._states[v]
        if st.masked:
            return 0
        self._states[v] = st.with_masked(True)
        return 1

    def _h_pe_unmask(self, v: int, a: Args) -> int:
        st = self._states[v]
        if st.masked:
            self._states[v] = st.with_masked(False)
        return Ret.SUCCESS

    def _h_interrupt_bind(self, v: int, a: Args) -> int:
        if not INTID_PPI_FIRST <= a[0] <= INTID_SPI_LAST:
            return Ret.INVALID_PARAMETERS  # SGIs, special INTIDs, LPIs, upper bits set
        return Ret.OUT_OF_RESOURCE  # FEATURES reports zero bind slots

    def _h_interrupt_release(self, v: int, a: Args) -> int:
        return Ret.INVALID_PARAMETERS  # nothing can be bound

    def _h_signal(self, v: int, a: Args) -> int:
        number, target_mpidr = a[0], a[1]
        ev = self._event_arg(number)
        if ev is None or not ev.signalable:
            return Ret.INVALID_PARAMETERS
        target = self.vcpu_by_mpidr(target_mpidr)
        if target is None:
            return Ret.INVALID_PARAMETERS
        st = self._states[target]
        es = st.event(ev)
        if not es.registered:
            return Ret.INVALID_PARAMETERS
        if not es.pending:  # edge-triggered: at most one pending per event
            self._states[target] = st.with_event(ev, es.with_pending(True))
            self._kicks.append(target)
        return Ret.SUCCESS

    def _h_features(self, v: int, a: Args) -> int:
        if a[0] == Feature.BIND_SLOTS:
            return 0
        if a[0] == Feature.RELATIVE_MODE:
            return 1
        return Ret.INVALID_PARAMETERS

    def _h_private_reset(self, v: int, a: Args) -> int:
        st = self._states[v]
        denied = False
        for ev, es in st.pairs():
            if es.running:
                denied = True  # the handler stays, unregister-pending
            if es.registered or es.running:
                st = st.with_event(ev, self._unregistered(es))
        self._states[v] = st
        return Ret.DENIED if denied else Ret.SUCCESS

    def _h_shared_reset(self, v: int, a: Args) -> int:
        return Ret.SUCCESS  # no shared events, no bindings

    # -- completion -----------------------------------------------------------------------

    def _complete(self, v: int, fid: int, x1: int, cpu: CpuRegs) -> CallOutcome | int:
        """COMPLETE / COMPLETE_AND_RESUME: the outcome, or the error code for the caller to
        write. Nothing running is DENIED, checked before the resume address."""
        st = self._states[v]
        ev = st.innermost_running()
        if ev is None:
            return _DENIED
        resume = fid == _FN_RESUME
        if resume and x1 & 3:
            return _INVALID_PARAMETERS
        es = st.event(ev)
        action = _COMPLETE_AND_RESUME if resume else _COMPLETE
        nxt = transition(es.handler_state, action)
        assert nxt is not None  # every running state permits completion
        ctx = st.contexts[ev.priority]
        if resume:
            # Like an exception taken to EL1 at resume_addr (§5.2.2), SCTLR_EL1 as it is now.
            (sctlr,) = read_values(cpu, call_regs.SCTLR)
            regs = call_regs.RESUME_WRITE
            values = (*ctx.x, ctx.pc, ctx.pstate, handler_entry_pstate(ctx.pstate, sctlr), x1)
        else:
            regs, values = call_regs.COMPLETE_WRITE, (*ctx.x, ctx.pstate, ctx.pc)
        # The status argument of COMPLETE is not acted on: EV_FAILED has no action in KVM.
        self._states[v] = st.with_event(ev, es.with_handler_state(nxt)).with_context(
            ev.priority, ZERO_CONTEXT
        )
        write_values(cpu, regs, values)
        return CallOutcome(fid, 0, completed=ev)

    # -- dispatch and injection -----------------------------------------------------------

    def deliverable(self, vcpu: int) -> Event | None:
        """The event the next entry into the guest would take, if any (critical first)."""
        st = self.state(vcpu)
        if st.masked or not self.enabled:
            return None
        normal_running = st.running_event(_NORMAL) is not None
        critical_running = st.running_event(_CRITICAL) is not None
        for ev in _DISPATCH_ORDER:
            es = st.events[ev.index]
            if not (es.pending and es.enabled) or transition(
                es.handler_state, _DISPATCH
            ) is None:
                continue
            if ev.priority == _CRITICAL and not critical_running:
                return ev
            if ev.priority == _NORMAL and not (normal_running or critical_running):
                return ev
        return None

    def dispatch(self, vcpu: int, cpu: CpuRegs) -> Event | None:
        """The entry check a VMM makes before running the vCPU: enter the handler of the
        highest-priority deliverable event, if any, and return that event."""
        with self._lock:
            self.has_run = True
            ev = self.deliverable(vcpu)
            if ev is None:
                return None
            st = self._states[vcpu]
            es = st.events[ev.index]
            # VBAR_EL1 is read only when the entry point is relative to it.
            vals = read_values(cpu, call_regs.DISPATCH_READ_RELATIVE if es.relative
                                else call_regs.DISPATCH_READ)
            x, pc, pstate, sctlr = tuple(vals[:18]), vals[18], vals[19], vals[20]
            if not pstate_mode_ok(pstate):
                # The guest is not at EL0/EL1 (e.g. nested EL2): SDEI's client EL is EL1, and
                # a context that returns to EL2 must never exist. The event stays pending.
                return None
            nxt = transition(es.handler_state, _DISPATCH)
            assert nxt is not None
            entry = (vals[21] + es.ep_addr) & U64_MAX if es.relative else es.ep_addr
            # Values read from the vCPU are u64 and the mode was checked just above.
            self._states[vcpu] = st.with_event(ev, EventState.trusted(
                bool(nxt & 1), bool(nxt & 2), bool(nxt & 4), False, es.relative, es.ep_addr,
                es.ep_arg)).with_context(ev.priority, Context.trusted(x, pc, pstate))
            new = (ev.number, es.ep_arg, pc, pstate, handler_entry_pstate(pstate, sctlr), entry)
            old = (x[0], x[1], x[2], x[3], pstate, pc)  # what those registers hold: read above
            changed = tuple(map(ne, new, old))
            write_values(cpu, tuple(compress(call_regs.DISPATCH_WRITE, changed)),
                         tuple(compress(new, changed)))
            return ev

    def inject(self, vcpu: int, number: int) -> bool:
        """Hypervisor injection (ASYNC_PF, or event 0): make a registered event pending.
        Refused (False, nothing changed) if the event is unknown or not registered there, or
        if the SDEI feature gate is off."""
        ev = self._event_arg(number)
        with self._lock:
            self._check_vcpu(vcpu)
            if ev is None or not self.enabled:
                return False
            st = self.state(vcpu)
            es = st.event(ev)
            if not es.registered:
                return False
            if es.pending:
                return True  # merges into the pending trigger
            self._states[vcpu] = st.with_event(ev, es.with_pending(True))
        self._kick([vcpu])
        return True


_HANDLERS: Final[Mapping[int, _Handler]] = {
    Function.VERSION: Machine._h_version,
    Function.EVENT_REGISTER: Machine._h_register,
    Function.EVENT_ENABLE: Machine._h_enable,
    Function.EVENT_DISABLE: Machine._h_disable,
    Function.EVENT_CONTEXT: Machine._h_context,
    Function.EVENT_UNREGISTER: Machine._h_unregister,
    Function.EVENT_STATUS: Machine._h_status,
    Function.EVENT_GET_INFO: Machine._h_get_info,
    Function.EVENT_ROUTING_SET: Machine._h_routing_set,
    Function.PE_MASK: Machine._h_pe_mask,
    Function.PE_UNMASK: Machine._h_pe_unmask,
    Function.INTERRUPT_BIND: Machine._h_interrupt_bind,
    Function.INTERRUPT_RELEASE: Machine._h_interrupt_release,
    Function.EVENT_SIGNAL: Machine._h_signal,
    Function.FEATURES: Machine._h_features,
    Function.PRIVATE_RESET: Machine._h_private_reset,
    Function.SHARED_RESET: Machine._h_shared_reset,
}
"""Every function id except the two completions, which rewrite the context (``_complete``)."""
