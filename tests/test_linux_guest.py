"""What a Linux guest does with SDEI (reference/SDEI.md section 4: drivers/firmware/arm_sdei.c
and arch/arm64/kernel/sdei.c), replayed on a 4-vCPU machine with exact values at every step.

Linux itself never raises EVENT_SIGNAL; the signals here stand for a VMM test or another
client (FreeBSD's NMI IPI) and are what makes the handler path run.
"""

from __future__ import annotations

from typing import Final

import pytest
from helpers import Vm

from sdei_state.cpu import CONTEXT_GPRS, CpuReg
from sdei_state.events import SW_SIGNALED
from sdei_state.spec import Function, Info, Ret, split_version
from sdei_state.state import Context, EventState, HandlerState, VcpuState

NR: Final = 4
VBAR: Final = 0xFFFF_8000_0801_0000  # the kernel's vectors
ENTRY: Final = 0xFFFF_8000_0801_3000  # __sdei_asm_handler
KERNEL_PC: Final = 0xFFFF_8000_0812_3450
SP_EL1: Final = 0xFFFF_8000_0A00_7E80


def reg_ptr(cpu: int) -> int:
    """The per-CPU ``struct sdei_registered_event`` pointer passed as ep_argument."""
    return 0xFFFF_0000_7F70_1000 + 0x1000 * cpu


class LinuxGuest:
    """A 4-CPU guest: every SDEI call checks the register convention on the way out."""

    def __init__(self) -> None:
        self.vm = Vm(NR)
        for cpu in range(NR):
            self.vm.cpus[cpu].write({
                CpuReg.VBAR_EL1: VBAR, CpuReg.SP: SP_EL1 + cpu, CpuReg.PC: KERNEL_PC,
                CpuReg.PSTATE: 0x0000_0005, CpuReg.X19: 0x1919 + cpu, CpuReg.X30: 0x3030,
            })

    def call(self, cpu: int, fn: Function, *args: int) -> int:
        c = self.vm.cpus[cpu]
        pc, x19, sp = c[CpuReg.PC], c[CpuReg.X19], c[CpuReg.SP]
        out = self.vm.call(cpu, fn, *args)
        assert out.completed is None
        assert (c[CpuReg.X1], c[CpuReg.X2], c[CpuReg.X3]) == (0, 0, 0)
        assert (c[CpuReg.PC], c[CpuReg.X19], c[CpuReg.SP]) == (pc, x19, sp)
        return out.ret

    def each(self, fn: Function, *args: int) -> list[int]:
        return [self.call(cpu, fn, *args) for cpu in range(NR)]

    def mpidr(self, cpu: int) -> int:
        return self.vm.mpidr(cpu)


def probe(g: LinuxGuest) -> None:
    """sdei_probe + cpuhp setup: VERSION, PRIVATE_RESET x N, SHARED_RESET, PE_UNMASK x N."""
    version = g.call(0, Function.VERSION)
    assert version == 0x0001_0001_564B_CAA9
    assert split_version(version)[0] == 1  # Linux only checks the major version
    assert g.each(Function.PRIVATE_RESET) == [0, 0, 0, 0]
    assert g.call(0, Function.SHARED_RESET) == 0
    assert all(g.vm.state(cpu).masked for cpu in range(NR))
    assert g.each(Function.PE_UNMASK) == [0, 0, 0, 0]
    assert not any(g.vm.state(cpu).masked for cpu in range(NR))


def register_event_0(g: LinuxGuest) -> None:
    """sdei_event_register + sdei_event_enable for a private event: GET_INFO priority and
    type, REGISTER on every CPU with its own argument, ENABLE on every CPU."""
    assert g.call(0, Function.EVENT_GET_INFO, 0, Info.EV_PRIORITY) == 0  # normal
    assert g.call(0, Function.EVENT_GET_INFO, 0, Info.EV_TYPE) == 0  # private
    for cpu in range(NR):
        assert g.call(cpu, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(cpu), 0, 0) == 0
    assert g.each(Function.EVENT_STATUS, 0) == [1, 1, 1, 1]
    assert g.each(Function.EVENT_ENABLE, 0) == [0, 0, 0, 0]
    assert g.each(Function.EVENT_STATUS, 0) == [3, 3, 3, 3]
    for cpu in range(NR):
        assert g.vm.ev(cpu, SW_SIGNALED) == EventState(
            registered=True, enabled=True, ep_addr=ENTRY, ep_arg=reg_ptr(cpu)
        )


