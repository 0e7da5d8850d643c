"""The conformance scenarios: each replays to its hand-written expectations, together they
cover the register ABI and the behaviours the issue lists, and ``check`` really catches
mismatches (naming the step, the field, got and want)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from sdei_state import scenario
from sdei_state.events import EVENTS
from sdei_state.regs import ids
from sdei_state.regs.sdei import SDEI_REG_BY_NAME, SDEI_REG_IDS
from sdei_state.scenario import conformance as C
from sdei_state.scenario.conformance import SCENARIOS, Conformance
from sdei_state.spec import VERSION_1_1_KVM, Ret
from sdei_state.vcpu.sim import SimVcpu

DOC = Path(__file__).resolve().parent.parent / "docs" / "scenarios.md"


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    """Every scenario replayed once on simulated vCPUs."""
    return {c.name: scenario.run(c.scenario) for c in SCENARIOS}


@pytest.mark.parametrize("conf", SCENARIOS, ids=[c.name for c in SCENARIOS])
def test_scenario_meets_its_expectations(conf: Conformance,
                                         results: dict[str, dict[str, Any]]) -> None:
    assert C.validate_final_keys(conf) == []
    assert C.check(conf, results[conf.name]) == []


def test_run_one_replays_and_checks() -> None:
    result, problems = C.run_one(C.BY_NAME["handler-states"])
    assert problems == []
    assert result["format"] == "sdei-state/result/1"
    assert len(result["steps"]) == len(C.BY_NAME["handler-states"].scenario["steps"])


# -- the collection itself --------------------------------------------------------------------

def test_at_least_thirty_uniquely_named_scenarios() -> None:
    assert len(SCENARIOS) >= 30
    names = [c.name for c in SCENARIOS]
    assert len(set(names)) == len(names)
    for c in SCENARIOS:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.name), c.name
        assert c.doc and "\n" not in c.doc, c.name
        assert c.scenario["description"] == c.doc


def test_every_step_has_an_expectation() -> None:
    """Every step is checked; cpu and migrate steps must yield exactly {}."""
    for c in SCENARIOS:
        assert sorted(c.expect) == list(range(len(c.scenario["steps"]))), c.name
        for i, step in enumerate(c.scenario["steps"]):
            if "cpu" in step or "migrate" in step:
                assert c.expect[i] == {}, (c.name, i)


def test_scenarios_are_valid_json_documents() -> None:
    for c in SCENARIOS:
        text = json.dumps(c.scenario)
        assert scenario.parse(json.loads(text)).vcpus == c.scenario["vcpus"]


def _reg_steps(kind: str) -> set[int]:
    out: set[int] = set()
    for c in SCENARIOS:
        for step in c.scenario["steps"]:
            if kind in step:
                rid = step[kind]["id"] if kind == "set_reg" else step[kind]
                out.add(int(rid, 16))
    return out


def test_every_sdei_register_is_set_and_read() -> None:
    sets, gets = _reg_steps("set_reg"), _reg_steps("get_reg")
    assert len(C.SDEI_IDS) == 47
    missing = [n for n, rid in C.SDEI_IDS.items() if rid not in sets or rid not in gets]
    assert missing == []


def test_every_firmware_register_is_read() -> None:
    gets = _reg_steps("get_reg")
    assert sorted(set(C.FIRMWARE_IDS.values()) - gets) == []


def _call_results(name: str) -> set[int]:
    """The x0 values expected of EVENT_STATUS calls across all scenarios."""
    out: set[int] = set()
    for c in SCENARIOS:
        for i, step in enumerate(c.scenario["steps"]):
            if step.get("call") == name:
                out.add(c.expect[i]["x0"])
    return out


def test_every_handler_state_and_return_code_is_expected_somewhere() -> None:
    assert {0, 1, 3, 4, 5, 7} <= _call_results("EVENT_STATUS")
    codes = {e["x0"] for c in SCENARIOS for e in c.expect.values() if "x0" in e}
    assert {int(r) for r in Ret} <= codes
    states = {c.expect[i]["value"] for c in SCENARIOS
              for i, s in enumerate(c.scenario["steps"])
              if s.get("get_reg") in (f"{C.SDEI_IDS['SDEI_EVENT_STATE(0)']:#018x}",
                                      f"{C.SDEI_IDS['SDEI_EVENT_STATE(1)']:#018x}")
              and "value" in c.expect[i]}
    assert {0b1011, 0b1111, 0b11011, 0b10111, 0b100, 0b1101} <= states  # pending, relative


def test_required_topics_are_present() -> None:
    names = set(C.BY_NAME)
    assert {"nested-critical", "relative-mode", "masked-vcpu", "unregister-pending",
            "signal-by-mpidr", "unknown-ids", "bitmap-ebusy", "linux-boot",
            "migrate-normal-handler", "migrate-nested", "migrate-unregister-pending",
            "migrate-relative", "migrate-masked"} <= names
    for c in SCENARIOS:
        if c.name.startswith("migrate-") or c.name in ("linux-boot", "bitmap-ebusy"):
            assert any("migrate" in s for s in c.scenario["steps"]), c.name
    errnos = {e.get("errno") for c in SCENARIOS for e in c.expect.values()}
    assert {"EINVAL", "ENOENT", "EBUSY", None} <= errnos


def test_migrations_happen_inside_handlers() -> None:
    """In each migrate-* scenario some migration is taken while a handler runs: a later
    get of an EVENT_STATE expects the RUNNING bit."""
    running_ids = {f"{C.SDEI_IDS[f'SDEI_EVENT_STATE({i})']:#018x}" for i in range(2)}
    for c in SCENARIOS:
        if not c.name.startswith("migrate-"):
            continue
        steps = c.scenario["steps"]
        first = next(i for i, s in enumerate(steps) if "migrate" in s)
        assert any(steps[j].get("get_reg") in running_ids
                   and c.expect[j].get("value", 0) & 0b100 for j in range(first, len(steps))), \
            c.name


# -- the constants are the spec's and the ABI's, written out independently ------------------

def test_written_out_constants_match_the_library() -> None:
    assert tuple(int(r) for r in (Ret.SUCCESS, Ret.NOT_SUPPORTED, Ret.INVALID_PARAMETERS,
                                  Ret.DENIED, Ret.PENDING, Ret.OUT_OF_RESOURCE)) \
        == (C.SUCCESS, C.NOT_SUPPORTED, C.INVALID, C.DENIED, C.PENDING, C.OUT_OF_RESOURCE)
    assert tuple(e.number for e in EVENTS) == (C.EV0, C.EV1)
    assert C.VERSION_1_1_KVM == VERSION_1_1_KVM


def test_register_names_and_ids_match_the_register_modules(sim_vcpu: SimVcpu) -> None:
    assert tuple(C.SDEI_IDS.values()) == SDEI_REG_IDS
    for name, rid in C.SDEI_IDS.items():
        assert SDEI_REG_BY_NAME[name].id == rid
        assert ids.parse(name) == rid
    for name, rid in C.FIRMWARE_IDS.items():
        assert ids.parse(name) == rid
    listed = set(sim_vcpu.reg_list())
    assert set(C.SDEI_IDS.values()) <= listed
    assert C.reg_name(C.SDEI_IDS["SDEI_CONTEXT(1, 19)"]) == "SDEI_CONTEXT(1, 19)"
    assert C.reg_name(0x6030_0000_0014_0101) == "0x6030000000140101"


# -- check() catches mismatches ---------------------------------------------------------------

def test_check_names_step_field_got_and_want(results: dict[str, dict[str, Any]]) -> None:
    conf = C.BY_NAME["nested-critical"]
    bad = copy.deepcopy(results[conf.name])
    i = next(i for i, s in enumerate(conf.scenario["steps"])
             if s.get("dispatch") and conf.expect[i]["taken"] == C.EV1)
    bad["steps"][i]["x2"] += 4
    msgs = C.check(conf, bad)
    assert msgs == [f"nested-critical: step {i} (vCPU 0 dispatch): x2 = 65604 (0x10044), "
                    "want 65600 (0x10040)"]


def test_check_is_type_strict(results: dict[str, dict[str, Any]]) -> None:
    conf = C.BY_NAME["inject"]
    bad = copy.deepcopy(results[conf.name])
    i = next(i for i, s in enumerate(conf.scenario["steps"]) if "inject" in s)
    bad["steps"][i]["ok"] = 0  # false, but not a JSON boolean
    j = next(j for j, s in enumerate(conf.scenario["steps"])
             if s.get("dispatch") and conf.expect[j]["taken"] is None)
    bad["steps"][j]["taken"] = 0  # event 0 is not "nothing taken"
    msgs = C.check(conf, bad)
    assert len(msgs) == 2
    assert f"step {i} (vCPU 0 inject 0x40400000): ok = 0, want False" in msgs[0]
    assert f"step {j} (vCPU 0 dispatch): taken = 0, want None" in msgs[1]


def test_check_reports_final_registers_and_cpu(results: dict[str, dict[str, Any]]) -> None:
    conf = C.BY_NAME["linux-boot"]
    bad = copy.deepcopy(results[conf.name])
    bad["final"][2]["registers"]["0x6030000000140110"] = 7
    bad["final"][2]["cpu"]["elr_el1"] = 0
    del bad["final"][3]["registers"]["0x6030000000140100"]
    msgs = C.check(conf, bad)
    assert ("linux-boot: final vCPU 2 SDEI_EVENT_STATE(0) (0x6030000000140110) = 7, want 3"
            in msgs)
    assert any("final vCPU 2 cpu.elr_el1 = 0, want" in m for m in msgs)
    assert any("final vcpu3:SDEI_VCPU_STATE: register 0x6030000000140100 not listed by "
               "vCPU 3, want 0" in m for m in msgs)
    assert len(msgs) == 3


def test_check_reports_missing_fields_steps_and_format(
        results: dict[str, dict[str, Any]]) -> None:
    conf = C.BY_NAME["version-features"]
    bad = copy.deepcopy(results[conf.name])
    del bad["steps"][1]["x3"]
    msgs = C.check(conf, bad)
    assert msgs == ["version-features: step 1 (vCPU 0 call VERSION()): x3 missing, want 0"]
    bad["steps"].pop()
    bad["format"] = "x"
    msgs = C.check(conf, bad)
    assert msgs[0].startswith("version-features: result format 'x'")
    assert msgs[1] == "version-features: result has 11 steps, want 12"
    bad["steps"] = copy.deepcopy(results[conf.name]["steps"])
    bad["steps"][0] = {"x0": 1}  # a cpu step must give {}
    assert C.check(conf, bad)[-1].endswith("result {'x0': 1}, want {}")


def test_validate_final_keys_and_run_one_failures() -> None:
    good = C.BY_NAME["complete"]
    bogus = Conformance("bogus", "x", good.scenario, good.expect,
                        {"vcpu1:SDEI_VCPU_STATE": 0, "cpu.nope": 0, "NOT_A_REG": 0})
    assert C.validate_final_keys(bogus) == [
        "bogus: final key 'vcpu1:SDEI_VCPU_STATE': vCPU 1 out of range",
        "bogus: final key 'cpu.nope': unknown CPU field",
        "bogus: final key 'NOT_A_REG': unknown register name",
    ]
    broken = Conformance("broken", "x", {**good.scenario, "vcpus": 0}, {}, {})
    result, problems = C.run_one(broken)
    assert result == {}
    assert problems == ["broken: replay failed: scenario: 'vcpus' must be an integer "
                        f"1..{scenario.MAX_VCPUS}, not 0"]


def test_scenarios_are_immutable() -> None:
    conf = SCENARIOS[0]
    with pytest.raises(AttributeError):
        conf.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        conf.expect[0] = {}  # type: ignore[index]


# -- the documentation lists every scenario ---------------------------------------------------

def test_docs_list_every_scenario() -> None:
    table = C.markdown_list()
    for c in SCENARIOS:
        assert f"`{c.name}`" in table
    assert table in DOC.read_text(), "docs/scenarios.md is stale: paste C.markdown_list()"
