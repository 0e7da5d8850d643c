"""The scenario format (DESIGN section 7): decode JSON text, validate it into typed steps.

A scenario is JSON: ``{"format": "sdei-state/scenario/1", "vcpus": N, "steps": [...]}``. Each
step does one thing (``cpu``, ``call``, ``dispatch``, ``inject``, ``set_reg``, ``get_reg``,
``migrate``). ``load`` turns text into a JSON value and ``parse`` turns that value into a
``Scenario``; both refuse bad input with a ``ScenarioError`` whose one-line message names the
step, the field and the value, before anything runs.

Limits, checked before anything is allocated: at most ``MAX_VCPUS`` vCPUs and ``MAX_STEPS``
steps; JSON nested at most ``MAX_DEPTH`` levels; JSON integers of at most ``MAX_INT_DIGITS``
digits (longer ones are never converted, so a number of a million digits costs nothing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from itertools import accumulate, repeat
from typing import Any, Final

from ..cpu import CpuReg, reg_by_key
from ..errors import ScenarioError
from ..spec import Function, function_by_name
from ..state import U64_MAX

SCENARIO_FORMAT: Final = "sdei-state/scenario/1"
RESULT_FORMAT: Final = "sdei-state/result/1"
ACTIONS: Final = ("cpu", "call", "dispatch", "inject", "set_reg", "get_reg", "migrate")
_STEP_KEYS: Final = frozenset({*ACTIONS, "vcpu", "args", "comment"})
_TOP_KEYS: Final = frozenset({"format", "vcpus", "steps", "description"})

MAX_VCPUS: Final = 4096
"""vCPUs a scenario may ask for. Well above what KVM/arm64 gives a VM (``KVM_MAX_VCPUS`` is
512) and small enough that a simulated VM of this size builds in a fraction of a second; a
scenario asking for more is refused before any vCPU exists."""
MAX_STEPS: Final = 1_000_000
"""Steps a scenario may have (a few seconds of replay per hundred thousand)."""
MAX_DEPTH: Final = 32
"""Nesting of JSON arrays and objects (a scenario itself needs 5; the rest is for comments)."""
MAX_INT_DIGITS: Final = 24
"""Digits of a JSON integer that is converted (2^64 has 20); longer ones are refused."""
MAX_NAME: Final = 128
"""Characters of a call or register name."""


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step. ``value`` is the action's argument in canonical form: a
    ``{CpuReg: value}`` mapping for ``cpu``, the function id for ``call``, the event number
    for ``inject``, ``(id, value)`` for ``set_reg``, the id for ``get_reg``, else ``True``."""

    index: int
    action: str
    vcpu: int | None
    value: Any
    args: tuple[int, ...] = ()


_SET_INDEX, _SET_ACTION, _SET_VCPU, _SET_VALUE, _SET_ARGS = (
    getattr(Step, f.name).__set__ for f in fields(Step))
_new_step = object.__new__


def _judged_step(index: int, action: str, vcpu: int, value: Any, args: tuple[int, ...] = ()
                 ) -> Step:
    """``Step(...)`` for the parser's fast path, whose values are judged: the slots are set
    directly. A frozen dataclass's own ``__init__`` costs three times as much (a generic
    ``object.__setattr__`` per field), a third of parsing a generated scenario."""
    step: Step = _new_step(Step)
    _SET_INDEX(step, index)
    _SET_ACTION(step, action)
    _SET_VCPU(step, vcpu)
    _SET_VALUE(step, value)
    _SET_ARGS(step, args)
    return step


@dataclass(frozen=True, slots=True)
class Scenario:
    vcpus: int
    steps: tuple[Step, ...]
    description: str = ""


# -- decoding JSON text ---------------------------------------------------------------------

class _LongInt:
    """A JSON integer too long to convert; kept as its digit count so that the field that
    holds it can be named in the error."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"an integer of {self.digits} digits"


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that repeated a key; ``parse`` refuses it where it meets it, naming the
    step. (``json`` would silently keep the last value.)"""

    duplicate: str = ""


def _int(text: str) -> int | _LongInt:
    return _LongInt(text) if len(text) > MAX_INT_DIGITS else int(text)


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            dup = _DuplicateKeys(pairs)
            dup.duplicate = k
            return dup
        out[k] = v
    return out


# A JSON string (quotes, escapes) and the brackets outside strings: the depth is counted on
# what is left once strings are removed, by C-level scans, before ``json`` recurses.
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}


