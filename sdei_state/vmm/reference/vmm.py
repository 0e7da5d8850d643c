"""``ReferenceVmm``: one VM that boots a Linux ``Image`` with SDEI, built only on the project's
bindings (``sdei_state.kvm``), its vGIC (``sdei_state.vmm.gic``) and its provider.

Set-up, in the order KVM requires (docs/vmm-guide.md walks through it):

1. ``KVM_CREATE_VM``;
2. the vGICv3 device, placed where the device tree will say (before the vCPUs);
3. guest RAM (one memslot at 1 GiB); the vCPUs: ``KVM_ARM_VCPU_INIT`` with PSCI 0.2, every
   vCPU but the first powered off (the guest brings them up with PSCI CPU_ON, which KVM
   serves); then who serves SDEI (``sdei_mode``): with ``provider`` (the default) the SMCCC
   filter forwards the SDEI range to userspace (before any run) and each vCPU is attached to
   the provider (on a kernel with in-kernel SDEI, gated off first); with ``kernel`` KVM
   serves it and the VMM only runs the vCPUs; then ``CTRL_INIT`` of the vGIC;
4. the device tree (MPIDRs read back from the vCPUs), the Image, the initramfs; the boot
   vCPU's PC and x0;
5. one thread per vCPU running its ``VcpuLoop`` (the provider's, or one without a server in
   ``kernel`` mode); MMIO exits go to the bus
   (the PL011 console, the test doorbell), a PSCI SYSTEM_OFF/RESET ends the run.

``pause``/``resume`` park and release every vCPU thread out of ``KVM_RUN`` (how a VMM saves
a running VM); ``shutdown`` stops them for good.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from typing import Final

from ...kvm import Kvm, MmioExit, SystemEventExit, Vcpu, VcpuFeature, Vm
from ...machine import MPIDR_AFFINITY_MASK
from ...regs import sdei as sdei_regs
from ...regs import sys_reg
from ...vcpu.kvm_cpu import KvmCpu
from ...vcpu.transport import RegTransport
from ..gic import GicLayout, VgicV3
from ..in_kernel import inject_pending, sdei_registers
from ..loop import VcpuLoop
from ..provider import KICK_SIGNAL, ProviderError, install_kick_handler
from . import boot, fdt, layout, sdei_mode
from .console import Console
from .doorbell import Doorbell
from .mmio import MmioBus
from .pl011 import Pl011
from .record import Record, RecordingProvider

REG_MPIDR_EL1: Final = sys_reg(3, 0, 0, 0, 5)
DEFAULT_BOOTARGS: Final = "console=ttyAMA0 earlycon=pl011,mmio32,0x9000000 panic=-1"


@dataclass(frozen=True)
class VmmConfig:
    """The machine: vCPUs and RAM."""

    vcpus: int = 1
    ram_mb: int = 256

    def __post_init__(self) -> None:
        layout.check_machine(self.vcpus, self.ram_mb << 20)

    @property
    def ram_size(self) -> int:
        return self.ram_mb << 20


class ReferenceVmm:
    """The machine of ``cfg`` on ``kvm``, ready to ``boot`` (or to be restored into)."""

    def __init__(self, cfg: VmmConfig, console: Console, *, kvm: Kvm | None = None,
                 doorbell: Doorbell | None = None, secondaries_off: bool = True,
                 sdei: str = "provider") -> None:
        """``secondaries_off``: every vCPU but the first starts powered off, as at boot
        (False for a migration destination whose vCPUs are all online). ``sdei``: who serves
        SDEI, ``provider`` or ``kernel`` (``sdei_mode``; SdeiModeError, a ValueError, names
        a bad choice)."""
        self.cfg = cfg
        self.sdei: sdei_mode.SdeiMode = sdei_mode.parse(sdei)
        self.console = console
        self.doorbell = doorbell
        self.kvm = kvm or Kvm()
        self.vm: Vm = self.kvm.create_vm()
        try:
            self._set_up(secondaries_off)
        except BaseException:
            self.vm.close()
            raise

    def _set_up(self, secondaries_off: bool) -> None:
        n = self.cfg.vcpus
        self.gic = VgicV3.create(self.vm, GicLayout.default(n))
        self.ram = self.vm.add_memory(0, layout.RAM_BASE, self.cfg.ram_size)
        self.vcpus: list[Vcpu] = []
        for i in range(n):
            vcpu = self.vm.create_vcpu(i)
            off = [VcpuFeature.POWER_OFF] if i and secondaries_off else []
            vcpu.init([VcpuFeature.PSCI_0_2, *off])
            self.vcpus.append(vcpu)
        views = sdei_mode.vcpu_views(self.sdei, self.vcpus)
        self._provider: RecordingProvider | None = None
        self.regs: list[RegTransport]
        """Each vCPU's registers as a migration saves and restores them (the 47 SDEI
        registers included, in either mode)."""
        if self.sdei == "provider":
            self._provider = RecordingProvider(n)
            self._provider.install(self.vm)
            self.regs = [self._provider.attach(i, v) for i, v in enumerate(views)]
            self.loops = [self._provider.loop(i) for i in range(n)]
        else:
            self.regs = list(self.vcpus)
            self.loops = [VcpuLoop(i, v, None, kick_signal=KICK_SIGNAL)
                          for i, v in enumerate(views)]
        self.gic.init()
        self.mpidrs = tuple(v.get_reg(REG_MPIDR_EL1) & MPIDR_AFFINITY_MASK for v in self.vcpus)
        self.bus = MmioBus()
        self.uart = Pl011(self.console.write)
        self.bus.add(layout.UART_BASE, layout.UART_SIZE, self.uart, "pl011")
        if self.doorbell is not None:
            self.bus.add(layout.DOORBELL_BASE, 0x1000, self.doorbell, "doorbell")
        self.threads: list[threading.Thread] = []
        self.done = threading.Event()
        """Set when the run ended: the guest powered off or reset, or a vCPU failed."""
        self.ended_by = ""
        self.errors: list[str] = []

    # -- boot ------------------------------------------------------------------------------

    def boot(self, kernel: bytes, initrd: bytes = b"", bootargs: str = DEFAULT_BOOTARGS,
             ) -> boot.BootLayout:
        """Load ``kernel`` (an arm64 Image, raw or gzip), the device tree and ``initrd``;
        point the boot vCPU at the kernel. ValueError names what does not fit."""
        image = boot.read_image(kernel)
        lay = boot.plan(image, len(initrd), self.cfg.ram_size)
        dtb = fdt.build(fdt.MachineSpec(
            self.mpidrs, self.cfg.ram_size, bootargs, self.gic.layout.reg,
            (lay.initrd, lay.initrd_end) if initrd else None))
        lay = boot.load(self.ram, self.cfg.ram_size, image, dtb, initrd)
        KvmCpu(self.vcpus[0]).write(boot.entry_registers(lay))
        return lay

    # -- SDEI, in either mode -----------------------------------------------------------------

    @property
    def provider(self) -> RecordingProvider:
        """The userspace provider (ProviderError in ``kernel`` mode, which has none)."""
        if self._provider is None:
            raise ProviderError("the kernel serves SDEI in this VMM (sdei='kernel'): there "
                                "is no userspace provider")
        return self._provider

    @property
    def records(self) -> list[Record]:
        """Every SDEI call and dispatch the VMM saw: none in ``kernel`` mode (KVM serves and
        dispatches without leaving ``KVM_RUN``)."""
        return [] if self._provider is None else self._provider.records

    def inject(self, vcpu: int, event: int) -> bool:
        """Hypervisor injection of ``event`` on ``vcpu``; False when refused (not registered
        there). In ``kernel`` mode call it from ``vcpu``'s own thread (the doorbell does) or
        while it is paused: it writes the vCPU's ``SDEI_EVENT_STATE``."""
        if self._provider is not None:
            return self._provider.inject(vcpu, event)
        return inject_pending(self.vcpus[vcpu], event)

    def sdei_registers(self, vcpu: int) -> dict[int, int]:
        """The 47 SDEI registers of ``vcpu`` (the same set in both modes)."""
        return sdei_registers(self.regs[vcpu])

    def pending(self, vcpu: int) -> tuple[int, ...]:
        """The numbers of the events pending on ``vcpu``."""
        st = sdei_regs.decode(self.sdei_registers(vcpu))
        return tuple(ev.number for ev, es in st.pairs() if es.pending)

    # -- running ---------------------------------------------------------------------------

    def start(self) -> None:
        """One thread per vCPU. Call from the main thread (it installs the kick handler)."""
        if threading.current_thread() is threading.main_thread():
            install_kick_handler()
        elif signal.getsignal(KICK_SIGNAL) in (signal.SIG_DFL, None):
            raise RuntimeError("start the VMM from the main thread, or install the kick "
                               "handler (provider.install_kick_handler) there first")
        for i in range(self.cfg.vcpus):
            t = threading.Thread(target=self._vcpu_thread, args=(i,), name=f"vcpu{i}",
                                 daemon=True)
            self.threads.append(t)
            t.start()

    def _vcpu_thread(self, i: int) -> None:
        vcpu = self.vcpus[i]
        try:
            while not self.done.is_set():
                exit_ = self.loops[i].run()
                if exit_ is None:
                    continue  # a stop request: the loop above ends if it was shutdown's
                if isinstance(exit_, MmioExit):
                    data = self.bus.handle(i, exit_)
                    if data is not None:
                        vcpu.set_mmio_data(data)
                elif isinstance(exit_, SystemEventExit):
                    self.shutdown(f"vCPU {i}: system event {exit_.type}")
                else:
                    self.shutdown(f"vCPU {i}: unexpected exit {exit_}", error=True)
        except Exception as e:  # a vCPU thread must end the run, not die silently
            self.shutdown(f"vCPU {i}: {type(e).__name__}: {e}", error=True)

    def shutdown(self, why: str = "stopped by the VMM", error: bool = False) -> None:
        """End the run (from any thread): every vCPU thread leaves ``KVM_RUN`` and returns."""
        if error:
            self.errors.append(why)
        if not self.done.is_set():
            self.ended_by = why
            self.done.set()
        for lp in self.loops:
            lp.request_stop()

    def join(self, timeout: float = 10.0) -> bool:
        """Wait for the vCPU threads to return; False if one has not within ``timeout``."""
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def request_pause(self) -> None:
        """Ask every vCPU thread to park at its next check (from any thread, a vCPU's own
        included; does not wait)."""
        for lp in self.loops:
            lp.request_pause()

    def pause(self, timeout: float = 5.0) -> bool:
        """Park every vCPU thread out of ``KVM_RUN`` (last MMIO access finished); True once
        all are parked. While paused, registers may be read and written from this thread."""
        self.request_pause()
        end = time.monotonic() + timeout
        return all(lp.wait_parked(max(0.0, end - time.monotonic())) for lp in self.loops)

    def resume(self) -> None:
        for lp in self.loops:
            lp.resume()

    def close(self) -> None:
        """Shut down, join, close the VM (vCPUs, vGIC, memory)."""
        self.shutdown()
        self.join()
        self.gic.close()
        self.vm.close()