@pytest.fixture
def booted() -> LinuxGuest:
    g = LinuxGuest()
    probe(g)
    register_event_0(g)
    return g


def test_boot_sequence_state(booted: LinuxGuest) -> None:
    for cpu in range(NR):
        assert booted.vm.state(cpu) == VcpuState(
            masked=False,
            events=(EventState(registered=True, enabled=True, ep_addr=ENTRY,
                               ep_arg=reg_ptr(cpu)), EventState()),
        )


KERNEL_CONTEXT: Final = {
    **{CpuReg(n): 0xFFFF_0000_0000_0000 | (n << 8) for n in range(31)},
    CpuReg.PC: KERNEL_PC,
}

# (interrupted PSTATE, how do_sdei_event leaves, resume x1 or None for COMPLETE)
EXITS: Final = [
    pytest.param(0x6000_0005, Function.EVENT_COMPLETE_AND_RESUME, VBAR + 0x280,
                 id="EL1h-irqs-on-to-vbar+0x280"),
    pytest.param(0x8000_0000, Function.EVENT_COMPLETE_AND_RESUME, VBAR + 0x480,
                 id="EL0-aarch64-to-vbar+0x480"),
    pytest.param(0x0000_0010, Function.EVENT_COMPLETE_AND_RESUME, VBAR + 0x680,
                 id="EL0-aarch32-to-vbar+0x680"),
    pytest.param(0x6000_0085, Function.EVENT_COMPLETE, None, id="EL1h-irqs-masked-handled"),
]


