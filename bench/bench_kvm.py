"""The cost of one KVM_GET_ONE_REG through the bindings, against the same ioctl loop in C.

    python bench/bench_kvm.py [--iterations N] [--batch B] [--reps R] [--reg ID] [--json]

Measured in one run on the host's /dev/kvm (x86: an MSR through ONE_REG, Linux >= 6.18):
the C loop (bench/bench_kvm_get_one_reg.c, compiled with ``cc -O2`` here), and for each cffi
mode available, ``Vcpu.get_reg`` called in a Python loop ("single") and a prepared
``RegBatch`` of B registers ("batched": one call into C per batch in API mode). C and Python
repetitions are interleaved and the median of each is reported with its ratio to C.
Nothing here asserts a time; it reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sdei_state.kvm import Kvm, RegBatch, Vcpu, ffi  # noqa: E402
from sdei_state.kvm.ffi import Mode  # noqa: E402

SYSENTER_CS = 0x2030_0002_0000_0174  # an x86 MSR that does not tick, unlike the TSC


def build_c(tmp: Path) -> Path | None:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return None
    exe = tmp / "bench_kvm_get_one_reg"
    subprocess.run([cc, "-O2", "-o", str(exe), str(HERE / "bench_kvm_get_one_reg.c")],
                   check=True)
    return exe


def c_ns(exe: Path, reg: int, n: int) -> float:
    out = subprocess.run([str(exe), hex(reg), str(n), "1"], capture_output=True, text=True,
                         check=True).stdout
    return float(out.split()[0])


def py_single_ns(vcpu: Vcpu, reg: int, n: int) -> float:
    get = vcpu.get_reg
    t0 = time.perf_counter_ns()
    for _ in range(n):
        get(reg)
    return (time.perf_counter_ns() - t0) / n


def py_batched_ns(batch: RegBatch, n_batches: int, size: int) -> float:
    get = batch.get
    t0 = time.perf_counter_ns()
    for _ in range(n_batches):
        get()
    return (time.perf_counter_ns() - t0) / (n_batches * size)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--iterations", type=int, default=20000, help="GETs per repetition")
    p.add_argument("--batch", type=int, default=256, help="registers per batched call")
    p.add_argument("--reps", type=int, default=7, help="interleaved repetitions")
    p.add_argument("--reg", type=lambda s: int(s, 0), default=SYSENTER_CS)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    a = p.parse_args(argv)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("bench_kvm: no usable /dev/kvm", file=sys.stderr)
        return 1
    modes: list[Mode] = ["abi"]
    if not ffi.api_unavailable_reason():
        modes.append("api")
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as td:
        exe = build_c(Path(td))
        kvms = {m: Kvm(mode=m) for m in modes}
        vcpus = {m: kvms[m].create_vm().create_vcpu(0) for m in modes}
        batches = {m: vcpus[m].reg_batch([a.reg] * a.batch) for m in modes}
        n_batches = max(1, a.iterations // a.batch)
        for m in modes:  # warm up (first calls build cffi types, fault in pages)
            py_single_ns(vcpus[m], a.reg, 100)
            py_batched_ns(batches[m], 2, a.batch)
        for _ in range(a.reps):
            if exe is not None:
                results.setdefault("C ioctl loop", []).append(c_ns(exe, a.reg, a.iterations))
            for m in modes:
                results.setdefault(f"{m} single", []).append(
                    py_single_ns(vcpus[m], a.reg, a.iterations))
                results.setdefault(f"{m} batched", []).append(
                    py_batched_ns(batches[m], n_batches, a.batch))
        for kvm in kvms.values():
            kvm.close()
    med = {k: statistics.median(v) for k, v in results.items()}
    base = med.get("C ioctl loop")
    report: dict[str, object] = {
        "host": f"{platform.machine()} Linux {platform.release()}",
        "python": sys.version.split()[0],
        "register": hex(a.reg), "iterations": a.iterations, "batch": a.batch, "reps": a.reps,
        "ns_per_get": {k: round(v, 1) for k, v in med.items()},
        "ratio_to_c": {k: round(v / base, 3) for k, v in med.items()} if base else None,
        "spread_ns": {k: [round(min(v), 1), round(max(v), 1)] for k, v in results.items()},
    }
    if a.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"KVM_GET_ONE_REG {report['register']} on {report['host']}, Python "
          f"{report['python']}: {a.iterations} GETs x {a.reps} interleaved reps, medians")
    if base is None:
        print("(no C compiler: no baseline)")
    for k, v in med.items():
        lo, hi = min(results[k]), max(results[k])
        ratio = f"{v / base:6.3f} x C" if base else ""
        print(f"  {k:<14} {v:8.1f} ns/GET  {ratio}   (min {lo:.1f}, max {hi:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
