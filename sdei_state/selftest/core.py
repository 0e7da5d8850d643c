"""Suites as data, one runner (in the style of the kernel's get-reg-list selftest).

A ``Suite`` is a name, what it needs from the backend, and a tuple of ``Case`` values; a case
is a name and a function that raises ``CheckFailed`` (with what was compared) or ``Skip``
(with the reason). ``run_suites`` runs every case once and returns immutable results.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..errors import SdeiStateError


class SelftestError(SdeiStateError):
    """The selftest cannot run as asked (an unknown suite, a backend this host lacks, an
    unwritable report); printed as one line."""


class Skip(Exception):
    """The case cannot run here; the message is the reason (printed with the skip)."""


class CheckFailed(AssertionError):
    """A guest-visible value differed from what was expected; the message says which."""


class Outcome(Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    run: Callable[[Any], None]
    """Called with the backend; returns normally on success."""
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    description: str
    cases: tuple[Case, ...]
    needs: frozenset[str] = field(default_factory=frozenset)
    """Backend features the whole suite requires; a missing one skips every case with the
    reason the backend gives for it."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    case: str
    outcome: Outcome
    message: str
    seconds: float


def expect_eq(what: str, got: object, want: object) -> None:
    """Raise CheckFailed naming ``what`` unless got == want (ints printed in hex too)."""
    if got != want:
        def fmt(v: object) -> str:
            return f"{v} ({v:#x})" if isinstance(v, int) and not isinstance(v, bool) else repr(v)

        raise CheckFailed(f"{what}: got {fmt(got)}, want {fmt(want)}")


def run_suites(
    suites: Sequence[Suite],
    backend: Any,
    missing: Callable[[frozenset[str]], str | None],
    progress: Callable[[CaseResult], None] | None = None,
) -> list[CaseResult]:
    """Run every case of every suite on ``backend``. ``missing(needs)`` returns the reason a
    backend cannot serve a suite's needs, or None."""
    results: list[CaseResult] = []
    for suite in suites:
        reason = missing(suite.needs)
        for case in suite.cases:
            if reason is not None:
                r = CaseResult(suite.name, case.name, Outcome.SKIP, reason, 0.0)
            else:
                r = _run_case(suite, case, backend)
            results.append(r)
            if progress is not None:
                progress(r)
    return results


def _run_case(suite: Suite, case: Case, backend: Any) -> CaseResult:
    t0 = time.perf_counter()
    try:
        case.run(backend)
    except Skip as e:
        return CaseResult(suite.name, case.name, Outcome.SKIP, str(e), time.perf_counter() - t0)
    except CheckFailed as e:
        return CaseResult(suite.name, case.name, Outcome.FAIL, str(e), time.perf_counter() - t0)
    except Exception as e:  # a crash is a failure of the case, reported with where it happened
        tb = traceback.extract_tb(e.__traceback__)[-1]
        where = f"{tb.filename.rsplit('/', 1)[-1]}:{tb.lineno}"
        return CaseResult(suite.name, case.name, Outcome.FAIL,
                          f"{type(e).__name__}: {e} (at {where})", time.perf_counter() - t0)
    return CaseResult(suite.name, case.name, Outcome.PASS, "", time.perf_counter() - t0)


def counts(results: Iterable[CaseResult]) -> dict[Outcome, int]:
    c = dict.fromkeys(Outcome, 0)
    for r in results:
        c[r.outcome] += 1
    return c
