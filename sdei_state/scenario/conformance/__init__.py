"""Conformance scenarios for the SDEI model, as data: a hand-written oracle.

Each ``Conformance`` is a scenario document (DESIGN section 7) with hand-written expectations:
for every step, the exact result DEN0054C and DESIGN sections 4-5 require (a partial result
object), and optionally final register values by name. Nothing here is computed by the model,
and nothing here imports the library's spec or register encoding (``sdei_state.spec``,
``sdei_state.regs``): return codes, event numbers, PSTATE values and register ids are written
out in ``oracle``, so a bug in the encoding cannot hide in both the code and its expectation.

Modules, one job each: ``oracle`` (the written-out constants and register ids), ``steps`` (the
script builder and the ``Conformance`` value), ``calls``, ``handlers``, ``registers``,
``migration``, ``linux`` (the scenarios, by topic), ``collection`` (their order), ``check``
(the checker) and ``markdown`` (the table in docs/scenarios.md).
"""

from __future__ import annotations

from .check import check, describe_step, run_one, validate_final_keys
from .collection import BY_NAME, SCENARIOS
from .markdown import markdown_list
from .oracle import (
    DENIED,
    EV0,
    EV1,
    FIRMWARE_IDS,
    INVALID,
    NOT_SUPPORTED,
    OUT_OF_RESOURCE,
    PENDING,
    REG_IDS,
    SDEI_IDS,
    SUCCESS,
    SYSTEM_IDS,
    VERSION_1_1_KVM,
    reg_name,
)
from .steps import Conformance

__all__ = [
    "BY_NAME",
    "DENIED",
    "EV0",
    "EV1",
    "FIRMWARE_IDS",
    "INVALID",
    "NOT_SUPPORTED",
    "OUT_OF_RESOURCE",
    "PENDING",
    "REG_IDS",
    "SCENARIOS",
    "SDEI_IDS",
    "SUCCESS",
    "SYSTEM_IDS",
    "VERSION_1_1_KVM",
    "Conformance",
    "check",
    "describe_step",
    "markdown_list",
    "reg_name",
    "run_one",
    "validate_final_keys",
]
