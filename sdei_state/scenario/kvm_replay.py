"""Scenario replay on real arm64 KVM: the ``kvm-provider`` and ``kvm-kernel`` backends.

Each backend is a VM factory for ``replay.Runner`` (the same runner and output as on
simulated vCPUs): a VM of the stub guest (``kvm_stub``) whose vCPUs take the scenario's steps
through the real mechanisms:

======== =================================================================================
step     what the vCPU does
======== =================================================================================
cpu      ``SET_ONE_REG`` of the core and system registers (``KvmCpu``)
call     x0-x5 (function id, x1-x5) by ``SET_ONE_REG``, PC at the stub's ``hvc #0``,
         ``KVM_RUN`` to the next exit; x0-x3 are the result. A call that returns gets the
         scenario's PC and PSTATE back; a completion leaves the vCPU where it resumed.
dispatch ``KVM_RUN`` to the next exit: the provider's entry check before it
         (``SdeiProvider.before_run``, as its VMM loop makes before every entry), or the
         kernel dispatching on entry
inject    provider: ``SdeiProvider.inject``; in-kernel: PENDING set in
         ``SDEI_EVENT_STATE`` with ``SET_ONE_REG`` (``inject_pending``)
set_reg / get_reg  ``KVM_{SET,GET}_ONE_REG`` (the provider's register view adds its block)
migrate  ``save_vm`` of every vCPU, a fresh VM of the same kind, ``restore_vm``
======== =================================================================================

The scenario format dispatches only at ``dispatch`` steps, while KVM with in-kernel SDEI
dispatches at every guest entry once an event is deliverable. So the in-kernel backend's VMM
keeps each vCPU masked (bit 0 of ``SDEI_VCPU_STATE``) between steps and shows the guest's own
mask bit in its register view, as ``kvm_stub.StubRegs`` does for SCTLR_EL1.M; it unmasks for a
``dispatch`` step if the guest is unmasked, and gives PE_MASK and PE_UNMASK the guest's own
mask. Where the kernel then dispatches inside a call step (PE_UNMASK making an event
deliverable as it returns; PE_MASK on an unmasked vCPU with an event deliverable, taken before
the ``hvc``), the VMM puts the SDEI registers back as they were before the dispatch: the
dispatch the scenario asks for comes at its ``dispatch`` step.

The provider backend needs the SMCCC filter (Linux 6.4+) and a kernel without in-kernel SDEI
(the provider refuses to serve beside it); the in-kernel backend needs a kernel that lists
the SDEI registers (``kernel/`` in this repository).
"""

from __future__ import annotations

import platform
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from ..cpu import CALL_ARGS, CpuReg, MemoryCpu
from ..errors import ScenarioError
from ..events import EVENTS, Event
from ..regs import sdei as sdei_regs
from ..spec import Function, Ret, in_sdei_block
from ..vcpu.kvm_cpu import KvmCpu
from ..vcpu.transport import RegsPassThrough, RegTransport
from ..vmm.in_kernel import inject_pending
from .kvm_stub import (
    SCTLR_EL1,
    SCTLR_M,
    STUB_PC,
    STUB_PSTATE,
    Stop,
    StubRegs,
    enter,
    new_stub_vm,
)

if TYPE_CHECKING:
    from ..kvm import Kvm, Vcpu, Vm
    from ..vmm import SdeiProvider

BACKENDS: Final = ("sim", "kvm-provider", "kvm-kernel")
_MASKED: Final = 1
_RETURNED: Final = STUB_PC + 4
"""Where a vCPU stops after a call the kernel served and returned from (the next hvc)."""
_U64: Final = (1 << 64) - 1
_NOT_SUPPORTED: Final = Ret.NOT_SUPPORTED & _U64