def _depth(text: str) -> int:
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def load(text: str | bytes, source: str = "scenario") -> object:
    """Decode the JSON text of a scenario (``bytes`` must be UTF-8). ``ScenarioError`` naming
    ``source`` for text that is not UTF-8, not JSON, or nested over ``MAX_DEPTH`` levels.
    Over-long integers and repeated keys are kept as markers that ``parse`` refuses naming
    the step."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ScenarioError(f"{source}: not UTF-8 text: byte {e.object[e.start]:#04x} at "
                                f"offset {e.start}") from None
    if _depth(text) > MAX_DEPTH:
        raise ScenarioError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_int, object_pairs_hook=_object)
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{source}: bad JSON at line {e.lineno} column {e.colno}: "
                            f"{e.msg}") from None
    except RecursionError:  # the depth scan is exact for valid JSON; this is a backstop
        raise ScenarioError(f"{source}: JSON nested deeper than {MAX_DEPTH} levels") from None


# -- validating a decoded document ----------------------------------------------------------

def _cut(v: object) -> str:
    """A value for an error message, cut short: a message stays one short line."""
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _obj(where: str, what: str, v: object) -> Mapping[str, Any] | None:
    """``v`` if it is a JSON object without repeated keys, else None (the caller names what
    it expected); a repeated key is refused here, naming it."""
    if isinstance(v, _DuplicateKeys):
        raise ScenarioError(f"{where}: {what} repeats the key {v.duplicate!r}")
    return v if isinstance(v, dict) else None


def _u64(where: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U64_MAX:
        raise ScenarioError(f"{where}: {_cut(v)} is not an unsigned 64-bit integer")
    return v


_NUMBER: Final = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def _text(where: str, what: str, v: str) -> str:
    if not v.isascii() or len(v) > MAX_NAME:
        raise ScenarioError(f"{where}: {what} {_cut(v)} is not an ASCII name of at most "
                            f"{MAX_NAME} characters")
    return v


def _reg_id(where: str, v: object) -> int:
    if not isinstance(v, str):
        return _u64(where, v)
    _text(where, "register", v)
    if _NUMBER.fullmatch(v):
        return _u64(where, int(v, 0))
    if v.lstrip().startswith("-"):
        raise ScenarioError(f"{where}: {v} is not an unsigned 64-bit integer")
    from ..regs import ids

    try:
        return _u64(where, ids.parse(v))
    except ValueError as e:
        raise ScenarioError(f"{where}: register {_cut(v)}: {e}") from None


_FUNCTION_IDS: Final = {f.name: int(f) for f in Function}
"""The spec names as scenarios usually write them; any other spelling goes the long way."""


def _function(where: str, v: object) -> int:
    if isinstance(v, str):
        fid = _FUNCTION_IDS.get(v)
        if fid is not None:
            return fid
        _text(where, "call", v)
        try:
            return int(function_by_name(v))
        except KeyError:
            names = ", ".join(f.name for f in Function)
            raise ScenarioError(f"{where}: unknown call {_cut(v)} (one of {names})") from None
    return _u64(where, v)


_X_INDEX: Final = re.compile(r"[0-9]{1,2}")


def _parse_cpu(where: str, v: object) -> dict[CpuReg, int]:
    regs = _obj(where, "'cpu'", v)
    if regs is None:
        raise ScenarioError(f"{where}: 'cpu' must be an object of registers")
    out: dict[CpuReg, int] = {}
    for key, val in regs.items():
        if key == "x":
            xs = _obj(where, "'cpu.x'", val)
            if xs is None:
                raise ScenarioError(f"{where}: 'cpu.x' must map register numbers 0-30 to values")
            for n, xv in xs.items():
                # ASCII digits only: str.isdigit() and int() also take other scripts' digits.
                if not (_X_INDEX.fullmatch(n) and int(n) <= 30):
                    raise ScenarioError(f"{where}: cpu.x key {_cut(n)} is not a register "
                                        "number 0-30")
                out[CpuReg(int(n))] = _u64(f"{where}: cpu.x.{n}", xv)
            continue
        try:
            reg = reg_by_key(key)
        except KeyError:
            raise ScenarioError(
                f"{where}: unknown cpu register {_cut(key)} (x, sp, pc, pstate, elr_el1, "
                "spsr_el1, vbar_el1, sctlr_el1)"
            ) from None
        if reg.value <= 30:
            raise ScenarioError(f"{where}: give general registers as cpu.x, not {key!r}")
        out[reg] = _u64(f"{where}: cpu.{key}", val)
    return out


def _ignored(where: str, v: object) -> None:
    """A comment or description is ignored, but a repeated key inside it is still refused."""
    stack = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            _obj(where, "an object", item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse(doc: object) -> Scenario:
    """Validate a scenario document (already JSON-decoded): every step is checked before the
    ``Scenario`` exists, and sizes before anything is built."""
    top = _obj("scenario", "the document", doc)
    if top is None:
        raise ScenarioError("scenario: the document must be a JSON object")
    unknown = sorted(set(top) - _TOP_KEYS)
    if unknown:
        raise ScenarioError(f"scenario: unknown key {_cut(unknown[0])}")
    if top.get("format") != SCENARIO_FORMAT:
        raise ScenarioError(f"scenario: 'format' must be {SCENARIO_FORMAT!r}, "
                            f"not {_cut(top.get('format'))}")
    nv = top.get("vcpus")
    if isinstance(nv, bool) or not isinstance(nv, int) or not 1 <= nv <= MAX_VCPUS:
        raise ScenarioError(f"scenario: 'vcpus' must be an integer 1..{MAX_VCPUS}, "
                            f"not {_cut(nv)}")
    raw_steps = top.get("steps")
    if not isinstance(raw_steps, list):
        raise ScenarioError("scenario: 'steps' must be a list")
    if len(raw_steps) > MAX_STEPS:
        raise ScenarioError(f"scenario: {len(raw_steps)} steps, more than {MAX_STEPS}")
    desc = top.get("description", "")
    _ignored("scenario: description", desc)
    return Scenario(nv, tuple(map(_parse_step, range(len(raw_steps)), raw_steps, repeat(nv))),
                    desc if isinstance(desc, str) else "")


def _parse_step(i: int, raw: object, nvcpus: int) -> Step:
    """Step ``i``. A well-formed call with a spec function name and u64 arguments, dispatch or
    injection (nearly all of a recorded or generated scenario) is judged with a few type and
    set tests and no message text; any other step, and any step with a problem, goes through
    ``_parse_step_checked``, which names the problem. tests/test_scenario_parse.py proves the
    two agree."""
    if type(raw) is dict:
        v = raw.get("vcpu")
        if type(v) is int and 0 <= v < nvcpus:
            if "call" in raw:
                if _CALL_KEYS.issuperset(raw):
                    fid = _FUNCTION_IDS.get(raw["call"]) if type(raw["call"]) is str else None
                    args = raw.get("args", _NO_ARGS)
                    if fid is not None and type(args) is list and len(args) <= 5 \
                            and all(type(a) is int and 0 <= a <= U64_MAX for a in args):
                        return _judged_step(i, "call", v, fid, tuple(args))
            elif len(raw) == 2:  # "vcpu" and one more key
                if raw.get("dispatch") is True:
                    return _judged_step(i, "dispatch", v, True)
                n = raw.get("inject")
                if type(n) is int and 0 <= n <= U64_MAX:
                    return _judged_step(i, "inject", v, n)
    return _parse_step_checked(i, raw, nvcpus)


_CALL_KEYS: Final = frozenset({"call", "vcpu", "args"})
_NO_ARGS: Final[list[int]] = []


def _parse_step_checked(i: int, raw: object, nvcpus: int) -> Step:
    where = f"step {i}"
    s = _obj(where, "the step", raw)
    if s is None:
        raise ScenarioError(f"{where}: a step must be a JSON object")
    if not _STEP_KEYS.issuperset(s):
        raise ScenarioError(f"{where}: unknown key {_cut(sorted(set(s) - _STEP_KEYS)[0])}")
    acts = [a for a in ACTIONS if a in s]
    if len(acts) != 1:
        raise ScenarioError(f"{where}: needs exactly one of {', '.join(ACTIONS)}; has "
                            f"{', '.join(acts) or 'none'}")
    action = acts[0]
    if "args" in s and action != "call":
        raise ScenarioError(f"{where}: 'args' belongs only to a call")
    if "comment" in s:
        _ignored(f"{where}: comment", s["comment"])
    vcpu: int | None = None
    if action == "migrate":
        if s["migrate"] is not True:
            raise ScenarioError(f"{where}: 'migrate' must be true")
        if "vcpu" in s:
            raise ScenarioError(f"{where}: 'migrate' acts on the whole VM; remove 'vcpu'")
    else:
        v = s.get("vcpu")
        if v is None:
            raise ScenarioError(f"{where}: {action!r} needs 'vcpu'")
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < nvcpus:
            raise ScenarioError(f"{where}: vcpu {_cut(v)} out of range 0..{nvcpus - 1}")
        vcpu = v
    return Step(i, action, vcpu, *_parse_value(where, action, s))


def _parse_value(where: str, action: str, s: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """The canonical value of a step's action, and a call's arguments."""
    val = s[action]
    if action == "cpu":
        return _parse_cpu(where, val), ()
    if action == "call":
        raw_args = s.get("args", [])
        if not isinstance(raw_args, list) or len(raw_args) > 5:
            raise ScenarioError(f"{where}: 'args' must be a list of at most 5 values (x1..x5)")
        if all(type(a) is int and 0 <= a <= U64_MAX for a in raw_args):
            return _function(where, val), tuple(raw_args)  # the message only when one is not
        return (_function(where, val),
                tuple(_u64(f"{where}: args[{k}]", a) for k, a in enumerate(raw_args)))
    if action == "dispatch":
        if val is not True:
            raise ScenarioError(f"{where}: 'dispatch' must be true")
        return True, ()
    if action == "inject":
        return _u64(f"{where}: inject", val), ()
    if action == "set_reg":
        body = _obj(where, "'set_reg'", val)
        if body is None or set(body) != {"id", "value"}:
            raise ScenarioError(f"{where}: 'set_reg' must be {{\"id\": ..., \"value\": ...}}")
        return (_reg_id(f"{where}: set_reg.id", body["id"]),
                _u64(f"{where}: set_reg.value", body["value"])), ()
    if action == "get_reg":
        body = _obj(where, "'get_reg'", val)
        if body is not None:
            if set(body) != {"id"}:
                raise ScenarioError(f"{where}: 'get_reg' must be {{\"id\": ...}} or an id")
            val = body["id"]
        return _reg_id(f"{where}: get_reg", val), ()
    return True, ()  # migrate: checked by the caller
