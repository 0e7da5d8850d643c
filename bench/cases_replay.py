"""Scenario replay in process: steps per second of CPU time on a generated scenario.

The scenario (``sdei_state.scenario.generate``, seed 0, 4 vCPUs) is generated once; each
operation is one step of ``scenario.run`` (parse + every step + the final register dump, as
the CLI does minus reading and writing JSON). There is no external baseline for replay: the
figure is the rate, and the A/A control (the same replay against itself) is its noise.
"""

from __future__ import annotations

import time
from typing import Any

from harness import compare

from sdei_state import scenario


def case(steps: int, *, rounds: int) -> dict[str, Any]:
    doc = scenario.generate(steps)

    def replay(n: int) -> float:
        # n is a number of steps: whole replays, scaled to n steps of cost.
        reps = max(1, n // steps)
        t0 = time.thread_time()
        for _ in range(reps):
            scenario.run(doc)
        return (time.thread_time() - t0) * n / (reps * steps)

    out = compare((f"replay of {steps} generated steps", replay), {}, ops=steps,
                  rounds=rounds)
    med = out["baseline_ns"]["ns_median"]
    best = out["baseline_ns"]["ns_min"]
    return {"steps": steps, "steps_per_s": round(1e9 / med), "steps_per_s_best": round(1e9 / best),
            **out}