def _check_x0(v: ReplayVcpu, sdei_in_kernel: bool) -> None:
    """Refuse a dispatch step whose x0 KVM would take for a call of its own if no event were
    taken (its reserved ranges; the SDEI block when it serves SDEI): the stub's hvc at the
    interrupted PC would make that call instead of exiting."""
    x0 = v.cpu.read((CpuReg.X0,))[CpuReg.X0]
    w0 = x0 & 0xFFFF_FFFF
    if w0 >> 16 in (0x8000, 0xC000) or (sdei_in_kernel and in_sdei_block(w0)):
        raise ScenarioError(f"vCPU {v.index}: dispatch with x0 = {x0:#x}: the stub's hvc "
                            "would make that call if no event were taken")


class StubCpu(KvmCpu):
    """``KvmCpu`` with ``as_json``, as the runner's final state prints it."""

    def as_json(self) -> dict[str, object]:
        return MemoryCpu(self.read(tuple(CpuReg))).as_json()


class ReplayVcpu(RegsPassThrough):
    """A vCPU of a real-KVM replay VM: a ``RegTransport`` (the scenario's view) with the
    runner's ``call``, ``dispatch`` and ``inject``."""

    def __init__(self, vm: ReplayVm, index: int, raw: Vcpu, regs: StubRegs) -> None:
        self.vm = vm
        self.index = index
        self.raw = raw
        self.regs = self.regs_of = regs
        self.cpu = StubCpu(regs)

    def call(self, function: int, args: Sequence[int] = ()) -> None:
        pc, pstate = self.cpu.read((CpuReg.PC, CpuReg.PSTATE)).values()
        values = [function, *args, *(0,) * (5 - len(args))]
        self._load(values)
        if self.vm.make_call(self, function & 0xFFFF_FFFF, values):
            self.cpu.write({CpuReg.PC: pc, CpuReg.PSTATE: pstate})

    def _load(self, values: Sequence[int]) -> None:
        # PSTATE first: while it says AArch32, KVM's set_core_reg() cuts every core register
        # it writes (x0-x14, PC) to 32 bits.
        self.cpu.write({CpuReg.PSTATE: STUB_PSTATE})
        self.cpu.write({**dict(zip(CALL_ARGS, values, strict=True)), CpuReg.PC: STUB_PC})

    def enter(self, what: str) -> Stop:
        return enter(self.raw, f"vCPU {self.index}: {what}")

    def dispatch(self) -> Event | None:
        return self.vm.dispatch(self)

    def inject(self, number: int) -> bool:
        return self.vm.inject(self, number)


class ReplayVm(ABC):
    """What both real-KVM replay VMs share: the stub VM and its vCPUs."""

    name: str
    hidden: Mapping[int, int] = MappingProxyType({SCTLR_EL1: SCTLR_M})

    def __init__(self, kvm: Kvm, nr_vcpus: int) -> None:
        self.vm, raw = new_stub_vm(kvm, nr_vcpus)
        try:
            self.setup(self.vm)
            self.vcpus = tuple(ReplayVcpu(self, i, v, StubRegs(self.transport(i, v),
                                                               self.hidden))
                               for i, v in enumerate(raw))
            for vc in self.vcpus:  # a scenario starts from the simulated vCPU's registers
                vc.cpu.write(MemoryCpu().snapshot())
        except BaseException:
            self.vm.close()
            raise

    def setup(self, vm: Vm) -> None:  # noqa: B027 - most VMs need nothing more
        """What the VM needs before any vCPU runs, beyond the stub."""

    def transport(self, index: int, vcpu: Vcpu) -> RegTransport:
        """vCPU ``index``'s registers as a VMM saves them."""
        return vcpu

    @abstractmethod
    def make_call(self, v: ReplayVcpu, fid: int, values: Sequence[int]) -> bool:
        """Make the call loaded in ``v``; True if it returned to the caller."""

    @abstractmethod
    def dispatch(self, v: ReplayVcpu) -> Event | None:
        """The ``dispatch`` step: the event whose handler ``v`` entered, if any."""

    @abstractmethod
    def inject(self, v: ReplayVcpu, number: int) -> bool:
        """The ``inject`` step: True if the event was made pending."""

    def close(self) -> None:
        self.vm.close()


