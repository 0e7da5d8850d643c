"""Immutable per-vCPU SDEI state and its invariants: the one statement of each state rule.

Construction rejects what DEN0054C calls undefined (``event_flags_problem``: (Reg,Ena,Run) =
(0,1,x), PENDING or RELATIVE without REGISTERED), a context PSTATE that would return to EL2/EL3
(``context_pstate_problem``) and values outside u64. The stricter *canonical* facts that only
the whole vCPU can show (no context for an idle class, no entry point or argument for an
unregistered event, a non-zero entry point for a registered one) are reported by
``VcpuState.canonical_problems``, so that registers may be written one at a time, in any order,
as KVM allows. The register encoding (``sdei_state.regs``) imports these rules and adds only
what is about the encoding: RES0 bits, EP_ADDR alignment, register names.

The checks run where outside input becomes a state (a constructor call, the register codec).
The machine's own transitions derive a state from a checked one by rules that keep every
invariant, so they use the ``trusted`` constructors and the ``with_*`` helpers, which skip
``__post_init__`` (a frozen dataclass re-checks every field on each ``replace``: most of a
call's Python time before this split).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import Final, Literal, NamedTuple

from .events import EVENTS, Event
from .spec import CONTEXT_REGS, Priority, Status

U64_MAX: Final = (1 << 64) - 1


class StateError(ValueError):
    """A state the spec calls undefined or the register ABI refuses. Names the field and value."""


class HandlerState(IntEnum):
    """The six legal (Reg, Ena, Run) states of DEN0054C Table 13; the value is the STATUS result."""

    UNREGISTERED = 0b000
    REGISTERED = 0b001
    ENABLED = 0b011
    UNREGISTER_PENDING = 0b100
    REGISTERED_RUNNING = 0b101
    ENABLED_RUNNING = 0b111

    @property
    def registered(self) -> bool:
        return bool(self & Status.REGISTERED)

    @property
    def enabled(self) -> bool:
        return bool(self & Status.ENABLED)

    @property
    def running(self) -> bool:
        return bool(self & Status.RUNNING)

    @property
    def mnemonic(self) -> str:
        """TF-A style: capital letter = bit set, in R(un) E(nabled) G(registered) order."""
        return (
            ("R" if self.running else "r")
            + ("E" if self.enabled else "e")
            + ("G" if self.registered else "g")
        )


LEGAL_STATUS: Final = frozenset(int(s) for s in HandlerState)
_BY_STATUS: Final[tuple[HandlerState | None, ...]] = tuple(
    HandlerState(v) if v in LEGAL_STATUS else None for v in range(8))
"""Status bits -> HandlerState without an enum call (None: undefined, refused on construction)."""

# Plain ints: an IntEnum & IntFlag goes through the flag's Python-level operator.
_REGISTERED: Final = int(Status.REGISTERED)
_ENABLED: Final = int(Status.ENABLED)
_RUNNING: Final = int(Status.RUNNING)

# Frozen slotted dataclasses refuse setattr; their own __init__ goes through this too.
_new = object.__new__
_set = object.__setattr__


def event_flags_problem(
    registered: bool, enabled: bool, running: bool, pending: bool, relative: bool
) -> tuple[str, str] | None:
    """Why one event's flags are no state at all, as (field at fault, reason), or None.

    (Reg,Ena,Run) must be one of the six states of DEN0054C Table 13; a pending trigger and the
    relative entry-point mode exist only for a registered handler."""
    if int(registered) | int(enabled) << 1 | int(running) << 2 not in LEGAL_STATUS:
        return ("ENABLED", f"(REGISTERED,ENABLED,RUNNING) = ({int(registered)},{int(enabled)},"
                           f"{int(running)}) is not one of the six handler states of DEN0054C "
                           "Table 13 (ENABLED without REGISTERED)")
    if pending and not registered:
        return ("PENDING", "PENDING set on an event that is not REGISTERED")
    if relative and not registered:
        return ("RELATIVE", "RELATIVE set on an event that is not REGISTERED")
    return None


# PSTATE fields the model touches (Arm ARM, SPSR_EL1 layout for AArch64).
PSTATE_MODE_MASK: Final = 0x1F  # M[4] = nRW (1: AArch32), M[3:0] = EL and SP selection
PSTATE_NRW: Final = 1 << 4
PSTATE_F: Final = 1 << 6
PSTATE_I: Final = 1 << 7
PSTATE_A: Final = 1 << 8
PSTATE_D: Final = 1 << 9
PSTATE_DAIF: Final = PSTATE_D | PSTATE_A | PSTATE_I | PSTATE_F
PSTATE_BTYPE: Final = 0b11 << 10
PSTATE_IL: Final = 1 << 20
PSTATE_SS: Final = 1 << 21
PSTATE_SSBS: Final = 1 << 12
PSTATE_PAN: Final = 1 << 22
PSTATE_DIT: Final = 1 << 24
PSTATE_NZCV: Final = 0xF << 28
PSTATE_KEPT: Final = PSTATE_NZCV | PSTATE_DIT | PSTATE_PAN
"""What an exception taken to EL1 keeps of the interrupted PSTATE. In the SPSR_ELx layout of
KVM's ``regs.pstate`` these bits sit at the same positions for an AArch32 state, so one rule
serves both (AArch32's Q, IT, GE, E, T and its SSBS at bit 23 do not carry over)."""

# SCTLR_EL1 fields that exception entry reads (Arm ARM D19, SCTLR_EL1).
SCTLR_SPAN: Final = 1 << 23  # 0: PAN is set on taking an exception to EL1
SCTLR_DSSBS: Final = 1 << 44  # PSTATE.SSBS on taking an exception to EL1
RESET_SCTLR_EL1: Final = 0x00C50078
"""KVM's reset SCTLR_EL1 (``reset_val`` in arch/arm64/kvm/sys_regs.c): SPAN set, DSSBS clear."""


class Mode(IntEnum):
    """PSTATE.M[4:0] values."""

    EL0T = 0b00000
    EL1T = 0b00100
    EL1H = 0b00101
    EL2T = 0b01000
    EL2H = 0b01001
    EL3T = 0b01100
    EL3H = 0b01101
    AARCH32_USR = 0b10000


CONTEXT_MODES: Final = frozenset({Mode.EL0T, Mode.EL1T, Mode.EL1H, Mode.AARCH32_USR})
"""Modes a saved context may hold: a restored context never returns the guest to EL2 or EL3."""

MODE_NAMES: Final[Mapping[int, str]] = MappingProxyType({
    Mode.EL0T: "EL0t",
    Mode.EL1T: "EL1t",
    Mode.EL1H: "EL1h",
    Mode.EL2T: "EL2t",
    Mode.EL2H: "EL2h",
    Mode.EL3T: "EL3t",
    Mode.EL3H: "EL3h",
    Mode.AARCH32_USR: "AArch32 User",
    # The other AArch32 modes (Arm ARM, PSTATE.M encodings), named only for messages.
    0b10001: "AArch32 FIQ",
    0b10010: "AArch32 IRQ",
    0b10011: "AArch32 Supervisor",
    0b10110: "AArch32 Monitor",
    0b10111: "AArch32 Abort",
    0b11010: "AArch32 Hyp",
    0b11011: "AArch32 Undefined",
    0b11111: "AArch32 System",
})
"""Names of PSTATE.M[4:0] values; a value missing here is no mode at all."""


def mode_name(mode: int) -> str:
    """``EL1h``, ``AArch32 User``, ... or ``not a mode``."""
    return MODE_NAMES.get(mode, "not a mode")


def context_pstate_problem(pstate: int) -> str | None:
    """Why a saved context's PSTATE is refused (its mode is not one a context may hold), or
    None. Only the mode is judged: the other bits are stored as given."""
    mode = pstate & PSTATE_MODE_MASK
    if mode in CONTEXT_MODES:
        return None
    return (f"PSTATE M[4:0] = {mode:#07b} ({mode_name(mode)}) is not AArch64 EL0t, EL1t, EL1h "
            "or AArch32 User: a restored context must not return to EL2 or EL3")


def pstate_mode_ok(pstate: int) -> bool:
    """True if a context may hold ``pstate`` (``context_pstate_problem`` finds nothing)."""
    return context_pstate_problem(pstate) is None


_ENTRY_BITS: Final = PSTATE_DAIF | int(Mode.EL1H)
"""What every handler entry sets: DAIF and EL1h (one constant: an enum member read through its
class costs about 0.14 us on Python 3.11, and this runs at every dispatch)."""


def handler_entry_pstate(interrupted: int, sctlr_el1: int = RESET_SCTLR_EL1) -> int:
    """PSTATE on handler entry (DESIGN section 5): what ``AArch64.TakeException()`` gives for
    an exception taken to EL1 from ``interrupted`` with ``sctlr_el1`` at that moment (KVM's
    reset value if not given: a guest that never wrote SCTLR_EL1), as KVM's
    ``enter_exception64()`` and TF-A's ``create_spsr()`` compute it. EL1h, nRW 0, DAIF set;
    NZCV, DIT and PAN kept; PAN set when SCTLR_EL1.SPAN is 0; SSBS = SCTLR_EL1.DSSBS; UAO, TCO
    (no MTE), SS, IL, BTYPE, ALLINT and every other bit 0."""
    entry = (interrupted & PSTATE_KEPT) | _ENTRY_BITS
    if not sctlr_el1 & SCTLR_SPAN:
        entry |= PSTATE_PAN
    if sctlr_el1 & SCTLR_DSSBS:
        entry |= PSTATE_SSBS
    return entry


def _check_u64(what: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= U64_MAX:
        raise StateError(f"{what} = {value!r} is not an unsigned 64-bit value")


def _check_needs_registered(registered: bool, pending: bool, relative: bool) -> None:
    """The part of ``event_flags_problem`` a transition to a legal handler state can break."""
    if not registered and (pending or relative):
        bad = event_flags_problem(False, False, False, pending, relative)
        assert bad is not None
        raise StateError(bad[1])


@dataclass(frozen=True, slots=True)
class EventState:
    """One event's state on one vCPU."""

    registered: bool = False
    enabled: bool = False
    running: bool = False
    pending: bool = False
    relative: bool = False
    ep_addr: int = 0
    ep_arg: int = 0

    def __post_init__(self) -> None:
        bad = event_flags_problem(self.registered, self.enabled, self.running, self.pending,
                                  self.relative)
        if bad is not None:
            raise StateError(bad[1])
        _check_u64("ep_addr", self.ep_addr)
        _check_u64("ep_arg", self.ep_arg)

    @classmethod
    def trusted(cls, registered: bool = False, enabled: bool = False, running: bool = False,
                pending: bool = False, relative: bool = False, ep_addr: int = 0,
                ep_arg: int = 0) -> EventState:
        """An ``EventState`` built without the checks: only for a value the caller derived
        from checked ones by a rule that keeps the invariants (the machine's transitions)."""
        es = _new(cls)
        _set(es, "registered", registered)
        _set(es, "enabled", enabled)
        _set(es, "running", running)
        _set(es, "pending", pending)
        _set(es, "relative", relative)
        _set(es, "ep_addr", ep_addr)
        _set(es, "ep_arg", ep_arg)
        return es

    @property
    def handler_state(self) -> HandlerState:
        hs = _BY_STATUS[self.status]
        assert hs is not None  # construction refuses (Reg,Ena) = (0,1)
        return hs

    @property
    def status(self) -> int:
        """The EVENT_STATUS result: bit0 registered, bit1 enabled, bit2 running."""
        return int(self.registered) | self.enabled << 1 | self.running << 2

    def with_handler_state(self, hs: HandlerState) -> EventState:
        """This event in handler state ``hs`` (a legal state), the rest unchanged; the one
        rule a new handler state can break (PENDING or RELATIVE kept without REGISTERED) is
        checked again."""
        registered = bool(hs & _REGISTERED)
        _check_needs_registered(registered, self.pending, self.relative)
        return EventState.trusted(registered, bool(hs & _ENABLED),
                                  bool(hs & _RUNNING), self.pending, self.relative,
                                  self.ep_addr, self.ep_arg)

    def with_pending(self, pending: bool) -> EventState:
        """This event with PENDING set or cleared (set only on a registered one)."""
        _check_needs_registered(self.registered, pending, False)
        return EventState.trusted(self.registered, self.enabled, self.running, pending,
                                  self.relative, self.ep_addr, self.ep_arg)


@dataclass(frozen=True, slots=True)
class Context:
    """The interrupted context saved at dispatch for one priority class."""

    x: tuple[int, ...] = (0,) * CONTEXT_REGS
    pc: int = 0
    pstate: int = 0

    def __post_init__(self) -> None:
        if len(self.x) != CONTEXT_REGS:
            raise StateError(f"context holds {len(self.x)} registers, not x0..x17")
        for i, v in enumerate(self.x):
            _check_u64(f"x{i}", v)
        _check_u64("pc", self.pc)
        _check_u64("pstate", self.pstate)
        bad = context_pstate_problem(self.pstate)
        if bad is not None:
            raise StateError(f"pstate = {self.pstate:#x}: {bad}")

    @classmethod
    def trusted(cls, x: tuple[int, ...], pc: int, pstate: int) -> Context:
        """A context built without the checks, for dispatch: 18 u64 register values as a
        ``CpuRegs`` returns them, and a PSTATE whose mode the caller has checked."""
        ctx = _new(cls)
        _set(ctx, "x", x)
        _set(ctx, "pc", pc)
        _set(ctx, "pstate", pstate)
        return ctx

    @property
    def is_zero(self) -> bool:
        return self.pc == 0 and self.pstate == 0 and not any(self.x)


ZERO_CONTEXT: Final = Context()


class CanonicalProblem(NamedTuple):
    """A fact of a state that no sequence of calls produces (DESIGN section 4)."""

    part: Literal["context", "ep_addr", "ep_arg"]
    """What is wrong: a class's context, or an event's entry point or argument."""
    which: int
    """The priority class (``context``) or the event index (``ep_addr``, ``ep_arg``)."""
    text: str


def _reset_events() -> tuple[EventState, ...]:
    return tuple(EventState() for _ in EVENTS)


@dataclass(frozen=True, slots=True)
class VcpuState:
    """Everything SDEI keeps for one vCPU: the mask, each event's state, a context per class."""

    masked: bool = True
    events: tuple[EventState, ...] = field(default_factory=_reset_events)
    contexts: tuple[Context, Context] = (ZERO_CONTEXT, ZERO_CONTEXT)

    def __post_init__(self) -> None:
        if len(self.events) != len(EVENTS):
            raise StateError(f"{len(self.events)} event states for {len(EVENTS)} events")
        if len(self.contexts) != len(Priority):
            raise StateError(f"{len(self.contexts)} contexts for {len(Priority)} classes")
        for cls in Priority:
            running = [e.name for e, s in self.pairs() if s.running and e.priority == cls]
            if len(running) > 1:
                raise StateError(f"{cls.name} class has {len(running)} running handlers: {running}")

    @classmethod
    def trusted(cls, masked: bool, events: tuple[EventState, ...],
                contexts: tuple[Context, Context]) -> VcpuState:
        """A ``VcpuState`` built without the checks (see ``EventState.trusted``)."""
        st = _new(cls)
        _set(st, "masked", masked)
        _set(st, "events", events)
        _set(st, "contexts", contexts)
        return st

    def pairs(self) -> Iterator[tuple[Event, EventState]]:
        return zip(EVENTS, self.events, strict=True)

    def event(self, ev: Event) -> EventState:
        return self.events[ev.index]

    def with_event(self, ev: Event, es: EventState) -> VcpuState:
        """This state with event ``ev`` replaced by ``es`` (itself checked when it was built).
        Only the one cross-event rule ``es`` can break is checked again."""
        if es.running:
            for other in _CLASS_PEERS[ev.index]:
                if self.events[other].running:
                    raise StateError(f"{ev.priority.name} class would have 2 running handlers")
        events = list(self.events)
        events[ev.index] = es
        return VcpuState.trusted(self.masked, tuple(events), self.contexts)

    def with_context(self, cls: Priority, ctx: Context) -> VcpuState:
        contexts = (ctx, self.contexts[1]) if cls == 0 else (self.contexts[0], ctx)
        return VcpuState.trusted(self.masked, self.events, contexts)

    def with_masked(self, masked: bool) -> VcpuState:
        return VcpuState.trusted(masked, self.events, self.contexts)

    def running_event(self, cls: Priority) -> Event | None:
        """The event whose handler of this class is running, if any."""
        events = self.events
        for i in _CLASS_MEMBERS[cls]:
            if events[i].running:
                return EVENTS[i]
        return None

    def innermost_running(self) -> Event | None:
        """The running handler that a CONTEXT or COMPLETE call refers to: critical first."""
        return self.running_event(_CRITICAL) or self.running_event(_NORMAL)

    def canonical_problems(self) -> list[CanonicalProblem]:
        """Facts the model could never produce (DESIGN section 4): a non-zero context for a
        class with no running handler; an entry point or argument for an unregistered event
        (UNREGISTER and PRIVATE_RESET clear them); a registered event whose entry point is 0
        (REGISTER refuses 0, so dispatch could never legitimately enter at 0)."""
        problems: list[CanonicalProblem] = []
        for cls in Priority:
            if self.running_event(cls) is None and not self.contexts[cls].is_zero:
                name = cls.name.lower()
                problems.append(CanonicalProblem(
                    "context", cls, f"a non-zero {name} context, but no {name} handler is running"))
        for ev, es in self.pairs():
            if es.registered:
                if not es.ep_addr:
                    problems.append(CanonicalProblem(
                        "ep_addr", ev.index, f"entry point 0 for event {ev.index} ({ev.name}), "
                        "which is REGISTERED: REGISTER refuses 0"))
                continue
            if es.ep_addr:
                problems.append(CanonicalProblem(
                    "ep_addr", ev.index, f"a non-zero entry point for event {ev.index} "
                    f"({ev.name}), which is not REGISTERED"))
            if es.ep_arg:
                problems.append(CanonicalProblem(
                    "ep_arg", ev.index, f"a non-zero argument for event {ev.index} "
                    f"({ev.name}), which is not REGISTERED"))
        return problems


_CLASS_MEMBERS: Final = tuple(tuple(e.index for e in EVENTS if e.priority == cls)
                              for cls in Priority)
"""Priority class -> the indices of its events."""
_CLASS_PEERS: Final = tuple(tuple(i for i in _CLASS_MEMBERS[e.priority] if i != e.index)
                            for e in EVENTS)
"""Event index -> the other events of its class (none with today's table)."""

_CRITICAL: Final = Priority.CRITICAL
_NORMAL: Final = Priority.NORMAL
"""As module constants for ``innermost_running`` (every COMPLETE and CONTEXT call)."""

RESET_STATE: Final = VcpuState()
