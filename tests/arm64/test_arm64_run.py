"""KVM_RUN of a tiny nested guest: PSCI in-kernel, the SDEI range forwarded to userspace by
the SMCCC filter (the userspace SDEI path of DESIGN section 1), ``immediate_exit``, and the
VMM loop stopping a vCPU thread that is inside KVM_RUN."""

from __future__ import annotations

import errno
import signal
import threading
import time

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.errors import KvmError
from sdei_state.kvm import HypercallExit, Kvm, MmioExit, SmcccFilterAction, Vcpu
from sdei_state.kvm.exits import Exit
from sdei_state.regs.ids import REG_PC, REG_SP_EL0, REG_SP_EL1, REG_X
from sdei_state.spec import FN_BASE, FN_COUNT, FN_LAST, Function
from sdei_state.vcpu.kvm_cpu import KvmCpu
from sdei_state.vmm import KICK_SIGNAL, VcpuLoop, install_kick_handler

from .arm64_support import B_SELF, GPA, MMIO, PSCI_VERSION, Guest, call_then_report, guest, smc

PSCI_VERSION_FN = 0x84000000
SMCCC_RET_NOT_SUPPORTED = (1 << 64) - 1  # -1 in x0


def test_hvc_runs_to_mmio_exit_with_psci_version(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(PSCI_VERSION_FN)) as g:
        ex = g.vcpu.run()
        assert isinstance(ex, MmioExit), ex
        assert (ex.phys_addr, ex.is_write, len(ex.data)) == (MMIO, True, 8)
        assert ex.value == g.vcpu.get_reg(PSCI_VERSION) == 0x10001
        assert g.vcpu.get_reg(REG_X[0]) == 0x10001
        assert g.vcpu.get_reg(REG_PC) == GPA + 5 * 4  # at the store, which exited


def _forward_sdei(g: Guest) -> None:
    g.vm.set_smccc_filter(FN_BASE, FN_COUNT, SmcccFilterAction.FWD_TO_USER)


@pytest.mark.usefixtures("smccc_filter")
@pytest.mark.parametrize("fn", [Function.VERSION, Function.EVENT_REGISTER, FN_LAST])
def test_sdei_range_forwarded_as_hypercall_exit(kvm: Kvm, fn: int) -> None:
    assert (FN_BASE, FN_LAST) == (0xC4000020, 0xC400003F)
    with guest(kvm, call_then_report(fn), before_run=_forward_sdei) as g:
        ex = g.vcpu.run()
        assert isinstance(ex, HypercallExit), ex
        assert ex.nr == fn and not ex.smc
        assert g.vcpu.get_reg(REG_PC) == GPA + 3 * 4, "PC is past the hvc"
        # The VMM answers in x0 and resumes; the guest stores x0 to MMIO.
        g.vcpu.set_reg(REG_X[0], 0x1234_5678)
        ex = g.vcpu.run()
        assert isinstance(ex, MmioExit) and ex.value == 0x1234_5678


@pytest.mark.usefixtures("smccc_filter")
def test_sdei_smc_conduit_sets_the_flag(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(FN_BASE, smc), before_run=_forward_sdei) as g:
        ex = g.vcpu.run()
        assert isinstance(ex, HypercallExit) and ex.nr == FN_BASE and ex.smc


@pytest.mark.usefixtures("smccc_filter")
def test_outside_the_filter_kvm_answers(kvm: Kvm) -> None:
    """0xC4000040 is past the SDEI block: not forwarded, KVM denies it (NOT_SUPPORTED)."""
    with guest(kvm, call_then_report(FN_LAST + 1), before_run=_forward_sdei) as g:
        ex = g.vcpu.run()
        assert isinstance(ex, MmioExit) and ex.value == SMCCC_RET_NOT_SUPPORTED


def test_without_a_filter_sdei_is_not_supported(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(Function.VERSION)) as g:
        ex = g.vcpu.run()
        assert isinstance(ex, MmioExit) and ex.value == SMCCC_RET_NOT_SUPPORTED