class ProviderReplayVm(ReplayVm):
    """Real vCPUs with the userspace provider serving SDEI (``vmm.SdeiProvider``)."""

    name = "kvm-provider"

    def __init__(self, kvm: Kvm, nr_vcpus: int) -> None:
        from ..vmm import SdeiProvider

        self.provider: SdeiProvider = SdeiProvider(nr_vcpus, kick_signal=None)
        super().__init__(kvm, nr_vcpus)

    def setup(self, vm: Vm) -> None:
        self.provider.install(vm)

    def transport(self, index: int, vcpu: Vcpu) -> RegTransport:
        return self.provider.attach(index, vcpu)

    def make_call(self, v: ReplayVcpu, fid: int, values: Sequence[int]) -> bool:
        stop = v.enter("call")
        if stop.pc == _RETURNED:  # one of KVM's own functions: it answered and went on
            return True
        if stop.pc != STUB_PC or stop.trapped:
            raise ScenarioError(f"vCPU {v.index}: the call stopped at {stop.pc:#x}, not at "
                                f"the stub's hvc ({STUB_PC:#x})")
        # The provider's serving of a forwarded call; outside the SDEI block the machine
        # answers NOT_SUPPORTED, as a VMM does for a function it does not implement.
        out = self.provider.machine.serve(v.index, stop.nr, self.provider.cpu(v.index))
        return out.completed is None

    def dispatch(self, v: ReplayVcpu) -> Event | None:
        """The VMM's entry check, then the entry (a dispatch check is a run: STD_BMAP is
        locked from then on, as in the model)."""
        _check_x0(v, False)
        ev = self.provider.before_run(v.index)
        v.enter("dispatch")
        return ev

    def inject(self, v: ReplayVcpu, number: int) -> bool:
        return self.provider.inject(v.index, number)


