"""Several vCPU threads signalling each other on one VM: no signal lost, none taken twice.

EVENT_SIGNAL is edge-triggered (DEN0054C 5.1.16): a signal that finds event 0 already pending
merges into it. So the exact accounting is per *pending edge*: every time a signal makes event 0
pending on a vCPU (the machine reports it through ``on_pending``, which a VMM uses to kick that
vCPU), that edge must end either taken by exactly one dispatch or still pending at the end.
"""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.events import SW_SIGNALED
from sdei_state.machine import affinity_of
from sdei_state.spec import Function, Ret
from sdei_state.vcpu.sim import SimVm

HANDLER = 0x10000


def _prepare(vm: SimVm) -> None:
    for v in vm.vcpus:
        assert v.call(Function.EVENT_REGISTER, (0, HANDLER, v.index, 0, 0)).ret == Ret.SUCCESS
        assert v.call(Function.EVENT_ENABLE, (0,)).ret == Ret.SUCCESS
        assert v.call(Function.PE_UNMASK, ()).ret == Ret.SUCCESS


@pytest.mark.parametrize("nr_vcpus,iterations", [(4, 3000), (8, 1500)])
def test_signals_are_taken_once_or_still_pending(nr_vcpus: int, iterations: int) -> None:
    vm = SimVm(nr_vcpus)
    _prepare(vm)
    edges: Counter[int] = Counter()
    edge_lock = threading.Lock()

    def on_pending(target: int) -> None:
        with edge_lock:
            edges[target] += 1

    vm.machine.on_pending = on_pending
    taken: Counter[int] = Counter()
    sent: Counter[int] = Counter()
    errors: list[str] = []
    start = threading.Barrier(nr_vcpus)

    def vcpu_thread(index: int) -> None:
        rng = random.Random(index)
        vcpu = vm.vcpus[index]
        start.wait()
        for _ in range(iterations):
            if rng.random() < 0.5:
                target = rng.randrange(nr_vcpus)
                out = vcpu.call(Function.EVENT_SIGNAL, (0, affinity_of(target) | 1 << 31))
                if out.ret != Ret.SUCCESS:
                    errors.append(f"vCPU {index}: SIGNAL to {target} returned {out.ret}")
                sent[target] += 1
            else:
                ev = vcpu.dispatch()
                if ev is None:
                    continue
                if ev is not SW_SIGNALED or vcpu.cpu[CpuReg.PC] != HANDLER:
                    errors.append(f"vCPU {index}: dispatched {ev} at {vcpu.cpu[CpuReg.PC]:#x}")
                taken[index] += 1
                # The handler runs; a signal may land meanwhile and must stay pending.
                if vcpu.call(Function.EVENT_COMPLETE, (0,)).completed is not SW_SIGNALED:
                    errors.append(f"vCPU {index}: COMPLETE did not complete event 0")

    threads = [threading.Thread(target=vcpu_thread, args=(i,)) for i in range(nr_vcpus)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(nr_vcpus):
        still = int(vm.machine.state(i).event(SW_SIGNALED).pending)
        assert edges[i] == taken[i] + still, (i, edges[i], taken[i], still)
        assert taken[i] <= sent[i]
    assert sum(taken.values()) > 0 and sum(sent.values()) > sum(edges.values()) > 0
