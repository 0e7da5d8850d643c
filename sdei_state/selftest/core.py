"""Suites as data, one runner (in the style of the kernel's get-reg-list selftest).

A ``Suite`` is a name, what it needs from the backend, and a tuple of ``Case`` values; a case
is a name and a function that raises ``CheckFailed`` (with what was compared) or ``Skip``
(with the reason). ``select`` picks suites and cases by name, ``run_suites`` runs every case
once and returns immutable results, and ``exit_status`` turns them into kselftest's exit codes.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from fnmatch import fnmatchcase
from typing import Any, Final, NoReturn

from ..errors import SdeiStateError

# The exit codes of tools/testing/selftests/kselftest.h (KSFT_PASS, KSFT_FAIL, KSFT_SKIP): the
# kselftest runner (tools/testing/selftests/kselftest/runner.sh) reports 4 as a skip and any
# other nonzero status as a failure.
KSFT_PASS: Final = 0
KSFT_FAIL: Final = 1
KSFT_SKIP: Final = 4


class SelftestError(SdeiStateError):
    """A selftest usage mistake (an unknown suite or case, a report file that cannot be
    written); the CLI prints it as one line with exit status 2."""


class BackendUnavailable(SdeiStateError):
    """The backend asked for cannot run on this host; the message says why. kselftest counts
    that as a skip, not an error, so the selftest runs on ``NoBackend`` instead."""


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
    """SuiteBackend features the whole suite requires; a missing one skips every case with the
    reason the backend gives for it."""


@dataclass(frozen=True, slots=True)
class CaseResult:
    suite: str
    case: str
    outcome: Outcome
    message: str
    seconds: float

    @property
    def path(self) -> str:
        """``suite/case``: the name ``--list`` prints, ``--case`` takes and TAP reports."""
        return f"{self.suite}/{self.case}"


@dataclass(frozen=True, slots=True)
class Report:
    """One selftest run, as every reporter receives it."""

    backend: str
    results: tuple[CaseResult, ...]
    seconds: float
    notes: tuple[str, ...] = ()
    """Sizes, times and counts the suites recorded (``SuiteBackend.memo["notes"]``)."""


class NoBackend:
    """Stands in for a backend that cannot run here: every suite skips with ``reason``."""

    kind = "none"
    features: frozenset[str] = frozenset()

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.name = f"none ({reason})"
        self.memo: dict[str, Any] = {}

    def missing(self, needs: frozenset[str]) -> str:
        return self.reason

    def extra_suites(self) -> list[Suite]:
        return []

    def engine(self, programs: Sequence[Any], *, in_kernel: bool = False) -> NoReturn:
        raise BackendUnavailable(self.reason)  # never reached: ``missing`` skips every suite

    def close(self) -> None:
        pass


def select(suites: Sequence[Suite], suite_patterns: Sequence[str] = (),
           case_patterns: Sequence[str] = ()) -> list[Suite]:
    """The suites and cases the patterns name (all when none are given), in run order.

    Patterns are shell globs (``fnmatch``). A suite pattern matches suite names. A case
    pattern ``SUITE/CASE`` matches the cases CASE of the suites SUITE; a bare ``CASE`` matches
    in every chosen suite. A pattern that matches nothing raises ``SelftestError`` naming it
    and the known names.
    """
    chosen = list(suites)
    for p in suite_patterns:
        if not any(fnmatchcase(s.name, p) for s in chosen):
            raise SelftestError(f"unknown suite {p!r} (have: {_names(chosen)})")
    if suite_patterns:
        chosen = [s for s in chosen if any(fnmatchcase(s.name, p) for p in suite_patterns)]
    for p in case_patterns:
        suite_p, case_p = _split(p)
        in_suites = [s for s in chosen if fnmatchcase(s.name, suite_p)]
        if not in_suites:
            raise SelftestError(f"unknown suite {suite_p!r} in --case {p!r} "
                                f"(have: {_names(chosen)})")
        if not any(fnmatchcase(c.name, case_p) for s in in_suites for c in s.cases):
            raise SelftestError(f"unknown case {p!r} "
                                f"(have: {_names(c for s in in_suites for c in s.cases)})")
    if not case_patterns:
        return chosen
    picked = []
    for s in chosen:
        cases = tuple(c for c in s.cases if any(
            fnmatchcase(s.name, sp) and fnmatchcase(c.name, cp)
            for sp, cp in map(_split, case_patterns)))
        if cases:
            picked.append(Suite(s.name, s.description, cases, s.needs))
    return picked


def _split(case_pattern: str) -> tuple[str, str]:
    """``SUITE/CASE`` as (SUITE, CASE); a bare ``CASE`` is in any suite."""
    suite, sep, case = case_pattern.rpartition("/")
    return (suite if sep else "*"), case


def _names(items: Iterable[Suite | Case]) -> str:
    """The distinct names, in run order, for an error message."""
    return ", ".join(dict.fromkeys(i.name for i in items))


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


def exit_status(results: Iterable[CaseResult]) -> int:
    """kselftest's convention: any failure is KSFT_FAIL; nothing run (every case skipped) is
    KSFT_SKIP; else KSFT_PASS."""
    c = counts(results)
    if c[Outcome.FAIL]:
        return KSFT_FAIL
    return KSFT_PASS if c[Outcome.PASS] else KSFT_SKIP


def skip_reason(results: Iterable[CaseResult]) -> str:
    """Why the skipped cases skipped: their distinct reasons, in run order, on one line."""
    reasons = dict.fromkeys(one_line(r.message) for r in results if r.outcome is Outcome.SKIP)
    return "; ".join(r for r in reasons if r) or "no case could run"


def one_line(text: str) -> str:
    """``text`` with its line breaks folded, for formats whose records are single lines."""
    return " ".join(text.splitlines()).strip()
