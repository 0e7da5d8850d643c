"""Userspace SDEI on stock KVM (Linux 6.4+), through the SMCCC filter.

Upstream KVM answers SDEI calls with NOT_SUPPORTED. A VMM that embeds ``SdeiProvider``
installs a ``KVM_ARM_VM_SMCCC_FILTER`` range forwarding 0xC4000020-0xC400003F to userspace;
each guest SDEI call then leaves ``KVM_RUN`` as ``KVM_EXIT_HYPERCALL`` and the reference state
machine serves it, reading x1-x5 and writing x0-x3 with ONE_REG. Before each ``KVM_RUN`` the
provider dispatches a deliverable event by rewriting the vCPU's registers (x0-x3, PC, PSTATE;
ELR_EL1/SPSR_EL1/VBAR_EL1 where needed), exactly as an in-kernel implementation would on entry.

Its state is visible as the DESIGN section 4 registers through ``ProviderVcpu`` (a
``RegTransport`` over the real vCPU that adds the SDEI block and STD_BMAP bit 1), so save,
restore and preflight see the same registers as with an in-kernel implementation.

Embedding (one thread per vCPU; see docs/vmm-guide.md)::

    provider = SdeiProvider(nr_vcpus)
    provider.install(vm)                    # before any vCPU runs
    regs = provider.attach(i, vcpu)         # per vCPU; regs is what save()/restore() use
    while True:                             # the vCPU thread
        exit = provider.run(i)              # dispatch, KVM_RUN, serve SDEI exits, kicks
        ...                                 # every other exit is the VMM's
"""

from __future__ import annotations

import errno
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from . import spec
from .cpu import CpuReg, CpuRegs
from .errors import KvmError, RegError, SdeiStateError
from .events import Event
from .machine import CallOutcome, Machine
from .regs import firmware
from .state import RESET_STATE
from .vcpu import sdei_block
from .vcpu.transport import RegTransport

FILTER_BASE: Final = spec.FN_BASE
FILTER_NR: Final = spec.FN_COUNT
"""The SMCCC filter range: the whole SMC64 SDEI block, 0xC4000020 + 32 functions."""
KICK_SIGNAL: Final = signal.SIGUSR1
_SDEI_BIT: Final = 1 << firmware.STD_BIT_SDEI
_ARGS: Final = (CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5)


class ProviderError(SdeiStateError):
    """The provider cannot be used as asked (kernel without the SMCCC filter, misuse)."""


class KernelVcpu(RegTransport, Protocol):
    """What the provider needs of a vCPU: ONE_REG access, its CPU view, and KVM_RUN."""

    @property
    def cpu(self) -> CpuRegs: ...

    def run(self) -> Any: ...

    @property
    def kvm_run(self) -> Any: ...


class SmcccFilterVm(Protocol):
    def set_smccc_filter(self, base: int, nr_functions: int, action: Any) -> None: ...


