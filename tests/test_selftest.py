"""``sdei-state selftest`` on the simulated backend: every SDEI suite runs on the interpreter
and passes; the host loop equals ``simulate``; comparisons and spec facts catch what differs;
the stress accounting catches a lost or doubled signal; kselftest's exit statuses and TAP, the
JSON, text and JUnit reports, ``--list`` and ``--suite``/``--case`` selection."""

from __future__ import annotations

import dataclasses
import json
import platform
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.guest.doorbell import Bell, BellKind
from sdei_state.kvm.exits import Exit
from sdei_state.machine import CallOutcome
from sdei_state.selftest import all_suites, main, pick_backend, report
from sdei_state.selftest.backends import SimBackend
from sdei_state.selftest.core import (
    KSFT_FAIL,
    KSFT_PASS,
    KSFT_SKIP,
    BackendUnavailable,
    CaseResult,
    CheckFailed,
    NoBackend,
    Outcome,
    Report,
    SelftestError,
    exit_status,
    run_suites,
    select,
)
from sdei_state.selftest.host import Driver, simulate
from sdei_state.selftest.programs.catalog import (
    PROGRAMS,
    cross_source,
    cross_target,
    stress,
    vcpu_layout,
)
from sdei_state.selftest.programs.program import IDLE_X
from sdei_state.selftest.scenarios import GuestScenario, checked, run_scenario
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
    assert tap[:2] == ["TAP version 13", f"1..{18 + 3}"]
    assert tap[2].startswith("# sdei-state selftest on backend: simulated vCPU")
    assert tap[3] == ("ok 1 firmware-registers/reg-list-base # SKIP needs real arm64 KVM (the "
                      "simulated vCPU is the model itself): --backend sim was asked for")
    assert tap[21:24] == ["ok 19 sdei-calls/version-and-features",
                          "ok 20 sdei-calls/calls-outside-a-handler",
                          "ok 21 sdei-calls/calls-smc-conduit"]
    assert tap[-1] == "# Totals: pass:3 fail:0 xfail:0 xpass:0 skip:18 error:0"
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


def test_kvm_backend_asked_for_on_x86_skips_every_case(
        capsys: pytest.CaptureFixture[str]) -> None:
    if platform.machine() in ("aarch64", "arm64"):
        pytest.skip("this host may have arm64 KVM")
    with pytest.raises(BackendUnavailable, match="--backend kvm: this host is"):
        pick_backend("kvm")
    # kselftest's KSFT_SKIP: exit 4 and a plan of no tests with the reason.
    assert main(backend="kvm", fmt="tap") == KSFT_SKIP
    why = f"--backend kvm: this host is {platform.machine()}, not arm64"
    assert capsys.readouterr().out == (f"TAP version 13\n1..0 # SKIP {why}\n"
                                       f"# sdei-state selftest on backend: none ({why})\n")
    assert main(backend="kvm", fmt="json") == KSFT_SKIP
    doc = json.loads(capsys.readouterr().out)
    n_cases = sum(len(s.cases) for s in all_suites(NoBackend(why)))
    assert n_cases > 0
    assert doc["totals"] == {"pass": 0, "fail": 0, "skip": n_cases} and doc["exit_status"] == 4
    assert {c["reason"] for c in doc["cases"]} == {why}