@pytest.mark.parametrize(("pstate", "exit_fn", "vector"), EXITS)
def test_signal_and_handler(
    booted: LinuxGuest, pstate: int, exit_fn: Function, vector: int | None
) -> None:
    g, vm = booted, booted.vm
    cpu = vm.cpus[2]
    cpu.write({**KERNEL_CONTEXT, CpuReg.PSTATE: pstate})
    before = cpu.snapshot()

    # CPU 1 signals CPU 2, which is kicked and takes the event at its next entry.
    assert g.call(1, Function.EVENT_SIGNAL, 0, g.mpidr(2)) == 0
    assert vm.kicked == [2]
    assert vm.dispatch(1) is None
    assert vm.dispatch(2) == SW_SIGNALED

    # __sdei_asm_handler entry: x0 = event, x1 = &sdei_registered_event, x2/x3 = PC/PSTATE.
    entry_pstate = (pstate & 0xF000_0000) | 0x3C5
    assert cpu[CpuReg.PC] == ENTRY
    assert cpu[CpuReg.PSTATE] == entry_pstate
    assert (cpu[CpuReg.X0], cpu[CpuReg.X1], cpu[CpuReg.X2], cpu[CpuReg.X3]) == (
        0, reg_ptr(2), KERNEL_PC, pstate
    )
    assert cpu[CpuReg.X4] == KERNEL_CONTEXT[CpuReg.X4]
    assert vm.state(2).contexts[0] == Context(
        tuple(KERNEL_CONTEXT[r] for r in CONTEXT_GPRS), KERNEL_PC, pstate
    )

    # do_sdei_event: status, then recover the clobbered x0..x3 with EVENT_CONTEXT.
    assert g.call(2, Function.EVENT_STATUS, 0) == 7  # registered, enabled, running
    assert [g.call(2, Function.EVENT_CONTEXT, i) for i in range(4)] == [
        KERNEL_CONTEXT[CpuReg(i)] - (1 << 64) for i in range(4)  # kernel values read signed
    ]
    assert vm.cpus[2][CpuReg.X0] == KERNEL_CONTEXT[CpuReg.X3]  # the last one, unsigned

    # The handler's own register use, then the exit entry.S chooses: a result <= 1 is
    # EVENT_COMPLETE(status), anything else EVENT_COMPLETE_AND_RESUME(vector).
    cpu.write({CpuReg.X19: 0xAAAA, CpuReg.SP: SP_EL1 - 0x200, CpuReg.PC: ENTRY + 0x1F4,
               **{CpuReg(n): 0xC0DE for n in range(4, 18)}})
    x1 = vector if vector is not None else 0  # SDEI_EV_HANDLED
    out = vm.call(2, exit_fn, x1)
    assert (out.ret, out.completed) == (0, SW_SIGNALED)

    for r in CONTEXT_GPRS:
        assert cpu[r] == KERNEL_CONTEXT[r], r.key
    assert cpu[CpuReg.X19] == 0xAAAA  # x18..x30 and SP are the handler's business
    assert cpu[CpuReg.SP] == SP_EL1 - 0x200
    if vector is None:
        assert (cpu[CpuReg.PC], cpu[CpuReg.PSTATE]) == (KERNEL_PC, pstate)
        assert (cpu[CpuReg.ELR_EL1], cpu[CpuReg.SPSR_EL1]) == (before[CpuReg.ELR_EL1],
                                                                before[CpuReg.SPSR_EL1])
    else:
        # As if the interrupted context had taken an IRQ to EL1.
        assert cpu[CpuReg.PC] == vector
        assert cpu[CpuReg.ELR_EL1] == KERNEL_PC
        assert cpu[CpuReg.SPSR_EL1] == pstate
        assert cpu[CpuReg.PSTATE] == entry_pstate
    assert g.call(2, Function.EVENT_STATUS, 0) == 3
    assert vm.state(2).contexts == (Context(), Context())
    assert g.call(2, Function.EVENT_CONTEXT, 0) == Ret.DENIED
    for other in (0, 1, 3):
        assert vm.hs(other, SW_SIGNALED) == HandlerState.ENABLED


def test_cpu_hotplug(booted: LinuxGuest) -> None:
    g, vm = booted, booted.vm
    # sdei_cpuhp_down on CPU 3: unregister each private event locally, then mask.
    assert g.call(3, Function.EVENT_UNREGISTER, 0) == 0
    assert g.call(3, Function.PE_MASK) == 1
    assert vm.state(3) == VcpuState()  # back to the reset state
    assert g.call(0, Function.EVENT_SIGNAL, 0, g.mpidr(3)) == Ret.INVALID_PARAMETERS
    assert g.each(Function.EVENT_STATUS, 0) == [3, 3, 3, 0]

    # sdei_cpuhp_up: register and enable again, then unmask.
    assert g.call(3, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(3), 0, 0) == 0
    assert g.call(3, Function.EVENT_ENABLE, 0) == 0
    assert g.call(3, Function.PE_UNMASK) == 0
    assert g.each(Function.EVENT_STATUS, 0) == [3, 3, 3, 3]
    assert g.call(0, Function.EVENT_SIGNAL, 0, g.mpidr(3)) == 0
    assert vm.dispatch(3) == SW_SIGNALED
    assert vm.cpus[3][CpuReg.X1] == reg_ptr(3)


