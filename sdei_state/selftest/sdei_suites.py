"""SDEI end to end with guest code: the ``sdei-calls``, ``sdei-dispatch`` and
``sdei-in-kernel`` suites.

Each case runs a guest program (``selftest.programs``) on the backend's engine: on
the simulated backend the interpreter with the reference ``Machine``; on KVM the real vCPU
with the userspace provider (or, in ``sdei-in-kernel``, the kernel's own SDEI). Every trace
item the host sees (each call served, doorbell, injection, dispatch), the whole memslot and
the final registers must equal the reference model's run of the same program
(``scenarios.checked``); then the case checks the spec facts of DESIGN section 5 that its
title names, on the values the guest recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ..cpu import CpuReg
from ..events import ASYNC_PF, SW_SIGNALED
from ..guest.doorbell import Bell, BellKind
from ..guest.layout import PSTATE_OBSERVABLE, Record
from ..spec import VERSION_1_1_KVM, Function, Ret
from ..state import HandlerState, handler_entry_pstate
from .core import Case, Suite, expect_eq
from .programs.catalog import PROGRAMS, cross_source, cross_target
from .programs.program import (
    EP_ARG_BASE,
    HANDLER_FILL_BASE,
    IDLE_NZCV,
    IDLE_X,
    CallSite,
    GuestProgram,
)
from .scenarios import GuestScenario, RunStep, ScenarioRun, checked, single
from .trace import Dispatched, Served

U64: Final = (1 << 64) - 1
EV0: Final = SW_SIGNALED.number
EV_PF: Final = ASYNC_PF.number
IDLE_PSTATE: Final = IDLE_NZCV | 0x5
"""Main idles at EL1h with DAIF clear and N, V set."""
ENTRY_PSTATE: Final = handler_entry_pstate(IDLE_PSTATE) & PSTATE_OBSERVABLE
"""PSTATE a handler entered from the idle loop sees: EL1h, DAIF set, NZCV kept."""
RUN, ENA, REG_ = (int(HandlerState.ENABLED_RUNNING), int(HandlerState.ENABLED),
                  int(HandlerState.REGISTERED))
D, P, INV = Ret.DENIED & U64, Ret.PENDING & U64, Ret.INVALID_PARAMETERS & U64


def u(v: int) -> int:
    """A signed result as the u64 x0 the guest stores."""
    return v & U64


def call_label(site: CallSite) -> str:
    """``main call 3 EVENT_SIGNAL(0x0, 0x80000000)``: a call as a failure message names it."""
    try:
        fn = Function(site.function_id & 0xFFFF_FFFF).name
    except ValueError:
        fn = f"function {site.function_id:#x}"
    if site.function_id >> 32:
        fn += f" (x0 = {site.function_id:#x})"
    args = ", ".join(hex(a) for a in site.args)
    return f"{site.site} {fn}({args})"


def expect_results(what: str, sites: Sequence[CallSite], got: Sequence[int],
                   want: Sequence[int]) -> None:
    """Each call's x0 against the DESIGN value, naming the call at the first mismatch."""
    expect_eq(f"{what}: number of results", len(got), len(want))
    for site, g, w in zip(sites, got, want, strict=True):
        expect_eq(f"{what}: {call_label(site)}", g, u(w))


def expect_regs(what: str, got: Sequence[int], want: Sequence[int], first: int = 0) -> None:
    """x(first).. against values, naming the first register that differs."""
    for n, (g, w) in enumerate(zip(got, want, strict=True)):
        expect_eq(f"{what} x{first + n}", g, w)


def record(out: ScenarioRun, name: str, vcpu: int = 0) -> Record:
    run = out.run(vcpu)
    return run.program.handler_record(run.memory, name)


def one_dispatch(out: ScenarioRun, vcpu: int = 0) -> Dispatched | None:
    """The single dispatch of the run (None where the kernel dispatches unseen)."""
    if not out.sees_dispatch:
        return None
    ds = out.run(vcpu).dispatches()
    expect_eq("dispatches", len(ds), 1)
    return ds[0]