class SdeiProvider:
    """SDEI for one VM, served in userspace. Thread-safe: one thread per vCPU may call
    ``run``/``before_run``/``handle_exit`` for its own vCPU while others signal or inject."""

    def __init__(self, nr_vcpus: int, *, enabled: bool = True,
                 kick: Callable[[int], None] | None = None) -> None:
        self.machine = Machine(nr_vcpus, enabled=enabled, on_pending=self._pending)
        self._vcpus: list[ProviderVcpu | None] = [None] * nr_vcpus
        self._threads: list[int | None] = [None] * nr_vcpus
        self._in_run = [False] * nr_vcpus
        self._unfinished = [False] * nr_vcpus  # last exit was MMIO: KVM completes it on entry
        self._kick_hook = kick
        self.kicks = 0
        """How many times a vCPU was kicked out of (or kept from entering) KVM_RUN."""

    # -- set-up ---------------------------------------------------------------------------

    def install(self, vm: SmcccFilterVm) -> None:
        """Forward the SDEI function range to userspace (``KVM_SET_DEVICE_ATTR``,
        ``KVM_ARM_VM_SMCCC_CTRL``/``FILTER``). Call before any vCPU of the VM runs."""
        from .kvm.arm64 import SmcccFilterAction

        try:
            vm.set_smccc_filter(FILTER_BASE, FILTER_NR, SmcccFilterAction.FWD_TO_USER)
        except KvmError as e:
            if e.errno in (errno.EINVAL, errno.ENXIO, errno.ENOTTY):
                raise ProviderError(
                    "this kernel has no KVM_ARM_VM_SMCCC_FILTER (Linux 6.4+ is needed to "
                    f"forward SDEI calls to userspace): {e}") from None
            if e.errno == errno.EBUSY:
                raise ProviderError(f"the VM has already run; install the filter first: {e}") \
                    from None
            raise

    def attach(self, index: int, vcpu: KernelVcpu) -> ProviderVcpu:
        """Serve SDEI for ``vcpu`` as vCPU ``index``; returns its register view (the kernel's
        registers plus the SDEI block), which is what save/restore should use."""
        self.machine._check_vcpu(index)
        if any(rid in sdei_block.IDS for rid in vcpu.reg_list()):
            raise ProviderError(f"vCPU {index}: the kernel lists the SDEI registers itself "
                                "(in-kernel SDEI); do not also serve SDEI in userspace")
        pv = ProviderVcpu(self, index, vcpu)
        self._vcpus[index] = pv
        return pv

    def vcpu(self, index: int) -> ProviderVcpu:
        pv = self._vcpus[index]
        if pv is None:
            raise ProviderError(f"vCPU {index} is not attached")
        return pv

    def reset_vcpu(self, index: int) -> None:
        """The vCPU was reset (PSCI CPU_ON, system reset): SDEI starts over, masked, with
        nothing registered (DEN0054C 6.5: the dispatcher masks a PE at power-up)."""
        self.machine.set_state(index, RESET_STATE)

    # -- the run loop ---------------------------------------------------------------------

    def before_run(self, index: int) -> Event | None:
        """The entry check before ``KVM_RUN``: enter the handler of a deliverable event."""
        return self.machine.dispatch(index, self.vcpu(index).kernel.cpu)

    def handle_exit(self, index: int, exit_: Any) -> CallOutcome | None:
        """Serve ``exit_`` if it is an SDEI call (KVM_EXIT_HYPERCALL in the SDEI range);
        None for any other exit, which stays the VMM's."""
        from .kvm.exits import HypercallExit

        if not isinstance(exit_, HypercallExit) or not spec.in_sdei_block(exit_.nr):
            return None
        cpu = self.vcpu(index).kernel.cpu
        return self.machine.call(index, exit_.nr, cpu.read(_ARGS), cpu)

    def complete_exit(self, index: int) -> None:
        """Let KVM finish the instruction of the last MMIO exit without entering the guest.

        After ``KVM_EXIT_MMIO``, PC still points at the load/store; KVM completes it (writes a
        load's register, adds 4 to PC) at the next ``KVM_RUN``. Rewriting PC before that would
        make the handler start one instruction late, and a saved PC would replay the access.
        So before a dispatch, and before saving a stopped vCPU, run once with
        ``immediate_exit = 1``: KVM completes the access and returns EINTR at once."""
        if not self._unfinished[index]:
            return
        kernel = self.vcpu(index).kernel
        kernel.kvm_run.immediate_exit = 1
        try:
            kernel.run()
        except KvmError as e:
            if e.errno != errno.EINTR:
                raise
        finally:
            kernel.kvm_run.immediate_exit = 0
        self._unfinished[index] = False

    def run(self, index: int) -> Any:
        """Run vCPU ``index`` until an exit that is not SDEI's: dispatch before each entry,
        serve SDEI calls, and re-enter after a kick. Returns the VMM's exit (answer an MMIO
        read with the vCPU's ``set_mmio_data`` before calling ``run`` again)."""
        from .kvm.exits import MmioExit

        pv = self.vcpu(index)
        self._threads[index] = threading.get_ident()
        while True:
            self.complete_exit(index)
            run = pv.kernel.kvm_run
            run.immediate_exit = 0
            self.before_run(index)  # after clearing: a pending edge set later kicks again
            self._in_run[index] = True
            try:
                exit_ = pv.kernel.run()
            except KvmError as e:
                if e.errno != errno.EINTR:
                    raise
                continue  # kicked: take the new event at the next entry
            finally:
                self._in_run[index] = False
            if self.handle_exit(index, exit_) is None:
                self._unfinished[index] = isinstance(exit_, MmioExit)
                return exit_

    # -- signals and injection ------------------------------------------------------------

    def inject(self, index: int, number: int) -> bool:
        """Hypervisor injection (ASYNC_PF, or event 0) on vCPU ``index``."""
        return self.machine.inject(index, number)

    def _pending(self, index: int) -> None:
        """An event became pending on ``index``: make its thread pass the entry check soon.
        ``immediate_exit`` covers the window before KVM_RUN; the signal interrupts a running
        KVM_RUN (EINTR). The caller's own vCPU needs no kick: it re-enters through run()."""
        pv = self._vcpus[index]
        if self._kick_hook is not None:
            self._kick_hook(index)
        tid = self._threads[index]
        if pv is None or tid is None or tid == threading.get_ident():
            return
        pv.kernel.kvm_run.immediate_exit = 1
        self.kicks += 1
        if self._in_run[index]:
            signal.pthread_kill(tid, KICK_SIGNAL)