@pytest.mark.usefixtures("smccc_filter")
def test_filter_errors(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(PSCI_VERSION_FN), before_run=_forward_sdei) as g:
        vm = g.vm
        with pytest.raises(KvmError) as ei:  # the same range again
            vm.set_smccc_filter(FN_BASE, FN_COUNT, SmcccFilterAction.FWD_TO_USER)
        assert ei.value.errno == errno.EEXIST and "SMCCC_FILTER" in str(ei.value)
        with pytest.raises(KvmError) as ei:
            vm.set_smccc_filter(0xC4000100, 0, SmcccFilterAction.DENY)
        assert ei.value.errno == errno.EINVAL
        with pytest.raises(KvmError) as ei:  # reserved Arm-architecture range
            vm.set_smccc_filter(0x80000000, 1, SmcccFilterAction.DENY)
        assert ei.value.errno == errno.EEXIST
        assert isinstance(g.vcpu.run(), MmioExit)
        with pytest.raises(KvmError) as ei:
            vm.set_smccc_filter(0xC4000100, 1, SmcccFilterAction.DENY)
        assert ei.value.errno == errno.EBUSY


def test_immediate_exit_completes_the_store_without_entering(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(PSCI_VERSION_FN)) as g:
        assert isinstance(g.vcpu.run(), MmioExit)
        assert g.vcpu.get_reg(REG_PC) == GPA + 5 * 4  # at the store
        with pytest.raises(KvmError) as ei:
            g.vcpu.run(immediate_exit=True)
        assert ei.value.errno == errno.EINTR
        assert g.vcpu.get_reg(REG_PC) == GPA + 6 * 4  # completed, the guest did not run
        assert g.vcpu.immediate_exit is False  # set for that call only


def test_stop_request_interrupts_a_thread_inside_kvm_run(kvm: Kvm) -> None:
    """The guest spins forever; the VMM asks the vCPU thread to stop: the kick's signal makes
    KVM_RUN fail with EINTR and the loop returns None instead of entering again."""
    previous = signal.getsignal(KICK_SIGNAL)
    install_kick_handler()
    try:
        with guest(kvm, [B_SELF]) as g:
            loop = VcpuLoop(0, g.vcpu, kick_signal=KICK_SIGNAL)
            got: list[Exit | BaseException | None] = []

            def body() -> None:
                try:
                    got.append(loop.run())
                except BaseException as e:  # reported below
                    got.append(e)

            t = threading.Thread(target=body, daemon=True)
            t.start()
            deadline = time.monotonic() + 10
            while not loop.in_run and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # inside the ioctl by now
            assert loop.in_run and t.is_alive()
            loop.request_stop()
            t.join(30)
            assert not t.is_alive(), "the vCPU thread did not stop"
            assert got == [None]
            assert g.vcpu.get_reg(REG_PC) == GPA  # still spinning where it was
    finally:
        signal.signal(KICK_SIGNAL, previous)


def test_cpu_regs_on_a_real_vcpu(vcpu: Vcpu) -> None:
    cpu = KvmCpu(vcpu)
    values = {CpuReg(n): 0x1000 + n for n in range(31)}
    values |= {CpuReg.PC: 0x4000_0000, CpuReg.ELR_EL1: 0x8000_1000, CpuReg.SPSR_EL1: 0x3C5,
               CpuReg.VBAR_EL1: 0xFFFF_0000_0010_0800}
    cpu.write(values)
    assert cpu.read(list(values)) == values
    # SP is the current stack pointer: SP_EL1 in EL1h, SP_EL0 in EL0t.
    cpu.write({CpuReg.PSTATE: 0x3C5, CpuReg.SP: 0xAAA0})
    assert vcpu.get_reg(REG_SP_EL1) == 0xAAA0
    cpu.write({CpuReg.PSTATE: 0x3C0, CpuReg.SP: 0xBBB0})
    assert vcpu.get_reg(REG_SP_EL0) == 0xBBB0 and vcpu.get_reg(REG_SP_EL1) == 0xAAA0
    assert cpu.read([CpuReg.SP, CpuReg.PSTATE]) == {CpuReg.SP: 0xBBB0, CpuReg.PSTATE: 0x3C0}