def entry_registers(rec: Record, what: str, event: int, arg: int, pc: int, pstate: int,
                    kept: Sequence[int]) -> None:
    """DESIGN section 5, on entry: x0 event, x1 ep_arg, x2 interrupted PC, x3 interrupted
    PSTATE, x4..x17 as they were."""
    expect_eq(f"{what}: x0 on entry (the event number)", rec.x[0], event)
    expect_eq(f"{what}: x1 on entry (the ep_argument)", rec.x[1], arg)
    expect_eq(f"{what}: x2 on entry (the interrupted PC)", rec.x[2], pc)
    expect_eq(f"{what}: x3 on entry (the interrupted PSTATE)", rec.x[3], pstate)
    expect_regs(f"{what}: kept from the interrupted context:", rec.x[4:18], kept, 4)
    expect_eq(f"{what}: PSTATE on entry (EL1h, DAIF set, NZCV kept; as mrs shows it)",
              rec.pstate, handler_entry_pstate(pstate) & PSTATE_OBSERVABLE)


# -- the calls outside a handler -------------------------------------------------------------

CALLS_EXPECTED: Final = (
    VERSION_1_1_KVM, VERSION_1_1_KVM,            # VERSION; x0[63:32] ignored (w0 is the id)
    0, 1, Ret.INVALID_PARAMETERS,                # FEATURES bind slots, relative mode, bad
    0, 0, 0, -2, -2, -2,                         # GET_INFO(0, type..routing_aff), info 5
    0, 1, 1,                                     # GET_INFO(ASYNC_PF): private, not
    -2, -2,                                      #   signalable, critical; unknown events
    0, 0, -2,                                    # STATUS 0, ASYNC_PF, unknown
    -3, -2,                                      # CONTEXT(0) nothing running, CONTEXT(18)
    -3, -3, -3,                                  # COMPLETE, C_AND_RESUME, unaligned: DENIED
    -3, -3, -3,                                  # ENABLE, DISABLE, UNREGISTER unregistered
    -2, -2, -2, -2,                              # REGISTER ep 0, ep+2, flags 4, event 7
    0, -3,                                       # REGISTER, again
    1, 0, 0, 3, 0, 1,                            # STATUS, ENABLE x2, STATUS, DISABLE, STATUS
    -2,                                          # ROUTING_SET on a private event
    -2, -10, -2, -2,                             # BIND SGI, PPI, 1020; RELEASE
    -2, -2, -2,                                  # SIGNAL event 1, ASYNC_PF, no such vCPU
    0, 0, 1, 0,                                  # PE_MASK (masked), UNMASK, MASK, UNMASK
    0, 1, 0, 0,                                  # SIGNAL (pending, disabled), STATUS,
    -1, -1, -1,                                  #   UNREGISTER, STATUS; SMC32, unassigned
    0, 0, 1,                                     # PRIVATE_RESET, SHARED_RESET, PE_MASK
)
"""x0 of each call of the ``calls`` program, as DESIGN section 5 gives it."""


def _version_features(out: ScenarioRun) -> None:
    run = out.run()
    expect_results("main", run.program.main_calls[:5], run.main_results()[:5],
                   CALLS_EXPECTED[:5])


def _calls_tour(out: ScenarioRun) -> None:
    run = out.run()
    expect_results("main", run.program.main_calls, run.main_results(), CALLS_EXPECTED)
    expect_eq("handler entries (nothing may be dispatched)",
              run.bells(BellKind.HANDLER_ENTRY), [])
    if out.sees_dispatch:
        expect_eq("dispatches", run.dispatches(), [])


# -- dispatch and completion ---------------------------------------------------------------

