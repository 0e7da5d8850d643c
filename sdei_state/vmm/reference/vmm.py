"""``ReferenceVmm``: one VM that boots a Linux ``Image`` with SDEI, built only on the project's
bindings (``sdei_state.kvm``), its vGIC (``sdei_state.vmm.gic``) and its provider.

Set-up, in the order KVM requires (docs/vmm-guide.md walks through it):

1. ``KVM_CREATE_VM``; the SMCCC filter forwards the SDEI range to userspace (before any run);
2. the vGICv3 device, placed where the device tree will say (before the vCPUs);
3. guest RAM (one memslot at 1 GiB); the vCPUs: ``KVM_ARM_VCPU_INIT`` with PSCI 0.2, every
   vCPU but the first powered off (the guest brings them up with PSCI CPU_ON, which KVM
   serves); each attached to the provider; then ``CTRL_INIT`` of the vGIC;
4. the device tree (MPIDRs read back from the vCPUs), the Image, the initramfs; the boot
   vCPU's PC and x0;
5. one thread per vCPU running the provider's loop (``VcpuLoop``); MMIO exits go to the bus
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
from ...regs import sys_reg
from ..gic import GicLayout, VgicV3
from ..provider import KICK_SIGNAL, ProviderVcpu, install_kick_handler
from . import boot, fdt, layout
from .console import Console
from .doorbell import Doorbell
from .mmio import MmioBus
from .pl011 import Pl011
from .record import RecordingProvider

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
                 doorbell: Doorbell | None = None, secondaries_off: bool = True) -> None:
        """``secondaries_off``: every vCPU but the first starts powered off, as at boot
        (False for a migration destination whose vCPUs are all online)."""
        self.cfg = cfg
        self.console = console
        self.doorbell = doorbell
        self.kvm = kvm or Kvm()
        self.vm: Vm = self.kvm.create_vm()
        n = cfg.vcpus
        self.provider = RecordingProvider(n)
        self.provider.install(self.vm)
        self.gic = VgicV3.create(self.vm, GicLayout.default(n))
        self.ram = self.vm.add_memory(0, layout.RAM_BASE, cfg.ram_size)
        self.vcpus: list[Vcpu] = []
        self.regs: list[ProviderVcpu] = []
        for i in range(n):
            vcpu = self.vm.create_vcpu(i)
            off = [VcpuFeature.POWER_OFF] if i and secondaries_off else []
            vcpu.init([VcpuFeature.PSCI_0_2, *off])
            self.vcpus.append(vcpu)
            self.regs.append(self.provider.attach(i, vcpu))
        self.gic.init()
        self.mpidrs = tuple(v.get_reg(REG_MPIDR_EL1) & MPIDR_AFFINITY_MASK for v in self.vcpus)
        self.bus = MmioBus()
        self.uart = Pl011(console.write)
        self.bus.add(layout.UART_BASE, layout.UART_SIZE, self.uart, "pl011")
        if doorbell is not None:
            self.bus.add(layout.DOORBELL_BASE, 0x1000, doorbell, "doorbell")
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
        self.regs[0].cpu.write(boot.entry_registers(lay))
        return lay

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
                exit_ = self.provider.run(i)
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
        for i in range(self.cfg.vcpus):
            self.provider.request_stop(i)

    def join(self, timeout: float = 10.0) -> bool:
        """Wait for the vCPU threads to return; False if one has not within ``timeout``."""
        end = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def request_pause(self) -> None:
        """Ask every vCPU thread to park at its next check (from any thread, a vCPU's own
        included; does not wait)."""
        for i in range(self.cfg.vcpus):
            self.provider.loop(i).request_pause()

    def pause(self, timeout: float = 5.0) -> bool:
        """Park every vCPU thread out of ``KVM_RUN`` (last MMIO access finished); True once
        all are parked. While paused, registers may be read and written from this thread."""
        self.request_pause()
        end = time.monotonic() + timeout
        return all(self.provider.loop(i).wait_parked(max(0.0, end - time.monotonic()))
                   for i in range(self.cfg.vcpus))

    def resume(self) -> None:
        for i in range(self.cfg.vcpus):
            self.provider.loop(i).resume()

    def close(self) -> None:
        """Shut down, join, close the VM (vCPUs, vGIC, memory)."""
        self.shutdown()
        self.join()
        self.gic.close()
        self.vm.close()

