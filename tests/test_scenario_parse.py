"""The scenario parser's fast path (call, dispatch and inject steps) equals its checked path
on every input: the same ``Step``, or the same one-line ``ScenarioError``."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from sdei_state.errors import ScenarioError
from sdei_state.scenario import format as fmt
from sdei_state.spec import Function

U64_MAX = (1 << 64) - 1
ints = st.one_of(st.integers(0, U64_MAX), st.integers(-3, 3), st.sampled_from(
    [U64_MAX + 1, 1 << 70, -1]), st.booleans())
values = st.one_of(ints, st.sampled_from([f.name for f in Function] + ["NOPE", "", "0x20"]),
                   st.none(), st.floats(allow_nan=False), st.lists(ints, max_size=7))
steps = st.dictionaries(st.sampled_from(["call", "vcpu", "args", "comment", "inject",
                                         "dispatch", "other"]), values, max_size=4)
call_steps = st.fixed_dictionaries(
    {"call": st.sampled_from([f.name for f in Function]), "vcpu": st.integers(-1, 4)},
    optional={"args": st.lists(ints, max_size=6)})
other_steps = st.fixed_dictionaries(
    {"vcpu": st.one_of(st.integers(-1, 4), st.booleans())},
    optional={"dispatch": st.one_of(st.just(True), values),
              "inject": st.one_of(ints, values), "comment": values})
"""Dispatch and inject steps as the fast path sees them, with the near misses it must leave
to the checked path (a bool vcpu, ``"dispatch": 1``, both actions, an extra key)."""


def _outcome(parse: Any, i: int, raw: object, nvcpus: int) -> object:
    try:
        return parse(i, raw, nvcpus)
    except ScenarioError as e:
        return ("error", str(e))


@given(st.integers(0, 10**6), st.one_of(steps, call_steps, other_steps), st.integers(1, 4))
@example(0, {"call": "EVENT_STATUS", "vcpu": 0, "args": [1]}, 1)
@example(0, {"call": "EVENT_STATUS", "vcpu": True}, 2)
@example(0, {"call": "EVENT_STATUS", "vcpu": 0, "args": [True]}, 1)
@example(0, {"dispatch": 1, "vcpu": 0}, 1)
@example(0, {"inject": True, "vcpu": 0}, 1)
@example(0, {"inject": 1 << 64, "vcpu": 0}, 1)
@example(0, {"dispatch": True, "vcpu": 1}, 1)
def test_fast_path_equals_checked_path(i: int, raw: dict[str, Any], nvcpus: int) -> None:
    assert _outcome(fmt._parse_step, i, raw, nvcpus) == \
        _outcome(fmt._parse_step_checked, i, raw, nvcpus)


def test_fast_path_takes_a_plain_call() -> None:
    step = fmt._parse_step(7, {"call": "EVENT_STATUS", "vcpu": 1, "args": [0]}, 2)
    assert (step.index, step.action, step.vcpu, step.value, step.args) == \
        (7, "call", 1, int(Function.EVENT_STATUS), (0,))


def test_fast_path_takes_a_plain_dispatch_and_inject(monkeypatch: Any) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("went the checked path")

    monkeypatch.setattr(fmt, "_parse_step_checked", refuse)
    assert fmt._parse_step(3, {"vcpu": 1, "dispatch": True}, 2) == fmt.Step(3, "dispatch", 1, True)
    assert fmt._parse_step(4, {"vcpu": 0, "inject": 0x40400000}, 2) == \
        fmt.Step(4, "inject", 0, 0x40400000)
