"""``sdei-state selftest`` on the simulated backend: every SDEI suite runs on the interpreter
and passes; the host loop equals ``simulate``; comparisons and spec facts catch what differs;
the stress accounting catches a lost or doubled signal; reports and exit status."""

from __future__ import annotations

import dataclasses
import platform
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.guest.doorbell import Bell, BellKind
from sdei_state.kvm.exits import Exit
from sdei_state.machine import CallOutcome
from sdei_state.selftest import SelftestError, all_suites, main, pick_backend
from sdei_state.selftest.backends import SimBackend
from sdei_state.selftest.core import CheckFailed, Outcome, run_suites
from sdei_state.selftest.host import Driver, simulate
from sdei_state.selftest.programs.catalog import (
    PROGRAMS,
    cross_source,
    cross_target,
    stress,
    vcpu_layout,
)
from sdei_state.selftest.programs.program import IDLE_X
from sdei_state.selftest.scenarios import Scenario, checked, run_scenario
from sdei_state.selftest.sdei_suites import DISPATCH_CASES, SCENARIOS
from sdei_state.selftest.sim_engine import SimEngine
from sdei_state.selftest.stress_suite import PLANS, Plan, StressRun, check, run_sim
from sdei_state.selftest.trace import Served, compare, where
from sdei_state.spec import Function
from sdei_state.vcpu.sim import SimVm
from sdei_state.vmm import ModelServer

SDEI_SUITES = ("sdei-calls", "sdei-dispatch", "migration", "stress")


@pytest.fixture(scope="module")
def sim_results() -> dict[str, list[Any]]:
    be = SimBackend("test")
    by_suite: dict[str, list[Any]] = {}
    for r in run_suites(all_suites(be), be, be.missing):
        by_suite.setdefault(r.suite, []).append(r)
    return by_suite


def test_every_sdei_suite_runs_and_passes_on_the_simulated_backend(
        sim_results: dict[str, list[Any]]) -> None:
    for name in SDEI_SUITES:
        results = sim_results[name]
        assert results, name
        bad = [(r.case, r.outcome, r.message) for r in results if r.outcome is not Outcome.PASS]
        assert not bad, f"{name}: {bad}"


def test_kvm_only_suites_skip_with_the_reason(sim_results: dict[str, list[Any]]) -> None:
    for name, needs in (("firmware-registers", "needs real arm64 KVM"),
                        ("sdei-in-kernel", "needs a kernel that lists the SDEI registers")):
        for r in sim_results[name]:
            assert r.outcome is Outcome.SKIP and needs in r.message and "test" in r.message


