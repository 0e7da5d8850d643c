"""Smoke test of the benchmark command: ``bench/run.py --quick --json`` runs every case and
prints one JSON document of the documented shape. It asserts no time: only that each figure is
there, is a positive number, and that the A/A control and the ratios are computed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CASES = ("host", "get", "set", "save_restore", "codec_vs_ioctls", "codec_vs_struct", "provider",
         "replay", "scale")
RATIO_KEYS = {"ratio_min", "ratio_median"}
TIME_KEYS = {"ns_min", "ns_median"}


def _positive(d: dict[str, Any], keys: set[str], where: str) -> None:
    assert keys <= d.keys(), f"{where}: missing {keys - d.keys()}"
    for k in keys:
        assert isinstance(d[k], (int, float)) and d[k] > 0, f"{where}.{k} = {d[k]!r}"


def _check_comparison(c: dict[str, Any], where: str, rounds: int) -> None:
    assert isinstance(c["baseline"], str) and c["baseline"]
    assert c["rounds"] == rounds >= 5
    assert c["ops_per_round"] >= 1
    _positive(c["aa"], RATIO_KEYS, f"{where}.aa")
    _positive(c["baseline_ns"], TIME_KEYS, f"{where}.baseline_ns")
    for name, v in c["variants"].items():
        _positive(v, RATIO_KEYS | TIME_KEYS, f"{where}.{name}")
        if "library_ns" in v:
            _positive(v["library_ns"], TIME_KEYS, f"{where}.{name}.library_ns")
        if "ioctls" in v:
            assert v["ioctls"] >= v["minimum_ioctls"] >= 1


def test_quick_json_shape() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["format"] == "sdei-state/bench/1"
    assert report["quick"] is True
    assert set(report["cases"]) == set(CASES)
    rounds = report["rounds"]
    ran = 0
    for name, case in report["cases"].items():
        if "skipped" in case:  # no /dev/kvm or no compiler here: the reason is given
            assert isinstance(case["skipped"], str) and case["skipped"], name
            continue
        ran += 1
        for title, cmp in case.get("comparisons", {"": case}).items():
            _check_comparison(cmp, f"{name}{'.' + title if title else ''}", rounds)
    # The pure-Python cases need nothing from the host, so they always run.
    assert all("skipped" not in report["cases"][c]
               for c in ("codec_vs_struct", "replay", "scale")), ran
    assert report["cases"]["replay"]["steps_per_s"] > 0
    if "skipped" not in report["cases"]["provider"]:
        jobs = report["cases"]["provider"]["comparisons"]
        assert set(jobs) == {"EVENT_STATUS", "dispatch", "COMPLETE"}
        for job, cmp in jobs.items():  # each provider beside its floor, the same ioctls
            modes = [n[len("provider "):] for n in cmp["variants"] if n.startswith("provider")]
            assert modes, job
            for mode in modes:
                prov, floor = cmp["variants"][f"provider {mode}"], cmp["variants"][f"floor {mode}"]
                assert floor["ioctls"] == prov["ioctls"] == prov["minimum_ioctls"], job
            assert "C, a call per transfer" in cmp["variants"], job
    if "skipped" not in report["cases"]["save_restore"]:
        variants = report["cases"]["save_restore"]["variants"]
        assert any(n.startswith("floor") for n in variants)
        assert "C, a call per transport call" in variants
        assert all("library_ns" not in v for n, v in variants.items()
                   if n.startswith(("floor", "C")))
    host = report["cases"]["host"]
    if "skipped" not in host:  # each call's penalty on each workload, from the medians
        assert set(host["penalty"]) == {f"{c}, then {w}" for c in ("getppid", "GET_ONE_REG")
                                        for w in (f"{host['steps']} indirect calls",
                                                  f"{host['steps']} loads")}
        for what, p in host["penalty"].items():
            assert isinstance(p["penalty_ns"], float), what
            assert p["workload_alone_ns"] > 0, what
    for kind in ("get", "set"):
        case = report["cases"][kind]
        if "skipped" not in case and "abi batched" in case["variants"]:
            assert "abi floor" in case["variants"], kind


def test_rounds_below_five_refused() -> None:
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--rounds", "3"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2
    assert "--rounds 3: at least 5" in r.stderr
    assert "Traceback" not in r.stderr


def test_without_a_compiler_the_ioctl_cases_say_why() -> None:
    env = {**os.environ, "CC": "/nonexistent/cc"}
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--json",
                        "--only", "get", "codec_vs_struct"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert r.returncode == 0, r.stderr
    cases = json.loads(r.stdout)["cases"]
    assert set(cases) == {"get", "codec_vs_struct"}
    # Without /dev/kvm the reason names that instead; either way the case is skipped.
    assert "skipped" in cases["get"] and cases["get"]["skipped"]
    assert "skipped" not in cases["codec_vs_struct"]
