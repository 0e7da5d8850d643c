"""Userspace SDEI on stock KVM (Linux 6.4+), through the SMCCC filter.

Upstream KVM answers SDEI calls with NOT_SUPPORTED. A VMM that embeds ``SdeiProvider``
installs a ``KVM_ARM_VM_SMCCC_FILTER`` range forwarding 0xC4000020-0xC400003F to userspace;
each guest SDEI call then leaves ``KVM_RUN`` as ``KVM_EXIT_HYPERCALL`` and the reference state
machine serves it with ONE_REG, reading only the arguments that function takes (``spec.ARITY``)
and writing x0-x3 (x1-x3 zeroed as ``smccc_set_retval()`` does, unless just read as 0). Before
each ``KVM_RUN`` the provider dispatches a deliverable event by rewriting the vCPU's registers
(x0-x3, PC, PSTATE; ELR_EL1/SPSR_EL1 where needed, VBAR_EL1 read for a relative entry point),
exactly as an in-kernel implementation would on entry.

Its state is visible as the DESIGN section 4 registers through ``ProviderVcpu`` (a
``RegTransport`` over the real vCPU that adds the SDEI block and STD_BMAP bit 1), so save,
restore and preflight see the same registers as with an in-kernel implementation.

The run loop itself is ``loop.VcpuLoop`` (one per attached vCPU, with this provider as its
``SdeiServer``); the provider adds the kicks: an event made pending on a vCPU that another
thread runs interrupts that thread's ``KVM_RUN``. ``ModelServer`` is the same serving for
vCPUs without a kernel register view (the simulated guest).

Embedding (one thread per vCPU; see docs/vmm-guide.md)::

    install_kick_handler()                  # once, from the main thread
    provider = SdeiProvider(nr_vcpus)
    provider.install(vm)                    # before any vCPU runs
    regs = provider.attach(i, vcpu)         # per vCPU; regs is what save()/restore() use
    while (exit := provider.run(i)) is not None:    # the vCPU thread
        ...                                 # every exit that is not SDEI's is the VMM's
    # None: provider.request_stop(i) was called (from any thread); the vCPU is stopped with
    # its last MMIO access finished, ready to be saved; provider.run(i) goes on.
"""

from __future__ import annotations

import errno
import signal
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from .. import spec
from ..cpu import CpuRegs
from ..errors import KvmError, RegError, SdeiStateError
from ..events import Event
from ..kvm.arm64 import SmcccFilterAction
from ..kvm.exits import Exit, HypercallExit
from ..machine import CallOutcome, Machine
from ..regs import firmware
from ..state import RESET_STATE
from ..vcpu import sdei_block
from ..vcpu.kvm_cpu import KvmCpu
from ..vcpu.transport import RegTransport
from .loop import RunnableVcpu, VcpuLoop

FILTER_BASE: Final = spec.FN_BASE
FILTER_NR: Final = spec.FN_COUNT
"""The SMCCC filter range: the whole SMC64 SDEI block, 0xC4000020 + 32 functions."""
KICK_SIGNAL: Final = signal.SIGUSR1
_SDEI_BIT: Final = 1 << firmware.STD_BIT_SDEI


class ProviderError(SdeiStateError):
    """The provider cannot be used as asked (kernel without the SMCCC filter, misuse)."""


class KernelVcpu(RegTransport, RunnableVcpu, Protocol):
    """What the provider needs of a vCPU: ONE_REG access and KVM_RUN (a ``kvm.Vcpu``)."""


class SmcccFilterVm(Protocol):
    def set_smccc_filter(self, base: int, nr_functions: int,
                         action: SmcccFilterAction) -> None: ...


class ModelServer:
    """SDEI served by the reference ``Machine`` for vCPUs whose registers it reaches as
    ``CpuRegs``: the entry check and the calls of the SDEI range (a ``loop.SdeiServer``).
    ``only_sdei=False`` serves every hypercall (the machine answers NOT_SUPPORTED outside
    SDEI), for a simulated guest that has no kernel to answer the others."""

    def __init__(self, machine: Machine, cpus: Sequence[CpuRegs] = (), *,
                 only_sdei: bool = True) -> None:
        self.machine = machine
        self._cpus = tuple(cpus)
        self._only_sdei = only_sdei

    def cpu(self, index: int) -> CpuRegs:
        """vCPU ``index``'s registers as the model reads and writes them."""
        return self._cpus[index]

    def before_run(self, index: int) -> Event | None:
        """The entry check before ``KVM_RUN``: enter the handler of a deliverable event."""
        return self.machine.dispatch(index, self.cpu(index))

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        """Serve ``exit_`` if it is an SDEI call (KVM_EXIT_HYPERCALL in the SDEI range);
        None for any other exit, which stays the VMM's."""
        if not isinstance(exit_, HypercallExit) or (
                self._only_sdei and not spec.in_sdei_block(exit_.nr)):
            return None
        return self.machine.serve(index, exit_.nr, self.cpu(index))


