"""Scenario replay (DESIGN section 7): drive simulated vCPUs the way a guest and a VMM would.

A scenario is JSON: ``{"format": "sdei-state/scenario/1", "vcpus": N, "steps": [...]}``. Each
step does one thing (``cpu``, ``call``, ``dispatch``, ``inject``, ``set_reg``, ``get_reg``,
``migrate``) and yields one result object; ``run()`` returns the result document. Malformed
input raises ``ScenarioError`` whose message names the step; nothing is half-run silently.
"""

from __future__ import annotations

import errno as _errno
import json
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .cpu import CpuReg, reg_by_key
from .errors import RegError, ScenarioError, SdeiStateError
from .spec import Function, function_by_name
from .state import U64_MAX

SCENARIO_FORMAT: Final = "sdei-state/scenario/1"
RESULT_FORMAT: Final = "sdei-state/result/1"
ACTIONS: Final = ("cpu", "call", "dispatch", "inject", "set_reg", "get_reg", "migrate")
_STEP_KEYS: Final = frozenset({*ACTIONS, "vcpu", "args", "comment"})
_TOP_KEYS: Final = frozenset({"format", "vcpus", "steps", "description"})
MAX_VCPUS: Final = 1 << 20
"""KVM's MPIDR assignment (Aff0..Aff2 from vCPU id bits [19:0]) is unique below this."""


@dataclass(frozen=True, slots=True)
class Step:
    """One validated step. ``value`` is the action's argument in canonical form."""

    index: int
    action: str
    vcpu: int | None
    value: Any
    args: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    vcpus: int
    steps: tuple[Step, ...]
    description: str = ""


def _u64(where: str, v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= U64_MAX:
        raise ScenarioError(f"{where}: {v!r} is not an unsigned 64-bit integer")
    return v


def _reg_id(where: str, v: object) -> int:
    if isinstance(v, str):
        try:
            return _u64(where, int(v, 0))
        except ValueError:
            pass
        from .regs import ids

        try:
            return ids.parse(v)
        except ValueError as e:
            raise ScenarioError(f"{where}: register {v!r}: {e}") from None
    return _u64(where, v)


def _function(where: str, v: object) -> int:
    if isinstance(v, str):
        try:
            return int(function_by_name(v))
        except KeyError:
            names = ", ".join(f.name for f in Function)
            raise ScenarioError(f"{where}: unknown call {v!r} (one of {names})") from None
    return _u64(where, v)


def _parse_cpu(where: str, v: object) -> dict[CpuReg, int]:
    if not isinstance(v, dict):
        raise ScenarioError(f"{where}: 'cpu' must be an object of registers")
    out: dict[CpuReg, int] = {}
    for key, val in v.items():
        if key == "x":
            if not isinstance(val, dict):
                raise ScenarioError(f"{where}: 'cpu.x' must map register numbers 0-30 to values")
            for n, xv in val.items():
                if not (isinstance(n, str) and n.isdigit() and 0 <= int(n) <= 30):
                    raise ScenarioError(f"{where}: cpu.x key {n!r} is not a register number 0-30")
                out[CpuReg(int(n))] = _u64(f"{where}: cpu.x.{n}", xv)
            continue
        try:
            reg = reg_by_key(key)
        except KeyError:
            raise ScenarioError(
                f"{where}: unknown cpu register {key!r} (x, sp, pc, pstate, elr_el1, "
                "spsr_el1, vbar_el1, sctlr_el1)"
            ) from None
        if reg.value <= 30:
            raise ScenarioError(f"{where}: give general registers as cpu.x, not {key!r}")
        out[reg] = _u64(f"{where}: cpu.{key}", val)
    return out


def parse(doc: object) -> Scenario:
    """Validate a scenario document (already JSON-decoded)."""
    if not isinstance(doc, dict):
        raise ScenarioError("scenario: the document must be a JSON object")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise ScenarioError(f"scenario: unknown key {unknown[0]!r}")
    if doc.get("format") != SCENARIO_FORMAT:
        raise ScenarioError(f"scenario: 'format' must be {SCENARIO_FORMAT!r}, "
                            f"not {doc.get('format')!r}")
    nv = doc.get("vcpus")
    if isinstance(nv, bool) or not isinstance(nv, int) or not 1 <= nv <= MAX_VCPUS:
        raise ScenarioError(f"scenario: 'vcpus' must be an integer 1..{MAX_VCPUS}, not {nv!r}")
    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list):
        raise ScenarioError("scenario: 'steps' must be a list")
    desc = doc.get("description", "")
    return Scenario(nv, tuple(_parse_step(i, s, nv) for i, s in enumerate(raw_steps)),
                    desc if isinstance(desc, str) else "")


