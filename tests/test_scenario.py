"""sdei_state.scenario: parsing (every malformed input is a ScenarioError naming the step),
every action, and the exact result format of DESIGN section 7."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdei_state import cli, scenario
from sdei_state.errors import ScenarioError
from sdei_state.vcpu.sim import SimVcpu

FMT = "sdei-state/scenario/1"
U64 = (1 << 64) - 1


def doc(*steps: object, vcpus: object = 2, **top: Any) -> dict[str, Any]:
    return {"format": FMT, "vcpus": vcpus, "steps": list(steps), **top}


def error_of(document: object) -> str:
    with pytest.raises(ScenarioError) as e:
        scenario.parse(document)
    return str(e.value)


# -- malformed input --------------------------------------------------------------------------

@pytest.mark.parametrize(("document", "message"), [
    ([], "scenario: the document must be a JSON object"),
    ({**doc(), "extra": 1}, "scenario: unknown key 'extra'"),
    ({"vcpus": 1, "steps": []}, "scenario: 'format' must be 'sdei-state/scenario/1', not None"),
    (doc(vcpus=0), "scenario: 'vcpus' must be an integer 1..4096, not 0"),
    (doc(vcpus=True), "scenario: 'vcpus' must be an integer 1..4096, not True"),
    (doc(vcpus="2"), "scenario: 'vcpus' must be an integer 1..4096, not '2'"),
    (doc(vcpus=4097), "scenario: 'vcpus' must be an integer 1..4096, not 4097"),
    (doc(vcpus=1 << 20), "scenario: 'vcpus' must be an integer 1..4096, not 1048576"),
    ({"format": FMT, "vcpus": 1, "steps": {}}, "scenario: 'steps' must be a list"),
])
def test_document_errors(document: object, message: str) -> None:
    assert error_of(document) == message


OK = {"vcpu": 0, "call": "VERSION"}


@pytest.mark.parametrize(("step", "message"), [
    ("call", "a step must be a JSON object"),
    ({"vcpu": 0, "call": "VERSION", "bogus": 1}, "unknown key 'bogus'"),
    ({"vcpu": 0}, "needs exactly one of cpu, call, dispatch, inject, set_reg, get_reg, "
                  "migrate; has none"),
    ({"vcpu": 0, "call": "VERSION", "dispatch": True},
     "needs exactly one of cpu, call, dispatch, inject, set_reg, get_reg, migrate; has call, "
     "dispatch"),
    ({"vcpu": 0, "call": "NOT_A_CALL"}, "unknown call 'NOT_A_CALL' (one of VERSION, "),
    ({"vcpu": 0, "call": -1}, "-1 is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "call": "VERSION", "args": [1, 2, 3, 4, 5, 6]},
     "'args' must be a list of at most 5 values (x1..x5)"),
    ({"vcpu": 0, "call": "VERSION", "args": 1}, "'args' must be a list of at most 5 values"),
    ({"vcpu": 0, "call": "VERSION", "args": [1 << 64]}, "args[0]: 18446744073709551616 is "
                                                        "not an unsigned 64-bit integer"),
    ({"vcpu": 0, "call": "VERSION", "args": [True]}, "args[0]: True is not an unsigned"),
    ({"vcpu": 0, "dispatch": True, "args": []}, "'args' belongs only to a call"),
    ({"call": "VERSION"}, "'call' needs 'vcpu'"),
    ({"vcpu": 2, "call": "VERSION"}, "vcpu 2 out of range 0..1"),
    ({"vcpu": -1, "call": "VERSION"}, "vcpu -1 out of range 0..1"),
    ({"vcpu": True, "call": "VERSION"}, "vcpu True out of range 0..1"),
    ({"vcpu": "0", "call": "VERSION"}, "vcpu '0' out of range 0..1"),
    ({"migrate": False}, "'migrate' must be true"),
    ({"migrate": True, "vcpu": 0}, "'migrate' acts on the whole VM; remove 'vcpu'"),
    ({"vcpu": 0, "dispatch": 1}, "'dispatch' must be true"),
    ({"vcpu": 0, "inject": "0"}, "inject: '0' is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "cpu": [1]}, "'cpu' must be an object of registers"),
    ({"vcpu": 0, "cpu": {"x": [1]}}, "'cpu.x' must map register numbers 0-30 to values"),
    ({"vcpu": 0, "cpu": {"x": {"31": 1}}}, "cpu.x key '31' is not a register number 0-30"),
    ({"vcpu": 0, "cpu": {"x": {"x1": 1}}}, "cpu.x key 'x1' is not a register number 0-30"),
    ({"vcpu": 0, "cpu": {"x3": 1}}, "give general registers as cpu.x, not 'x3'"),
    ({"vcpu": 0, "cpu": {"lr": 1}}, "unknown cpu register 'lr' (x, sp, pc, pstate, elr_el1, "
                                    "spsr_el1, vbar_el1, sctlr_el1)"),
    ({"vcpu": 0, "cpu": {"pc": -4}}, "cpu.pc: -4 is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "cpu": {"x": {"1": 1.5}}}, "cpu.x.1: 1.5 is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "set_reg": {"id": 1}}, "'set_reg' must be {\"id\": ..., \"value\": ...}"),
    ({"vcpu": 0, "set_reg": {"id": 1, "value": 0, "x": 0}}, "'set_reg' must be {\"id\""),
    ({"vcpu": 0, "set_reg": {"id": "NOT_A_REG", "value": 0}},
     "set_reg.id: register 'NOT_A_REG': unknown register"),
    ({"vcpu": 0, "set_reg": {"id": 1, "value": -1}}, "set_reg.value: -1 is not an unsigned"),
    ({"vcpu": 0, "get_reg": {"id": 1, "value": 0}}, "'get_reg' must be {\"id\": ...} or an id"),
    ({"vcpu": 0, "get_reg": None}, "get_reg: None is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "get_reg": "-1"}, "get_reg: -1 is not an unsigned 64-bit integer"),
])
def test_step_errors_name_the_step(step: object, message: str) -> None:
    msg = error_of(doc(OK, OK, step))
    assert msg.startswith("step 2: "), msg
    assert message in msg, msg
    assert "\n" not in msg


def test_parse_checks_every_step_before_anything_runs() -> None:
    # The bad step is last; parse refuses the document, so nothing was run.
    assert error_of(doc(OK, {"vcpu": 0, "set_reg": {"id": 1, "value": 0}},
                        {"vcpu": 9, "dispatch": True})).startswith("step 2: vcpu 9")


def test_bad_json_names_the_place() -> None:
    with pytest.raises(ScenarioError) as e:
        scenario.load('{"format": "x",\n "vcpus": }', "s.json")
    assert str(e.value) == "s.json: bad JSON at line 2 column 11: Expecting value"


def test_description_and_comments_are_ignored() -> None:
    plain = doc({"vcpu": 0, "call": "VERSION"})
    noted = doc({"vcpu": 0, "call": "VERSION", "comment": ["any", "json"]},
                description="why this scenario exists")
    assert scenario.parse(noted).description == "why this scenario exists"
    assert scenario.run(plain) == scenario.run(noted)


def test_call_names_ids_and_register_spellings() -> None:
    s = scenario.parse(doc(
        {"vcpu": 0, "call": "VERSION"},
        {"vcpu": 0, "call": "sdei_version"},
        {"vcpu": 0, "call": 0xC4000020},
        {"vcpu": 0, "get_reg": "0x6030000000140110"},
        {"vcpu": 0, "get_reg": 0x6030000000140110},
        {"vcpu": 0, "get_reg": {"id": "SDEI_EVENT_STATE(0)"}},
        {"vcpu": 0, "get_reg": str(0x6030000000140110)},
    ))
    assert {st.value for st in s.steps[:3]} == {0xC4000020}
    assert {st.value for st in s.steps[3:]} == {0x6030000000140110}


@st.composite
def _json(draw: st.DrawFn) -> object:
    leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 1 << 65),
                     st.sampled_from(["VERSION", "0x6030000000140110", "x", "pc", "", "(|"]),
                     st.text(max_size=8), st.floats(allow_nan=False))
    return draw(st.recursive(
        leaf, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                     st.dictionaries(st.sampled_from(
                                         ["vcpu", "call", "args", "cpu", "x", "id", "value",
                                          "get_reg", "set_reg", "inject", "dispatch",
                                          "migrate", "comment", "pc", "0", "31"]), kids,
                                         max_size=4)), max_leaves=12))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_json(), max_size=4))
def test_any_input_parses_or_raises_a_scenario_error(steps: list[object]) -> None:
    try:
        scenario.parse(doc(*[s for s in steps if isinstance(s, dict)],
                           *[s for s in steps if not isinstance(s, dict)]))
    except ScenarioError as e:
        assert str(e).startswith(("step ", "scenario: ")) and "\n" not in str(e)


# -- hostile input: typed errors, bounded work (issue 11 item 4) ----------------------------

def load_error(text: str | bytes) -> str:
    with pytest.raises(ScenarioError) as e:
        scenario.parse(scenario.load(text, "s.json"))
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 300, msg
    return msg


def text_of(*steps: str, vcpus: str = "2", top: str = "") -> str:
    return (f'{{"format": "{FMT}", "vcpus": {vcpus}, {top}"steps": [' + ", ".join(steps)
            + "]}")


@pytest.mark.parametrize(("text", "message"), [
    (f'{{"format": "{FMT}", "vcpus": 1, "vcpus": 2, "steps": []}}',
     "scenario: the document repeats the key 'vcpus'"),
    (text_of('{"vcpu": 0, "call": "VERSION", "vcpu": 1}'), "step 0: the step repeats the key "
                                                          "'vcpu'"),
    (text_of('{"vcpu": 0, "cpu": {"pc": 1, "pc": 2}}'), "step 0: 'cpu' repeats the key 'pc'"),
    (text_of('{"vcpu": 0, "cpu": {"x": {"1": 1, "1": 2}}}'), "step 0: 'cpu.x' repeats the key "
                                                             "'1'"),
    (text_of('{"vcpu": 0, "set_reg": {"id": 1, "value": 0, "value": 1}}'),
     "step 0: 'set_reg' repeats the key 'value'"),
    (text_of('{"vcpu": 0, "get_reg": {"id": 1, "id": 2}}'), "step 0: 'get_reg' repeats the key "
                                                            "'id'"),
    (text_of('{"vcpu": 0, "dispatch": true, "comment": [{"a": 1, "a": 1}]}'),
     "step 0: comment: an object repeats the key 'a'"),
    (text_of(top='"description": {"a": 1, "a": 2}, '),
     "scenario: description: an object repeats the key 'a'"),
])
def test_repeated_keys_are_refused_naming_the_step(text: str, message: str) -> None:
    assert load_error(text) == message


def test_deep_nesting_is_refused_before_decoding() -> None:
    for text in ("[" * 100_000 + "]" * 100_000, "[" * 1_000_000,
                 text_of('{"vcpu": 0, "dispatch": true, "comment": ' + "[" * 40 + "]" * 40 + "}")):
        assert load_error(text) == f"s.json: JSON nested deeper than {scenario.MAX_DEPTH} levels"
    # Brackets inside strings do not count, and the limit leaves room for comments.
    ok = text_of('{"vcpu": 0, "dispatch": true, "comment": ["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["'
                 + ", " + "[" * 25 + "]" * 25 + "]}")
    assert len(scenario.parse(scenario.load(ok)).steps) == 1


@pytest.mark.parametrize("digits", [25, 5000, 1_000_000])
def test_long_integers_are_refused_naming_the_field(digits: int) -> None:
    big = "9" * digits
    assert load_error(text_of(f'{{"vcpu": 0, "inject": {big}}}')) == (
        f"step 0: inject: an integer of {digits} digits is not an unsigned 64-bit integer")
    assert load_error(text_of(vcpus=f"-{big}")) == (
        f"scenario: 'vcpus' must be an integer 1..{scenario.MAX_VCPUS}, not an integer of "
        f"{digits} digits")


@pytest.mark.parametrize(("step", "message"), [
    ({"vcpu": 0, "inject": True}, "step 0: inject: True is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "call": True}, "step 0: True is not an unsigned 64-bit integer"),
    ({"vcpu": 0, "call": "VERSION", "args": [False]}, "step 0: args[0]: False is not"),
    ({"vcpu": 0, "set_reg": {"id": True, "value": 0}}, "step 0: set_reg.id: True is not"),
    ({"vcpu": 0, "set_reg": {"id": 1, "value": True}}, "step 0: set_reg.value: True is not"),
    ({"vcpu": 0, "cpu": {"pc": True}}, "step 0: cpu.pc: True is not"),
    ({"vcpu": 0, "cpu": {"x": {"1": False}}}, "step 0: cpu.x.1: False is not"),
    ({"vcpu": 0, "inject": 1 << 64}, "step 0: inject: 18446744073709551616 is not"),
    ({"vcpu": 0, "cpu": {"sp": -1}}, "step 0: cpu.sp: -1 is not"),
    ({"vcpu": 0, "get_reg": "0x10000000000000000"}, "step 0: get_reg: 18446744073709551616 is"),
    ({"vcpu": 0, "cpu": {"x": {"\u0663": 1}}}, "step 0: cpu.x key '\u0663' is not a register"),
    ({"vcpu": 0, "cpu": {"x": {"\uff11": 1}}}, "step 0: cpu.x key '\uff11' is not a register"),
    ({"vcpu": 0, "cpu": {"x": {" 1": 1}}}, "step 0: cpu.x key ' 1' is not a register"),
    ({"vcpu": 0, "get_reg": "\u0663"}, "step 0: get_reg: register '\u0663' is not an ASCII name"),
    ({"vcpu": 0, "call": "sdei_vers\u0131on"}, "step 0: call 'sdei_vers\u0131on' is not an "
                                                "ASCII name"),
    ({"vcpu": 0, "get_reg": "X" * 10_000}, "step 0: get_reg: register 'XXXXXXXXXXXXXXXXXXXX"),
    ({"vcpu": 0, "inject": [[0] * 10_000]}, "step 0: inject: [[0, 0, 0, 0, 0, 0, 0, 0, 0,"),
])
def test_wrong_types_and_ranges_are_typed_errors(step: dict[str, Any], message: str) -> None:
    msg = error_of(doc(step))
    assert msg.startswith(message), msg
    assert len(msg) < 300


def test_non_utf8_input_is_refused() -> None:
    assert load_error(b"\xff\xfe{}") == "s.json: not UTF-8 text: byte 0xff at offset 0"
    good = json.dumps(doc({"vcpu": 0, "call": "VERSION"})).encode()
    assert scenario.load(good) == json.loads(good)


def test_sizes_are_checked_before_anything_is_built() -> None:
    import time

    t0 = time.monotonic()
    assert load_error(text_of(vcpus=str(1 << 20))).startswith("scenario: 'vcpus' must be")
    many = doc(*[{"vcpu": 0, "dispatch": True}] * (scenario.MAX_STEPS + 1))
    assert error_of(many) == (f"scenario: {scenario.MAX_STEPS + 1} steps, more than "
                              f"{scenario.MAX_STEPS}")
    assert time.monotonic() - t0 < 2.0
    with pytest.raises(ScenarioError, match=r"^generate: vcpus must be an integer 1\.\.4096"):
        scenario.generate(1, vcpus=1 << 20)
    with pytest.raises(ScenarioError, match=r"^generate: steps must be an integer 0\.\."):
        scenario.generate(scenario.MAX_STEPS + 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_load_and_parse_or_raise_a_scenario_error(data: bytes) -> None:
    try:
        scenario.parse(scenario.load(data))
    except ScenarioError as e:
        assert "\n" not in str(e)


# -- every action and the exact result format ------------------------------------------------

def test_every_action_gives_the_exact_result_objects() -> None:
    result = scenario.run(doc(
        {"vcpu": 0, "cpu": {"pc": 4096, "x": {"1": 11, "2": 22, "3": 33, "6": 66}}},
        {"vcpu": 0, "call": "EVENT_REGISTER", "args": [0, 65536, 42, 0, 0]},
        {"vcpu": 0, "call": "EVENT_ENABLE", "args": [0]},
        {"vcpu": 0, "call": "PE_UNMASK"},
        {"vcpu": 1, "call": "EVENT_SIGNAL", "args": [0, 0]},
        {"vcpu": 0, "dispatch": True},
        {"vcpu": 0, "dispatch": True},
        {"vcpu": 0, "inject": 0x40400000},
        {"vcpu": 0, "call": "EVENT_STATUS", "args": [0]},
        {"vcpu": 0, "call": "EVENT_CONTEXT", "args": [99]},
        {"vcpu": 0, "call": 0xC4000025, "args": [0]},
        {"vcpu": 0, "set_reg": {"id": "0x6030000000140110", "value": 2}},
        {"vcpu": 0, "set_reg": {"id": "0x6030000000140110", "value": 1}},
        {"vcpu": 0, "set_reg": {"id": "0x6030000000140101", "value": 0}},
        {"vcpu": 0, "get_reg": "0x6030000000140110"},
        {"vcpu": 0, "get_reg": "0x6030000000140101"},
        {"vcpu": 1, "set_reg": {"id": "KVM_REG_ARM_STD_BMAP", "value": 1}},
        {"migrate": True},
    ))
    assert sorted(result) == ["final", "format", "steps"]
    assert result["format"] == "sdei-state/result/1"
    assert result["steps"] == [
        {},
        {"x0": 0, "x1": 0, "x2": 0, "x3": 0},
        {"x0": 0, "x1": 0, "x2": 0, "x3": 0},
        {"x0": 0, "x1": 0, "x2": 0, "x3": 0},
        {"x0": 0, "x1": 0, "x2": 0, "x3": 0},
        {"taken": 0, "pc": 65536, "pstate": 0x3C5, "x0": 0, "x1": 42, "x2": 4096, "x3": 5},
        {"taken": None, "pc": 65536, "pstate": 0x3C5, "x0": 0, "x1": 42, "x2": 4096, "x3": 5},
        {"ok": False},
        {"x0": 7, "x1": 0, "x2": 0, "x3": 0},
        {"x0": -2, "x1": 0, "x2": 0, "x3": 0},
        {"x0": 0, "x1": 0, "x2": 0, "x3": 0},
        {"errno": "EINVAL"},
        {"errno": None},
        {"errno": "ENOENT"},
        {"value": 1},
        {"errno": "ENOENT"},
        {"errno": "EBUSY"},
        {},
    ]
    assert [list(s) for s in result["steps"][5:6]] == [
        ["taken", "pc", "pstate", "x0", "x1", "x2", "x3"]]


def test_final_lists_every_register_of_every_vcpu(sim_vcpu: SimVcpu) -> None:
    result = scenario.run(doc({"vcpu": 1, "cpu": {"sp": 7, "vbar_el1": 0x800,
                                                  "x": {"30": 30}}}, vcpus=3))
    final = result["final"]
    assert [f["vcpu"] for f in final] == [0, 1, 2]
    listed = sorted(sim_vcpu.reg_list())
    for f in final:
        assert sorted(f) == ["cpu", "registers", "vcpu"]
        assert list(f["registers"]) == [f"{r:#018x}" for r in listed]
        assert all(len(k) == 18 for k in f["registers"])
        assert sorted(f["cpu"]) == ["elr_el1", "pc", "pstate", "sp", "spsr_el1", "vbar_el1",
                                    "x"]
        assert len(f["cpu"]["x"]) == 31
        assert f["registers"]["0x6030000000140100"] == 1  # SDEI_VCPU_STATE: masked
    assert final[0]["cpu"] == {"x": [0] * 31, "sp": 0, "pc": 0, "pstate": 5, "elr_el1": 0,
                               "spsr_el1": 0, "vbar_el1": 0}
    assert final[1]["cpu"]["x"][30] == 30 and final[1]["cpu"]["sp"] == 7
    assert final[1]["registers"]["0x603000000013c600"] == 0x800  # VBAR_EL1
    assert json.loads(json.dumps(result)) == result


def test_values_are_unsigned_except_call_x0() -> None:
    result = scenario.run(doc(
        {"vcpu": 0, "cpu": {"x": {"0": U64, "1": U64}}},
        {"vcpu": 0, "call": "EVENT_ENABLE", "args": [0]},
        {"vcpu": 0, "get_reg": "0x6030000000100000"},  # x0 as the register holds it
    ))
    assert result["steps"][1]["x0"] == -3
    assert result["steps"][2] == {"value": U64 - 2}
    assert result["final"][0]["cpu"]["x"][0] == U64 - 2


def test_migrate_continues_on_a_fresh_vm_with_the_same_state() -> None:
    runner = scenario.Runner(scenario.parse(doc(
        {"vcpu": 1, "call": "EVENT_REGISTER", "args": [0, 65536, 42, 0, 0]},
        {"vcpu": 1, "cpu": {"pc": 0x1234, "vbar_el1": 0x8000}},
    )))
    list(runner.iter_results())
    before, vm = runner.final(), runner.vm
    assert runner.step(scenario.Step(9, "migrate", None, True)) == {}
    assert runner.vm is not vm
    assert runner.final() == before


def test_sctlr_el1_is_an_input_read_at_dispatch_and_carried_by_migrate() -> None:
    """DESIGN section 7: ``cpu.sctlr_el1`` starts at 0x00C50078, steers the entry PSTATE, is
    not in the result's ``cpu`` object, and travels with ``migrate`` as a system register."""
    sctlr = 0x1000_0045_0078  # SPAN (23) clear, DSSBS (44) set
    result = scenario.run(doc(
        {"vcpu": 0, "get_reg": "SCTLR_EL1"},
        {"vcpu": 0, "call": "EVENT_REGISTER", "args": [0, 65536, 42, 0, 0]},
        {"vcpu": 0, "call": "EVENT_ENABLE", "args": [0]},
        {"vcpu": 0, "call": "PE_UNMASK"},
        {"vcpu": 0, "call": "EVENT_SIGNAL", "args": [0, 0]},
        {"vcpu": 0, "cpu": {"sctlr_el1": sctlr, "pstate": 0x0080_0005}},
        {"migrate": True},
        {"vcpu": 0, "get_reg": "0x603000000013c080"},
        {"vcpu": 0, "dispatch": True},
    ))
    steps = result["steps"]
    assert steps[0] == {"value": 0x00C5_0078}
    assert steps[7] == {"value": sctlr}
    # EL1h + DAIF, PAN set (SPAN 0), SSBS set (DSSBS 1), UAO of the interrupted state gone.
    assert steps[8]["taken"] == 0 and steps[8]["pstate"] == 0x0040_13C5
    assert "sctlr_el1" not in result["final"][0]["cpu"]
    assert result["final"][0]["registers"]["0x603000000013c080"] == sctlr


