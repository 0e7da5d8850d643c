"""Call sequences: what a guest and its VMM do to the SDEI state of a VM, as data.

A sequence is a list of steps, each on one vCPU: an SDEI ``Call`` (x0 = the function id, x1-x5
= the arguments), the VMM's ``Dispatch`` check before it enters the guest, or a hypervisor
``Inject``. ``apply`` runs them on a ``SimVm`` through the same entry points a scenario uses
(``SimVcpu.call``, ``dispatch``, ``inject``), so every state it leaves behind is one the model
reaches.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..spec import Function
from ..vcpu.sim import SimVm


@dataclass(frozen=True, slots=True)
class Call:
    """An SDEI call made by the guest on ``vcpu``."""

    vcpu: int
    function: Function
    args: tuple[int, ...] = ()

    def __str__(self) -> str:
        args = ", ".join(f"{a:#x}" for a in self.args)
        return f"vCPU {self.vcpu}: {self.function.name}({args})"


@dataclass(frozen=True, slots=True)
class Dispatch:
    """The VMM's entry check before it runs ``vcpu``: enter a deliverable handler, if any."""

    vcpu: int

    def __str__(self) -> str:
        return f"vCPU {self.vcpu}: dispatch"


@dataclass(frozen=True, slots=True)
class Inject:
    """The hypervisor injects event ``number`` on ``vcpu`` (refused unless registered there)."""

    vcpu: int
    number: int

    def __str__(self) -> str:
        return f"vCPU {self.vcpu}: inject {self.number:#x}"


Step = Call | Dispatch | Inject


def apply(vm: SimVm, steps: Iterable[Step]) -> SimVm:
    """Run ``steps`` on ``vm`` in order and return it. A step naming a vCPU the VM lacks is a
    ``ValueError`` (nothing of that step runs)."""
    for step in steps:
        if not 0 <= step.vcpu < vm.nr_vcpus:
            raise ValueError(f"{step}: the VM has {vm.nr_vcpus} vCPU(s)")
        vcpu = vm.vcpus[step.vcpu]
        if isinstance(step, Call):
            vcpu.call(int(step.function), step.args)
        elif isinstance(step, Dispatch):
            vcpu.dispatch()
        else:
            vcpu.inject(step.number)
    return vm
