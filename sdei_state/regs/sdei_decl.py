"""The SDEI register layouts (DESIGN section 4), each declared once as a construct BitStruct.

Field names, widths, documentation and RES0 bits are the encoding's own; the value rules are
the model's (``state.event_flags_problem``, ``state.context_pstate_problem``), wrapped as
``Rule``s so that the declaration, its fast path, the C header and the docs all carry them.
"""

from __future__ import annotations

from typing import Any, Final

import construct as cs

from ..spec import Status
from ..state import PSTATE_MODE_MASK, context_pstate_problem, event_flags_problem
from .sdei_layout import RegLayout, Rule, res0


def _event_flags(t: Any) -> tuple[str, str] | None:
    return event_flags_problem(t.registered, t.enabled, t.running, t.pending, t.relative)


def _context_mode(t: Any) -> tuple[str, str] | None:
    bad = context_pstate_problem(t.m)
    return None if bad is None else ("M", bad)


VCPU_STATE_LAYOUT: Final = RegLayout(
    "SDEI_VCPU_STATE",
    "The vCPU's SDEI mask (PE_MASK / PE_UNMASK).",
    cs.BitStruct(
        res0(63),
        "masked" / cs.Flag * "1: SDEI events are masked on this vCPU (every vCPU starts masked)",
    ),
    reset={"masked": True},  # DEN0054C: every PE starts masked
)

EVENT_STATE_LAYOUT: Final = RegLayout(
    "SDEI_EVENT_STATE",
    "One event's handler state on this vCPU; bits[2:0] are the EVENT_STATUS result.",
    cs.BitStruct(
        res0(59),
        "relative" / cs.Flag * "the entry point is an offset from VBAR_EL1 (REGISTER flags[1])",
        "pending" / cs.Flag * "a trigger is waiting for dispatch (edge-triggered: at most one)",
        "running" / cs.Flag * "the handler is running (EVENT_STATUS bit[2])",
        "enabled" / cs.Flag * "the event is enabled (EVENT_STATUS bit[1])",
        "registered" / cs.Flag * "a handler is registered (EVENT_STATUS bit[0])",
        Rule(("registered", "enabled", "running", "pending", "relative"), _event_flags),
    ),
)

EP_ADDR_LAYOUT: Final = RegLayout(
    "SDEI_EVENT_EP_ADDR",
    "The registered entry point: absolute, or an offset from VBAR_EL1 when RELATIVE.",
    cs.BitStruct(
        "addr" / cs.BitsInteger(62) * "entry point bits[63:2]",
        res0(2, "the entry point must be 4-byte aligned"),
    ),
)

EP_ARG_LAYOUT: Final = RegLayout(
    "SDEI_EVENT_EP_ARG",
    "The ep_argument given to EVENT_REGISTER, passed to the handler in x1.",
    cs.BitStruct("arg" / cs.BitsInteger(64) * "any value"),
)

CONTEXT_X_LAYOUT: Final = RegLayout(
    "SDEI_CONTEXT(c, 0..17)",
    "Interrupted x0..x17 of the running handler of class c (what EVENT_CONTEXT reads).",
    cs.BitStruct("value" / cs.BitsInteger(64) * "the interrupted general-purpose register"),
)

CONTEXT_PC_LAYOUT: Final = RegLayout(
    "SDEI_CONTEXT(c, 18)",
    "Interrupted PC of the running handler of class c.",
    cs.BitStruct("pc" / cs.BitsInteger(64) * "the interrupted PC, any value"),
)

CONTEXT_PSTATE_LAYOUT: Final = RegLayout(
    "SDEI_CONTEXT(c, 19)",
    "Interrupted PSTATE (SPSR_EL1 format) of the running handler of class c.",
    cs.BitStruct(
        "other" / cs.BitsInteger(59) * "PSTATE bits[63:5] (NZCV, DAIF, ...), stored as given",
        "m"
        / cs.BitsInteger(5)
        * "M[4:0], the mode: AArch64 EL0t, EL1t, EL1h or AArch32 User only",
        Rule(("m",), _context_mode),
    ),
)

LAYOUTS: Final[tuple[RegLayout, ...]] = (
    VCPU_STATE_LAYOUT,
    EVENT_STATE_LAYOUT,
    EP_ADDR_LAYOUT,
    EP_ARG_LAYOUT,
    CONTEXT_X_LAYOUT,
    CONTEXT_PC_LAYOUT,
    CONTEXT_PSTATE_LAYOUT,
)
"""Every distinct layout of the block, in register order."""

# Bits the codec and the presentation read, from the declarations. The EVENT_STATE status bits
# must be exactly the EVENT_STATUS result (DESIGN section 4).
MASKED: Final = VCPU_STATE_LAYOUT.by_attr["masked"].mask
REGISTERED: Final = EVENT_STATE_LAYOUT.by_attr["registered"].mask
ENABLED: Final = EVENT_STATE_LAYOUT.by_attr["enabled"].mask
RUNNING: Final = EVENT_STATE_LAYOUT.by_attr["running"].mask
PENDING: Final = EVENT_STATE_LAYOUT.by_attr["pending"].mask
RELATIVE: Final = EVENT_STATE_LAYOUT.by_attr["relative"].mask
MODE: Final = CONTEXT_PSTATE_LAYOUT.by_attr["m"].mask
if (REGISTERED, ENABLED, RUNNING) != (Status.REGISTERED, Status.ENABLED, Status.RUNNING):
    raise AssertionError("SDEI_EVENT_STATE bits[2:0] must be the EVENT_STATUS layout")
if MODE != PSTATE_MODE_MASK:
    raise AssertionError("SDEI_CONTEXT PSTATE mode field must be PSTATE.M[4:0]")
