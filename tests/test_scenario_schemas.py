"""The published JSON Schemas of the scenario and result formats: they are valid draft 2020-12
schemas shipped as package data, every vector's scenario and result validates against them,
and the library's parser and the scenario schema agree on what they accept and refuse."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdei_state import scenario
from sdei_state.errors import ScenarioError
from sdei_state.migration import blob_json
from sdei_state.scenario import vectors
from sdei_state.scenario.conformance import SCENARIOS
from sdei_state.scenario.schemas import SCHEMA_NAMES, schema

jsonschema = pytest.importorskip(
    "jsonschema", reason="jsonschema is not installed (pip install 'sdei-state[test]')")

ROOT = Path(__file__).resolve().parent.parent
FMT = "sdei-state/scenario/1"


def validator(name: str) -> Any:
    cls = jsonschema.Draft202012Validator
    s = schema(name)  # type: ignore[arg-type]
    cls.check_schema(s)
    return cls(s)


SCENARIO = validator("scenario")
RESULT = validator("result")


def problems(v: Any, doc: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"[:200]
            for e in v.iter_errors(doc)]


def test_schemas_are_package_data_and_state_the_library_limits() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "schemas/*.json" in data["tool"]["setuptools"]["package-data"]["sdei_state"]
    assert sorted(p.name for p in (ROOT / "sdei_state" / "schemas").iterdir()) == sorted(
        [f"{n}.schema.json" for n in SCHEMA_NAMES] + [blob_json.SCHEMA_RESOURCE])
    s = schema("scenario")
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert s["properties"]["format"]["const"] == scenario.SCENARIO_FORMAT
    assert s["properties"]["vcpus"]["maximum"] == scenario.MAX_VCPUS
    assert s["$defs"]["vcpu"]["maximum"] == scenario.MAX_VCPUS - 1
    assert s["properties"]["steps"]["maxItems"] == scenario.MAX_STEPS
    r = schema("result")
    assert r["properties"]["format"]["const"] == scenario.RESULT_FORMAT
    assert r["properties"]["final"]["maxItems"] == scenario.MAX_VCPUS
    with pytest.raises(ValueError, match="no schema 'blob'"):
        schema("blob")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(vectors.expected_vectors()))
def test_every_vector_validates(name: str) -> None:
    doc = json.loads((vectors.default_dir() / f"{name}.json").read_text())
    assert problems(SCENARIO, doc["scenario"]) == []
    assert problems(RESULT, doc["result"]) == []


def test_a_generated_scenario_and_its_result_validate() -> None:
    g = scenario.generate(400, vcpus=3, seed=5)
    assert problems(SCENARIO, g) == []
    assert problems(RESULT, scenario.run(g)) == []


def doc(*steps: object, **top: Any) -> dict[str, Any]:
    return {"format": FMT, "vcpus": 2, "steps": list(steps), **top}


MALFORMED: list[object] = [
    [],
    {"vcpus": 1, "steps": []},
    doc(format="sdei-state/scenario/2"),
    doc(vcpus=0),
    doc(vcpus=scenario.MAX_VCPUS + 1),
    doc(vcpus=True),
    doc(vcpus="2"),
    {"format": FMT, "vcpus": 1, "steps": {}},
    doc(extra=1),
    doc("step"),
    doc({"vcpu": 0}),
    doc({"vcpu": 0, "call": "VERSION", "dispatch": True}),
    doc({"vcpu": 0, "call": "VERSION", "bogus": 1}),
    doc({"call": "VERSION"}),
    doc({"vcpu": scenario.MAX_VCPUS, "call": "VERSION"}),
    doc({"vcpu": -1, "call": "VERSION"}),
    doc({"vcpu": True, "call": "VERSION"}),
    doc({"vcpu": 0, "call": -1}),
    doc({"vcpu": 0, "call": "VERSION", "args": [1, 2, 3, 4, 5, 6]}),
    doc({"vcpu": 0, "call": "VERSION", "args": [1 << 64]}),
    doc({"vcpu": 0, "call": "VERSION", "args": [True]}),
    doc({"vcpu": 0, "call": "VERSION", "args": 1}),
    doc({"vcpu": 0, "dispatch": True, "args": []}),
    doc({"vcpu": 0, "dispatch": 1}),
    doc({"vcpu": 0, "inject": "0"}),
    doc({"vcpu": 0, "inject": -1}),
    doc({"vcpu": 0, "inject": 1.5}),
    doc({"vcpu": 0, "cpu": [1]}),
    doc({"vcpu": 0, "cpu": {"x": [1]}}),
    doc({"vcpu": 0, "cpu": {"x": {"31": 1}}}),
    doc({"vcpu": 0, "cpu": {"x": {"\u0663": 1}}}),
    doc({"vcpu": 0, "cpu": {"x": {"x1": 1}}}),
    doc({"vcpu": 0, "cpu": {"x3": 1}}),
    doc({"vcpu": 0, "cpu": {"lr": 1}}),
    doc({"vcpu": 0, "cpu": {"pc": -4}}),
    doc({"vcpu": 0, "cpu": {"pc": False}}),
    doc({"vcpu": 0, "set_reg": {"id": 1}}),
    doc({"vcpu": 0, "set_reg": {"id": 1, "value": 0, "x": 0}}),
    doc({"vcpu": 0, "set_reg": {"id": 1, "value": 1 << 64}}),
    doc({"vcpu": 0, "set_reg": {"id": "R" * 200, "value": 0}}),
    doc({"vcpu": 0, "get_reg": {"id": 1, "value": 0}}),
    doc({"vcpu": 0, "get_reg": None}),
    doc({"vcpu": 0, "get_reg": "\u0663"}),
    doc({"migrate": False}),
    doc({"migrate": True, "vcpu": 0}),
]


@pytest.mark.parametrize("document", MALFORMED, ids=[json.dumps(d, ensure_ascii=True)[-60:]
                                                      for d in MALFORMED])
def test_parser_and_schema_refuse_the_same_malformed_documents(document: object) -> None:
    with pytest.raises(ScenarioError):
        scenario.parse(document)
    assert problems(SCENARIO, document) != []


def test_parser_and_schema_accept_the_same_valid_documents() -> None:
    design_example = doc(
        {"vcpu": 0, "cpu": {"pc": 4096, "pstate": 5, "x": {"4": 7}}},
        {"vcpu": 0, "call": "EVENT_REGISTER", "args": [0, 65536, 42, 0, 0]},
        {"vcpu": 0, "call": "sdei_event_enable", "args": [0], "comment": {"any": ["json"]}},
        {"vcpu": 1, "call": "EVENT_SIGNAL", "args": [0, 0]},
        {"vcpu": 0, "dispatch": True},
        {"vcpu": 0, "inject": 1077936128},
        {"vcpu": 0, "call": 3288334373, "args": [0]},
        {"vcpu": 0, "set_reg": {"id": "0x6030000000140110", "value": 1}},
        {"vcpu": 0, "get_reg": {"id": "SDEI_EVENT_STATE(0)"}},
        {"vcpu": 1, "get_reg": 0x6030000000140110},
        {"migrate": True},
        description="the example of docs/scenarios.md",
    )
    for d in (design_example, *(c.scenario for c in SCENARIOS)):
        scenario.parse(d)
        assert problems(SCENARIO, d) == []


# Steps that are mostly right, with wrong values, keys and types mixed in, so that random
# documents reach the acceptance and every refusal of both.
_WRONG: st.SearchStrategy[object] = st.sampled_from(
    [None, True, False, -1, 1 << 64, 1.0, "", "\u0663", "1", "VERSION", [], {}])
_U64 = st.integers(0, (1 << 64) - 1) | _WRONG
_VCPU = st.integers(0, 3) | _WRONG
_REG = st.sampled_from(["0x6030000000140110", "SDEI_VCPU_STATE", "KVM_REG_ARM_STD_BMAP",
                        "NOT_A_REG", str(0x6030000000140100)]) | _U64
_CPU = st.dictionaries(st.sampled_from(["pc", "sp", "pstate", "sctlr_el1", "lr"]), _U64,
                       max_size=3) | st.builds(lambda x: {"x": x}, st.dictionaries(
                           st.sampled_from(["0", "30", "31", "07", "\u0663"]), _U64, max_size=2))
_EXTRA: dict[str, object] = {"comment": "c", "args": []}
_STEP = st.one_of(
    st.fixed_dictionaries({"vcpu": _VCPU, "call": st.sampled_from(["VERSION", "nope"]) | _U64},
                          optional={"args": st.lists(_U64, max_size=6)}),
    st.fixed_dictionaries({"vcpu": _VCPU, "dispatch": st.just(True) | _WRONG}),
    st.fixed_dictionaries({"vcpu": _VCPU, "inject": _U64}),
    st.fixed_dictionaries({"vcpu": _VCPU, "cpu": _CPU | _WRONG}),
    st.fixed_dictionaries({"vcpu": _VCPU, "set_reg": st.fixed_dictionaries(
        {"id": _REG, "value": _U64}) | _WRONG}),
    st.fixed_dictionaries({"vcpu": _VCPU, "get_reg": _REG | st.builds(lambda r: {"id": r}, _REG)}),
    st.fixed_dictionaries({"migrate": st.just(True) | _WRONG}, optional={"vcpu": _VCPU}),
).flatmap(lambda s: st.fixed_dictionaries(
    {k: st.just(v) for k, v in s.items()},
    optional={k: st.just(v) for k, v in _EXTRA.items() if k not in s}))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(_STEP, max_size=3), vcpus=st.sampled_from([1, 2, 4, 0]))
def test_what_the_parser_accepts_the_schema_accepts(steps: list[dict[str, Any]],
                                                    vcpus: int) -> None:
    """The parser is the stricter of the two (it also checks names, ``vcpu`` < ``vcpus``,
    1.0 against 1); it never accepts what the schema refuses."""
    d = doc(*steps, vcpus=vcpus)
    try:
        scenario.parse(d)
    except ScenarioError:
        return
    assert problems(SCENARIO, d) == []
