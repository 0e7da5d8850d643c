"""The register-transport protocol: what save/restore need from a vCPU, real or simulated.

It mirrors the three ioctls a VMM uses on a vCPU fd: KVM_GET_REG_LIST, KVM_GET_ONE_REG and
KVM_SET_ONE_REG, plus batched forms so a real backend can make many accesses in one call into C.
Every failure raises ``sdei_state.errors.RegError`` carrying errno, the register id and name.
Values are unsigned integers of the register's width (``KVM_REG_SIZE(id)`` bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol, cast, runtime_checkable

if TYPE_CHECKING:
    from ..kvm.arm64 import MpState
    from ..kvm.exits import Exit
    from ..kvm.vcpu import Vcpu
    from ..regs.firmware import HostFirmware


@runtime_checkable
class RegTransport(Protocol):
    def reg_list(self) -> tuple[int, ...]:
        """KVM_GET_REG_LIST: every register id the vCPU has, in the order the kernel gives."""
        ...

    def get_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG."""
        ...

    def set_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG."""
        ...

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        """GET of each id in order; raises on the first failure."""
        ...

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """SET of each (id, value) in order; raises on the first failure (earlier writes stay)."""
        ...


@runtime_checkable
class MpStateVcpu(Protocol):
    """A vCPU whose power state can be read and written: ``KVM_{GET,SET}_MP_STATE`` (a
    ``kvm.Vcpu``, the simulated vCPU). A whole-VM snapshot carries it when the vCPUs offer it."""

    def get_mp_state(self) -> MpState:
        """KVM_GET_MP_STATE."""
        ...

    def set_mp_state(self, state: int) -> None:
        """KVM_SET_MP_STATE."""
        ...


def mp_state_vcpus(vcpus: Sequence[object]) -> list[MpStateVcpu] | None:
    """``vcpus`` if every one offers ``MpStateVcpu``, else None (a register view over a
    vCPU, such as the provider's, offers only the registers)."""
    if all(callable(getattr(v, "get_mp_state", None))
           and callable(getattr(v, "set_mp_state", None)) for v in vcpus):
        return [cast("MpStateVcpu", v) for v in vcpus]
    return None


class RegsPassThrough:
    """A ``RegTransport`` whose every register access goes to ``regs_of`` (the transport it
    wraps). For views that add something beside the registers (a run counter, a filtered
    list, a replay stub) and override only what they change."""

    regs_of: RegTransport

    def reg_list(self) -> tuple[int, ...]:
        return self.regs_of.reg_list()

    def get_reg(self, reg_id: int) -> int:
        return self.regs_of.get_reg(reg_id)

    def set_reg(self, reg_id: int, value: int) -> None:
        self.regs_of.set_reg(reg_id, value)

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        return self.regs_of.get_regs(reg_ids)

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        self.regs_of.set_regs(items)


class VcpuPassThrough(RegsPassThrough):
    """A view of a real vCPU for a VMM loop: registers, ``run`` and ``immediate_exit`` all go
    to ``vcpu``; a subclass overrides what it watches or hides."""

    def __init__(self, vcpu: Vcpu) -> None:
        self.vcpu = self.regs_of = vcpu

    @property
    def immediate_exit(self) -> bool:
        return self.vcpu.immediate_exit

    @immediate_exit.setter
    def immediate_exit(self, on: bool) -> None:
        self.vcpu.immediate_exit = on

    def run(self, immediate_exit: bool = False) -> Exit:
        return self.vcpu.run(immediate_exit)


@runtime_checkable
class HostFacts(Protocol):
    """What a vCPU description knows of its host and VM without reading a register: the
    simulated vCPU (``SimVcpu``) and every view over one declare it. ``preflight`` takes these
    facts from a destination that has them, and infers the host from the registers of one that
    does not (a real vCPU)."""

    @property
    def host(self) -> HostFirmware:
        """The firmware the host kernel offers (registers, levels, known bitmap bits)."""
        ...

    @property
    def psci_0_2(self) -> bool:
        """The vCPU was created with KVM_ARM_VCPU_PSCI_0_2 (PSCI_VERSION may be set)."""
        ...

    @property
    def has_run(self) -> bool:
        """Some vCPU of the VM has entered KVM_RUN (the bitmaps are locked)."""
        ...


FACT_NAMES: Final = tuple(n for n in vars(HostFacts) if not n.startswith("_"))
"""The members of ``HostFacts``, read from its declaration once."""


def host_facts(t: object) -> HostFacts | None:
    """``t`` if it declares ``HostFacts``, else None: the answer of ``isinstance(t,
    HostFacts)`` without typing's walk of the protocol's members on every call (about 10 us,
    which every restore paid)."""
    return cast("HostFacts", t) if all(hasattr(t, n) for n in FACT_NAMES) else None