class KernelReplayVm(ReplayVm):
    """Real vCPUs of a kernel that serves SDEI itself; the VMM holds the PE mask (see the
    module docstring)."""

    name = "kvm-kernel"
    hidden: Mapping[int, int] = MappingProxyType({SCTLR_EL1: SCTLR_M,
                                                   sdei_regs.VCPU_STATE_ID: _MASKED})

    def transport(self, index: int, vcpu: Vcpu) -> RegTransport:
        if sdei_regs.VCPU_STATE_ID not in vcpu.reg_list():
            raise ScenarioError("this kernel does not serve SDEI itself (KVM_GET_REG_LIST has "
                                f"no SDEI_VCPU_STATE, {sdei_regs.VCPU_STATE_ID:#x}): "
                                "kvm-kernel needs the kernel/ series")
        return vcpu

    def make_call(self, v: ReplayVcpu, fid: int, values: Sequence[int]) -> bool:
        before = self._sdei(v)
        if fid == Function.PE_MASK and not v.regs.shown[sdei_regs.VCPU_STATE_ID]:
            self._set_mask(v, False)  # the guest's own mask decides PE_MASK's result
        stop = v.enter("call")
        if fid == Function.PE_MASK and stop.pc != _RETURNED and not stop.trapped:
            # Unmasked with an event deliverable: the kernel took it before the hvc ran.
            # Make the call from the handler, then put the dispatch back.
            v._load(values)
            stop = v.enter("call (from the handler the kernel entered)")
            if stop.pc != _RETURNED:
                raise ScenarioError(f"vCPU {v.index}: PE_MASK did not return "
                                    f"(stopped at {stop.pc:#x})")
            self._undo(v, before, mask=True)
            return True
        if fid == Function.PE_UNMASK and stop.pc != _RETURNED and stop.pc != STUB_PC:
            # PE_UNMASK made an event deliverable and the kernel took it as the call
            # returned: the call's results are the interrupted x0-x3.
            taken = self._taken(before, self._sdei(v))
            if taken is None:
                raise ScenarioError(f"vCPU {v.index}: PE_UNMASK stopped at {stop.pc:#x} "
                                    "with no event taken")
            ctx = [sdei_regs.context_id(int(taken.priority), r) for r in range(4)]
            results = v.regs.base.get_regs(ctx)
            self._undo(v, before, mask=False)
            v.cpu.write(dict(zip(CALL_ARGS[:4], results, strict=True)))
            return True
        if fid in (Function.PE_MASK, Function.PE_UNMASK):
            self._hold_mask(v)
        if stop.pc == _RETURNED:
            return True
        if stop.pc == STUB_PC and not stop.trapped:
            # Forwarded: a function neither SDEI nor KVM's own; the VMM does not implement it.
            v.cpu.write({CpuReg.X0: _NOT_SUPPORTED, CpuReg.X1: 0, CpuReg.X2: 0,
                         CpuReg.X3: 0})
            return True
        return False  # a completion: the vCPU resumed where the context said

    def dispatch(self, v: ReplayVcpu) -> Event | None:
        _check_x0(v, True)
        before = self._sdei(v)
        unmasked = not v.regs.shown[sdei_regs.VCPU_STATE_ID]
        if unmasked:
            self._set_mask(v, False)
        try:
            v.enter("dispatch")
        finally:
            if unmasked:
                self._set_mask(v, True)
        return self._taken(before, self._sdei(v))

    def inject(self, v: ReplayVcpu, number: int) -> bool:
        return inject_pending(v.regs, number)

    # -- the VMM's hold on the mask ----------------------------------------------------

    @staticmethod
    def _sdei(v: ReplayVcpu) -> list[int]:
        return v.regs.base.get_regs(sdei_regs.SDEI_REG_IDS)

    @staticmethod
    def _set_mask(v: ReplayVcpu, masked: bool) -> None:
        rid = sdei_regs.VCPU_STATE_ID
        v.regs.base.set_reg(rid, v.regs.real(rid) & ~_MASKED | (_MASKED if masked else 0))

    def _hold_mask(self, v: ReplayVcpu) -> None:
        """After PE_MASK/PE_UNMASK: the guest's mask is what the kernel now has; mask again."""
        v.regs.shown[sdei_regs.VCPU_STATE_ID] = v.regs.real(sdei_regs.VCPU_STATE_ID) & _MASKED
        self._set_mask(v, True)

    def _undo(self, v: ReplayVcpu, before: Sequence[int], *, mask: bool) -> None:
        """Put the SDEI registers back as ``before`` (masked), the guest's mask ``mask``."""
        ids = sdei_regs.SDEI_REG_IDS
        vals = [b | _MASKED if rid == sdei_regs.VCPU_STATE_ID else b
                for rid, b in zip(ids, before, strict=True)]
        v.regs.base.set_regs(list(zip(ids, vals, strict=True)))
        v.regs.shown[sdei_regs.VCPU_STATE_ID] = _MASKED if mask else 0

    @staticmethod
    def _taken(before: Sequence[int], after: Sequence[int]) -> Event | None:
        """The event whose handler started between the two register snapshots."""
        ids = sdei_regs.SDEI_REG_IDS
        b = sdei_regs.decode(dict(zip(ids, before, strict=True)))
        a = sdei_regs.decode(dict(zip(ids, after, strict=True)))
        for ev in EVENTS:
            if a.event(ev).running and not b.event(ev).running:
                return ev
        return None


def vm_factory(backend: str, kvm: Kvm | None = None) -> Callable[[int], Any]:
    """``replay.Runner``'s VM factory for ``backend`` (one of ``BACKENDS``); the KVM ones
    open /dev/kvm unless given ``kvm``."""
    if backend == "sim":
        from ..vcpu.sim import SimVm

        return SimVm
    if backend not in BACKENDS:
        raise ScenarioError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
    machine = platform.machine()
    if machine not in ("aarch64", "arm64"):
        raise ScenarioError(f"backend {backend} needs arm64 KVM; this host is {machine}")
    if kvm is None:
        from ..kvm import Kvm as _Kvm

        kvm = _Kvm()
    cls = ProviderReplayVm if backend == "kvm-provider" else KernelReplayVm
    opened = kvm
    return lambda n: cls(opened, n)
