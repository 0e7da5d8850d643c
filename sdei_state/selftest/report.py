"""Reporters: a readable summary, TAP version 13 (kselftest's), one JSON document, JUnit XML.

Each takes the ``Report`` of one run and returns the whole text to write.
"""

from __future__ import annotations

import json as _json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from xml.etree import ElementTree as ET

from .core import KSFT_SKIP, Outcome, Report, counts, exit_status, one_line, skip_reason


def text(rep: Report) -> str:
    results = rep.results
    lines = [f"sdei-state selftest on backend: {rep.backend}"]
    for suite in dict.fromkeys(r.suite for r in results):
        per = [x for x in results if x.suite == suite]
        c = counts(per)
        t = sum(x.seconds for x in per)
        lines.append(f"\n[{suite}] {c[Outcome.PASS]} passed, {c[Outcome.FAIL]} failed, "
                     f"{c[Outcome.SKIP]} skipped ({t:.2f}s)")
        reasons = {x.message for x in per}
        if c[Outcome.SKIP] == len(per) and len(reasons) == 1:
            # A whole suite the backend cannot serve: its reason once, not once per case.
            lines.append(f"  skip all {len(per)} cases  -- {reasons.pop()}")
            continue
        for r in per:
            mark = {Outcome.PASS: "ok  ", Outcome.FAIL: "FAIL", Outcome.SKIP: "skip"}[r.outcome]
            line = f"  {mark} {r.case}"
            if r.message:
                line += f"  -- {r.message}"
            lines.append(line)
    c = counts(results)
    lines.append(f"\n{c[Outcome.PASS]} passed, {c[Outcome.FAIL]} failed, "
                 f"{c[Outcome.SKIP]} skipped in {rep.seconds:.2f}s on {rep.backend}")
    if rep.notes:
        lines.append("\nnotes:")
        lines.extend(f"  {n}" for n in rep.notes)
    return "\n".join(lines) + "\n"


def tap(rep: Report) -> str:
    """TAP version 13 as tools/testing/selftests/kselftest.h (Linux 6.12) prints it:
    ksft_print_header() "TAP version 13", ksft_set_plan() "1..N", ksft_test_result_code()
    "ok N name", "not ok N name", "ok N name # SKIP reason", ksft_print_msg() "# ...", and
    ksft_print_cnts() "# Totals: pass:N fail:N xfail:0 xpass:0 skip:N error:0". When no case
    can run, the plan is ksft_exit_skip()'s before any test, "1..0 # SKIP reason", and there
    are no result lines and no Totals (ksft_exit_skip prints them only once a test counted)."""
    results = rep.results
    backend = f"# sdei-state selftest on backend: {one_line(rep.backend)}"
    if exit_status(results) == KSFT_SKIP:
        plan = f"1..0 # SKIP {skip_reason(results)}"
        return "\n".join(["TAP version 13", plan, backend]) + "\n"
    lines = ["TAP version 13", f"1..{len(results)}", backend]
    for i, r in enumerate(results, 1):
        if r.outcome is Outcome.PASS:
            lines.append(f"ok {i} {r.path}")
        elif r.outcome is Outcome.SKIP:
            lines.append(f"ok {i} {r.path} # SKIP {one_line(r.message)}")
        else:
            # kselftest_harness.h prints what went wrong as "# " lines before "not ok".
            lines.extend(f"# {r.path}: {m}" for m in r.message.splitlines() or [""])
            lines.append(f"not ok {i} {r.path}")
    lines.extend(f"# {one_line(n)}" for n in rep.notes)
    c = counts(results)
    lines.append(f"# Totals: pass:{c[Outcome.PASS]} fail:{c[Outcome.FAIL]} xfail:0 xpass:0 "
                 f"skip:{c[Outcome.SKIP]} error:0")
    return "\n".join(lines) + "\n"


def json(rep: Report) -> str:
    """One JSON document: the backend, every case in run order, totals, notes, exit status."""
    c = counts(rep.results)
    doc = {
        "backend": rep.backend,
        "cases": [{"suite": r.suite, "name": r.case, "status": r.outcome.value,
                   "reason": r.message or None, "duration": round(r.seconds, 6)}
                  for r in rep.results],
        "totals": {o.value: c[o] for o in Outcome},
        "duration": round(rep.seconds, 6),
        "notes": list(rep.notes),
        "exit_status": exit_status(rep.results),
    }
    return _json.dumps(doc, indent=2) + "\n"


def junit(rep: Report) -> str:
    root = ET.Element("testsuites", name="sdei-state selftest", time=f"{rep.seconds:.3f}")
    for suite in dict.fromkeys(r.suite for r in rep.results):
        per = [r for r in rep.results if r.suite == suite]
        c = counts(per)
        el = ET.SubElement(root, "testsuite", name=suite, tests=str(len(per)),
                           failures=str(c[Outcome.FAIL]), skipped=str(c[Outcome.SKIP]),
                           time=f"{sum(r.seconds for r in per):.3f}")
        props = ET.SubElement(el, "properties")
        ET.SubElement(props, "property", name="backend", value=rep.backend)
        for r in per:
            tc = ET.SubElement(el, "testcase", classname=suite, name=r.case,
                               time=f"{r.seconds:.3f}")
            if r.outcome is Outcome.FAIL:
                ET.SubElement(tc, "failure", message=r.message)
            elif r.outcome is Outcome.SKIP:
                ET.SubElement(tc, "skipped", message=r.message)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


REPORTERS: Mapping[str, Callable[[Report], str]] = MappingProxyType(
    {"text": text, "tap": tap, "json": json, "junit": junit})
"""By ``--format`` name; the CLI's choices are these keys."""
