"""Measuring: CPU time, interleaved rounds, ratios against an in-process baseline, A/A control.

A *variant* is a callable ``run(n)`` that performs ``n`` operations and returns the CPU seconds
spent on them (it may do untimed set-up between operations, see ``timed_each``). ``compare``
runs a baseline and its subjects round-robin, ``rounds`` times, rotating the starting variant
each round so no variant always runs first, and runs the baseline twice per round: the second
copy (the A/A control) is compared with the first exactly as the subjects are, so its ratio
is the noise floor of every other ratio in the same comparison.

The clock is ``time.thread_time`` (CLOCK_THREAD_CPUTIME_ID: user + system time of this thread,
which includes the kernel's work inside an ioctl), so other jobs on a shared machine slow the
figures down less than a wall clock would; they still perturb caches, hence the A/A control.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

Variant = Callable[[int], float]
"""``run(n)``: do ``n`` operations, return the CPU seconds they took."""

MIN_ROUNDS: Final = 5
AA: Final = "A/A control"


def timed(op: Callable[[], object]) -> Variant:
    """A variant that times ``n`` back-to-back calls of ``op`` as one interval."""

    def run(n: int) -> float:
        clock = time.thread_time
        t0 = clock()
        for _ in range(n):
            op()
        return clock() - t0

    return run


def timed_each(setup: Callable[[], object], op: Callable[[], object]) -> Variant:
    """A variant that calls ``setup`` untimed before each ``op`` and sums the ``op`` times
    (for operations that need a fresh state each time, such as a dispatch)."""

    def run(n: int) -> float:
        clock = time.thread_time
        total = 0.0
        for _ in range(n):
            setup()
            t0 = clock()
            op()
            total += clock() - t0
        return total

    return run


def _stats(per_op: list[float]) -> dict[str, float]:
    return {"ns_min": round(min(per_op) * 1e9, 1),
            "ns_median": round(statistics.median(per_op) * 1e9, 1)}


def _ratio(a: list[float], b: list[float]) -> dict[str, float]:
    return {"ratio_min": round(min(b) / min(a), 3),
            "ratio_median": round(statistics.median(b) / statistics.median(a), 3)}


def compare(baseline: tuple[str, Variant], subjects: Mapping[str, Variant], *, ops: int,
            rounds: int, warmup: int = 1) -> dict[str, Any]:
    """Interleave ``baseline`` (twice: itself and the A/A control) and ``subjects``; per-op
    CPU time (min and median over rounds) of each and each one's ratio to the baseline."""
    if rounds < MIN_ROUNDS:
        raise ValueError(f"rounds={rounds}: at least {MIN_ROUNDS} are needed")
    base_name, base = baseline
    order: list[tuple[str, Variant]] = [(base_name, base), *subjects.items(), (AA, base)]
    for _, run in order if warmup else ():  # build cffi types, fault pages in, fill caches
        run(warmup)
    samples: dict[str, list[float]] = {name: [] for name, _ in order}
    for r in range(rounds):
        k = r % len(order)
        for name, run in order[k:] + order[:k]:
            samples[name].append(run(ops) / ops)
    a = samples[base_name]
    return {
        "baseline": base_name,
        "ops_per_round": ops,
        "rounds": rounds,
        "aa": _ratio(a, samples[AA]),
        "baseline_ns": _stats(a),
        "variants": {name: {**_stats(samples[name]), **_ratio(a, samples[name])}
                     for name in subjects},
    }


def per_op(run: Variant, *, ops: int, rounds: int) -> dict[str, float]:
    """Min and median per-op CPU time of one variant on its own (the no-op figures)."""
    run(1)
    return _stats([run(ops) / ops for _ in range(rounds)])
