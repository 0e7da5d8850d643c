"""``sdei-state selftest``: conformance suites on the best backend available.

On an arm64 host with a usable /dev/kvm the suites run against real KVM (firmware registers,
SDEI end to end through the userspace provider, migration); elsewhere they run on the
reference model with simulated vCPUs. The report always names the backend, and a suite that
cannot run says why instead of passing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .backends import Backend, pick_backend
from .core import CaseResult, Outcome, Suite, counts, run_suites
from .report import REPORTERS


def all_suites(backend: Backend) -> list[Suite]:
    from . import model

    suites = [model.suite()]
    suites.extend(backend.extra_suites())
    return suites


def main(*, backend: str = "auto", fmt: str = "text", output: str | None = None,
         suites: Sequence[str] | None = None, list_only: bool = False) -> int:
    from ..cli import UserError

    be = pick_backend(backend)
    chosen = all_suites(be)
    if suites:
        names = {s.name for s in chosen}
        unknown = [s for s in suites if s not in names]
        if unknown:
            raise UserError(f"unknown suite {unknown[0]!r} (have: {', '.join(sorted(names))})")
        chosen = [s for s in chosen if s.name in suites]
    if list_only:
        for s in chosen:
            print(f"{s.name}: {s.description}")
            for c in s.cases:
                print(f"  {c.name}")
        return 0
    t0 = time.perf_counter()
    live = fmt == "text" and output is None and sys.stderr.isatty()

    def progress(r: CaseResult) -> None:
        if live:
            print(f"\r{r.suite}: {r.case}"[:78].ljust(78), end="", file=sys.stderr, flush=True)

    results = run_suites(chosen, be, be.missing, progress)
    if live:
        print("\r".ljust(79) + "\r", end="", file=sys.stderr)
    text = REPORTERS[fmt](results, be.name, time.perf_counter() - t0)
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            raise UserError(f"{output}: {e.strerror}") from None
        tally = counts(results)
        print(f"{tally[Outcome.PASS]} passed, {tally[Outcome.FAIL]} failed, {tally[Outcome.SKIP]} skipped "
              f"on {be.name}; report in {output}")
    else:
        sys.stdout.write(text)
    ran = [r for r in results if r.outcome is not Outcome.SKIP]
    failed = any(r.outcome is Outcome.FAIL for r in results)
    return 1 if failed or not ran else 0


__all__ = ["CaseResult", "Outcome", "Suite", "all_suites", "main", "run_suites"]
