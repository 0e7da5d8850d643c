"""Guest programs on real arm64 KVM: the engines ``host.Driver`` runs them on.

``KvmEngine`` is the userspace path of DESIGN section 1: one VM, one memslot per vCPU holding
that vCPU's program, the SMCCC filter forwarding the SDEI range, and ``SdeiProvider`` serving
every call and making every dispatch, injection and completion through ONE_REG. The driver's
VMM loop (``vmm.VcpuLoop``) completes a doorbell store at once (one ``KVM_RUN`` with
``immediate_exit``), so a dispatch never has KVM's pending PC increment applied to a handler's
entry point, and the state at every stop equals the simulated guest's.

``InKernelEngine`` runs the same programs on a kernel that implements the section 4 ABI
itself: no filter, no provider; the kernel serves the calls and dispatches, the host only
sees the doorbells, injects through the PENDING bit of ``SDEI_EVENT_STATE`` and reads the
SDEI registers to compare them with the model. Upstream kernels have no such implementation;
the engine exists so the suite runs unchanged on one that does.

``run_on_kvm(kvm, program)`` is ``host.simulate(program)`` on real KVM. Both engines can
migrate themselves (``migrate``): save every register of every vCPU with
``sdei_state.migration.save_vm``, build a new VM the same way, restore with ``restore_vm``,
copy guest memory, and close the old VM.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol, Self, TypeVar

from ..cpu import CpuRegs
from ..events import Event
from ..guest.asm import Image
from ..guest.layout import Layout
from ..kvm import Kvm, Vcpu, VcpuFeature, Vm
from ..machine import Machine
from ..migration import restore_vm, save_vm
from ..regs import sdei as sdei_regs
from ..regs.ids import REG_PC
from ..spec import in_sdei_block
from ..state import VcpuState
from ..vcpu.kvm_cpu import KvmCpu
from ..vcpu.transport import RegTransport
from ..vmm import ModelServer, SdeiProvider
from .host import Driver, Migration
from .programs.program import GuestProgram
from .trace import Dispatched, Injected, Served, TraceItem, VcpuRun


class Loadable(Protocol):
    """What a vCPU's memslot is made from: a layout, an image and the entry point."""

    @property
    def layout(self) -> Layout: ...

    @property
    def image(self) -> Image: ...

    @property
    def entry(self) -> int: ...


def new_vm(kvm: Kvm, programs: Sequence[Loadable], load: bool) -> tuple[Vm, list[Vcpu]]:
    """A VM with memslot ``i`` and vCPU ``i`` for ``programs[i]`` (loaded, PC at its entry,
    when ``load``); closed again if any step fails."""
    vm = kvm.create_vm()
    try:
        for i, p in enumerate(programs):
            mem = vm.add_memory(i, p.layout.base, p.layout.mem_size)
            if load:
                mem.write(p.image.base - p.layout.base, p.image.data)
        vcpus = []
        for i, p in enumerate(programs):
            v = vm.create_vcpu(i)
            v.init((VcpuFeature.PSCI_0_2,))
            if load:  # PSTATE stays as KVM resets it: EL1h, DAIF masked
                v.set_reg(REG_PC, p.entry)
            vcpus.append(v)
    except BaseException:
        vm.close()
        raise
    return vm, vcpus


_E = TypeVar("_E", bound="_KvmBase")


class _KvmBase:
    """What both KVM engines share: the VM, its vCPUs, entering and memory."""

    name: str

    def __init__(self, kvm: Kvm, programs: Sequence[Loadable], *, load: bool = True) -> None:
        self.kvm = kvm
        self.programs = tuple(programs)
        self.nr_vcpus = len(self.programs)
        self.vm, self.vcpus = new_vm(kvm, self.programs, load)
        self.cpus = [KvmCpu(v) for v in self.vcpus]

    def vcpu(self, i: int) -> Vcpu:
        return self.vcpus[i]

    def cpu(self, i: int) -> CpuRegs:
        return self.cpus[i]

    def memory(self, i: int) -> bytes:
        mem = self.vm.memory[i]
        return mem.read(0, mem.size)

    def write_memory(self, i: int, data: bytes) -> None:
        self.vm.memory[i].write(0, data)

    def transports(self) -> list[RegTransport]:
        """What save and restore go through, one per vCPU."""
        return list(self.vcpus)

    def migrate(self) -> tuple[Self, Migration]:
        """Save everything, restore into a new VM of the same kind (a new provider for the
        userspace engine), copy memory; close this VM. Returns the new engine and what was
        carried."""
        return self.migrate_into(type(self))

    def migrate_into(self, kind: type[_E]) -> tuple[_E, Migration]:
        """``migrate`` into a new VM of engine class ``kind`` (the cross-mode migrations of
        the stock-vmm suite: userspace provider to in-kernel SDEI and back)."""
        t0 = time.perf_counter()
        blob = save_vm(self.transports())
        mems = [self.memory(i) for i in range(self.nr_vcpus)]
        dest = kind(self.kvm, self.programs, load=False)
        try:
            restore_vm(dest.transports(), blob)
            for i, m in enumerate(mems):
                dest.write_memory(i, m)
        except BaseException:
            dest.close()
            raise
        self.close()
        return dest, Migration(len(blob.reg_ids), len(blob.to_bytes()),
                               sum(len(m) for m in mems), time.perf_counter() - t0, blob)

    def close(self) -> None:
        self.vm.close()


