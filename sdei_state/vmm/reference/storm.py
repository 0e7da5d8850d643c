"""The stop/pause measurement on real KVM: N vCPU threads (16 by default), each guest
signalling the next vCPU's event 0 as fast as it can and completing its own handler, while a
storm thread sends the kick signal to every vCPU thread without pause. Repeatedly, every
thread is asked to pause; it must park having made at most one more ``KVM_RUN`` (the one in
flight when the request came, which the kick interrupts); then all resume. At the end, per
vCPU, every signal that made event 0 pending was taken exactly once or is still pending.

    python -m sdei_state.vmm.reference.storm [--vcpus 16] [--cycles 20] [--json]

(needs arm64 KVM with the SMCCC filter: run it in the lab).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Final

from ...cpu import CpuReg
from ...events import Event
from ...guest import a64
from ...guest.asm import Asm
from ...kvm import Kvm, VcpuFeature
from ...machine import affinity_of
from ...spec import Function
from ..provider import KICK_SIGNAL, SdeiProvider, install_kick_handler

BASE: Final = 0x1000_0000
STRIDE: Final = 0x1000
MEM: Final = 0x10_0000


def program(index: int, target_mpidr: int) -> bytes:
    """Register and enable event 0, unmask, then signal ``target_mpidr`` forever; the
    handler completes at once."""
    a = Asm(BASE + index * STRIDE)
    a.mov_imm(0, Function.EVENT_REGISTER)
    a.mov_imm(1, 0)
    a.mov_addr(2, "handler")
    a.mov_imm(3, 0)
    a.mov_imm(4, 0)
    a.emit(a64.hvc(0))
    a.mov_imm(0, Function.EVENT_ENABLE)
    a.mov_imm(1, 0)
    a.emit(a64.hvc(0))
    a.mov_imm(0, Function.PE_UNMASK)
    a.emit(a64.hvc(0))
    top = a.label("top")
    a.mov_imm(0, Function.EVENT_SIGNAL)
    a.mov_imm(1, 0)
    a.mov_imm(2, target_mpidr)
    a.emit(a64.hvc(0))
    a.b(top)
    a.align(16)
    a.label("handler")
    a.mov_imm(0, Function.EVENT_COMPLETE)
    a.emit(a64.hvc(0))
    a.b("handler")  # never reached: COMPLETE does not return here
    return a.assemble().data


class CountingProvider(SdeiProvider):
    """The provider, counting per vCPU the signals that made event 0 pending there and the
    handler entries (cheap: no register reads beyond the provider's own)."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.made_pending = [0] * n
        self.entered = [0] * n
        self._count = threading.Lock()

    def _pending(self, index: int) -> None:
        with self._count:  # any vCPU's thread may make event 0 pending on ``index``
            self.made_pending[index] += 1
        super()._pending(index)

    def before_run(self, index: int) -> Event | None:
        ev = super().before_run(index)
        if ev is not None:
            self.entered[index] += 1
        return ev


@dataclass
class StormResult:
    vcpus: int
    cycles: int
    kicks_sent: int
    kvm_run_round_trip_us: float
    """Mean wall time of one KVM_RUN that serves a call (runs / seconds, all threads)."""
    pause_latency_us_median: float
    pause_latency_us_max: float
    extra_runs_max: int
    """Most KVM_RUNs any thread started after a pause request (must be <= 1)."""
    signals: int
    entered: int
    pending_at_end: int
    lost_or_doubled: int
    """Sum over vCPUs of |made pending - entered - still pending| (must be 0)."""


def run(n: int = 16, cycles: int = 20, run_ms: float = 100.0,
        storm_us: float = 500.0) -> StormResult:
    install_kick_handler()
    kvm = Kvm()
    vm = kvm.create_vm()
    p = CountingProvider(n)
    p.install(vm)
    mem = vm.add_memory(0, BASE, MEM)
    vcpus = []
    for i in range(n):
        mem.write(i * STRIDE, program(i, affinity_of((i + 1) % n)))
        v = vm.create_vcpu(i)
        v.init([VcpuFeature.PSCI_0_2])
        regs = p.attach(i, v)
        regs.cpu.write({CpuReg.PC: BASE + i * STRIDE})
        vcpus.append(v)
    loops = [p.loop(i) for i in range(n)]
    stop = threading.Event()

    def vcpu_thread(i: int) -> None:
        while not stop.is_set():
            ex = p.run(i)
            if ex is not None:
                raise RuntimeError(f"vCPU {i}: unexpected exit {ex}")

    threads = [threading.Thread(target=vcpu_thread, args=(i,), daemon=True) for i in range(n)]
    kicks = [0]

    def storm() -> None:
        while not stop.is_set():
            for lp in loops:
                if lp.thread is not None:
                    signal.pthread_kill(lp.thread, KICK_SIGNAL)
                    kicks[0] += 1
            time.sleep(storm_us / 1e6)

    for t in threads:
        t.start()
    stormer = threading.Thread(target=storm, daemon=True)
    stormer.start()
    latencies: list[float] = []
    extra = 0
    run_time = 0.0
    runs = 0
    for _ in range(cycles):
        r0, t0 = sum(lp.runs for lp in loops), time.monotonic()
        time.sleep(run_ms / 1000)
        at = [lp.runs for lp in loops]
        run_time += time.monotonic() - t0
        runs += sum(at) - r0
        t_req = time.monotonic()
        for lp in loops:
            lp.request_pause()
        for i, lp in enumerate(loops):
            if not lp.wait_parked(10):
                raise RuntimeError(f"vCPU {i} did not park within 10 s")
            latencies.append(time.monotonic() - t_req)
            extra = max(extra, lp.runs - at[i])
        for lp in loops:
            lp.resume()
    stop.set()
    for lp in loops:
        lp.request_stop()
    for t in threads:
        t.join(10)
    stormer.join(5)
    pending = [int(any(es.pending for _ev, es in p.machine.state(i).pairs()))
               for i in range(n)]
    bad = sum(abs(p.made_pending[i] - p.entered[i] - pending[i]) for i in range(n))
    vm.close()
    kvm.close()
    return StormResult(
        n, cycles, kicks[0], 1e6 * run_time * n / max(runs, 1),
        1e6 * statistics.median(latencies), 1e6 * max(latencies), extra,
        sum(p.made_pending), sum(p.entered), sum(pending), bad)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sdei_state.vmm.reference.storm")
    ap.add_argument("--vcpus", type=int, default=16)
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--run-ms", type=float, default=100.0,
                    help="how long the guests run between two pauses")
    ap.add_argument("--storm-us", type=float, default=500.0,
                    help="pause between two rounds of kicks to every vCPU thread")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if not os.path.exists("/dev/kvm"):
        print("storm: needs /dev/kvm (arm64 KVM; run it in the lab)", file=sys.stderr)
        return 4
    r = run(a.vcpus, a.cycles, a.run_ms, a.storm_us)
    if a.json:
        print(json.dumps(asdict(r)))
    else:
        for k, v in asdict(r).items():
            print(f"{k}: {v:.1f}" if isinstance(v, float) else f"{k}: {v}")
    return 0 if r.extra_runs_max <= 1 and r.lost_or_doubled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
