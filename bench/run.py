"""Every benchmark of sdei-state in one run: ratios against in-process baselines.

    python bench/run.py [--quick] [--json] [--rounds R] [--only CASE ...]

Each figure is a CPU-time ratio to a baseline measured in the same process, interleaved with
it round by round, with min and median over the rounds and an A/A control (the baseline
against itself) showing the noise floor. Beside each ratio: the library's own Python time per
operation with a transport that makes no ioctl. See docs/performance.md. Nothing here asserts
a time; it reports. A case that cannot run here (no /dev/kvm, no C compiler) says why.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the source tree's sdei_state, not an installed one

import cases_bindings  # noqa: E402
import cases_host  # noqa: E402
import cases_migration  # noqa: E402
import cases_provider  # noqa: E402
import cases_replay  # noqa: E402
from harness import MIN_ROUNDS  # noqa: E402
from kvm_env import KvmEnv, open_env  # noqa: E402

from sdei_state.kvm import ffi  # noqa: E402

FORMAT: Final = "sdei-state/bench/1"

# name -> (needs KVM, function, ops per round full, ops per round quick)
Case = Callable[..., dict[str, Any]]
CASES: Final[dict[str, tuple[bool, Case, int, int]]] = {
    "host": (True, cases_host.case, 2000, 200),
    "get": (True, cases_bindings.get_case, 400, 40),
    "set": (True, cases_bindings.set_case, 400, 40),
    "save_restore": (True, cases_migration.save_restore_case, 20, 3),
    "codec_vs_ioctls": (True, cases_migration.codec_vs_ioctls_case, 300, 30),
    "codec_vs_struct": (False, cases_migration.codec_vs_struct_case, 2000, 200),
    "provider": (True, cases_provider.case, 100, 10),
    "replay": (False, cases_replay.case, 10_000, 1_000),
    "scale": (False, cases_migration.scale_case, 4096, 256),
}
"""For ``replay`` the size is the scenario's steps; for ``scale`` the large VM's vCPUs."""


def run_all(names: list[str], *, quick: bool, rounds: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "format": FORMAT,
        "host": f"{platform.machine()} Linux {platform.release()}",
        "python": sys.version.split()[0],
        "cffi_modes": "api and abi" if ffi.api_unavailable_reason() is None else
                      f"abi only (API mode: {ffi.api_unavailable_reason()})",
        "clock": "time.thread_time (CPU time of this thread: user + system)",
        "quick": quick,
        "rounds": rounds,
        "cases": {},
    }
    with tempfile.TemporaryDirectory(prefix="sdei-bench-") as td:
        env: KvmEnv | str | None = None
        for name in names:
            needs_kvm, fn, full, small = CASES[name]
            size = small if quick else full
            t0 = time.monotonic()
            if needs_kvm:
                if env is None:
                    env = open_env(Path(td))
                if isinstance(env, str):
                    report["cases"][name] = {"skipped": env}
                    continue
                result = fn(env, ops=size, rounds=rounds)
            else:
                result = fn(size, rounds=rounds)
            result["seconds"] = round(time.monotonic() - t0, 1)
            report["cases"][name] = result
        if isinstance(env, KvmEnv):
            env.close()
    return report


def _fmt_variant(name: str, v: dict[str, Any]) -> str:
    lib = v.get("library_ns")
    extra = f"   library {lib['ns_median'] / 1e3:8.2f} us/op" if lib else ""
    ioctls = f"   ioctls {v['ioctls']}/{v['minimum_ioctls']}" if "ioctls" in v else ""
    return (f"    {name:<22} {v['ratio_median']:7.3f} x (min {v['ratio_min']:6.3f})  "
            f"{v['ns_median'] / 1e3:9.2f} us/op{extra}{ioctls}")


def print_text(report: dict[str, Any]) -> None:
    print(f"sdei-state benchmarks on {report['host']}, Python {report['python']}, "
          f"cffi {report['cffi_modes']}; {report['rounds']} interleaved rounds, CPU time; "
          "ratio = median (min) of the subject over the baseline")
    for name, c in report["cases"].items():
        if "skipped" in c:
            print(f"{name}: skipped: {c['skipped']}")
            continue
        for title, cmp in c.get("comparisons", {"": c}).items():
            head = f"{name} {title}".strip()
            aa = cmp["aa"]
            print(f"{head}: baseline {cmp['baseline']} {cmp['baseline_ns']['ns_median'] / 1e3:.2f}"
                  f" us/op; A/A {aa['ratio_median']:.3f} (min {aa['ratio_min']:.3f})")
            for vname, v in cmp["variants"].items():
                print(_fmt_variant(vname, v))
            if "stand_in_ns" in cmp:
                print(f"    (of which the stand-in transport's bookkeeping: "
                      f"{cmp['stand_in_ns']['ns_median'] / 1e3:.2f} us/op)")
        for what, p in c.get("penalty", {}).items():
            print(f"    penalty of {what}: {p['penalty_ns'] / 1e3:6.2f} us per call "
                  f"(the workload alone: {p['workload_alone_ns'] / 1e3:.2f} us)")
        for key in ("steps_per_s", "ioctls_per_op"):
            if key in c:
                print(f"    {key}: {c[key]}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run (seconds)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"interleaved rounds (default 7, quick {MIN_ROUNDS}; at least "
                        f"{MIN_ROUNDS})")
    p.add_argument("--only", nargs="+", choices=sorted(CASES), default=None,
                   help="run only these cases")
    a = p.parse_args(argv)
    rounds = a.rounds if a.rounds is not None else (MIN_ROUNDS if a.quick else 7)
    if rounds < MIN_ROUNDS:
        p.error(f"--rounds {rounds}: at least {MIN_ROUNDS} are needed for a min and a median")
    report = run_all(a.only or list(CASES), quick=a.quick, rounds=rounds)
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
