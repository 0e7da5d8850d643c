"""The guest programs of the SDEI selftests (issue 5), one function per scenario.

Each function returns a built ``GuestProgram``; ``PROGRAMS`` lists them by name with their
default arguments. What each program checks, and the doorbells it rings, is in docs/guest.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from ..events import ASYNC_PF, SW_SIGNALED
from ..spec import Feature, Function, Info, RegisterFlags
from .builder import (
    ALT_VECTORS,
    EP_ARG_BASE,
    HANDLER_FILL_BASE,
    RESUME,
    VCPU0_MPIDR,
    VECTORS,
    Addr,
    Arg,
    Call,
    Complete,
    CompleteAndResume,
    Conduit,
    Fill,
    Finish,
    GuestProgram,
    Handler,
    Offset,
    ProgramError,
    ProgramSpec,
    Region,
    SetVbar,
    Step,
    Trigger,
    build,
    handler_label,
)
from .doorbell import BellKind, bell_code

F = Function
EV0: Final = SW_SIGNALED.number
EV_PF: Final = ASYNC_PF.number


def _named(name: str, conduit: Conduit) -> str:
    """Programs that use the SMC conduit carry it in their name."""
    return name if conduit is Conduit.HVC else f"{name}-{conduit.value}"


def _c(fn: int, *args: Arg) -> Call:
    return Call(int(fn), args)


def _context_calls() -> tuple[Call, ...]:
    return tuple(_c(F.EVENT_CONTEXT, r) for r in range(18))


def _handler_fill() -> Fill:
    return Fill(6, tuple(HANDLER_FILL_BASE | r for r in range(6, 16)))


def calls_tour(conduit: Conduit = Conduit.HVC, target_mpidr: int = VCPU0_MPIDR) -> GuestProgram:
    """Every SDEI call outside a handler, with valid and invalid arguments; no dispatch."""
    ep = Addr(handler_label("tour"))
    main = (
        _c(F.VERSION),
        _c(0xFFFF_FFFF_0000_0000 | F.VERSION),  # SMCCC: only w0 is the function id
        _c(F.FEATURES, Feature.BIND_SLOTS), _c(F.FEATURES, Feature.RELATIVE_MODE),
        _c(F.FEATURES, 2),
        *(_c(F.EVENT_GET_INFO, EV0, info) for info in Info), _c(F.EVENT_GET_INFO, EV0, 5),
        *(_c(F.EVENT_GET_INFO, EV_PF, info) for info in (Info.EV_TYPE, Info.EV_SIGNALED,
                                                         Info.EV_PRIORITY)),
        _c(F.EVENT_GET_INFO, 1, Info.EV_TYPE), _c(F.EVENT_GET_INFO, 1 << 32, Info.EV_TYPE),
        _c(F.EVENT_STATUS, EV0), _c(F.EVENT_STATUS, EV_PF), _c(F.EVENT_STATUS, 0x12345),
        _c(F.EVENT_CONTEXT, 0), _c(F.EVENT_CONTEXT, 18),
        _c(F.EVENT_COMPLETE, 0), _c(F.EVENT_COMPLETE_AND_RESUME, Addr(RESUME)),
        _c(F.EVENT_COMPLETE_AND_RESUME, Addr(RESUME, 2)),
        _c(F.EVENT_ENABLE, EV0), _c(F.EVENT_DISABLE, EV0), _c(F.EVENT_UNREGISTER, EV0),
        _c(F.EVENT_REGISTER, EV0, 0), _c(F.EVENT_REGISTER, EV0, Addr(ep.label, 2)),
        _c(F.EVENT_REGISTER, EV0, ep, 0, 4), _c(F.EVENT_REGISTER, 7, ep),
        _c(F.EVENT_REGISTER, EV0, ep, EP_ARG_BASE, 0, 0), _c(F.EVENT_REGISTER, EV0, ep),
        _c(F.EVENT_STATUS, EV0), _c(F.EVENT_ENABLE, EV0), _c(F.EVENT_ENABLE, EV0),
        _c(F.EVENT_STATUS, EV0), _c(F.EVENT_DISABLE, EV0), _c(F.EVENT_STATUS, EV0),
        _c(F.EVENT_ROUTING_SET, EV0, 0, 0),
        _c(F.INTERRUPT_BIND, 5), _c(F.INTERRUPT_BIND, 29), _c(F.INTERRUPT_BIND, 1020),
        _c(F.INTERRUPT_RELEASE, EV0),
        _c(F.EVENT_SIGNAL, 1, target_mpidr), _c(F.EVENT_SIGNAL, EV_PF, target_mpidr),
        _c(F.EVENT_SIGNAL, EV0, target_mpidr | 0xFF),
        _c(F.PE_MASK), _c(F.PE_UNMASK), _c(F.PE_MASK), _c(F.PE_UNMASK),
        _c(F.EVENT_SIGNAL, EV0, target_mpidr),  # pending, but disabled: no dispatch
        _c(F.EVENT_STATUS, EV0), _c(F.EVENT_UNREGISTER, EV0), _c(F.EVENT_STATUS, EV0),
        _c(0x8400_0020), _c(0xC400_0033), _c(0xC400_003F),
        _c(F.PRIVATE_RESET), _c(F.SHARED_RESET), _c(F.PE_MASK),
    )
    return build(ProgramSpec(
        _named("calls", conduit),
        "every call outside a handler, valid and invalid arguments; no dispatch",
        main, (Handler("tour", EV0),), conduit=conduit))


def _register(event: int, handler: str, slot_arg: int, flags: int = 0,
              ep: Arg | None = None) -> Call:
    return _c(F.EVENT_REGISTER, event, ep or Addr(handler_label(handler)),
              EP_ARG_BASE | slot_arg, flags, 0)


def dispatch(finish: str = "complete", conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """Event 0 injected at the idle loop; the handler reads its state and its context and
    leaves with COMPLETE (``finish="complete"``) or COMPLETE_AND_RESUME to the resume stub
    (``"resume"``), whose calls show the state after completion."""
    if finish not in ("complete", "resume"):
        raise ProgramError(f"finish = {finish!r}: use 'complete' or 'resume'")
    leave: Finish = Complete() if finish == "complete" else CompleteAndResume()
    steps = (_c(F.EVENT_STATUS, EV0), *_context_calls(), _c(F.EVENT_CONTEXT, 18),
             _c(F.EVENT_GET_INFO, EV0, Info.EV_PRIORITY), _c(F.EVENT_STATUS, EV_PF),
             _c(F.EVENT_REGISTER, EV0, Addr(handler_label("sdei"))))
    after = (_c(F.EVENT_STATUS, EV0), _c(F.EVENT_CONTEXT, 0), _c(F.EVENT_COMPLETE, 0))
    return build(ProgramSpec(
        _named(f"dispatch-{finish}", conduit),
        f"event 0 at the idle loop, handler leaves with {leave}",
        (_register(EV0, "sdei", 0), _c(F.EVENT_ENABLE, EV0), _c(F.PE_UNMASK)),
        (Handler("sdei", EV0, steps, leave),), after,
        (Trigger(bell_code(BellKind.IDLE), EV0),), conduit))


def self_signal(target_mpidr: int = VCPU0_MPIDR, conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """Main signals event 0 to itself: the handler runs at the entry right after the SIGNAL
    call, interrupting main just past its hvc; main then checks the state."""
    main = (_register(EV0, "sdei", 0), _c(F.EVENT_ENABLE, EV0), _c(F.PE_UNMASK),
            Fill(6, tuple(0x6000 + r for r in range(6, 27))),
            _c(F.EVENT_SIGNAL, EV0, target_mpidr), _c(F.EVENT_STATUS, EV0),
            _c(F.EVENT_CONTEXT, 0))
    steps = (_c(F.EVENT_STATUS, EV0), *_context_calls())
    return build(ProgramSpec(
        _named("self-signal", conduit),
        "EVENT_SIGNAL to itself: dispatch at the entry after the call",
        main, (Handler("sdei", EV0, steps),), conduit=conduit))


def unregister_in_handler(conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """The handler unregisters its own event: PENDING, unregister-pending status, calls that
    are denied in that state; after COMPLETE_AND_RESUME the event is unregistered."""
    steps = (_c(F.EVENT_UNREGISTER, EV0), _c(F.EVENT_UNREGISTER, EV0), _c(F.EVENT_STATUS, EV0),
             _c(F.EVENT_ENABLE, EV0), _c(F.EVENT_DISABLE, EV0),
             _c(F.EVENT_REGISTER, EV0, Addr(handler_label("sdei"))), _c(F.EVENT_CONTEXT, 3),
             _c(F.PRIVATE_RESET), _c(F.EVENT_STATUS, EV0))
    after = (_c(F.EVENT_STATUS, EV0), _c(F.EVENT_CONTEXT, 0),
             _c(F.EVENT_REGISTER, EV0, Addr(handler_label("sdei"))), _c(F.EVENT_STATUS, EV0))
    return build(ProgramSpec(
        _named("unregister-in-handler", conduit), "EVENT_UNREGISTER inside the running handler",
        (_register(EV0, "sdei", 0), _c(F.EVENT_ENABLE, EV0), _c(F.PE_UNMASK)),
        (Handler("sdei", EV0, steps, CompleteAndResume()),), after,
        (Trigger(bell_code(BellKind.IDLE), EV0),), conduit))


def nested(both_at_idle: bool = False, conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """A critical ASYNC_PF handler over a normal event-0 handler.

    Default: event 0 at the idle loop; ASYNC_PF injected at the normal handler's first call
    doorbell, so the critical handler interrupts the normal one (whose x6..x15 hold
    ``HANDLER_FILL_BASE | n``). ``both_at_idle``: both injected at the idle loop; the
    critical handler runs first, the normal one after it completes."""
    normal: tuple[Call | Fill, ...] = (
        _handler_fill(), _c(F.EVENT_STATUS, EV0), _c(F.EVENT_STATUS, EV_PF), *_context_calls())
    critical = (_c(F.EVENT_STATUS, EV_PF), _c(F.EVENT_STATUS, EV0), *_context_calls(),
                _c(F.EVENT_GET_INFO, EV_PF, Info.EV_PRIORITY))
    idle = bell_code(BellKind.IDLE)
    triggers = ((Trigger(idle, EV0), Trigger(idle, EV_PF)) if both_at_idle else
                (Trigger(idle, EV0), Trigger(bell_code(BellKind.HANDLER_CALL, 0, 0), EV_PF)))
    return build(ProgramSpec(
        _named("nested-both" if both_at_idle else "nested", conduit),
        "critical ASYNC_PF handler " + ("first, then normal" if both_at_idle
                                        else "nested on the normal handler"),
        (_register(EV0, "normal", 0), _register(EV_PF, "critical", 1),
         _c(F.EVENT_ENABLE, EV0), _c(F.EVENT_ENABLE, EV_PF), _c(F.PE_UNMASK)),
        (Handler("normal", EV0, normal), Handler("critical", EV_PF, critical)),
        triggers=triggers, conduit=conduit))


def relative(switch_vbar: bool = False, conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """Relative-mode registration: ep = handler - VBAR_EL1. With ``switch_vbar`` main moves
    VBAR_EL1 to the second table before idling, so the dispatch lands on the handler at the
    same offset from it ("rel_alt"), as VBAR_EL1 is read at dispatch."""
    ep = Offset(handler_label("rel"), VECTORS)
    main: tuple[Step, ...] = (
        _register(EV0, "rel", 0, int(RegisterFlags.RELATIVE), ep), _c(F.EVENT_STATUS, EV0),
        _c(F.EVENT_ENABLE, EV0), _c(F.PE_UNMASK))
    if switch_vbar:
        main += (SetVbar(ALT_VECTORS),)
    steps = (_c(F.EVENT_STATUS, EV0), _c(F.EVENT_CONTEXT, 0))
    prog = build(ProgramSpec(
        _named("relative-vbar-switch" if switch_vbar else "relative", conduit),
        "relative-mode entry point" + (", VBAR_EL1 changed after registering"
                                       if switch_vbar else ""),
        main, (Handler("rel", EV0, steps), Handler("rel_alt", EV0, steps, region=Region.ALT)),
        triggers=(Trigger(bell_code(BellKind.IDLE), EV0),), conduit=conduit))
    off = prog.handler("rel").address - prog.symbol(VECTORS)
    if prog.handler("rel_alt").address - prog.symbol(ALT_VECTORS) != off:
        raise ProgramError("relative: the two handlers are not at the same offset from "
                           "their vector tables")
    return prog


PROGRAMS: Final[Mapping[str, Callable[[], GuestProgram]]] = MappingProxyType({
    "calls": calls_tour,
    "calls-smc": lambda: calls_tour(Conduit.SMC),
    "dispatch-complete": lambda: dispatch("complete"),
    "dispatch-resume": lambda: dispatch("resume"),
    "self-signal": self_signal,
    "unregister-in-handler": unregister_in_handler,
    "nested": nested,
    "nested-both": lambda: nested(both_at_idle=True),
    "relative": relative,
    "relative-vbar-switch": lambda: relative(switch_vbar=True),
})
"""The selftest programs by name (each call builds a fresh, identical program)."""
