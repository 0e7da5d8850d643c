"""The runner's call step on a VM without a model of its own (the real-KVM replay VMs): the
vCPU makes the call itself (``ReplayVcpu.call``), and the results equal the simulated path."""

from __future__ import annotations

from typing import Any

from sdei_state.scenario import generate
from sdei_state.scenario.agreement import agree
from sdei_state.scenario.conformance import SCENARIOS
from sdei_state.vcpu.sim import SimVcpu, SimVm


class _Vcpu:
    """A simulated vCPU seen as a real-KVM replay vCPU: no machine to call through."""

    def __init__(self, v: SimVcpu, calls: list[int]) -> None:
        self._v = v
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._v, name)

    def call(self, function: int, args: tuple[int, ...] = ()) -> None:
        self._calls.append(function)
        self._v.call(function, args)


class _Vm:
    def __init__(self, n: int, calls: list[int]) -> None:
        self.vcpus = tuple(_Vcpu(v, calls) for v in SimVm(n).vcpus)


def test_a_vm_without_a_machine_gets_its_calls_made_by_the_vcpu() -> None:
    calls: list[int] = []
    docs = [(c.name, c.scenario) for c in SCENARIOS] + [("generated", generate(300, 2, 1))]
    out = agree(docs, None, lambda n: _Vm(n, calls))
    assert out.mismatches == [] and out.scenarios == len(docs)
    assert len(calls) > 300  # the call steps went through _Vcpu.call
