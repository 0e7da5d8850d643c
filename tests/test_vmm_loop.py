"""The one VMM loop (``vmm.VcpuLoop``) and the simulated guest behind KVM's run interface
(``vmm.GuestVcpu``): typed exits with KVM's semantics, MMIO completion with
``immediate_exit``, kicks, and stop requests from another thread."""

from __future__ import annotations

import errno
import threading
from typing import Final

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.errors import KvmError
from sdei_state.events import Event
from sdei_state.guest import a64 as A
from sdei_state.guest.asm import Asm
from sdei_state.guest.layout import LAYOUT
from sdei_state.kvm.exits import Exit, ExitReason, HypercallExit, HypercallFlags, MmioExit
from sdei_state.machine import Machine
from sdei_state.spec import Function
from sdei_state.vmm import GuestVcpu, ModelServer, VcpuLoop, VmmError

STORE_REG: Final = 9


def _program(*, smc: bool = False, forever: bool = False) -> GuestVcpu:
    """x0 = VERSION; hvc (or smc); store x0 to the doorbell; then spin (or start over)."""
    a = Asm(LAYOUT.base)
    top = a.label("top")
    a.mov_imm(0, int(Function.VERSION))
    a.emit(A.smc(0) if smc else A.hvc(0))
    if forever:
        a.b(top)
    else:
        a.mov_imm(STORE_REG, LAYOUT.doorbell)
        a.emit(A.str_x(0, STORE_REG))
        spin = a.label("spin")
        a.b(spin)
    return GuestVcpu(LAYOUT, 0, a.assemble())


def test_guest_vcpu_exits_like_kvm() -> None:
    v = _program(smc=True)
    ex = v.run()
    assert ex == HypercallExit(int(ExitReason.HYPERCALL), int(Function.VERSION), (0,) * 6,
                               int(HypercallFlags.SMC))
    assert isinstance(ex, HypercallExit) and ex.smc
    assert v.cpu.read((CpuReg.PC,))[CpuReg.PC] == v.guest.pc  # PC past the smc
    ex = v.run()
    assert isinstance(ex, MmioExit) and ex.is_write
    assert (ex.phys_addr, ex.value, len(ex.data)) == (LAYOUT.doorbell, int(Function.VERSION), 8)
    store_pc = v.cpu.read((CpuReg.PC,))[CpuReg.PC]
    assert A.str_x(0, STORE_REG) == int.from_bytes(
        v.guest.mem[store_pc - LAYOUT.base:][:4], "little"), "PC stays at the store"
    with pytest.raises(KvmError) as ei:
        v.run(immediate_exit=True)
    assert ei.value.errno == errno.EINTR
    assert v.cpu.read((CpuReg.PC,))[CpuReg.PC] == store_pc + 4  # completed, nothing else ran


def test_guest_vcpu_flag_keeps_it_out_until_cleared() -> None:
    v = _program()
    v.immediate_exit = True
    for _ in range(2):
        with pytest.raises(KvmError):
            v.run()
    v.immediate_exit = False
    assert isinstance(v.run(), HypercallExit)


def test_loop_serves_calls_and_returns_the_vmms_exit() -> None:
    v = _program()
    m = Machine(1)
    loop = VcpuLoop(0, v, ModelServer(m, [v.cpu]))
    ex = loop.run()
    assert isinstance(ex, MmioExit) and ex.value == 0x0001_0001_564B_CAA9  # VERSION, served
    assert loop.unfinished
    loop.finish()
    assert not loop.unfinished and v.cpu.read((CpuReg.PC,))[CpuReg.PC] == v.guest.pc


def test_loop_without_server_returns_the_hypercall() -> None:
    loop = VcpuLoop(0, _program())
    assert isinstance(loop.run(), HypercallExit)


class _BrokenImmediateExit(GuestVcpu):
    """A vCPU that enters the guest although immediate_exit is set (KVM never does)."""

    def run(self, immediate_exit: bool = False) -> Exit:
        return super().run(False)


def test_entering_the_guest_with_immediate_exit_is_an_error() -> None:
    a = Asm(LAYOUT.base)
    a.mov_imm(STORE_REG, LAYOUT.doorbell)
    a.emit(A.str_x(0, STORE_REG), A.str_x(0, STORE_REG))
    v = _BrokenImmediateExit(LAYOUT, 0, a.assemble())
    loop = VcpuLoop(3, v)
    assert isinstance(loop.run(), MmioExit)
    with pytest.raises(VmmError, match="vCPU 3: KVM_RUN with immediate_exit entered the guest"):
        loop.finish()


class _Failing(GuestVcpu):
    def run(self, immediate_exit: bool = False) -> Exit:
        raise KvmError(errno.EFAULT, "KVM_RUN")


def test_other_kvm_run_errors_reach_the_caller() -> None:
    with pytest.raises(KvmError, match="EFAULT"):
        VcpuLoop(0, _Failing(LAYOUT)).run()


def test_kick_from_the_own_thread_or_before_any_run_does_nothing() -> None:
    v = _program()
    loop = VcpuLoop(0, v)
    assert not loop.kick() and not v.immediate_exit  # no thread runs it yet
    loop.run()
    assert not loop.kick() and not v.immediate_exit  # the caller is its thread
    done: list[bool] = []
    t = threading.Thread(target=lambda: done.append(loop.kick()))
    t.start()
    t.join()
    assert done == [True] and v.immediate_exit


def test_stop_requested_before_run_returns_at_once() -> None:
    v = _program()
    loop = VcpuLoop(0, v)
    loop.request_stop()
    assert loop.run() is None
    assert isinstance(loop.run(), HypercallExit)  # the request was consumed


def test_stop_request_from_another_thread_ends_an_endless_guest() -> None:
    """The guest makes SDEI calls forever, so the loop never returns by itself; a stop request
    from the main thread makes it return None, between two entries."""
    v = _program(forever=True)
    got: list[Exit | None] = []
    started = threading.Event()

    class _Watched(ModelServer):
        def before_run(self, index: int) -> Event | None:
            started.set()
            return super().before_run(index)

    loop = VcpuLoop(0, v, _Watched(Machine(1), [v.cpu]))
    t = threading.Thread(target=lambda: got.append(loop.run()), daemon=True)
    t.start()
    assert started.wait(10)
    loop.request_stop()
    t.join(10)
    assert not t.is_alive() and got == [None]