def test_cpu_down_while_handler_pending_unregister(booted: LinuxGuest) -> None:
    """A CPU going down from inside its handler: UNREGISTER is PENDING and the handler still
    completes; the CPU is then unregistered and masked."""
    g, vm = booted, booted.vm
    assert g.call(0, Function.EVENT_SIGNAL, 0, g.mpidr(3)) == 0
    assert vm.dispatch(3) == SW_SIGNALED
    assert g.call(3, Function.EVENT_UNREGISTER, 0) == Ret.PENDING
    assert g.call(3, Function.PE_MASK) == 1
    assert g.call(3, Function.EVENT_STATUS, 0) == 4
    assert vm.call(3, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.state(3) == VcpuState()


def test_cpu_idle_masks_and_unmask_delivers(booted: LinuxGuest) -> None:
    g, vm = booted, booted.vm
    assert g.call(1, Function.PE_MASK) == 1  # CPU_PM_ENTER
    assert g.call(0, Function.EVENT_SIGNAL, 0, g.mpidr(1)) == 0
    assert vm.dispatch(1) is None
    assert g.call(1, Function.PE_UNMASK) == 0  # CPU_PM_EXIT
    assert vm.dispatch(1) == SW_SIGNALED


def test_crash_path_aborts_the_handler(booted: LinuxGuest) -> None:
    """crash_smp_send_stop: sdei_mask_local_cpu, then sdei_handler_abort resumes at the
    instruction after its COMPLETE_AND_RESUME."""
    g, vm = booted, booted.vm
    assert g.call(2, Function.EVENT_SIGNAL, 0, g.mpidr(0)) == 0
    vm.cpus[0][CpuReg.PSTATE] = 0x6000_0005
    assert vm.dispatch(0) == SW_SIGNALED
    assert g.call(0, Function.PE_MASK) == 1
    abort_pc = 0xFFFF_8000_0805_5A10
    vm.cpus[0][CpuReg.PC] = abort_pc
    out = vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, abort_pc + 4)
    assert out.completed == SW_SIGNALED
    assert vm.cpus[0][CpuReg.PC] == abort_pc + 4
    assert vm.cpus[0][CpuReg.ELR_EL1] == KERNEL_PC
    assert vm.cpus[0][CpuReg.SPSR_EL1] == 0x6000_0005
    assert vm.cpus[0][CpuReg.PSTATE] == 0x6000_03C5
    assert vm.state(0).masked
    assert g.call(0, Function.EVENT_STATUS, 0) == 3


def test_reboot_tears_everything_down(booted: LinuxGuest) -> None:
    """The reboot notifier: remove the cpuhp state (UNREGISTER + PE_MASK per CPU), then
    sdei_platform_reset (PRIVATE_RESET per CPU, SHARED_RESET)."""
    g, vm = booted, booted.vm
    assert g.each(Function.EVENT_UNREGISTER, 0) == [0, 0, 0, 0]
    assert g.each(Function.PE_MASK) == [1, 1, 1, 1]
    assert g.each(Function.PRIVATE_RESET) == [0, 0, 0, 0]
    assert g.call(0, Function.SHARED_RESET) == 0
    assert vm.machine.states() == (VcpuState(),) * NR


def test_register_failure_on_one_cpu_unregisters_all() -> None:
    """sdei_event_register for a private event: if REGISTER fails on any CPU, Linux runs
    UNREGISTER everywhere (DENIED where it never registered)."""
    g = LinuxGuest()
    probe(g)
    assert g.call(0, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(0), 0, 0) == 0
    assert g.call(1, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(1), 0, 0) == 0
    assert g.call(2, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(2), 0, 0) == 0
    assert g.call(2, Function.EVENT_REGISTER, 0, ENTRY, reg_ptr(2), 0, 0) == Ret.DENIED
    assert g.each(Function.EVENT_UNREGISTER, 0) == [0, 0, 0, Ret.DENIED]
    assert all(g.vm.state(c) == VcpuState(masked=False) for c in range(NR))


def test_get_info_of_the_vendor_event() -> None:
    """A client registering a vendor event (Linux's GHES path refuses event 0) first asks
    GET_INFO(PRIORITY): ASYNC_PF answers critical, not signalable, no routing selectors."""
    g = LinuxGuest()
    probe(g)
    assert g.call(0, Function.EVENT_GET_INFO, 0x40400000, Info.EV_PRIORITY) == 1
    assert g.call(0, Function.EVENT_GET_INFO, 0x40400000, Info.EV_SIGNALED) == 1
    assert g.call(0, Function.EVENT_GET_INFO, 0x40400000, 3) == Ret.INVALID_PARAMETERS
