"""Whole-vCPU validation of a saved SDEI block: what ``restore()`` checks before it writes.

Per-register checks (a missing id, a value a register refuses) come first. Once every register
is present and valid the values decode to a ``VcpuState``, and the model's own statement of
what it can never produce (``VcpuState.canonical_problems``) is located in the registers here:
this module adds only which register holds each fact.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from ..events import EVENTS
from ..state import CanonicalProblem, VcpuState
from .sdei_block import SdeiRegKind
from .sdei_check import MISSING, SdeiRegisterError
from .sdei_codec import decode_values, encode_map, values_in_order
from .sdei_table import SDEI_REGS, ep_addr_id, ep_arg_id, event_state_id

_INTS: Final = frozenset({int})


def _register_problems(values: Mapping[int, int]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for reg in SDEI_REGS:
        if reg.id not in values:
            out.append((reg.id, MISSING))
            continue
        p = reg.layout.problem(values[reg.id])
        if p is not None:
            out.append((reg.id, p.text))
    return out


def _located(problem: CanonicalProblem, regs: Mapping[int, int]) -> list[tuple[int, str]]:
    """The registers that hold a canonical problem: the event's entry point or argument, or
    every non-zero register of the class's context."""
    if problem.part == "context":
        ids = [r.id for r in SDEI_REGS
               if r.kind is SdeiRegKind.CONTEXT and r.cls == problem.which and regs[r.id]]
    elif problem.part == "ep_addr":
        ids = [ep_addr_id(problem.which)]
    else:
        ids = [ep_arg_id(problem.which)]
    return [(rid, f"value {regs[rid]:#x}: {problem.text}") for rid in ids]


def state_problems(state: VcpuState) -> list[tuple[int, str]]:
    """The canonical problems of a state, each at the registers that hold it, by id."""
    problems = state.canonical_problems()
    if not problems:
        return []
    regs = encode_map(state)
    out = [loc for p in problems for loc in _located(p, regs)]
    out.sort(key=lambda p: p[0])
    return out


def _unjudged(bad: set[int]) -> set[int]:
    """Registers whose cross-register facts cannot be judged: the refused or missing ones, and
    for an event whose state word is refused, its entry point, argument and class's context
    (whether its handler runs is unknown, so nothing may be guessed about them)."""
    out = set(bad)
    for ev in EVENTS:
        if event_state_id(ev.index) in bad:
            out |= {ep_addr_id(ev.index), ep_arg_id(ev.index)}
            out |= {r.id for r in SDEI_REGS if r.cls == ev.priority}
    return out


def vcpu_problems(values: Mapping[int, int]) -> list[tuple[int, str]]:
    """Everything that stops ``values`` from being restored as one vCPU, as (reg_id, reason),
    ascending by id; empty means acceptable. Ids that are not SDEI registers are not looked at.

    Per register: the ``check_value`` rules (including the value's type) and a missing id.
    Across registers, judged from the registers that are present and valid, what the model
    could never produce (DESIGN section 4): a non-zero context for a class with no running
    handler, a non-zero entry point or argument for an unregistered event, a registered event
    whose entry point is 0."""
    try:
        vals = values_in_order(values)
        if _INTS.issuperset(map(type, vals)):  # bools and other non-ints: the slow path
            return state_problems(decode_values(vals))
    except (KeyError, SdeiRegisterError):
        pass
    per = _register_problems(values)
    unjudged = _unjudged({rid for rid, _ in per})
    try:
        state = decode_values(tuple(0 if r.id in unjudged else values[r.id] for r in SDEI_REGS))
    except SdeiRegisterError as e:  # a cross-field fact of VcpuState itself
        return per or [(e.reg_id, e.reason)]
    out = per + [p for p in state_problems(state) if p[0] not in unjudged]
    out.sort(key=lambda p: p[0])
    return out
