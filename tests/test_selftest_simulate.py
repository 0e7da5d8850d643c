"""The selftest programs run on the simulated guest against the reference model (the
reference run, ``selftest.host.simulate``): every guest-visible value is what DESIGN section 5
says."""

from __future__ import annotations

from typing import Final

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.events import ASYNC_PF, SW_SIGNALED
from sdei_state.guest.doorbell import Bell, BellKind, bell_code
from sdei_state.guest.layout import PSTATE_OBSERVABLE, FaultRecord
from sdei_state.selftest import sdei_suites
from sdei_state.selftest.host import Driver, HostError, simulate
from sdei_state.selftest.programs import program as B
from sdei_state.selftest.programs.builder import build
from sdei_state.selftest.programs.catalog import PROGRAMS, self_signal
from sdei_state.selftest.programs.program import EP_ARG_BASE, HANDLER_FILL_BASE, IDLE_NZCV, IDLE_X
from sdei_state.selftest.sim_engine import SimEngine
from sdei_state.selftest.trace import Injected, Served, VcpuRun
from sdei_state.spec import Ret
from sdei_state.state import HandlerState, handler_entry_pstate

U64: Final = (1 << 64) - 1
EV0: Final = SW_SIGNALED.number
EV_PF: Final = ASYNC_PF.number
IDLE_PSTATE: Final = IDLE_NZCV | 0x5  # main idles at EL1h, DAIF clear, N and V set
ENTRY_PSTATE: Final = handler_entry_pstate(IDLE_PSTATE) & PSTATE_OBSERVABLE


def u(v: int) -> int:
    return v & U64


def _x0_17(run: VcpuRun) -> tuple[int, ...]:
    return tuple(run.regs[CpuReg(n)] for n in range(18))


RUNS: Final = {name: simulate(make()) for name, make in PROGRAMS.items()}


def test_every_program_settles_without_a_fault() -> None:
    for name, run in RUNS.items():
        assert run.finished, f"{name}: stopped at {run.trace[-1]}"
        assert FaultRecord.parse(run.memory, run.program.layout).count == 0
        assert run.bells()[-1].kind is BellKind.IDLE


@pytest.mark.parametrize("name", sorted(RUNS))
def test_calls_are_the_programs_and_results_reach_memory(name: str) -> None:
    run = RUNS[name]
    prog = run.program
    served = run.served()
    assert all(s.site is not None for s in served), "a hypercall from outside any call site"
    sites = {c.site: c for c in prog.calls}
    for s in served:
        if s.site in sites:
            assert s.args == sites[s.site].args, f"{s.site}: guest loaded other arguments"
            assert s.function_id == sites[s.site].function_id & 0xFFFF_FFFF
        else:
            h = prog.handler(str(s.site).removeprefix("handler.").removesuffix(".complete"))
            assert s.site == f"handler.{h.name}.complete"
            assert (s.function_id, s.args[0]) == (h.finish_function, h.finish_x1)
            assert s.completed == h.event
    # Every call's doorbell carries the result the model returned for that call (a handler
    # may run between the two: self-signal dispatches right after EVENT_SIGNAL).
    by_code = {c.bell: c.site for c in prog.calls}
    last: dict[str | None, int] = {}
    rung = 0
    for item in run.trace:
        if isinstance(item, Served):
            last[item.site] = item.ret
        elif isinstance(item, Bell) and item.code in by_code:
            assert item.data == u(last.pop(by_code[item.code])), f"{item}"
            rung += 1
    assert rung == len([s for s in served if s.completed is None])
    for site in prog.main_calls:
        got = int.from_bytes(run.memory[site.result - prog.layout.base:][:8], "little")
        want = [b.data for b in run.bells(BellKind.MAIN_CALL) if b.index == site.index]
        assert [got] == want


# The x0 of every call of the ``calls`` program, as DESIGN section 5 gives it: the selftest's
# table (one copy), checked here on the interpreter and there on real KVM.
CALLS_EXPECTED: Final = sdei_suites.CALLS_EXPECTED


def test_calls_tour_results_are_the_designs() -> None:
    for name in ("calls", "calls-smc"):
        got = [b.data for b in RUNS[name].bells(BellKind.MAIN_CALL)]
        assert got == [u(v) for v in CALLS_EXPECTED]
        assert not RUNS[name].dispatches()


