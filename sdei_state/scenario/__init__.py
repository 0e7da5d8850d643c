"""Scenarios (DESIGN section 7): drive simulated vCPUs the way a guest and a VMM would.

The public API is here: ``load`` (JSON text to a value), ``parse`` (a value to a validated
``Scenario`` of ``Step``\\ s), ``run`` (parse and replay on simulated vCPUs, giving the result
document), ``Runner`` (step by step), ``generate`` (a random guest-like scenario) and the
format names and limits. Modules, one job each:

- ``format``: the scenario format, its limits, decoding and validation;
- ``replay``: running a scenario on a VM (simulated vCPUs by default);
- ``kvm_stub``, ``kvm_replay``: the real-KVM backends of replay (the stub guest; the provider
  and in-kernel VMs), imported on demand;
- ``agreement``: replaying scenarios on two backends and comparing the results;
- ``generate``: generated scenarios;
- ``schemas``: the published JSON Schemas of the scenario and result formats;
- ``conformance``: the conformance scenarios with their hand-written expectations;
- ``vectors``: the checked-in migration vectors, verified and regenerated.

``conformance`` and ``vectors`` are imported on demand (``from sdei_state.scenario import
vectors``); building the conformance scenarios is work a plain replay does not need.
"""

from __future__ import annotations

from .format import (
    ACTIONS,
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_STEPS,
    MAX_VCPUS,
    RESULT_FORMAT,
    SCENARIO_FORMAT,
    Scenario,
    Step,
    load,
    parse,
)
from .generate import generate
from .replay import Runner, run

__all__ = [
    "ACTIONS",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_STEPS",
    "MAX_VCPUS",
    "RESULT_FORMAT",
    "SCENARIO_FORMAT",
    "Runner",
    "Scenario",
    "Step",
    "generate",
    "load",
    "parse",
    "run",
]
