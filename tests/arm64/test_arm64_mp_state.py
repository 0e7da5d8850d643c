"""A vCPU's power state through a whole-VM migration on real arm64 KVM.

vCPU 1 of a two-vCPU VM turns itself off with PSCI CPU_OFF (``hvc``, served by KVM: no SMCCC
filter here), so ``KVM_GET_MP_STATE`` reads STOPPED. The VM is saved with
``save_vm_snapshot`` (its ``MPST`` section) and restored into a fresh VM, whose vCPUs start
RUNNABLE: vCPU 1 must read STOPPED there, and vCPU 0's PSCI CPU_ON must bring it up at the
entry point and context id given. Restored without the section, vCPU 1 stays RUNNABLE and the
same CPU_ON is refused with ALREADY_ON: what a migration without mp_state does to a guest.
"""

from __future__ import annotations

import errno
import signal
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sdei_state.errors import KvmError
from sdei_state.kvm import Kvm, MmioExit, MpState, Vcpu, VcpuFeature, Vm
from sdei_state.migration import VmSnapshot, restore_vm_snapshot, save_vm_snapshot
from sdei_state.migration.vm import MPIDR_EL1
from sdei_state.regs.ids import REG_PC

from .arm64_support import B_SELF, GPA, MMIO, hvc, mov_imm32, str_x

PSCI_CPU_OFF = 0x8400_0002
PSCI_CPU_ON_64 = 0xC400_0003
PSCI_SUCCESS, PSCI_ALREADY_ON = 0, (1 << 64) - 4  # -4 in x0
MPIDR_HWID = 0xFF_00FF_FFFF  # Aff3..Aff0: what CPU_ON's target_cpu holds
V0_CODE, V1_CODE, V1_ENTRY = GPA, GPA + 0x100, GPA + 0x200
CONTEXT_ID = 0x5EED
RAM = 0x10000


def _cpu_on(target: int) -> list[int]:
    """vCPU 0: CPU_ON(target, V1_ENTRY, CONTEXT_ID); store the PSCI result to MMIO; spin."""
    return [*mov_imm32(0, PSCI_CPU_ON_64), *mov_imm32(1, target), *mov_imm32(2, V1_ENTRY),
            *mov_imm32(3, CONTEXT_ID), hvc(0), *mov_imm32(2, MMIO), str_x(0, 2), B_SELF]


def _cpu_off() -> list[int]:
    """vCPU 1: CPU_OFF, which does not return; a store to MMIO + 8 would say it did."""
    return [*mov_imm32(0, PSCI_CPU_OFF), hvc(0), *mov_imm32(2, MMIO + 8), str_x(0, 2), B_SELF]


def _entry() -> list[int]:
    """Where CPU_ON starts vCPU 1: store x0 (the context id) to MMIO + 0x10; spin."""
    return [*mov_imm32(2, MMIO + 0x10), str_x(0, 2), B_SELF]


def _vm(kvm: Kvm) -> tuple[Vm, list[Vcpu]]:
    vm = kvm.create_vm()
    vm.add_memory(0, GPA, RAM)
    vcpus = [vm.create_vcpu(i) for i in range(2)]
    for v in vcpus:
        v.init([VcpuFeature.PSCI_0_2])
    return vm, vcpus


@contextmanager
def _kicks(period: float = 0.2) -> Iterator[None]:
    """SIGUSR1 to this thread every ``period`` seconds: a vCPU that has powered itself off
    sleeps inside KVM_RUN until a signal makes it return EINTR (a VMM's kick)."""
    main = threading.get_ident()
    stop = threading.Event()
    old = signal.signal(signal.SIGUSR1, lambda *_: None)

    def kick() -> None:
        while not stop.wait(period):
            signal.pthread_kill(main, signal.SIGUSR1)

    t = threading.Thread(target=kick, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        signal.signal(signal.SIGUSR1, old)


def _run_until_stopped(v: Vcpu, tries: int = 50) -> None:
    """KVM_RUN until the vCPU reads STOPPED (a kick may land before it ran CPU_OFF)."""
    with _kicks():
        for _ in range(tries):
            try:
                ex = v.run()
            except KvmError as e:
                assert e.errno == errno.EINTR, e
            else:
                pytest.fail(f"CPU_OFF returned to the guest: {ex}")
            if v.get_mp_state() is MpState.STOPPED:
                return
    pytest.fail(f"vCPU {v.index} did not power off after {tries} KVM_RUNs")


def _stored(v: Vcpu) -> MmioExit:
    ex = v.run()
    assert isinstance(ex, MmioExit) and ex.is_write, ex
    return ex


@pytest.fixture
def saved(kvm: Kvm) -> Iterator[VmSnapshot]:
    """The source VM after vCPU 1's CPU_OFF (vCPU 0 has not run), saved and sent as bytes."""
    vm, (v0, v1) = _vm(kvm)
    with vm:
        target = v1.get_reg(MPIDR_EL1) & MPIDR_HWID
        for at, code in ((V0_CODE, _cpu_on(target)), (V1_CODE, _cpu_off()),
                         (V1_ENTRY, _entry())):
            vm.memory[0].write(at - GPA, struct.pack(f"<{len(code)}I", *code))
        v0.set_reg(REG_PC, V0_CODE)
        v1.set_reg(REG_PC, V1_CODE)
        assert [v.get_mp_state() for v in (v0, v1)] == [MpState.RUNNABLE] * 2
        _run_until_stopped(v1)
        snap = save_vm_snapshot([v0, v1], memory=vm.memory)
    yield VmSnapshot.from_bytes(snap.to_bytes())


def test_stopped_vcpu_migrates_stopped_and_cpu_on_starts_it(kvm: Kvm,
                                                              saved: VmSnapshot) -> None:
    assert saved.mp_states == (MpState.RUNNABLE, MpState.STOPPED)
    vm, (v0, v1) = _vm(kvm)
    with vm:
        assert v1.get_mp_state() is MpState.RUNNABLE, "a fresh vCPU starts powered on"
        restore_vm_snapshot([v0, v1], saved, memory=vm.memory)
        assert [v0.get_mp_state(), v1.get_mp_state()] == [MpState.RUNNABLE, MpState.STOPPED]
        ex = _stored(v0)
        assert (ex.phys_addr, ex.value) == (MMIO, PSCI_SUCCESS), "CPU_ON of a STOPPED vCPU"
        assert v1.get_mp_state() is MpState.RUNNABLE
        ex = _stored(v1)
        assert (ex.phys_addr, ex.value) == (MMIO + 0x10, CONTEXT_ID)
        assert v1.get_reg(REG_PC) == V1_ENTRY + 8, "vCPU 1 started at CPU_ON's entry point"


def test_without_the_section_the_vcpu_comes_back_running(kvm: Kvm,
                                                         saved: VmSnapshot) -> None:
    old = VmSnapshot(saved.vcpus, saved.vgic, saved.memory)  # as written before MPST
    vm, (v0, v1) = _vm(kvm)
    with vm:
        restore_vm_snapshot([v0, v1], old, memory=vm.memory)
        assert v1.get_mp_state() is MpState.RUNNABLE
        ex = _stored(v0)
        assert (ex.phys_addr, ex.value) == (MMIO, PSCI_ALREADY_ON)