def _register_enable_signal(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    signal = prog.main_calls[3]
    expect_eq("main call 3 is the SIGNAL", signal.function_id, Function.EVENT_SIGNAL)
    # main: REGISTER, ENABLE, PE_UNMASK, SIGNAL, STATUS after the handler, CONTEXT outside
    expect_results("main", prog.main_calls, run.main_results(), (0, 0, 0, 0, 3, Ret.DENIED))
    rec = prog.handler_record(run.memory, "sdei")
    expect_eq("handler entries", rec.count, 1)
    ctx = (0, 0, 0, 0, 0, 0, *(0x6000 + r for r in range(6, 18)))  # x0 = SIGNAL's SUCCESS
    entry_registers(rec, "handler", EV0, EP_ARG_BASE, signal.return_pc, 0x5, ctx[4:])
    expect_eq("handler: STATUS inside (running, enabled, registered)", rec.calls[0], RUN)
    expect_regs("handler: EVENT_CONTEXT", rec.calls[1:19], ctx)
    d = one_dispatch(out)
    if d is not None:
        expect_eq("dispatch: interrupted PC (right after the SIGNAL call)", d.interrupted_pc,
                  signal.return_pc)
        expect_eq("dispatch: entry point", d.entry, prog.handler("sdei").address)


def _entry_state(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    rec = prog.handler_record(run.memory, "sdei")
    expect_eq("handler entries", rec.count, 1)
    entry_registers(rec, "handler", EV0, EP_ARG_BASE, prog.interrupt_point, IDLE_PSTATE,
                    IDLE_X[4:])
    expect_eq("handler: SP on entry (the interrupted SP_EL1)", rec.sp, prog.layout.stack_top)
    expect_eq("handler: ELR_EL1 on entry (untouched by a dispatch)", rec.elr_el1, 0)
    expect_eq("handler: SPSR_EL1 on entry (untouched by a dispatch)", rec.spsr_el1, 0)
    d = one_dispatch(out)
    if d is not None:
        expect_eq("dispatch", (d.event, d.entry, d.interrupted_pc, d.interrupted_pstate),
                  (EV0, prog.handler("sdei").address, prog.interrupt_point, IDLE_PSTATE))


def _event_context(out: ScenarioRun) -> None:
    rec = record(out, "sdei")
    expect_eq("STATUS inside the handler", rec.calls[0], RUN)
    expect_regs("EVENT_CONTEXT(n) = interrupted", rec.calls[1:19], IDLE_X)
    expect_eq("EVENT_CONTEXT(18)", rec.calls[19], INV)
    expect_eq("GET_INFO(0, EV_PRIORITY)", rec.calls[20], 0)
    expect_eq("STATUS(ASYNC_PF), unregistered", rec.calls[21], 0)
    expect_eq("REGISTER of the running event", rec.calls[22], D)


def _complete_restores(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    exits = run.bells(BellKind.HANDLER_EXIT)
    expect_eq("HANDLER_EXIT doorbells (x1 = COMPLETE's status)", exits,
              [Bell(BellKind.HANDLER_EXIT, 0, 0, 0)])
    after = run.trace[run.trace.index(exits[0]) + 1:]
    idle = next((t for t in after if isinstance(t, Bell)), None)
    expect_eq("first doorbell after COMPLETE (the idle loop, x0 intact)", idle,
              Bell(BellKind.IDLE, data=IDLE_X[0]))
    expect_regs("after COMPLETE:", [run.regs[CpuReg(n)] for n in range(18)], IDLE_X)
    expect_eq("PSTATE after COMPLETE", run.regs[CpuReg.PSTATE], IDLE_PSTATE)
    expect_eq("PC after COMPLETE (back in the idle loop)", run.regs[CpuReg.PC],
              prog.interrupt_point)
    if out.sees_calls:
        done = [(t.site, t.function_id, t.ret, t.completed) for t in after
                if isinstance(t, Served)]
        expect_eq("COMPLETE served (site, function, x0, event completed)", done[:1],
                  [("handler.sdei.complete", Function.EVENT_COMPLETE, 0, EV0)])


def _complete_and_resume(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    expect_eq("HANDLER_EXIT data (the resume address)",
              [b.data for b in run.bells(BellKind.HANDLER_EXIT)], [prog.resume])
    expect_eq("RESUMED doorbell (ELR_EL1 = the interrupted PC)",
              run.bells(BellKind.RESUMED), [Bell(BellKind.RESUMED, data=prog.interrupt_point)])
    rec = prog.resume_record(run.memory)
    expect_eq("resume stub entries", rec.count, 1)
    expect_regs("resume stub: restored", rec.x, IDLE_X)
    expect_eq("resume stub: ELR_EL1 (interrupted PC)", rec.elr_el1, prog.interrupt_point)
    expect_eq("resume stub: SPSR_EL1 (interrupted PSTATE)", rec.spsr_el1, IDLE_PSTATE)
    expect_eq("resume stub: PSTATE (as on handler entry)", rec.pstate, ENTRY_PSTATE)
    expect_eq("resume stub: SP", rec.sp, prog.layout.stack_top)
    expect_eq("resume stub: STATUS (enabled, not running)", rec.calls[0], ENA)
    expect_eq("resume stub: EVENT_CONTEXT (nothing running)", rec.calls[1], D)
    expect_eq("resume stub: COMPLETE (nothing running)", rec.calls[2], D)
    expect_regs("after eret:", [run.regs[CpuReg(n)] for n in range(18)], IDLE_X)
    expect_eq("PSTATE after eret", run.regs[CpuReg.PSTATE], IDLE_PSTATE)


def _masked_until_unmask(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    unmask = prog.main_calls[5]
    expect_eq("main call 5 is PE_UNMASK", unmask.function_id, Function.PE_UNMASK)
    # REGISTER, ENABLE, SIGNAL (pending, masked), STATUS, PE_MASK (was masked), PE_UNMASK,
    # STATUS after the handler
    expect_results("main", prog.main_calls, run.main_results(), (0, 0, 0, 3, 0, 0, 3))
    rec = prog.handler_record(run.memory, "sdei")
    expect_eq("handler entries", rec.count, 1)
    expect_eq("handler: x2 (taken right after PE_UNMASK returned)", rec.x[2],
              unmask.return_pc)
    expect_eq("handler: STATUS", rec.calls[0], RUN)
    expect_eq("handler: EVENT_CONTEXT(0) (PE_UNMASK's result)", rec.calls[1], 0)
    # Nothing entered the handler before PE_UNMASK: its doorbell comes after main call 4's.
    kinds = [(b.kind, b.index) for b in run.bells()
             if b.kind in (BellKind.MAIN_CALL, BellKind.HANDLER_ENTRY)]
    expect_eq("handler entry comes after main call 4 (PE_MASK) and before call 5's doorbell",
              kinds.index((BellKind.HANDLER_ENTRY, 0)), 5)
    d = one_dispatch(out)
    if d is not None:
        expect_eq("dispatch: interrupted PC", d.interrupted_pc, unmask.return_pc)
        i = run.trace.index(d)
        prev = run.trace[i - 1]
        expect_eq("the call served right before the dispatch",
                  prev.site if isinstance(prev, Served) else prev, unmask.site)


def _unregister_in_handler(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    rec = prog.handler_record(run.memory, "sdei")
    pend = int(HandlerState.UNREGISTER_PENDING)
    # UNREGISTER x2, STATUS, ENABLE, DISABLE, REGISTER, CONTEXT(3), PRIVATE_RESET, STATUS
    want = (P, P, pend, D, D, D, IDLE_X[3], D, pend)
    for site, g, w in zip(prog.handler("sdei").calls, rec.calls, want, strict=True):
        expect_eq(f"handler: {call_label(site)}", g, w)
    # After COMPLETE_AND_RESUME: STATUS, CONTEXT, REGISTER again, STATUS
    res = prog.resume_record(run.memory)
    for site, g, w in zip(prog.resume_calls, res.calls, (0, D, 0, REG_), strict=True):
        expect_eq(f"after completion: {call_label(site)}", g, w)


def _critical_preempts_normal(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    normal, critical = prog.handler("normal"), prog.handler("critical")
    preempted = normal.calls[0].return_pc + 8  # past the call's result and doorbell stores
    crec, nrec = record(out, "critical"), record(out, "normal")
    normal_ctx = (RUN, 0, 0, 0, 0, 0, *(HANDLER_FILL_BASE | r for r in range(6, 16)),
                  normal.record, prog.layout.doorbell)
    expect_eq("critical entries", crec.count, 1)
    expect_eq("normal entries", nrec.count, 1)
    entry_registers(crec, "critical handler", EV_PF, EP_ARG_BASE | 1, preempted,
                    ENTRY_PSTATE, normal_ctx[4:])
    expect_eq("critical: STATUS(ASYNC_PF)", crec.calls[0], RUN)
    expect_eq("critical: STATUS(0) (the normal handler, preempted)", crec.calls[1], RUN)
    expect_regs("critical: EVENT_CONTEXT (the normal handler's registers)",
                crec.calls[2:20], normal_ctx)
    expect_eq("critical: GET_INFO(ASYNC_PF, EV_PRIORITY)", crec.calls[20], 1)
    entry_registers(nrec, "normal handler", EV0, EP_ARG_BASE, prog.interrupt_point,
                    IDLE_PSTATE, IDLE_X[4:])
    expect_eq("normal: STATUS(0)", nrec.calls[0], RUN)
    expect_eq("normal: STATUS(ASYNC_PF), after the critical one completed", nrec.calls[1], ENA)
    expect_regs("normal: EVENT_CONTEXT (its own, intact)", nrec.calls[2:20], IDLE_X)
    expect_eq("SP in both handlers", (crec.sp, nrec.sp), (prog.layout.stack_top,) * 2)
    order = [(b.kind.name, b.slot) for b in run.bells()
             if b.kind in (BellKind.HANDLER_ENTRY, BellKind.HANDLER_EXIT)]
    expect_eq("order (normal enters, critical enters and completes, normal completes)", order,
              [("HANDLER_ENTRY", 0), ("HANDLER_ENTRY", 1), ("HANDLER_EXIT", 1),
               ("HANDLER_EXIT", 0)])
    if out.sees_dispatch:
        ds = run.dispatches()
        expect_eq("dispatches", [(d.event, d.interrupted_pc, d.entry) for d in ds],
                  [(EV0, prog.interrupt_point, normal.address),
                   (EV_PF, preempted, critical.address)])


def _critical_first(out: ScenarioRun) -> None:
    run = out.run()
    prog = run.program
    crec, nrec = record(out, "critical"), record(out, "normal")
    entry_registers(crec, "critical handler", EV_PF, EP_ARG_BASE | 1, prog.interrupt_point,
                    IDLE_PSTATE, IDLE_X[4:])
    expect_eq("critical: STATUS(ASYNC_PF), STATUS(0) (pending, not running)",
              crec.calls[:2], (RUN, ENA))
    entry_registers(nrec, "normal handler", EV0, EP_ARG_BASE, prog.interrupt_point,
                    IDLE_PSTATE, IDLE_X[4:])
    order = [(b.kind.name, b.slot) for b in run.bells()
             if b.kind in (BellKind.HANDLER_ENTRY, BellKind.HANDLER_EXIT)]
    expect_eq("order (critical first, normal after it completed)", order,
              [("HANDLER_ENTRY", 1), ("HANDLER_EXIT", 1), ("HANDLER_ENTRY", 0),
               ("HANDLER_EXIT", 0)])
    if out.sees_dispatch:
        expect_eq("dispatched events", [d.event for d in run.dispatches()], [EV_PF, EV0])


def _relative(ran: str, idle: str) -> Callable[[ScenarioRun], None]:
    def facts(out: ScenarioRun) -> None:
        run = out.run()
        prog = run.program
        reg = prog.main_calls[0]
        expect_eq("REGISTER: ep is an offset from VBAR_EL1", reg.args[1],
                  prog.handler("rel").address - prog.symbol("vectors"))
        expect_eq("STATUS after a relative REGISTER", run.main_results()[1], REG_)
        expect_eq(f"entries of {ran!r} (VBAR_EL1 at dispatch + offset)",
                  record(out, ran).count, 1)
        expect_eq(f"entries of {idle!r}", record(out, idle).count, 0)
        d = one_dispatch(out)
        if d is not None:
            expect_eq("dispatch: entry point", d.entry, prog.handler(ran).address)

    return facts


def _signal_from_another_vcpu(out: ScenarioRun) -> None:
    target, source = out.run(0), out.run(1)
    first = out.marks[0][1]  # vCPU 0's trace before vCPU 1 ran
    early = [t for t in target.trace[:first]
             if isinstance(t, Dispatched) or (isinstance(t, Bell)
                                              and t.kind is BellKind.HANDLER_ENTRY)]
    expect_eq("vCPU 0 before vCPU 1's signal: handler entries", early, [])
    expect_results("vCPU 1 main", source.program.main_calls, source.main_results(),
                   (0, 0, Ret.INVALID_PARAMETERS))  # STATUS here, SIGNAL(vCPU 0), SIGNAL(self)
    prog = target.program
    rec = prog.handler_record(target.memory, "sdei")
    expect_eq("vCPU 0 handler entries", rec.count, 1)
    entry_registers(rec, "vCPU 0 handler", EV0, EP_ARG_BASE, prog.interrupt_point,
                    IDLE_PSTATE, IDLE_X[4:])
    expect_eq("vCPU 0 handler: STATUS", rec.calls[0], RUN)
    expect_regs("vCPU 0 handler: EVENT_CONTEXT", rec.calls[1:5], IDLE_X[:4])
    if out.sees_dispatch:
        expect_eq("vCPU 1 dispatches", source.dispatches(), [])
        ds = target.dispatches()
        expect_eq("vCPU 0 dispatches", len(ds), 1)
        expect_eq("vCPU 0 dispatch after vCPU 1's signal", target.trace.index(ds[0]) >= first,
                  True)


# -- the suites ---------------------------------------------------------------------------

def _prog(name: str) -> Callable[[], GuestProgram]:
    return PROGRAMS[name]


SCENARIOS: Final = {
    name: single(name, _prog(name)) for name in (
        "calls", "calls-smc", "dispatch-complete", "dispatch-resume", "self-signal",
        "masked-unmask", "unregister-in-handler", "nested", "nested-both", "relative",
        "relative-vbar-switch")
}
SCENARIOS["cross-vcpu"] = GuestScenario(
    "cross-vcpu", lambda: (cross_target(), cross_source(1, 0)),
    (RunStep(0), RunStep(1), RunStep(0)))


@dataclass(frozen=True)
class GuestCase:
    """A case of the SDEI suites: a scenario and the spec facts it shows."""

    name: str
    scenario: str
    facts: Callable[[ScenarioRun], None]
    doc: str

    def case(self, *, in_kernel: bool = False) -> Case:
        scenario = SCENARIOS[self.scenario]

        def run(backend: Any) -> None:
            checked(backend, scenario, self.facts, in_kernel=in_kernel)

        return Case(self.name, run, f"{self.doc} (program {self.scenario})")


CALL_CASES: Final = (
    GuestCase("version-and-features", "calls", _version_features,
              "VERSION 1.1 with KVM's vendor field, also with x0[63:32] set; FEATURES"),
    GuestCase("calls-outside-a-handler", "calls", _calls_tour,
              "every call with valid and invalid arguments, no handler running"),
    GuestCase("calls-smc-conduit", "calls-smc", _calls_tour,
              "the same calls made with smc #0"),
)
DISPATCH_CASES: Final = (
    GuestCase("register-enable-signal", "self-signal", _register_enable_signal,
              "REGISTER, ENABLE, SIGNAL: the handler runs with x0-x3 as the spec says and "
              "x4-x17 intact"),
    GuestCase("handler-entry-state", "dispatch-complete", _entry_state,
              "x0-x3, x4-x17, PSTATE and SP on entry from the idle loop"),
    GuestCase("event-context", "dispatch-complete", _event_context,
              "EVENT_CONTEXT reads the interrupted x0-x17"),
    GuestCase("complete-restores-context", "dispatch-complete", _complete_restores,
              "COMPLETE returns to the interrupted instruction with every register restored"),
    GuestCase("complete-and-resume", "dispatch-resume", _complete_and_resume,
              "COMPLETE_AND_RESUME: resume address, ELR_EL1/SPSR_EL1 = interrupted PC/PSTATE"),
    GuestCase("masked-until-unmask", "masked-unmask", _masked_until_unmask,
              "a masked vCPU defers dispatch until PE_UNMASK"),
    GuestCase("unregister-in-handler", "unregister-in-handler", _unregister_in_handler,
              "UNREGISTER inside the handler: PENDING; the event is gone after completion"),
    GuestCase("critical-preempts-normal", "nested", _critical_preempts_normal,
              "injected ASYNC_PF preempts a running normal handler; both complete in order"),
    GuestCase("critical-first", "nested-both", _critical_first,
              "both pending: the critical handler first, the normal one after it"),
    GuestCase("signal-from-another-vcpu", "cross-vcpu", _signal_from_another_vcpu,
              "SIGNAL from vCPU 1 runs the handler on vCPU 0"),
    GuestCase("relative-entry", "relative", _relative("rel", "rel_alt"),
              "relative mode enters at VBAR_EL1 + offset"),
    GuestCase("relative-vbar-at-dispatch", "relative-vbar-switch",
              _relative("rel_alt", "rel"),
              "relative mode reads VBAR_EL1 at dispatch, not at REGISTER"),
)


def calls_suite() -> Suite:
    return Suite("sdei-calls", "SDEI calls from guest code, results against the model and "
                 "DESIGN section 5", tuple(c.case() for c in CALL_CASES),
                 frozenset({"sdei"}))


def dispatch_suite() -> Suite:
    return Suite("sdei-dispatch", "dispatch, context, completion, masking, nesting, "
                 "cross-vCPU signals, relative mode: guest code against the model",
                 tuple(c.case() for c in DISPATCH_CASES), frozenset({"sdei"}))


def in_kernel_suite(extra: Sequence[Case] = ()) -> Suite:
    return Suite("sdei-in-kernel", "the same SDEI checks against a kernel that implements "
                 "the DESIGN section 4 registers itself, compared with the model",
                 (*(c.case(in_kernel=True) for c in (*CALL_CASES, *DISPATCH_CASES)), *extra),
                 frozenset({"in-kernel-sdei"}))
