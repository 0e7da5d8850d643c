"""What one SDEI call costs, served in the kernel versus by the userspace provider.

One guest program makes EVENT_STATUS(0) ``CALLS`` times in a loop (``hvc #0``), then stores
its counter to an unmapped address, which exits to the VMM. It runs twice in the same boot,
each time on a fresh one-vCPU VM with the one VMM loop (``vmm.VcpuLoop``):

- in the kernel: no SMCCC filter; KVM serves every call without leaving the kernel;
- by the provider: the SMCCC filter forwards the SDEI block and the provider's server
  (``vmm.ModelServer``, the code ``SdeiProvider`` serves with) answers each call in userspace.

The cost of one call is the ``KVM_RUN`` time divided by ``CALLS``; the case checks that every
call returned EVENT_STATUS's result (0: event 0 not registered) and records both costs and
their ratio as a note. Under the lab's TCG the absolute times are the emulator's; the ratio is
what the exit to userspace adds.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from ..guest import a64
from ..guest.asm import Asm
from ..kvm.exits import MmioExit
from ..machine import Machine
from ..regs.ids import REG_PC
from ..spec import Function
from ..vcpu.kvm_cpu import KvmCpu
from ..vmm import ModelServer, SdeiProvider, VcpuLoop
from .core import Case, CheckFailed, Suite, expect_eq

if TYPE_CHECKING:
    from ..kvm import Kvm

CALLS: Final = 2000
BASE: Final = 0x10000
DOORBELL: Final = 0x100000
"""Unmapped: the final store exits (KVM_EXIT_MMIO)."""


def _program() -> bytes:
    """x9 = CALLS; loop: x0 = EVENT_STATUS, x1 = 0, hvc, OR x0 into x11, x9 -= 1 until 0;
    then store x11 (0 if every call returned 0) to the doorbell."""
    asm = Asm(BASE)
    asm.emit(a64.mov_imm64(9, CALLS), a64.mov_imm64(10, DOORBELL), a64.movz(11, 0))
    asm.label("loop")
    asm.emit(a64.mov_imm64(0, int(Function.EVENT_STATUS)), a64.movz(1, 0), a64.hvc(0),
             a64.orr(11, 11, 0), a64.subs_imm(9, 9, 1))
    asm.b_cond(a64.Cond.NE, "loop")
    asm.emit(a64.str_x(11, 10))
    return asm.assemble().data


def time_calls(kvm: Kvm, in_kernel: bool) -> float:
    """Seconds per EVENT_STATUS call (see the module docstring)."""
    from ..kvm import VcpuFeature

    with kvm.create_vm() as vm:
        code = _program()
        vm.add_memory(0, BASE, 0x10000).write(0, code)
        if not in_kernel:
            SdeiProvider(1).install(vm)  # forwards the SDEI block to userspace
        vcpu = vm.create_vcpu(0)
        vcpu.init((VcpuFeature.PSCI_0_2,))
        vcpu.set_reg(REG_PC, BASE)
        server = None if in_kernel else ModelServer(Machine(1), [KvmCpu(vcpu)])
        loop = VcpuLoop(0, vcpu, server)
        t0 = time.perf_counter()
        ex = loop.run()
        seconds = time.perf_counter() - t0
        if not isinstance(ex, MmioExit) or ex.phys_addr != DOORBELL:
            raise CheckFailed(f"the call loop ended with {ex!r}, not the doorbell store")
        expect_eq("OR of every EVENT_STATUS(0) result", ex.value, 0)
        return seconds / CALLS


def _cost(backend: Any) -> None:
    kernel = time_calls(backend.kvm, True)
    user = time_calls(backend.kvm, False)
    backend.memo.setdefault("notes", []).append(
        f"cost of one EVENT_STATUS: {kernel * 1e6:.1f} us served in the kernel, "
        f"{user * 1e6:.1f} us by the userspace provider (x{user / kernel:.1f}); "
        f"{CALLS} calls each, same guest program, same boot")


def suite() -> Suite:
    return Suite("cost", "one SDEI call served in the kernel versus by the userspace provider",
                 (Case("event-status", _cost, f"{CALLS} EVENT_STATUS calls served in the "
                       "kernel, then by the userspace provider: both right, the ratio noted"),),
                 frozenset({"in-kernel-sdei", "smccc-filter"}))
