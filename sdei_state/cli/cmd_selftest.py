"""``sdei-state selftest``: the conformance suites, the kselftest way (see docs/selftest.md)."""

from __future__ import annotations

import argparse
from typing import Any

from ..selftest.report import REPORTERS


def cmd_selftest(a: argparse.Namespace) -> int:
    from ..selftest import main as selftest_main

    return selftest_main(backend=a.backend, fmt=a.format, output=a.output,
                         suites=a.suite or None, cases=a.case or None, list_only=a.list)


def add_parser(sub: Any) -> None:
    s = sub.add_parser(
        "selftest", help="run the conformance suites on the best backend",
        description="Run the conformance suites on the best backend, the kselftest way.",
        epilog="exit status: 0 every case that ran passed, 1 a case failed, 4 nothing could "
               "run (every case skipped, kselftest's KSFT_SKIP), 2 a usage error",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--backend", choices=("auto", "sim", "kvm"), default="auto",
                   help="auto: arm64 KVM if usable, else the simulated vCPU (default); kvm "
                        "where it is unusable skips every case")
    s.add_argument("--format", choices=tuple(REPORTERS), default="text",
                   help="text (default), tap (TAP version 13 as kselftest prints it), json "
                        "(one document) or junit (XML)")
    s.add_argument("-o", "--output", metavar="FILE",
                   help="write the report here instead of stdout")
    s.add_argument("--suite", action="append", metavar="NAME",
                   help="run only the suites NAME matches (a shell glob; repeatable)")
    s.add_argument("--case", action="append", metavar="NAME",
                   help="run only the cases NAME matches: a case name or SUITE/CASE, a shell "
                        "glob (repeatable)")
    s.add_argument("--list", action="store_true",
                   help="print the chosen cases as SUITE/CASE, one per line; run nothing")
    s.set_defaults(func=cmd_selftest)
