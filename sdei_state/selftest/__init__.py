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
from .core import (
    KSFT_PASS,
    BackendUnavailable,
    CaseResult,
    NoBackend,
    Outcome,
    Report,
    SelftestError,
    Suite,
    counts,
    exit_status,
    run_suites,
    select,
)
from .report import REPORTERS


def pick_backend(choice: str) -> SuiteBackend:
    """``auto``: arm64 KVM if it can be used here, else the simulated vCPU. ``kvm`` where
    it cannot be used raises ``BackendUnavailable`` with the reason."""
    if choice == "sim":
        return SimBackend("--backend sim was asked for")
    from .kvm_backend import probe_kvm

    kvm, why = probe_kvm()
    if kvm is not None:
        return kvm
    if choice == "kvm":
        raise BackendUnavailable(f"--backend kvm: {why}")
    return SimBackend(why)


def all_suites(backend: SuiteBackend, named: Sequence[str] = ()) -> list[Suite]:
    """Every suite, in the order they run; those the backend cannot serve skip with its
    reason (``SuiteBackend.missing``). The opt-in suites (``linux-guest``: it boots a Linux
    guest, a minute in the lab; ``stock-vmm``: it runs QEMU inside the lab) are included
    only when ``named`` (the --suite patterns) has a pattern that matches them."""
    from fnmatch import fnmatchcase

    from . import (
        cost,
        fw_suite,
        linux_guest_suite,
        migration_suite,
        model,
        replay_suite,
        sdei_suites,
        stock_suite,
        stress_suite,
    )

    suites = [model.suite(), fw_suite.suite(), sdei_suites.calls_suite(),
              sdei_suites.dispatch_suite(), migration_suite.suite(), stress_suite.suite(),
              sdei_suites.in_kernel_suite(migration_suite.in_kernel_cases()),
              replay_suite.suite(), cost.suite()]
    suites.extend(backend.extra_suites())
    opt_in = [linux_guest_suite.suite(), stock_suite.suite()]
    suites.extend(o for o in opt_in if any(fnmatchcase(o.name, p) for p in named))
    return suites


def main(*, backend: str = "auto", fmt: str = "text", output: str | None = None,
         suites: Sequence[str] | None = None, cases: Sequence[str] | None = None,
         list_only: bool = False) -> int:
    """``sdei-state selftest``: run the chosen suites and cases (``core.select``) on the
    backend ``pick_backend`` chooses and report. Returns kselftest's exit status
    (``core.exit_status``: 0 pass, 1 any failure, 4 nothing could run). A backend asked for but
    unusable here is a skip of every case (``NoBackend``), as kselftest's KSFT_SKIP."""
    try:
        be: SuiteBackend = pick_backend(backend)
    except BackendUnavailable as e:
        be = NoBackend(str(e))
    try:
        return _run(be, fmt, output, select(all_suites(be, suites or ()), suites or (),
                                            cases or ()),
                    list_only)
    finally:
        be.close()


def _run(be: SuiteBackend, fmt: str, output: str | None, chosen: Sequence[Suite],
         list_only: bool) -> int:
    if list_only:
        sys.stdout.write("".join(f"{s.name}/{c.name}\n" for s in chosen for c in s.cases))
        return KSFT_PASS
    t0 = time.perf_counter()
    live = fmt == "text" and output is None and sys.stderr.isatty()

    def progress(r: CaseResult) -> None:
        if live:
            print(f"\r{r.suite}: {r.case}"[:78].ljust(78), end="", file=sys.stderr, flush=True)

    results = tuple(run_suites(chosen, be, be.missing, progress))
    if live:
        print("\r".ljust(79) + "\r", end="", file=sys.stderr)
    report = Report(be.name, results, time.perf_counter() - t0,
                    tuple(be.memo.get("notes", ())))
    text = REPORTERS[fmt](report)
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
    return exit_status(results)


__all__ = ["CaseResult", "Outcome", "Report", "Suite", "all_suites", "main", "pick_backend",
           "run_suites", "select"]