def test_cli_passes_and_names_the_backend(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim") == 0
    out = capsys.readouterr().out
    assert out.startswith("sdei-state selftest on backend: simulated vCPU (reference model)")
    assert "--backend sim was asked for" in out
    assert "[sdei-dispatch] 12 passed, 0 failed, 0 skipped" in out
    assert "notes:" in out and "stress: 4 vCPUs" in out and "migrate:handler-running" in out


def test_tap_and_junit_reports(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim", fmt="tap", suites=["sdei-calls", "firmware-registers"]) == 0
    tap = capsys.readouterr().out.splitlines()
    assert tap[0] == "TAP version 13" and tap[1] == f"1..{3 + 18}"
    assert any(line.startswith("ok ") and "# SKIP needs real arm64 KVM" in line for line in tap)
    assert sum(line.startswith("not ok") for line in tap) == 0
    out = tmp_path / "r.xml"
    assert main(backend="sim", fmt="junit", output=str(out), suites=["migration"]) == 0
    root = ET.parse(out).getroot()
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "migration" and suite.get("tests") == "4"
    assert suite.get("failures") == "0"


def test_auto_backend_on_this_host_is_the_simulated_one() -> None:
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this host may have arm64 KVM")
    be = pick_backend("auto")
    assert be.kind == "sim" and f"this host is {platform.machine()}, not arm64" in be.name


def test_kvm_backend_asked_for_on_x86_is_a_user_error() -> None:
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this host may have arm64 KVM")
    with pytest.raises(SelftestError, match="--backend kvm: this host is"):
        pick_backend("kvm")


def test_unknown_suite_is_named() -> None:
    with pytest.raises(SelftestError, match="unknown suite 'nope'"):
        main(backend="sim", suites=["nope"])


# -- the host loop -----------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_driver_on_the_simulated_engine_is_simulate(name: str) -> None:
    prog = PROGRAMS[name]()
    ref = simulate(prog)
    drv = Driver(SimEngine([prog]), [prog])
    assert drv.run(0)
    got = drv.result(0)
    assert got.trace == ref.trace and got.memory == ref.memory and got.regs == ref.regs
    assert compare(ref, got, lambda _t: True) == []


def test_compare_names_the_first_difference() -> None:
    prog = PROGRAMS["dispatch-complete"]()
    ref = simulate(prog)
    bad_trace = list(ref.trace)
    n = next(i for i, t in enumerate(bad_trace) if isinstance(t, Served))
    s = bad_trace[n]
    assert isinstance(s, Served)
    bad_trace[n] = dataclasses.replace(s, ret=s.ret + 1)
    diffs = compare(ref, dataclasses.replace(ref, trace=tuple(bad_trace)), lambda _t: True)
    assert diffs == [f"trace item {n}: got call at main.0 fn 0xc4000021 args "
                     f"({', '.join(hex(a) for a in s.args)}) -> 1; the model predicts call at "
                     f"main.0 fn 0xc4000021 args ({', '.join(hex(a) for a in s.args)}) -> 0"]
    rec = prog.handler("sdei").record + 8 * 3  # x3 in the handler's record
    mem = bytearray(ref.memory)
    mem[rec - prog.layout.base] ^= 1
    (d,) = compare(ref, dataclasses.replace(ref, memory=bytes(mem)), lambda _t: True)
    assert d.startswith(f"memory at {rec:#x} (handler 'sdei' record x3): ")
    regs = dict(ref.regs)
    regs[CpuReg.X7] ^= 1
    (d,) = compare(ref, dataclasses.replace(ref, regs=regs), lambda _t: True)
    assert d == f"final x7: {IDLE_X[7] ^ 1:#x}, the model predicts {IDLE_X[7]:#x}"
    short = dataclasses.replace(ref, trace=ref.trace[:-1])
    (d,) = compare(ref, short, lambda _t: True)
    assert d.startswith(f"trace: {len(ref.trace) - 1} items, the model predicts "
                        f"{len(ref.trace)}; the model predicts more: doorbell IDLE")


def test_compare_leaves_out_what_the_engine_cannot_see() -> None:
    prog = PROGRAMS["calls"]()
    ref = simulate(prog)
    kvm_view = dataclasses.replace(ref, trace=tuple(
        t for t in ref.trace if not (isinstance(t, Served) and t.function_id == 0x8400_0020)))
    assert len(kvm_view.trace) == len(ref.trace) - 1  # the SMC32 id KVM answers itself
    assert compare(ref, kvm_view, lambda t: not (isinstance(t, Served)
                                                 and t.function_id == 0x8400_0020)) == []
    assert compare(ref, kvm_view, lambda _t: True) != []


def test_where_names_guest_addresses() -> None:
    prog = PROGRAMS["dispatch-resume"]()
    lay = prog.layout
    assert where(lay, lay.main_result(4), prog) == "main result 4"
    assert where(lay, lay.resume_record + 0x98, prog) == "resume stub record nzcv"
    assert where(lay, lay.resume_record + 0x108, prog) == "resume stub record, result of call 1"
    assert where(lay, lay.fault_record + 8, prog) == "fault record esr_el1"
    assert where(lay, lay.stack_top - 16, prog) == "stack"
    assert where(lay, lay.vectors + 4, prog) == "vectors"


def test_multi_vcpu_programs_have_their_own_memslots() -> None:
    t, s = cross_target(), cross_source(1, 0)
    assert t.layout == vcpu_layout(0) and s.layout == vcpu_layout(1)
    assert s.layout.base == t.layout.end and s.layout.doorbell == t.layout.doorbell
    for i in range(8):
        p = stress(i, 8, 3)
        assert p.layout == vcpu_layout(i) and p.image.base == p.layout.base == p.entry
        assert p.signals == 21


# -- spec facts fail when the guest saw something else --------------------------------------

class _LyingServer(ModelServer):
    """Serves EVENT_CONTEXT(4) with a wrong value, and the model with it: a run that agrees
    with itself but not with DESIGN section 5."""

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        cpu = self.cpu(index)
        x1 = cpu.read((CpuReg.X1,))[0]
        out = super().handle_exit(index, exit_)
        if out is not None and out.function_id == Function.EVENT_CONTEXT and x1 == 4 \
                and out.ret >= 0:
            cpu.write({CpuReg.X0: cpu.read((CpuReg.X0,))[0] ^ 0x100})
            out = dataclasses.replace(out, ret=out.ret ^ 0x100)
        return out


class _LyingEngine(SimEngine):
    def __init__(self, programs: Any, **kw: Any) -> None:
        super().__init__(programs, **kw)
        self._server = _LyingServer(self.machine, [v.cpu for v in self.vcpus], only_sdei=False)


class _LyingBackend(SimBackend):
    def engine(self, programs: Any, *, in_kernel: bool = False) -> Any:
        return _LyingEngine(programs, vm=SimVm(len(programs)))


def test_a_wrong_guest_value_fails_against_the_model_and_the_spec() -> None:
    be = _LyingBackend("test")
    case = next(c for c in DISPATCH_CASES if c.name == "event-context")
    with pytest.raises(CheckFailed, match=r"differs from the reference model: trace item \d+: "
                       r"got call at handler.sdei.5 fn 0xc4000024"):
        case.case().run(be)
    # Even if the reference agreed (same lying engine for both), the facts catch it.
    out = run_scenario(be, SCENARIOS["dispatch-complete"])
    honest = dataclasses.replace(out, differences=())
    with pytest.raises(CheckFailed, match="EVENT_CONTEXT\\(n\\) = interrupted x4"):
        case.facts(honest)


def test_a_run_that_stops_at_a_fault_fails() -> None:
    prog = PROGRAMS["dispatch-complete"]()
    broken = dataclasses.replace(prog, image=dataclasses.replace(
        prog.image, data=prog.image.data.replace(
            (0xD4000002).to_bytes(4, "little"), bytes(4), 1)))  # first hvc -> udf
    sc = Scenario("broken", lambda: (broken,))
    be = SimBackend("test")
    with pytest.raises(CheckFailed, match="did not settle: it stopped at FAULT"):
        checked(be, sc, lambda _o: None)


def test_failed_runs_are_remembered_for_every_case() -> None:
    be = SimBackend("test")
    sc = Scenario("never", lambda: (PROGRAMS["dispatch-complete"](),))
    calls = []

    def boom(_programs: Any, *, in_kernel: bool = False) -> Any:
        calls.append(1)
        raise RuntimeError("no VM today")

    be.engine = boom  # type: ignore[method-assign,assignment]
    for _ in range(2):
        with pytest.raises(RuntimeError, match="no VM today"):
            run_scenario(be, sc)
    assert calls == [1]


# -- the stress accounting ------------------------------------------------------------------

def _stress_run(**kw: Any) -> StressRun:
    base: dict[str, Any] = dict(
        plan=Plan(2, 3, 1, 1, 1.0), sent=[3, 3], errors=[0, 0], entries=[2, 3], bad=[0, 0],
        broken=[0, 0], edges=[3, 3], pending=[True, False], running=[False, False],
        interrupted=1)
    base.update(kw)
    return StressRun(**base)


def test_stress_check_accepts_a_consistent_run() -> None:
    check(_stress_run(), "kvm")


@pytest.mark.parametrize(("change", "message"), [
    ({"entries": [1, 3]}, "vCPU 0: 3 pending edges but 1 handler entries \\+ 1 still pending: "
                          "a signal was lost"),
    ({"entries": [3, 3]}, "vCPU 0: 3 pending edges but 3 handler entries \\+ 1 still pending: "
                          "a signal was taken twice"),
    ({"errors": [0, 0xFFFFFFFFFFFFFFFE]}, "vCPU 1: OR of every SIGNAL result"),
    ({"bad": [1, 0]}, "vCPU 0: entries with wrong x0/x1/x12..x15"),
    ({"broken": [0, 2]}, "vCPU 1: rounds after which main's x12..x15 were not restored"),
    ({"sent": [2, 3]}, "vCPU 0: SIGNAL calls made"),
    ({"entries": [0, 0], "edges": [1, 0], "pending": [True, False]}, "no handler ran"),
    ({"failures": ["vCPU 1: doorbell FAULT(4)"]}, "vCPU 1: doorbell FAULT"),
])
def test_stress_check_names_what_broke(change: dict[str, Any], message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check(_stress_run(**change), "sim")


def test_stress_on_kvm_must_show_a_kick() -> None:
    check(_stress_run(interrupted=0), "sim")
    with pytest.raises(CheckFailed, match="no KVM_RUN was interrupted"):
        check(_stress_run(interrupted=0), "kvm")


def test_stress_on_simulated_vcpus_accounts_every_edge() -> None:
    out = run_sim(Plan(3, 10, 5, 50, 60.0))
    check(out, "sim")
    assert out.sent == [20, 20, 20] and sum(out.entries) > 0
    assert [e - t for e, t in zip(out.edges, out.entries, strict=True)] == \
        [int(p) for p in out.pending]


def test_plans_exist_for_both_backends() -> None:
    assert set(PLANS) == {"sim", "kvm"} and set(PLANS["sim"]) == set(PLANS["kvm"]) == {4, 8}


def test_list_prints_every_suite(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim", list_only=True) == 0
    out = capsys.readouterr().out
    for name in ("model-conformance", "firmware-registers", *SDEI_SUITES, "sdei-in-kernel"):
        assert f"\n{name}: " in f"\n{out}"
    assert "  signal-from-another-vcpu\n" in out and "  migrate-nested-handlers\n" in out


def test_bell_helpers_used_by_the_facts() -> None:
    run = simulate(PROGRAMS["masked-unmask"]())
    assert run.main_results() == [0, 0, 0, 3, 0, 0, 3]
    assert run.bells(BellKind.HANDLER_ENTRY) == [Bell(BellKind.HANDLER_ENTRY, 0, 0, 0)]
    (d,) = run.dispatches()
    assert d.interrupted_pc == run.program.main_calls[5].return_pc