def test_generated_scenarios_are_valid_and_deterministic() -> None:
    g = scenario.generate(300, vcpus=3, seed=7)
    assert g == scenario.generate(300, vcpus=3, seed=7)
    assert g != scenario.generate(300, vcpus=3, seed=8)
    assert len(g["steps"]) == 300
    a, b = scenario.run(g), scenario.run(json.loads(json.dumps(g)))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # bool is not 1


def test_a_refused_migration_names_the_step() -> None:
    with pytest.raises(ScenarioError, match=r"^step 1: migrate: .*SDEI_EVENT_EP_ADDR\(0\)"):
        scenario.run(doc({"vcpu": 0, "set_reg": {"id": "SDEI_EVENT_EP_ADDR(0)",
                                                 "value": 4096}},
                         {"migrate": True}))


# -- through the command line -----------------------------------------------------------------

def test_replay_prints_one_json_document(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "s.json"
    f.write_text(json.dumps(doc({"vcpu": 0, "call": "VERSION"}, vcpus=1)))
    assert cli.main(["replay", str(f)]) == 0
    out = capsys.readouterr().out
    assert out.endswith("}\n")  # one document, in the CLI's one JSON style
    assert json.loads(out)["steps"] == [{"x0": 0x1_0001_564B_CAA9, "x1": 0, "x2": 0, "x3": 0}]


@pytest.mark.parametrize(("text", "message"), [
    ('{"format": "sdei-state/scenario/1", "vcpus": 1, "steps": [{"vcpu": 1, "dispatch": true}]}',
     "sdei-state: step 0: vcpu 1 out of range 0..0\n"),
    ("{", "bad JSON at line 1 column 2"),
])
def test_replay_malformed_input_is_one_line_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    f = tmp_path / "s.json"
    f.write_text(text)
    assert cli.main(["replay", str(f)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err