class KvmEngine(_KvmBase):
    """Real KVM with the SDEI calls forwarded to ``SdeiProvider`` (Linux 6.4+)."""

    def __init__(self, kvm: Kvm, programs: Sequence[Loadable], *, load: bool = True) -> None:
        super().__init__(kvm, programs, load=load)
        self.name = "arm64 KVM + userspace provider"
        try:
            self.provider = SdeiProvider(self.nr_vcpus)
            self.provider.install(self.vm)
            self.views = [self.provider.attach(i, v, c)
                          for i, (v, c) in enumerate(zip(self.vcpus, self.cpus, strict=True))]
        except BaseException:
            self.vm.close()
            raise

    @property
    def machine(self) -> Machine:
        return self.provider.machine

    @property
    def server(self) -> ModelServer:
        return self.provider

    def inject(self, i: int, number: int) -> bool:
        return self.provider.inject(i, number)

    def deliverable(self, i: int) -> Event | None:
        return self.provider.machine.deliverable(i)

    def sees(self, item: TraceItem) -> bool:
        # The SMCCC filter forwards the SDEI block; KVM answers every other call itself.
        return not isinstance(item, Served) or in_sdei_block(item.function_id)

    def transports(self) -> list[RegTransport]:
        return list(self.views)


class InKernelEngine(_KvmBase):
    """Real KVM whose kernel implements the SDEI registers itself (no provider)."""

    def __init__(self, kvm: Kvm, programs: Sequence[Loadable], *, load: bool = True) -> None:
        super().__init__(kvm, programs, load=load)
        self.name = "arm64 KVM, in-kernel SDEI"

    def sdei_state(self, i: int) -> VcpuState:
        """vCPU ``i``'s SDEI state as the kernel's registers encode it."""
        ids = sdei_regs.SDEI_REG_IDS
        return sdei_regs.decode(dict(zip(ids, self.vcpus[i].get_regs(ids), strict=True)))

    def sdei_registers(self, i: int) -> dict[int, int]:
        ids = sdei_regs.SDEI_REG_IDS
        return dict(zip(ids, self.vcpus[i].get_regs(ids), strict=True))

    @property
    def server(self) -> None:
        return None  # the kernel serves and dispatches; the host cannot see it

    def inject(self, i: int, number: int) -> bool:
        """Injection through the register ABI: set PENDING in SDEI_EVENT_STATE (refused,
        as by the model, when the event is not registered)."""
        from ..vmm.in_kernel import inject_pending

        return inject_pending(self.vcpus[i], number)

    def deliverable(self, i: int) -> Event | None:
        m = Machine(self.nr_vcpus)
        m.set_state(i, self.sdei_state(i))
        return m.deliverable(i)

    def sees(self, item: TraceItem) -> bool:
        return isinstance(item, Injected) or not isinstance(item, Served | Dispatched)


def run_on_kvm(kvm: Kvm, program: GuestProgram, *, in_kernel: bool = False,
               max_exits: int = 5000) -> VcpuRun:
    """``host.simulate(program)`` on real KVM: one vCPU, the program's triggers fired, run
    until it settles (or stops at a terminal doorbell). Compare the result with
    ``simulate(program)`` using ``trace.compare`` and ``engine.sees``."""
    engine: KvmEngine | InKernelEngine = (InKernelEngine if in_kernel else KvmEngine)(
        kvm, [program])
    try:
        drv = Driver(engine, [program])
        drv.run(0, max_exits=max_exits)
        return drv.result(0)
    finally:
        engine.close()