def test_all_skipped_is_a_kselftest_skip(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim", fmt="tap", suites=["firmware-registers", "sdei-in-kernel"]) == 4
    tap = capsys.readouterr().out.splitlines()
    assert tap[0] == "TAP version 13" and len(tap) == 3
    assert tap[1] == ("1..0 # SKIP needs real arm64 KVM (the simulated vCPU is the model "
                      "itself): --backend sim was asked for; needs a kernel that lists the "
                      "SDEI registers itself: --backend sim was asked for")
    assert main(backend="sim", suites=["firmware-registers"]) == KSFT_SKIP
    assert "0 passed, 0 failed, 18 skipped" in capsys.readouterr().out


def test_unknown_names_are_one_line_errors_listing_the_known_ones() -> None:
    with pytest.raises(SelftestError, match=r"unknown suite 'nope' \(have: model-conformance, "
                       r"firmware-registers, sdei-calls, "):
        main(backend="sim", suites=["nope"])
    with pytest.raises(SelftestError, match=r"^unknown case 'nope' \(have: handler-running, "
                       r"before-complete-and-resume, nested-handlers, pending-while-masked\)$"):
        main(backend="sim", suites=["migration"], cases=["nope"])
    with pytest.raises(SelftestError, match=r"unknown suite 'x' in --case 'x/y' \(have: "):
        main(backend="sim", cases=["x/y"])
    with pytest.raises(SelftestError, match=r"unknown case 'stress/event-context' \(have: "
                       r"signals-4-vcpu-threads, signals-8-vcpu-threads\)"):
        main(backend="sim", cases=["stress/event-context"])
    with pytest.raises(SelftestError, match=r"^unknown case '\*nothing\*' \(have: [^\n]*\)$"):
        main(backend="sim", list_only=True, cases=["*nothing*"])


def test_an_unwritable_report_file_is_a_one_line_error(tmp_path: Any) -> None:
    with pytest.raises(SelftestError, match=r"^/.*/no/such/dir/r\.tap: No such file or directory$"):
        main(backend="sim", fmt="tap", suites=["sdei-calls"],
             output=str(tmp_path / "no" / "such" / "dir" / "r.tap"))


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
        x1 = cpu.read((CpuReg.X1,))[CpuReg.X1]
        out = super().handle_exit(index, exit_)
        if out is not None and out.function_id == Function.EVENT_CONTEXT and x1 == 4 \
                and out.ret >= 0:
            cpu.write({CpuReg.X0: cpu.read((CpuReg.X0,))[CpuReg.X0] ^ 0x100})
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
    sc = GuestScenario("broken", lambda: (broken,))
    be = SimBackend("test")
    with pytest.raises(CheckFailed, match="did not settle: it stopped at FAULT"):
        checked(be, sc, lambda _o: None)


def test_failed_runs_are_remembered_for_every_case() -> None:
    be = SimBackend("test")
    sc = GuestScenario("never", lambda: (PROGRAMS["dispatch-complete"](),))
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


def test_list_prints_suite_slash_case_one_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim", list_only=True) == 0
    lines = capsys.readouterr().out.splitlines()
    be = SimBackend("test")
    assert lines == [f"{s.name}/{c.name}" for s in all_suites(be) for c in s.cases]
    assert len(set(lines)) == len(lines) and "sdei-dispatch/signal-from-another-vcpu" in lines
    assert {line.split("/")[0] for line in lines} == {
        "model-conformance", "firmware-registers", *SDEI_SUITES, "sdei-in-kernel", "replay",
        "cost"}
    assert main(backend="sim", list_only=True, suites=["stress"]) == 0
    assert capsys.readouterr().out == ("stress/signals-4-vcpu-threads\n"
                                       "stress/signals-8-vcpu-threads\n")


def test_selection_by_suite_and_case_with_globs() -> None:
    suites = all_suites(SimBackend("test"))

    def paths(*, s: tuple[str, ...] = (), c: tuple[str, ...] = ()) -> list[str]:
        return [f"{x.name}/{y.name}" for x in select(suites, s, c) for y in x.cases]

    assert paths() == [f"{x.name}/{y.name}" for x in suites for y in x.cases]
    assert paths(s=("sdei-c*",)) == ["sdei-calls/version-and-features",
                                     "sdei-calls/calls-outside-a-handler",
                                     "sdei-calls/calls-smc-conduit"]
    # A bare case name is taken in every chosen suite; SUITE/CASE in those suites only.
    assert paths(c=("critical-first",)) == ["model-conformance/critical-first",
                                            "sdei-dispatch/critical-first",
                                            "sdei-in-kernel/critical-first"]
    assert paths(c=("sdei-dispatch/critical-first",)) == ["sdei-dispatch/critical-first"]
    assert paths(s=("migration", "stress"), c=("*-8-*", "nested-handlers")) == [
        "migration/nested-handlers", "stress/signals-8-vcpu-threads"]
    assert paths(c=("sdei-*/relative-*",)) == [
        "sdei-dispatch/relative-entry", "sdei-dispatch/relative-vbar-at-dispatch",
        "sdei-in-kernel/relative-entry", "sdei-in-kernel/relative-vbar-at-dispatch"]
    (only,) = select(suites, ("migration",), ("handler-running",))
    assert only.needs == frozenset({"sdei"}) and only.description


def test_case_selection_runs_only_those(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(backend="sim", fmt="json", cases=["sdei-dispatch/event-context",
                                                  "version-features"]) == KSFT_PASS
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) == {"backend", "cases", "totals", "duration", "notes", "exit_status"}
    assert doc["backend"].startswith("simulated vCPU (reference model)")
    assert [(c["suite"], c["name"], c["status"], c["reason"]) for c in doc["cases"]] == [
        ("model-conformance", "version-features", "pass", None),
        ("sdei-dispatch", "event-context", "pass", None)]
    assert all(isinstance(c["duration"], float) and c["duration"] >= 0 for c in doc["cases"])
    assert doc["totals"] == {"pass": 2, "fail": 0, "skip": 0} and doc["exit_status"] == 0


# -- reporters and exit status on results of every kind ---------------------------------------

_MIXED = (CaseResult("s", "good", Outcome.PASS, "", 0.5),
          CaseResult("s", "bad", Outcome.FAIL, "x1: got 1 (0x1), want 2 (0x2)\nsecond line", 0.25),
          CaseResult("t", "absent", Outcome.SKIP, "needs a thing\nit lacks", 0.0))


def test_exit_status_is_kselftests() -> None:
    assert exit_status(_MIXED) == KSFT_FAIL == 1
    assert exit_status(_MIXED[::2]) == KSFT_PASS == 0
    assert exit_status(_MIXED[2:]) == KSFT_SKIP == 4
    assert exit_status(()) == KSFT_SKIP


def test_tap_reports_failures_skips_and_notes_the_kselftest_way() -> None:
    out = report.tap(Report("be", _MIXED, 1.0, ("migrated 3 registers",)))
    assert out.splitlines() == [
        "TAP version 13",
        "1..3",
        "# sdei-state selftest on backend: be",
        "ok 1 s/good",
        "# s/bad: x1: got 1 (0x1), want 2 (0x2)",
        "# s/bad: second line",
        "not ok 2 s/bad",
        "ok 3 t/absent # SKIP needs a thing it lacks",
        "# migrated 3 registers",
        "# Totals: pass:1 fail:1 xfail:0 xpass:0 skip:1 error:0",
    ]
    assert report.tap(Report("be", _MIXED[2:], 0.0)) == (
        "TAP version 13\n1..0 # SKIP needs a thing it lacks\n"
        "# sdei-state selftest on backend: be\n")


def test_json_and_text_and_junit_carry_every_result() -> None:
    rep = Report("be", _MIXED, 1.0, ("a note",))
    doc = json.loads(report.json(rep))
    assert doc == {
        "backend": "be",
        "cases": [
            {"suite": "s", "name": "good", "status": "pass", "reason": None, "duration": 0.5},
            {"suite": "s", "name": "bad", "status": "fail",
             "reason": "x1: got 1 (0x1), want 2 (0x2)\nsecond line", "duration": 0.25},
            {"suite": "t", "name": "absent", "status": "skip", "reason": "needs a thing\nit lacks",
             "duration": 0.0}],
        "totals": {"pass": 1, "fail": 1, "skip": 1},
        "duration": 1.0,
        "notes": ["a note"],
        "exit_status": 1,
    }
    text = report.text(rep)
    assert "  FAIL bad  -- x1: got 1" in text and text.endswith("\nnotes:\n  a note\n")
    root = ET.fromstring(report.junit(rep).split("\n", 1)[1])
    assert [s.get("failures") for s in root.findall("testsuite")] == ["1", "0"]
    assert set(report.REPORTERS) == {"text", "tap", "json", "junit"}


def test_bell_helpers_used_by_the_facts() -> None:
    run = simulate(PROGRAMS["masked-unmask"]())
    assert run.main_results() == [0, 0, 0, 3, 0, 0, 3]
    assert run.bells(BellKind.HANDLER_ENTRY) == [Bell(BellKind.HANDLER_ENTRY, 0, 0, 0)]
    (d,) = run.dispatches()
    assert d.interrupted_pc == run.program.main_calls[5].return_pc