def test_dispatch_at_idle_and_complete() -> None:
    run = RUNS["dispatch-complete"]
    prog = run.program
    (d,) = run.dispatches()
    assert (d.event, d.entry, d.interrupted_pc, d.interrupted_pstate) == (
        EV0, prog.handler("sdei").address, prog.interrupt_point, IDLE_PSTATE)
    rec = prog.handler_record(run.memory, "sdei")
    assert rec.x[:4] == (EV0, EP_ARG_BASE, prog.interrupt_point, IDLE_PSTATE)
    assert rec.x[4:] == IDLE_X[4:]
    assert rec.pstate == ENTRY_PSTATE == 0x9000_03C5
    assert (rec.sp, rec.elr_el1, rec.spsr_el1, rec.count) == (prog.layout.stack_top, 0, 0, 1)
    assert rec.calls == (
        HandlerState.ENABLED_RUNNING, *IDLE_X, u(Ret.INVALID_PARAMETERS), 0, 0, u(Ret.DENIED))
    exit_bell = run.bells(BellKind.HANDLER_EXIT)
    assert exit_bell == [Bell(BellKind.HANDLER_EXIT, 0, 0, 0)]
    # COMPLETE restored the idle context: x0..x17, PC, PSTATE.
    assert _x0_17(run) == IDLE_X and run.regs[CpuReg.PSTATE] == IDLE_PSTATE
    assert run.bells()[-1] == Bell(BellKind.IDLE, data=IDLE_X[0])
    tail = run.trace[run.trace.index(exit_bell[0]):]
    assert isinstance(tail[1], Served) and tail[1].completed == EV0 and tail[1].ret == 0


def test_complete_and_resume_enters_the_resume_stub_like_an_exception() -> None:
    run = RUNS["dispatch-resume"]
    prog = run.program
    assert run.bells(BellKind.HANDLER_EXIT)[0].data == prog.resume
    assert run.bells(BellKind.RESUMED) == [Bell(BellKind.RESUMED, data=prog.interrupt_point)]
    rec = prog.resume_record(run.memory)
    assert rec.x == IDLE_X
    assert (rec.elr_el1, rec.spsr_el1) == (prog.interrupt_point, IDLE_PSTATE)
    assert rec.pstate == ENTRY_PSTATE
    assert (rec.sp, rec.count) == (prog.layout.stack_top, 1)
    # Outside the handler: enabled and idle, no context, nothing to complete.
    assert rec.calls == (HandlerState.ENABLED, u(Ret.DENIED), u(Ret.DENIED))
    assert _x0_17(run) == IDLE_X and run.regs[CpuReg.PSTATE] == IDLE_PSTATE  # after eret


def test_self_signal_interrupts_main_right_after_the_call() -> None:
    run = RUNS["self-signal"]
    prog = run.program
    signal = prog.main_calls[3]
    (d,) = run.dispatches()
    assert (d.interrupted_pc, d.interrupted_pstate) == (signal.return_pc, 0x5)
    rec = prog.handler_record(run.memory, "sdei")
    ctx = (0, 0, 0, 0, 0, 0, *(0x6000 + r for r in range(6, 18)))  # SIGNAL: x0 = SUCCESS
    assert rec.x == (EV0, EP_ARG_BASE, signal.return_pc, 0x5, *ctx[4:])
    assert rec.calls == (HandlerState.ENABLED_RUNNING, *ctx)
    assert [b.data for b in run.bells(BellKind.MAIN_CALL)] == [0, 0, 0, 0, 3, u(Ret.DENIED)]


def test_unregister_inside_the_handler() -> None:
    run = RUNS["unregister-in-handler"]
    prog = run.program
    rec = prog.handler_record(run.memory, "sdei")
    d, p = u(Ret.DENIED), u(Ret.PENDING)
    assert rec.calls == (p, p, HandlerState.UNREGISTER_PENDING, d, d, d, IDLE_X[3], d,
                         HandlerState.UNREGISTER_PENDING)
    assert prog.resume_record(run.memory).calls == (
        HandlerState.UNREGISTERED, d, 0, HandlerState.REGISTERED)


