"""The guest programs of the SDEI selftests (issue 5), one function per scenario.

Each function returns a built ``GuestProgram``; ``PROGRAMS`` lists them by name with their
default arguments. What each program checks, and the doorbells it rings, is in docs/guest.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Final

from ...events import ASYNC_PF, SW_SIGNALED
from ...guest import a64 as A
from ...guest.asm import Asm, Image
from ...guest.doorbell import BellKind, bell_code
from ...guest.layout import LAYOUT, Layout
from ...machine import affinity_of
from ...spec import Feature, Function, Info, RegisterFlags
from .builder import build
from .program import (
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
    handler_label,
)

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


def masked_until_unmask(conduit: Conduit = Conduit.HVC) -> GuestProgram:
    """The vCPU starts masked: event 0 signalled to itself stays pending through STATUS and
    PE_MASK (still masked: 0) and is taken at the entry right after PE_UNMASK returns."""
    main = (_register(EV0, "sdei", 0), _c(F.EVENT_ENABLE, EV0),
            _c(F.EVENT_SIGNAL, EV0, VCPU0_MPIDR), _c(F.EVENT_STATUS, EV0), _c(F.PE_MASK),
            _c(F.PE_UNMASK), _c(F.EVENT_STATUS, EV0))
    steps = (_c(F.EVENT_STATUS, EV0), _c(F.EVENT_CONTEXT, 0))
    return build(ProgramSpec(
        _named("masked-unmask", conduit),
        "a signal to a masked vCPU waits for PE_UNMASK",
        main, (Handler("sdei", EV0, steps),), conduit=conduit))


def vcpu_layout(index: int, base: Layout = LAYOUT) -> Layout:
    """The layout of vCPU ``index`` in a multi-vCPU selftest VM: one memslot per vCPU, placed
    one after the other from ``base``; all share the doorbell window (an MMIO exit belongs to
    the vCPU that took it). vCPU 0 keeps ``base`` itself."""
    if not isinstance(index, int) or not 0 <= index < 64:
        raise ProgramError(f"vCPU index {index!r} outside 0..63")
    d = index * base.mem_size
    return replace(base, base=base.base + d, vectors=base.vectors + d,
                   handlers=base.handlers + d, alt_vectors=base.alt_vectors + d,
                   alt_handlers=base.alt_handlers + d, code_end=base.code_end + d,
                   results=base.results + d, stack_top=base.stack_top + d)


def mpidr_of(index: int) -> int:
    """MPIDR_EL1 of vCPU ``index`` as its guest reads it (RES1 bit 31, KVM's affinity)."""
    return VCPU0_MPIDR | affinity_of(index)


def cross_target(layout: Layout = LAYOUT) -> GuestProgram:
    """vCPU 0 of the cross-vCPU scenario: registers and enables event 0, unmasks and idles;
    another vCPU's EVENT_SIGNAL runs its handler."""
    steps = (_c(F.EVENT_STATUS, EV0), *(_c(F.EVENT_CONTEXT, r) for r in range(4)))
    return build(ProgramSpec(
        "cross-target", "event 0 registered and enabled; the signal comes from another vCPU",
        (_register(EV0, "sdei", 0), _c(F.EVENT_ENABLE, EV0), _c(F.PE_UNMASK)),
        (Handler("sdei", EV0, steps),)), layout)


def cross_source(index: int = 1, target: int = 0) -> GuestProgram:
    """vCPU ``index`` of the cross-vCPU scenario (its own memslot, ``vcpu_layout``): STATUS of
    event 0 here (unregistered), SIGNAL(0) to vCPU ``target``, then to itself (INVALID:
    event 0 is not registered on this vCPU)."""
    main = (_c(F.EVENT_STATUS, EV0), _c(F.EVENT_SIGNAL, EV0, mpidr_of(target)),
            _c(F.EVENT_SIGNAL, EV0, mpidr_of(index)))
    return build(ProgramSpec(
        "cross-source", f"vCPU {index} signals event 0 to vCPU {target}", main),
        vcpu_layout(index))


def psci_version_call() -> GuestProgram:
    """One PSCI_VERSION call (``0x84000000``, answered by KVM itself) and its doorbell: a
    guest that runs once (the firmware suite's run-once lock and PSCI checks)."""
    return build(ProgramSpec("psci-version", "PSCI_VERSION from the guest",
                             (_c(PSCI_VERSION_FN),)))


PSCI_VERSION_FN: Final = 0x8400_0000
"""PSCI_VERSION, SMC32 (PSCI is KVM's, not forwarded by the SDEI filter)."""


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
    "masked-unmask": masked_until_unmask,
})
"""The selftest programs by name (each call builds a fresh, identical program)."""


