"""The host itself: what one vCPU ioctl costs the user code that runs after it.

Every ratio in this benchmark compares Python that runs between ioctls with C that runs none.
If an ioctl also slowed down the user code after it, that would show in every ratio and no
library change could remove it; this case measures it, from C, so the figure says what the
host does and nothing of the library. ``host_probe.c``'s ``bench_after`` makes a call (none,
``getppid``, or ``KVM_GET_ONE_REG`` of a stand-in MSR) and then runs a fixed workload: 512
calls through a function table (an interpreter's dispatch), or 512 loads from an L1-sized
buffer. All variants run interleaved in one ``compare``; the *penalty* of a call on a
workload is ``median(call, then workload) - median(call alone) - median(workload alone)``.
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from harness import Variant, compare
from kvm_env import KvmEnv

from sdei_state.kvm import ioctls

STEPS: Final = 512
"""Workload steps after each call: indirect calls (about a microsecond) or loads."""
# The values of host_probe.c's enums (PROBE_NONE, PROBE_GETPPID, PROBE_IOCTL; PROBE_BRANCHES,
# PROBE_LOADS), named as the report names them.
CALLS: Final = {"nothing": 0, "getppid": 1, "GET_ONE_REG": 2}
WORKS: Final = {f"{STEPS} indirect calls": 0, f"{STEPS} loads": 1}


class _Probe:
    def __init__(self, env: KvmEnv) -> None:
        ffi, self._lib = env.native
        self._fd = env.fd
        self._word = ffi.new("uint64_t *")
        self._reg = ffi.new("struct kvm_one_reg *",
                            {"id": env.msrs[0][0], "addr": int(ffi.cast("uintptr_t", self._word))})

    def variant(self, call: int, work: int, steps: int) -> Variant:
        after, fd, reg = self._lib.bench_after, self._fd, self._reg

        def run(n: int) -> float:
            t0 = time.thread_time()
            r = after(call, work, fd, ioctls.KVM_GET_ONE_REG, reg, n, steps)
            t = time.thread_time() - t0
            if r < 0:
                raise OSError(-r, f"host probe: KVM_GET_ONE_REG failed: {os.strerror(-r)}")
            return t

        return run


def case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    probe = _Probe(env)
    subjects: dict[str, Variant] = {}
    for cname, call in CALLS.items():
        if call:
            subjects[f"{cname} alone"] = probe.variant(call, 0, 0)
        for wname, work in WORKS.items():
            subjects[f"{cname}, then {wname}"] = probe.variant(call, work, STEPS)
    base = subjects.pop("GET_ONE_REG alone")
    out = compare(("GET_ONE_REG alone", base), subjects, ops=ops, rounds=rounds)
    med = {name: v["ns_median"] for name, v in out["variants"].items()}
    med["GET_ONE_REG alone"] = out["baseline_ns"]["ns_median"]
    penalty = {}
    for cname in ("getppid", "GET_ONE_REG"):
        for wname in WORKS:
            alone = med[f"nothing, then {wname}"]
            penalty[f"{cname}, then {wname}"] = {
                "workload_alone_ns": alone,
                "penalty_ns": round(med[f"{cname}, then {wname}"] - med[f"{cname} alone"]
                                    - alone, 1)}
    return {"steps": STEPS, "penalty": penalty, **out}
