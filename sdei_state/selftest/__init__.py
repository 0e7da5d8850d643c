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

from .backends import SimBackend, SuiteBackend
from .core import CaseResult, Outcome, SelftestError, Suite, counts, run_suites
from .report import REPORTERS


def pick_backend(choice: str) -> SuiteBackend:
    """``auto``: arm64 KVM if it can be used here, else the simulated vCPU."""
    if choice == "sim":
        return SimBackend("--backend sim was asked for")
    from .kvm_backend import probe_kvm

    kvm, why = probe_kvm()
    if kvm is not None:
        return kvm
    if choice == "kvm":
        raise SelftestError(f"--backend kvm: {why}")
    return SimBackend(why)


def all_suites(backend: SuiteBackend) -> list[Suite]:
    """Every suite, in the order they run; those the backend cannot serve skip with its
    reason (``SuiteBackend.missing``)."""
    from . import fw_suite, migration_suite, model, sdei_suites, stress_suite

    suites = [model.suite(), fw_suite.suite(), sdei_suites.calls_suite(),
              sdei_suites.dispatch_suite(), migration_suite.suite(), stress_suite.suite(),
              sdei_suites.in_kernel_suite(migration_suite.in_kernel_cases())]
    suites.extend(backend.extra_suites())
    return suites


def main(*, backend: str = "auto", fmt: str = "text", output: str | None = None,
         suites: Sequence[str] | None = None, list_only: bool = False) -> int:
    """``sdei-state selftest``: run the suites on the backend ``pick_backend`` chooses and
    report; the exit status is 1 on any failure (or when nothing could run), else 0."""
    be = pick_backend(backend)
    try:
        return _run(be, fmt, output, suites, list_only)
    finally:
        be.close()


def _run(be: SuiteBackend, fmt: str, output: str | None, suites: Sequence[str] | None,
         list_only: bool) -> int:
    chosen = all_suites(be)
    if suites:
        names = {s.name for s in chosen}
        unknown = [s for s in suites if s not in names]
        if unknown:
            raise SelftestError(f"unknown suite {unknown[0]!r} (have: {', '.join(sorted(names))})")
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
    notes = be.memo.get("notes", [])
    if fmt == "text" and notes:
        text += "\nnotes:\n" + "".join(f"  {n}\n" for n in notes)
    if output:
        try:
            Path(output).write_text(text)
        except OSError as e:
            raise SelftestError(f"{output}: {e.strerror}") from None
        tally = counts(results)
        print(f"{tally[Outcome.PASS]} passed, {tally[Outcome.FAIL]} failed, "
              f"{tally[Outcome.SKIP]} skipped on {be.name}; report in {output}")
    else:
        sys.stdout.write(text)
    ran = [r for r in results if r.outcome is not Outcome.SKIP]
    failed = any(r.outcome is Outcome.FAIL for r in results)
    return 1 if failed or not ran else 0


__all__ = ["CaseResult", "Outcome", "SelftestError", "Suite", "all_suites", "main",
           "pick_backend", "run_suites"]