def test_critical_handler_nests_on_the_normal_one() -> None:
    run = RUNS["nested"]
    prog = run.program
    normal, critical = prog.handler("normal"), prog.handler("critical")
    first, second = run.dispatches()
    assert (first.event, second.event) == (EV0, EV_PF)
    # The critical handler interrupted the normal one right after its first call's doorbell.
    preempted = normal.calls[0].return_pc + 8
    assert second.interrupted_pc == preempted and second.entry == critical.address
    crec = prog.handler_record(run.memory, "critical")
    nrec = prog.handler_record(run.memory, "normal")
    normal_ctx = (HandlerState.ENABLED_RUNNING, 0, 0, 0, 0, 0,
                  *(HANDLER_FILL_BASE | r for r in range(6, 16)), normal.record,
                  prog.layout.doorbell)
    assert crec.x[:4] == (EV_PF, EP_ARG_BASE | 1, preempted, ENTRY_PSTATE)
    assert crec.x[4:] == normal_ctx[4:]
    assert crec.pstate == ENTRY_PSTATE
    assert crec.calls == (HandlerState.ENABLED_RUNNING, HandlerState.ENABLED_RUNNING,
                          *normal_ctx, 1)
    # Back in the normal handler: its own context is intact, the critical event is idle.
    assert nrec.x[:4] == (EV0, EP_ARG_BASE, prog.interrupt_point, IDLE_PSTATE)
    assert nrec.calls == (HandlerState.ENABLED_RUNNING, HandlerState.ENABLED, *IDLE_X)
    assert crec.sp == nrec.sp == prog.layout.stack_top
    order = [b.kind for b in run.bells() if b.kind in (BellKind.HANDLER_ENTRY,
                                                       BellKind.HANDLER_EXIT)]
    assert order == [BellKind.HANDLER_ENTRY, BellKind.HANDLER_ENTRY, BellKind.HANDLER_EXIT,
                     BellKind.HANDLER_EXIT]


def test_critical_first_when_both_are_pending() -> None:
    run = RUNS["nested-both"]
    prog = run.program
    first, second = run.dispatches()
    assert (first.event, second.event) == (EV_PF, EV0)
    assert first.interrupted_pc == second.interrupted_pc == prog.interrupt_point
    crec = prog.handler_record(run.memory, "critical")
    assert crec.calls[:2] == (HandlerState.ENABLED_RUNNING, HandlerState.ENABLED)
    assert crec.calls[2:20] == IDLE_X
    nrec = prog.handler_record(run.memory, "normal")
    assert nrec.x[2:4] == (prog.interrupt_point, IDLE_PSTATE)


@pytest.mark.parametrize(("name", "ran", "idle"), [
    ("relative", "rel", "rel_alt"), ("relative-vbar-switch", "rel_alt", "rel")])
def test_relative_entry_point_uses_vbar_at_dispatch(name: str, ran: str, idle: str) -> None:
    run = RUNS[name]
    prog = run.program
    (d,) = run.dispatches()
    assert d.entry == prog.handler(ran).address
    assert prog.handler_record(run.memory, ran).count == 1
    assert prog.handler_record(run.memory, idle).count == 0
    assert run.bells(BellKind.MAIN_CALL)[1].data == HandlerState.REGISTERED


# -- the reference run itself ---------------------------------------------------------------

def test_an_injection_of_an_unregistered_event_is_refused_and_recorded() -> None:
    spec = B.ProgramSpec("t", "", (), triggers=(B.Trigger(bell_code(BellKind.IDLE), EV_PF),))
    run = simulate(build(spec))
    assert Injected(EV_PF, False) in run.trace and run.finished


def test_a_program_that_never_settles_is_reported() -> None:
    spec = B.ProgramSpec("t", "", (), triggers=(B.Trigger(bell_code(BellKind.RESUMED), EV0),))
    with pytest.raises(HostError, match=r"vCPU 0 \(t\) did not settle within 20 exits"):
        simulate(build(spec), max_exits=20)


def test_the_reference_run_on_another_vcpu_of_a_bigger_vm() -> None:
    # Signalling vCPU 0 from vCPU 2: event 0 is not registered there, so nothing happens.
    for target, dispatched in ((0x8000_0000, []), (0x8000_0002, [EV0])):
        prog = self_signal(target_mpidr=target)
        drv = Driver(SimEngine([prog] * 3), [prog] * 3)
        assert drv.run(2)
        run = drv.result(2)
        assert [d.event for d in run.dispatches()] == dispatched
        if not dispatched:
            assert run.bells(BellKind.MAIN_CALL)[3].data == u(Ret.INVALID_PARAMETERS)