def _parse_step(i: int, s: object, nvcpus: int) -> Step:
    where = f"step {i}"
    if not isinstance(s, dict):
        raise ScenarioError(f"{where}: a step must be a JSON object")
    unknown = sorted(set(s) - _STEP_KEYS)
    if unknown:
        raise ScenarioError(f"{where}: unknown key {unknown[0]!r}")
    acts = [a for a in ACTIONS if a in s]
    if len(acts) != 1:
        raise ScenarioError(f"{where}: needs exactly one of {', '.join(ACTIONS)}; has "
                            f"{', '.join(acts) or 'none'}")
    action = acts[0]
    if "args" in s and action != "call":
        raise ScenarioError(f"{where}: 'args' belongs only to a call")
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
            raise ScenarioError(f"{where}: vcpu {v!r} out of range 0..{nvcpus - 1}")
        vcpu = v
    val = s[action]
    args: tuple[int, ...] = ()
    if action == "cpu":
        value: Any = _parse_cpu(where, val)
    elif action == "call":
        value = _function(where, val)
        raw_args = s.get("args", [])
        if not isinstance(raw_args, list) or len(raw_args) > 5:
            raise ScenarioError(f"{where}: 'args' must be a list of at most 5 values (x1..x5)")
        args = tuple(_u64(f"{where}: args[{k}]", a) for k, a in enumerate(raw_args))
    elif action == "dispatch":
        if val is not True:
            raise ScenarioError(f"{where}: 'dispatch' must be true")
        value = True
    elif action == "inject":
        value = _u64(f"{where}: inject", val)
    elif action == "set_reg":
        if not isinstance(val, dict) or set(val) != {"id", "value"}:
            raise ScenarioError(f"{where}: 'set_reg' must be {{\"id\": ..., \"value\": ...}}")
        value = (_reg_id(f"{where}: set_reg.id", val["id"]),
                 _u64(f"{where}: set_reg.value", val["value"]))
    elif action == "get_reg":
        if isinstance(val, dict):
            if set(val) != {"id"}:
                raise ScenarioError(f"{where}: 'get_reg' must be {{\"id\": ...}} or an id")
            val = val["id"]
        value = _reg_id(f"{where}: get_reg", val)
    else:
        value = True
    return Step(i, action, vcpu, value, args)


def _sim_vm(n: int) -> Any:
    from .vcpu.sim import SimVm

    return SimVm(n)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


class Runner:
    """Runs steps on a simulated VM. ``vm_factory(n)`` builds a fresh SimVm (used at start and
    for the destination of every ``migrate``)."""

    def __init__(self, scenario: Scenario, vm_factory: Callable[[int], Any] | None = None):
        self.scenario = scenario
        self._factory: Callable[[int], Any] = vm_factory or _sim_vm
        self.vm: Any = self._factory(scenario.vcpus)

    def run(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "steps": list(self.iter_results()),
                "final": self.final()}

    def iter_results(self) -> Iterator[dict[str, Any]]:
        for step in self.scenario.steps:
            yield self.step(step)

    def step(self, step: Step) -> dict[str, Any]:
        a = step.action
        if a == "migrate":
            try:
                self.migrate()
            except SdeiStateError as e:  # e.g. RestoreError: a state restore() refuses
                raise ScenarioError(f"step {step.index}: migrate: {e}") from None
            return {}
        assert step.vcpu is not None
        vcpu = self.vm.vcpus[step.vcpu]
        if a == "cpu":
            vcpu.cpu.write(step.value)
            return {}
        if a == "call":
            vcpu.call(step.value, step.args)
            x0, x1, x2, x3 = vcpu.cpu.read((CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3))
            return {"x0": _signed(x0), "x1": x1, "x2": x2, "x3": x3}
        if a == "dispatch":
            ev = vcpu.dispatch()
            pc, pstate, x0, x1, x2, x3 = vcpu.cpu.read(
                (CpuReg.PC, CpuReg.PSTATE, CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3))
            return {"taken": None if ev is None else ev.number, "pc": pc, "pstate": pstate,
                    "x0": x0, "x1": x1, "x2": x2, "x3": x3}
        if a == "inject":
            return {"ok": bool(vcpu.inject(step.value))}
        if a == "set_reg":
            try:
                vcpu.set_reg(*step.value)
            except RegError as e:
                return {"errno": _errno.errorcode.get(e.errno or 0, str(e.errno))}
            return {"errno": None}
        if a == "get_reg":
            try:
                return {"value": vcpu.get_reg(step.value)}
            except RegError as e:
                return {"errno": _errno.errorcode.get(e.errno or 0, str(e.errno))}
        raise AssertionError(a)  # parse() admits nothing else

    def migrate(self) -> None:
        """Save every vCPU, through the binary blob, into a fresh VM; go on with that."""
        from .migration import Blob, restore_vm, save_vm

        blob = save_vm(self.vm.vcpus)
        wire = Blob.from_bytes(blob.to_bytes())
        dest = self._factory(self.scenario.vcpus)
        restore_vm(dest.vcpus, wire)
        self.vm = dest

    def final(self) -> list[dict[str, Any]]:
        out = []
        for i, vcpu in enumerate(self.vm.vcpus):
            ids = sorted(vcpu.reg_list())
            vals = vcpu.get_regs(ids)
            out.append({"vcpu": i,
                        "registers": {f"{r:#018x}": v for r, v in zip(ids, vals, strict=True)},
                        "cpu": vcpu.cpu.as_json()})
        return out