class SdeiProvider(ModelServer):
    """SDEI for one VM, served in userspace. Thread-safe: one thread per vCPU may call
    ``run`` for its own vCPU while others signal, inject or ask it to stop.

    ``kick_signal`` interrupts a vCPU thread inside ``KVM_RUN`` (``install_kick_handler``
    must have made it harmless); None kicks with ``immediate_exit`` only."""

    def __init__(self, nr_vcpus: int, *, enabled: bool = True,
                 kick: Callable[[int], None] | None = None,
                 kick_signal: int | None = KICK_SIGNAL) -> None:
        super().__init__(Machine(nr_vcpus, enabled=enabled, on_pending=self._pending))
        self._vcpus: list[ProviderVcpu | None] = [None] * nr_vcpus
        self._loops: list[VcpuLoop | None] = [None] * nr_vcpus
        self._kick_hook = kick
        self._kick_signal = kick_signal
        self.kicks = 0
        """How many times a vCPU was kicked out of (or kept from entering) KVM_RUN."""

    # -- set-up ---------------------------------------------------------------------------

    def install(self, vm: SmcccFilterVm) -> None:
        """Forward the SDEI function range to userspace (``KVM_SET_DEVICE_ATTR``,
        ``KVM_ARM_VM_SMCCC_CTRL``/``FILTER``). Call before any vCPU of the VM runs."""
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

    def attach(self, index: int, vcpu: KernelVcpu, cpu: CpuRegs | None = None) -> ProviderVcpu:
        """Serve SDEI for ``vcpu`` as vCPU ``index``; returns its register view (the kernel's
        registers plus the SDEI block), which is what save/restore should use. ``cpu`` is the
        model's view of its registers, by default ``KvmCpu`` over ONE_REG."""
        self.machine._check_vcpu(index)
        if any(rid in sdei_block.IDS for rid in vcpu.reg_list()):
            raise ProviderError(f"vCPU {index}: the kernel lists the SDEI registers itself "
                                "(in-kernel SDEI); do not also serve SDEI in userspace")
        pv = ProviderVcpu(self, index, vcpu, KvmCpu(vcpu) if cpu is None else cpu)
        self._vcpus[index] = pv
        self._loops[index] = VcpuLoop(index, vcpu, self, kick_signal=self._kick_signal)
        return pv

    def vcpu(self, index: int) -> ProviderVcpu:
        pv = self._vcpus[index]
        if pv is None:
            raise ProviderError(f"vCPU {index} is not attached")
        return pv

    def loop(self, index: int) -> VcpuLoop:
        """vCPU ``index``'s run loop."""
        lp = self._loops[index]
        if lp is None:
            raise ProviderError(f"vCPU {index} is not attached")
        return lp

    def cpu(self, index: int) -> CpuRegs:
        pv = self._vcpus[index]
        if pv is None:
            raise ProviderError(f"vCPU {index} is not attached")
        return pv.cpu

    def reset_vcpu(self, index: int) -> None:
        """The vCPU was reset (PSCI CPU_ON, system reset): SDEI starts over, masked, with
        nothing registered (DEN0054C 6.5: the dispatcher masks a PE at power-up)."""
        self.machine.set_state(index, RESET_STATE)

    # -- the run loop ---------------------------------------------------------------------

    def run(self, index: int) -> Exit | None:
        """Run vCPU ``index`` until an exit that is not SDEI's and return it (``VcpuLoop.run``:
        dispatch before each entry, SDEI calls served, kicks absorbed); None once
        ``request_stop(index)`` was called."""
        return self.loop(index).run()

    def request_stop(self, index: int) -> None:
        """Make ``run(index)`` return None soon (from any thread): kicked out of KVM_RUN,
        no event lost or taken twice."""
        self.loop(index).request_stop()

    def complete_exit(self, index: int) -> None:
        """Finish the access of the last MMIO exit without entering the guest (before saving
        a vCPU that ``run`` returned from; see ``VcpuLoop.finish``)."""
        self.loop(index).finish()

    # -- signals and injection ------------------------------------------------------------

    def inject(self, index: int, number: int) -> bool:
        """Hypervisor injection (ASYNC_PF, or event 0) on vCPU ``index``."""
        return self.machine.inject(index, number)

    def _pending(self, index: int) -> None:
        """An event became pending on ``index``: make its thread pass the entry check soon
        (``VcpuLoop.kick``). The caller's own vCPU needs no kick: it re-enters through run()."""
        if self._kick_hook is not None:
            self._kick_hook(index)
        lp = self._loops[index]
        if lp is not None and lp.kick():
            self.kicks += 1


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

    def __init__(self, provider: SdeiProvider, index: int, kernel: KernelVcpu,
                 cpu: CpuRegs) -> None:
        self.provider = provider
        self.index = index
        self.kernel = kernel
        self.cpu = cpu
        """The model's view of the vCPU's registers (``KvmCpu`` over the kernel's)."""

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
        """In order; raises on the first failure (earlier writes stay), as KVM would.

        Consecutive kernel writes go to the kernel as one batch; consecutive SDEI writes are
        each checked, then applied to the model as one state change (``sdei_block.write``),
        so a restore's 47 cost one decode, not 47."""
        run: list[tuple[int, int]] = []  # consecutive kernel writes, sent as one batch
        own: dict[int, int] = {}  # consecutive checked SDEI writes, applied as one change
        try:
            for reg_id, value in items:
                if reg_id in sdei_block.IDS:
                    if run:
                        run, batch = [], run
                        self.kernel.set_regs(batch)
                    sdei_block.check(reg_id, value)
                    own[reg_id] = value
                    continue
                if own:
                    own, block = {}, own
                    sdei_block.write(self.machine, self.index, block)
                if reg_id == firmware.STD_BMAP:
                    if run:
                        run, batch = [], run
                        self.kernel.set_regs(batch)
                    self._set_std_bmap(value)
                else:
                    run.append((reg_id, value))
            if run:
                run, batch = [], run
                self.kernel.set_regs(batch)
        finally:
            if own:  # the SDEI writes checked before a refused one stay, as KVM's would
                sdei_block.write(self.machine, self.index, own)

    def _set_std_bmap(self, value: int) -> None:
        reg_id = firmware.STD_BMAP
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
