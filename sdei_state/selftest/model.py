"""The model's conformance suite: every scenario of ``sdei_state.scenario.conformance``
replayed on the simulated vCPU and compared with its hand-written DEN0054C expectations."""

from __future__ import annotations

from typing import Any

from ..scenario.conformance import SCENARIOS, Conformance, run_one
from .core import Case, CheckFailed, Suite


def _case(conf: Conformance) -> Case:
    def run(_backend: Any) -> None:
        _result, problems = run_one(conf)
        if problems:
            more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
            raise CheckFailed(problems[0] + more)

    return Case(conf.name, run, conf.doc if isinstance(conf.doc, str) else "")


def suite() -> Suite:
    return Suite("model-conformance",
                 "DEN0054C cases replayed on the reference model with simulated vCPUs",
                 tuple(_case(c) for c in SCENARIOS))
