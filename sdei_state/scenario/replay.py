"""Scenario replay (DESIGN section 7): run a parsed scenario on simulated or real vCPUs.

``Runner`` runs each step on a VM (simulated by default; ``kvm_replay.vm_factory`` gives the
real-KVM ones) and yields its result object; ``run`` parses a document and returns the whole
result document (``sdei-state/result/1``). A ``migrate`` step goes through the binary blob
into a fresh VM, as a VMM's migration would.
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Callable, Iterator
from typing import Any, Final

from ..cpu import CALL_ARGS, CpuReg, read_values, write_values
from ..errors import RegError, ScenarioError, SdeiStateError
from .format import RESULT_FORMAT, Scenario, Step, parse

_NO_ARGS: Final = (0,) * 5
_RESULT: Final = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3)
_DISPATCHED: Final = (CpuReg.PC, CpuReg.PSTATE, *_RESULT)


def _sim_vm(n: int) -> Any:
    from ..vcpu.sim import SimVm

    return SimVm(n)


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


def _errno_name(e: RegError) -> str:
    return _errno.errorcode.get(e.errno or 0, str(e.errno))


class Runner:
    """Runs steps on a simulated VM. ``vm_factory(n)`` builds a fresh SimVm (used at start and
    for the destination of every ``migrate``)."""

    def __init__(self, scenario: Scenario, vm_factory: Callable[[int], Any] | None = None):
        self.scenario = scenario
        self._factory: Callable[[int], Any] = vm_factory or _sim_vm
        self.vm: Any = self._factory(scenario.vcpus)

    def run(self) -> dict[str, Any]:
        return {"format": RESULT_FORMAT, "steps": list(map(self.step, self.scenario.steps)),
                "final": self.final()}

    def iter_results(self) -> Iterator[dict[str, Any]]:
        for step in self.scenario.steps:
            yield self.step(step)

    def step(self, step: Step) -> dict[str, Any]:
        a = step.action  # the commonest actions first: calls, then dispatches
        if a == "call":
            vcpu = self.vm.vcpus[step.vcpu]
            cpu = vcpu.cpu
            machine = getattr(self.vm, "machine", None)
            if machine is None:  # a real-KVM VM (kvm_replay): its vCPU runs the stub's hvc
                vcpu.call(step.value, step.args)
            else:
                # parse() checked the function id and the arguments (u64s, at most 5): the
                # guest's x0..x5 are stored as they are (write_values, no dict and no second
                # check) and the HVC served.
                write_values(cpu, CALL_ARGS, (step.value, *step.args, *_NO_ARGS)[:6])
                machine.hvc(vcpu.index, cpu)
            x0, x1, x2, x3 = read_values(cpu, _RESULT)
            return {"x0": _signed(x0), "x1": x1, "x2": x2, "x3": x3}
        if a == "dispatch":
            vcpu = self.vm.vcpus[step.vcpu]
            ev = vcpu.dispatch()
            pc, pstate, x0, x1, x2, x3 = read_values(vcpu.cpu, _DISPATCHED)
            return {"taken": None if ev is None else ev.number, "pc": pc, "pstate": pstate,
                    "x0": x0, "x1": x1, "x2": x2, "x3": x3}
        if a == "migrate":
            try:
                self.migrate()
            except SdeiStateError as e:  # e.g. RestoreError: a state restore() refuses
                raise ScenarioError(f"step {step.index}: migrate: {e}") from None
            return {}
        assert step.vcpu is not None
        vcpu = self.vm.vcpus[step.vcpu]
        if a == "cpu":
            vcpu.cpu.write(step.value)
            return {}
        if a == "inject":
            return {"ok": bool(vcpu.inject(step.value))}
        if a == "set_reg":
            try:
                vcpu.set_reg(*step.value)
            except RegError as e:
                return {"errno": _errno_name(e)}
            return {"errno": None}
        if a == "get_reg":
            try:
                return {"value": vcpu.get_reg(step.value)}
            except RegError as e:
                return {"errno": _errno_name(e)}
        raise AssertionError(a)  # parse() admits nothing else

    def migrate(self) -> None:
        """Save every vCPU, through the binary blob, into a fresh VM; go on with that."""
        from ..migration import Blob, restore_vm, save_vm

        blob = save_vm(self.vm.vcpus)
        wire = Blob.from_bytes(blob.to_bytes())
        dest = self._factory(self.scenario.vcpus)
        try:
            restore_vm(dest.vcpus, wire)
        except BaseException:
            _close(dest)
            raise
        _close(self.vm)
        self.vm = dest

    def close(self) -> None:
        """Release the VM (a real one holds file descriptors; a simulated one nothing)."""
        _close(self.vm)

    def final(self) -> list[dict[str, Any]]:
        out = []
        for i, vcpu in enumerate(self.vm.vcpus):
            ids = sorted(vcpu.reg_list())
            vals = vcpu.get_regs(ids)
            out.append({"vcpu": i,
                        "registers": {f"{r:#018x}": v for r, v in zip(ids, vals, strict=True)},
                        "cpu": vcpu.cpu.as_json()})
        return out


def _close(vm: Any) -> None:
    close = getattr(vm, "close", None)
    if close is not None:
        close()


def run(doc: object, vm_factory: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Parse and run a scenario document (on ``vm_factory``'s VMs, simulated by default);
    the result document of DESIGN section 7."""
    runner = Runner(parse(doc), vm_factory)
    try:
        return runner.run()
    finally:
        runner.close()
