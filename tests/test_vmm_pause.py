"""Pause and resume of the one VMM loop (``VcpuLoop.request_pause``/``resume``), on the
simulated guest: the thread parks out of ``KVM_RUN`` between two entries, nothing runs while
it is parked, and a stop request ends a pause."""

from __future__ import annotations

import threading
import time

from sdei_state.guest import a64 as A
from sdei_state.guest.asm import Asm
from sdei_state.guest.layout import LAYOUT
from sdei_state.kvm.exits import Exit
from sdei_state.machine import Machine
from sdei_state.spec import Function
from sdei_state.vmm import GuestVcpu, ModelServer, VcpuLoop


def _endless() -> GuestVcpu:
    """VERSION calls forever: the loop never returns by itself."""
    a = Asm(LAYOUT.base)
    top = a.label("top")
    a.mov_imm(0, int(Function.VERSION))
    a.emit(A.hvc(0))
    a.b(top)
    return GuestVcpu(LAYOUT, 0, a.assemble())


def _running() -> tuple[VcpuLoop, threading.Thread, list[Exit | None]]:
    v = _endless()
    loop = VcpuLoop(0, v, ModelServer(Machine(1), [v.cpu]))
    got: list[Exit | None] = []
    t = threading.Thread(target=lambda: got.append(loop.run()), daemon=True)
    t.start()
    end = time.monotonic() + 10
    while loop.runs < 3 and time.monotonic() < end:
        time.sleep(0.001)
    assert loop.runs >= 3
    return loop, t, got


def test_pause_parks_between_entries_and_resume_goes_on() -> None:
    loop, t, got = _running()
    loop.request_pause()
    assert loop.wait_parked(10) and loop.parked
    runs = loop.runs
    time.sleep(0.05)
    assert loop.runs == runs and not loop.in_run  # nothing entered the guest while parked
    loop.resume()
    end = time.monotonic() + 10
    while loop.runs == runs and time.monotonic() < end:
        time.sleep(0.001)
    assert loop.runs > runs and not loop.parked
    loop.request_stop()
    t.join(10)
    assert got == [None]


def test_stop_ends_a_pause() -> None:
    loop, t, got = _running()
    loop.request_pause()
    assert loop.wait_parked(10)
    loop.request_stop()
    t.join(10)
    assert not t.is_alive() and got == [None] and not loop.parked


def test_pause_before_run_parks_at_the_first_check() -> None:
    v = _endless()
    loop = VcpuLoop(0, v, ModelServer(Machine(1), [v.cpu]))
    loop.request_pause()
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    assert loop.wait_parked(10) and loop.runs == 0
    loop.request_stop()
    t.join(10)
    assert not t.is_alive()


def test_wait_parked_times_out_without_a_thread() -> None:
    loop = VcpuLoop(0, _endless())
    loop.request_pause()
    assert not loop.wait_parked(0.05)
    loop.resume()
    assert loop.wait_parked(0.05)  # nothing to wait for once resumed
