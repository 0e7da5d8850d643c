"""Generated scenarios: random but guest-like, for throughput measurement and fuzzing."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Final

from ..errors import ScenarioError
from ..spec import Function
from .format import MAX_STEPS, MAX_VCPUS, SCENARIO_FORMAT

_PLAUSIBLE: Final[Sequence[Function]] = tuple(Function)


def generate(steps: int, vcpus: int = 4, seed: int = 0) -> dict[str, Any]:
    """A random but guest-like scenario: mostly plausible calls, signals and dispatches, with
    occasional migrations, register accesses and injections. ``ScenarioError`` for sizes a
    scenario may not have (``MAX_STEPS``, ``MAX_VCPUS``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= MAX_STEPS:
        raise ScenarioError(f"generate: steps must be an integer 0..{MAX_STEPS}, not {steps!r}")
    if isinstance(vcpus, bool) or not isinstance(vcpus, int) or not 1 <= vcpus <= MAX_VCPUS:
        raise ScenarioError(f"generate: vcpus must be an integer 1..{MAX_VCPUS}, not {vcpus!r}")
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
            out.append({"vcpu": v, **_call(rng, vcpus, events)})
    return {"format": SCENARIO_FORMAT, "vcpus": vcpus, "steps": out,
            "description": f"generated: {steps} steps, {vcpus} vCPUs, seed {seed}"}


def _call(rng: random.Random, vcpus: int, events: Sequence[int]) -> dict[str, Any]:
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
    return {"call": fn.name, "args": args}