def run(doc: object) -> dict[str, Any]:
    """Parse and run a scenario document; the result document of DESIGN section 7."""
    return Runner(parse(doc)).run()


MAX_INT_DIGITS: Final = 24
"""Longest integer a scenario may hold (u64 needs 20 digits): longer ones are refused unparsed."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ScenarioError(f"duplicate key {key[:40]!r}")
        seen[key] = value
    return seen


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ScenarioError(f"integer of {len(text)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def load(text: str, source: str = "scenario") -> object:
    """Parse scenario JSON; duplicate keys, over-long integers and nesting deeper than the
    interpreter can follow are one-line errors, never a traceback."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise ScenarioError(f"{source}: bad JSON at line {e.lineno} column {e.colno}: "
                            f"{e.msg}") from None
    except ScenarioError as e:
        raise ScenarioError(f"{source}: {e}") from None
    except RecursionError:
        raise ScenarioError(f"{source}: JSON nested too deeply") from None


# -- generated scenarios (for throughput measurement and fuzzing) ---------------------------

_PLAUSIBLE: Final[Sequence[Function]] = tuple(Function)


def generate(steps: int, vcpus: int = 4, seed: int = 0) -> dict[str, Any]:
    """A random but guest-like scenario: mostly plausible calls, signals and dispatches, with
    occasional migrations, register accesses and injections."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    events = (0, 0x40400000)
    for _ in range(steps):
        v = rng.randrange(vcpus)
        r = rng.random()
        if r < 0.30:
            out.append({"vcpu": v, "dispatch": True})
        elif r < 0.33:
            out.append({"vcpu": v, "inject": rng.choice(events)})
        elif r < 0.36:
            out.append({"vcpu": v, "cpu": {"pc": rng.randrange(0, 1 << 20, 4),
                                           "x": {str(rng.randrange(18)): rng.getrandbits(64)}}})
        elif r < 0.37:
            out.append({"vcpu": v, "get_reg": f"{0x6030000000140110 + rng.randrange(2):#x}"})
        elif r < 0.372:
            out.append({"migrate": True})
        else:
            fn = rng.choice(_PLAUSIBLE)
            ev = rng.choice(events)
            if fn == Function.EVENT_REGISTER:
                args = [ev, rng.randrange(4, 1 << 20, 4), rng.getrandbits(16),
                        rng.choice((0, 0, 1, 2)), 0]
            elif fn == Function.EVENT_SIGNAL:
                args = [0, rng.randrange(vcpus)]
            elif fn == Function.EVENT_CONTEXT:
                args = [rng.randrange(19)]
            elif fn == Function.EVENT_COMPLETE_AND_RESUME:
                args = [rng.randrange(0, 1 << 20, 4)]
            elif fn == Function.EVENT_GET_INFO:
                args = [ev, rng.randrange(5)]
            elif fn == Function.FEATURES:
                args = [rng.randrange(3)]
            else:
                args = [ev]
            out.append({"vcpu": v, "call": fn.name, "args": args})
    return {"format": SCENARIO_FORMAT, "vcpus": vcpus, "steps": out,
            "description": f"generated: {steps} steps, {vcpus} vCPUs, seed {seed}"}


def results_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