def install_kick_handler() -> None:
    """Install a no-op handler for the kick signal so it interrupts ``KVM_RUN`` (EINTR)
    instead of killing the process. Call once from the main thread."""
    signal.signal(KICK_SIGNAL, lambda _sig, _frame: None)


class ProviderVcpu:
    """A real vCPU's registers plus the provider's SDEI block: a ``RegTransport``.

    ``reg_list`` is the kernel's list followed by the 47 SDEI ids; SDEI ids are served from
    the model; ``KVM_REG_ARM_STD_BMAP`` shows bit 1 (SDEI) as the provider's feature gate and
    passes the other bits to the kernel, so the stream equals an in-kernel implementation's.
    """

    def __init__(self, provider: SdeiProvider, index: int, kernel: KernelVcpu) -> None:
        self.provider = provider
        self.index = index
        self.kernel = kernel

    @property
    def machine(self) -> Machine:
        return self.provider.machine

    def reg_list(self) -> tuple[int, ...]:
        return (*self.kernel.reg_list(), *sorted(sdei_block.IDS))

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        sdei = [r for r in reg_ids if r in sdei_block.IDS]
        kern = [r for r in reg_ids if r not in sdei_block.IDS]
        got = dict(zip(sdei, sdei_block.read(self.machine, self.index, sdei), strict=True))
        got.update(zip(kern, self.kernel.get_regs(kern), strict=True))
        if firmware.STD_BMAP in got:
            got[firmware.STD_BMAP] |= _SDEI_BIT if self.machine.enabled else 0
        return [got[r] for r in reg_ids]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """In order; raises on the first failure (earlier writes stay), as KVM would."""
        run: list[tuple[int, int]] = []  # consecutive kernel writes, sent as one batch
        for reg_id, value in items:
            if reg_id in sdei_block.IDS or reg_id == firmware.STD_BMAP:
                if run:
                    self.kernel.set_regs(run)
                    run = []
                self._set_own(reg_id, value)
            else:
                run.append((reg_id, value))
        if run:
            self.kernel.set_regs(run)

    def _set_own(self, reg_id: int, value: int) -> None:
        if reg_id in sdei_block.IDS:
            sdei_block.check(reg_id, value)
            sdei_block.write(self.machine, self.index, {reg_id: value})
            return
        # STD_BMAP: bit 1 is ours; the kernel judges (and stores) the rest.
        want = bool(value & _SDEI_BIT)
        rest = value & ~_SDEI_BIT
        if want != self.machine.enabled and self.machine.has_run:
            # Upstream kvm_arm_set_fw_reg_bmap() refuses unknown bits (EINVAL) before a change
            # after the first run (EBUSY). Only the kernel knows its bits, so it judges the
            # rest first; a write it accepts (it has not entered KVM_RUN yet) is undone, so a
            # refused write changes nothing.
            current = self.kernel.get_reg(reg_id)
            if rest != current:
                self.kernel.set_reg(reg_id, rest)
                self.kernel.set_reg(reg_id, current)
            raise RegError(errno.EBUSY, reg_id, "SET",
                           "the SDEI bit cannot change after the VM has run")
        self.kernel.set_reg(reg_id, rest)
        self.machine.enabled = want
