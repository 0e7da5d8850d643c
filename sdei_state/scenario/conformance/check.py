"""The conformance checker: a replay result against a scenario's hand-written expectations.

``check`` compares; ``run_one`` replays on simulated vCPUs and compares; ``validate_final_keys``
checks the expectations themselves. Values are compared type-strictly (JSON ``true`` is not
``1``, ``null`` is not ``0``), and every message names the scenario, the step (index and what
it does) or the final register, the field, what the result has and what is wanted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...errors import SdeiStateError
from ..replay import run
from .oracle import CPU_KEYS, REG_IDS, reg_name
from .steps import Conformance

_FINAL_KEY = re.compile(r"^(?:vcpu(\d+):)?(.+)$")


def _fmt(v: object) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and not -10 <= v <= 9:
        return f"{v} ({v:#x})" if v >= 0 else str(v)
    return repr(v) if not isinstance(v, str) else v


def describe_step(step: Mapping[str, Any]) -> str:
    """A short human description of a scenario step (for messages)."""
    if "migrate" in step:
        return "migrate"
    v = step.get("vcpu")
    for action in ("call", "dispatch", "inject", "set_reg", "get_reg", "cpu"):
        if action in step:
            what = step[action]
            if action == "call":
                name = what if isinstance(what, str) else f"{what:#x}"
                args = ", ".join(str(a) if 0 <= a <= 9 else f"{a:#x}"
                                 for a in step.get("args", ()))
                return f"vCPU {v} call {name}({args})"
            if action in ("set_reg", "get_reg"):
                rid = what["id"] if isinstance(what, dict) else what
                try:
                    label = reg_name(int(rid, 0) if isinstance(rid, str) else int(rid))
                except ValueError:
                    label = str(rid)
                return f"vCPU {v} {action} {label}"
            if action == "inject":
                return f"vCPU {v} inject {what:#x}"
            return f"vCPU {v} {action}"
    return "step"


def _same(got: object, want: object) -> bool:
    # bool is an int in Python; JSON true must not match 1, nor null match 0.
    return type(got) is type(want) and got == want


def check(conf: Conformance, result: Mapping[str, Any]) -> list[str]:
    """Mismatches between a replay ``result`` and the expectations, one message each naming
    the scenario, the step (index and what it does) or final register, the field, got and
    want. Empty when the result conforms."""
    out: list[str] = []
    if result.get("format") != "sdei-state/result/1":
        out.append(f"{conf.name}: result format {result.get('format')!r}, "
                   "want 'sdei-state/result/1'")
    steps = result.get("steps")
    doc_steps = conf.scenario["steps"]
    if not isinstance(steps, list) or len(steps) != len(doc_steps):
        got = len(steps) if isinstance(steps, list) else steps
        out.append(f"{conf.name}: result has {got} steps, want {len(doc_steps)}")
        return out
    for i, want in sorted(conf.expect.items()):
        got_step = steps[i]
        where = f"{conf.name}: step {i} ({describe_step(doc_steps[i])})"
        if not isinstance(got_step, dict):
            out.append(f"{where}: result is {got_step!r}, not an object")
            continue
        for field, w in want.items():
            if field not in got_step:
                out.append(f"{where}: {field} missing, want {_fmt(w)}")
            elif not _same(got_step[field], w):
                out.append(f"{where}: {field} = {_fmt(got_step[field])}, want {_fmt(w)}")
        if not want and got_step != {}:
            out.append(f"{where}: result {got_step!r}, want {{}}")
    final = result.get("final")
    if not isinstance(final, list):
        out.append(f"{conf.name}: result has no final state")
        return out
    for key, w in conf.final_expect.items():
        got_v, label = _final_value(final, key)
        if isinstance(got_v, _Missing):
            out.append(f"{conf.name}: final {key}: {got_v.why}, want {_fmt(w)}")
        elif not _same(got_v, w):
            out.append(f"{conf.name}: final {label} = {_fmt(got_v)}, want {_fmt(w)}")
    return out


@dataclass(frozen=True, slots=True)
class _Missing:
    why: str


def _final_value(final: Sequence[Any], key: str) -> tuple[object, str]:
    m = _FINAL_KEY.match(key)
    assert m is not None
    vcpu = int(m.group(1) or 0)
    name = m.group(2)
    if not 0 <= vcpu < len(final) or not isinstance(final[vcpu], dict):
        return _Missing(f"no vCPU {vcpu} in the result"), key
    entry = final[vcpu]
    label = f"vCPU {vcpu} {name}"
    if name.startswith("cpu."):
        field = name[4:]
        cpu = entry.get("cpu", {})
        if field.startswith("x") and field[1:].isdigit():
            xs = cpu.get("x", [])
            n = int(field[1:])
            return (xs[n] if n < len(xs) else _Missing(f"cpu.x has no x{n}")), label
        return (cpu[field] if field in cpu else _Missing(f"cpu has no {field!r}")), label
    reg_id = REG_IDS.get(name)
    if reg_id is None:
        try:
            reg_id = int(name, 0)
        except ValueError:
            return _Missing(f"unknown register name {name!r}"), key
    hex_id = f"{reg_id:#018x}"
    regs = entry.get("registers", {})
    if hex_id not in regs:
        return _Missing(f"register {hex_id} not listed by vCPU {vcpu}"), label
    return regs[hex_id], f"{label} ({hex_id})"


def run_one(conf: Conformance) -> tuple[dict[str, Any], list[str]]:
    """Replay a conformance scenario on simulated vCPUs; (result, mismatch messages)."""
    try:
        result = run(conf.scenario)
    except SdeiStateError as e:
        return {}, [f"{conf.name}: replay failed: {e}"]
    return result, check(conf, result)


def validate_final_keys(conf: Conformance) -> list[str]:
    """Problems with the ``final_expect`` keys themselves (unknown names, vCPU out of range)."""
    out: list[str] = []
    for key in conf.final_expect:
        m = _FINAL_KEY.match(key)
        assert m is not None
        vcpu, name = int(m.group(1) or 0), m.group(2)
        if vcpu >= conf.scenario["vcpus"]:
            out.append(f"{conf.name}: final key {key!r}: vCPU {vcpu} out of range")
        if name.startswith("cpu."):
            if name[4:] not in CPU_KEYS:
                out.append(f"{conf.name}: final key {key!r}: unknown CPU field")
        elif name not in REG_IDS:
            out.append(f"{conf.name}: final key {key!r}: unknown register name")
    return out
