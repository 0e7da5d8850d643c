"""Reporters: a readable summary, TAP version 13, and JUnit XML."""

from __future__ import annotations

from collections.abc import Sequence
from xml.etree import ElementTree as ET

from .core import CaseResult, Outcome, counts


def text(results: Sequence[CaseResult], backend: str, seconds: float) -> str:
    lines = [f"sdei-state selftest on backend: {backend}"]
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
                 f"{c[Outcome.SKIP]} skipped in {seconds:.2f}s on {backend}")
    return "\n".join(lines) + "\n"


def tap(results: Sequence[CaseResult], backend: str, seconds: float) -> str:
    lines = ["TAP version 13", f"1..{len(results)}", f"# backend: {backend}"]
    for i, r in enumerate(results, 1):
        name = f"{r.suite}: {r.case}"
        if r.outcome is Outcome.PASS:
            lines.append(f"ok {i} - {name}")
        elif r.outcome is Outcome.SKIP:
            lines.append(f"ok {i} - {name} # SKIP {r.message}")
        else:
            lines.append(f"not ok {i} - {name}")
            lines.append("  ---")
            lines.append(f"  message: {r.message!r}")
            lines.append("  ...")
    c = counts(results)
    lines.append(f"# {c[Outcome.PASS]} passed, {c[Outcome.FAIL]} failed, "
                 f"{c[Outcome.SKIP]} skipped in {seconds:.2f}s")
    return "\n".join(lines) + "\n"


def junit(results: Sequence[CaseResult], backend: str, seconds: float) -> str:
    root = ET.Element("testsuites", name="sdei-state selftest", time=f"{seconds:.3f}")
    for suite in dict.fromkeys(r.suite for r in results):
        per = [r for r in results if r.suite == suite]
        c = counts(per)
        el = ET.SubElement(root, "testsuite", name=suite, tests=str(len(per)),
                           failures=str(c[Outcome.FAIL]), skipped=str(c[Outcome.SKIP]),
                           time=f"{sum(r.seconds for r in per):.3f}")
        props = ET.SubElement(el, "properties")
        ET.SubElement(props, "property", name="backend", value=backend)
        for r in per:
            tc = ET.SubElement(el, "testcase", classname=suite, name=r.case,
                               time=f"{r.seconds:.3f}")
            if r.outcome is Outcome.FAIL:
                ET.SubElement(tc, "failure", message=r.message)
            elif r.outcome is Outcome.SKIP:
                ET.SubElement(tc, "skipped", message=r.message)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


REPORTERS = {"text": text, "tap": tap, "junit": junit}