# -- the multi-vCPU stress program ----------------------------------------------------------

STRESS_SENT: Final = 0x00
"""Result-area offsets of the stress program's counters: SIGNAL calls made,"""
STRESS_ERRORS: Final = 0x08
"""the OR of every setup and SIGNAL result (0 when all succeeded),"""
STRESS_ENTRIES: Final = 0x10
"""handler entries,"""
STRESS_BAD_ENTRIES: Final = 0x18
"""entries whose x0, x1 or x12..x15 were not what the dispatch must give,"""
STRESS_BROKEN: Final = 0x20
"""rounds after which main found x12..x15 changed (a completion that did not restore)."""
STRESS_PATTERN: Final = tuple(0x5757_0000_0000_0000 | r << 32 | r for r in range(12, 16))
"""What main keeps in x12..x15 throughout (a handler entry must see them, DESIGN section 5)."""


@dataclass(frozen=True)
class StressProgram:
    """One vCPU's image of the stress scenario and where its counters are.

    Main registers event 0 (handler argument ``EP_ARG_BASE | index``), enables it, unmasks,
    rings ``MAIN_CALL(0)`` (ready: the host waits until every vCPU is), then for ``rounds``
    rounds signals every other vCPU once, spinning ``delay`` iterations after each signal,
    rings ``MAIN_CALL(1)`` (done) and idles (``IDLE`` every ``idle_delay`` iterations). The
    handler counts its entries and checks its entry registers, then COMPLETEs. There are no
    doorbells on the hot path: a signal finds its target inside KVM_RUN, to be kicked out."""

    index: int
    nr_vcpus: int
    rounds: int
    layout: Layout
    image: Image
    handler: int
    ep_arg: int

    @property
    def entry(self) -> int:
        """The initial PC: main, at the memslot base."""
        return self.image.symbol("main")

    @property
    def signals(self) -> int:
        """SIGNAL calls this vCPU makes."""
        return self.rounds * (self.nr_vcpus - 1)

    def counter(self, mem: bytes | bytearray | memoryview, offset: int) -> int:
        """A counter (``STRESS_*``) from a copy of this vCPU's memslot."""
        at = self.layout.results + offset - self.layout.base
        return int.from_bytes(bytes(mem[at:at + 8]), "little")


def stress(index: int, nr_vcpus: int, rounds: int, *, delay: int = 200,
           idle_delay: int = 2000) -> StressProgram:
    """vCPU ``index`` of ``nr_vcpus`` in the stress scenario (its own memslot, see
    ``vcpu_layout``). Written with the assembler directly: main loops, which a
    ``ProgramSpec`` cannot say."""
    if not 2 <= nr_vcpus <= 16 or not 0 <= index < nr_vcpus:
        raise ProgramError(f"stress: vCPU {index} of {nr_vcpus} (2..16 vCPUs)")
    for name, v, hi in (("rounds", rounds, 1 << 16), ("delay", delay, 1 << 32),
                        ("idle_delay", idle_delay, 1 << 32)):
        if not isinstance(v, int) or not 1 <= v < hi:
            raise ProgramError(f"stress: {name} = {v!r} outside 1..{hi - 1}")
    lay = vcpu_layout(index)
    a = Asm(lay.base)
    arg = EP_ARG_BASE | index
    bell, res, err = 28, 27, 22

    def ring(kind: BellKind, reg: int, base: int = bell, slot: int = 0, n: int = 0) -> None:
        a.emit(A.str_x(reg, base, 8 * bell_code(kind, slot, n)))

    def call(fn: int, *args: int | str) -> None:
        a.mov_imm(0, fn)
        for k in range(1, 6):
            v = args[k - 1] if k <= len(args) else 0
            if isinstance(v, str):
                a.adr(k, v)
            else:
                a.mov_imm(k, v)
        a.emit(A.hvc(0), A.orr(err, err, 0))

    def spin(count: int, label: str) -> None:
        a.mov_imm(10, count)
        a.label(label)
        a.emit(A.subs_imm(10, 10, 1))
        a.b_cond(A.Cond.NE, label)

    def bump(base: int, offset: int) -> None:
        a.emit(A.ldr_x(9, base, offset), A.add_imm(9, 9, 1), A.str_x(9, base, offset))

    a.label("main")
    a.mov_imm(bell, lay.doorbell)
    a.mov_imm(res, lay.results)
    a.mov_imm(9, lay.stack_top)
    a.emit(A.add_imm(A.SP, 9, 0))
    a.adr(9, "vectors")
    a.emit(A.msr(A.SysReg.VBAR_EL1, 9), A.isb(), A.msr_daifclr(0xF))
    a.mov_imm(err, 0)
    call(F.EVENT_REGISTER, EV0, "handler", arg)
    call(F.EVENT_ENABLE, EV0)
    call(F.PE_UNMASK)
    for r, v in zip(range(12, 16), STRESS_PATTERN, strict=True):
        a.mov_imm(r, v)  # before "ready": a signal may be taken right after it
    ring(BellKind.MAIN_CALL, err)
    a.mov_imm(19, rounds)
    a.label("round")
    for t in range(nr_vcpus):
        if t != index:
            call(F.EVENT_SIGNAL, EV0, mpidr_of(t))
            bump(res, STRESS_SENT)
            spin(delay, f"delay.{t}")
    for r, v in zip(range(12, 16), STRESS_PATTERN, strict=True):
        a.mov_imm(11, v)
        a.emit(A.cmp_reg(r, 11))
        a.b_cond(A.Cond.NE, "broken")
    a.label("round.next")
    a.emit(A.subs_imm(19, 19, 1))
    a.b_cond(A.Cond.NE, "round")
    a.emit(A.str_x(err, res, STRESS_ERRORS))
    ring(BellKind.MAIN_CALL, err, n=1)
    a.label("idle")
    spin(idle_delay, "idle.spin")
    ring(BellKind.IDLE, err)
    a.b("idle")
    a.label("broken")  # count it, put the pattern back, go on
    bump(res, STRESS_BROKEN)
    for r, v in zip(range(12, 16), STRESS_PATTERN, strict=True):
        a.mov_imm(r, v)
    a.b("round.next")

    a.org(lay.vectors, why="vectors")
    a.label("vectors")
    for v in range(16):
        a.org(lay.vectors + 0x80 * v, why=f"vectors.{v}")
        a.label(f"vectors.{v}")
        a.emit(A.mrs(17, A.SysReg.ESR_EL1))
        a.mov_imm(16, lay.doorbell)
        here = a.pc
        ring(BellKind.FAULT, 17, base=16, n=v)
        a.b(here)
    a.org(lay.handlers, why="handler")
    a.label("handler")  # x0..x17 are free: COMPLETE restores them
    a.mov_imm(16, lay.results)
    a.emit(A.ldr_x(17, 16, STRESS_ENTRIES), A.add_imm(17, 17, 1),
           A.str_x(17, 16, STRESS_ENTRIES))
    a.emit(A.orr(9, 0, 31))  # x9 = x0: the event number, 0
    a.mov_imm(10, arg)
    a.emit(A.eor(10, 10, 1), A.orr(9, 9, 10))
    for r, v in zip(range(12, 16), STRESS_PATTERN, strict=True):
        a.mov_imm(10, v)
        a.emit(A.eor(10, 10, r), A.orr(9, 9, 10))
    a.cbz(9, "handler.ok")
    a.emit(A.ldr_x(17, 16, STRESS_BAD_ENTRIES), A.add_imm(17, 17, 1),
           A.str_x(17, 16, STRESS_BAD_ENTRIES))
    a.label("handler.ok")
    a.mov_imm(0, F.EVENT_COMPLETE)
    a.mov_imm(1, 0)
    a.emit(A.hvc(0))
    a.mov_imm(16, lay.doorbell)  # COMPLETE returned: a failure, rung forever
    stuck = a.pc
    ring(BellKind.COMPLETE_RETURNED, 0, base=16)
    a.b(stuck)
    image = a.assemble()
    return StressProgram(index, nr_vcpus, rounds, lay, image, image.symbol("handler"), arg)
