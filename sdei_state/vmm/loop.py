"""The VMM loop of one vCPU, written once for every vCPU the package runs.

A real vCPU (``sdei_state.kvm.Vcpu``) and the simulated guest (``guest_vcpu.GuestVcpu``) both
answer ``run(immediate_exit=...)`` with the bindings' typed exits (``sdei_state.kvm.exits``);
the loop turns that into what a VMM thread does between two exits it cares about::

    loop:  finish the last MMIO access  (KVM_RUN with immediate_exit: no guest entry)
           clear immediate_exit, then look for a stop request
           entry check                 (SdeiServer.before_run: dispatch a deliverable event)
           KVM_RUN                     (EINTR: kicked; go round, or return on a stop request)
           an SDEI hypercall?          (SdeiServer.handle_exit serves it; go round)
           any other exit              -> the caller's

Why each step sits where it does:

- After ``KVM_EXIT_MMIO`` the PC still points at the access; KVM completes it (writes a
  load's register, adds 4 to PC) at the next ``KVM_RUN``. A dispatch that rewrote PC first
  would make the handler start one instruction late, and a saved PC would replay the access.
  So the loop finishes the access with ``immediate_exit`` before any entry check, and a VMM
  that stops the vCPU (to save it) finds it finished too.
- Another thread kicks a vCPU (an event became pending there, or a stop was asked) by setting
  ``immediate_exit`` and, while the vCPU is inside ``KVM_RUN``, sending it a signal, as QEMU's
  ``kvm_cpu_kick`` does. The loop clears the flag *before* it checks for work, so a kick that
  comes after the check makes the next ``KVM_RUN`` return at once: no kick is lost.
- ``EINTR`` from ``KVM_RUN`` is a kick (or a stray signal): nothing entered the guest. Without
  a stop request the loop goes round and the entry check takes the new event; with one it
  returns ``None``. An event is taken only by an entry check, which runs once per entry, and
  stays pending until then: none is lost or taken twice by stopping.
- A pause request parks the thread at the same check, inside ``run``: the vCPU is out of
  ``KVM_RUN`` with its last MMIO access finished, so another thread may save or restore its
  registers, until ``resume``. Stop and pause are checked before the entry check, so a
  request never lets one more event be taken; the ``KVM_RUN`` in flight when it comes is
  the last one (``runs`` counts them, which is how the storm test measures it).
"""

from __future__ import annotations

import errno
import signal
import threading
from typing import Protocol

from ..errors import KvmError, SdeiStateError
from ..events import Event
from ..kvm.exits import Exit, MmioExit
from ..machine import CallOutcome


class VmmError(SdeiStateError):
    """The vCPU did what KVM never does (entered the guest with ``immediate_exit`` set)."""


class RunnableVcpu(Protocol):
    """What the loop needs of a vCPU: ``KVM_RUN`` with typed exits and ``immediate_exit``."""

    @property
    def immediate_exit(self) -> bool: ...

    @immediate_exit.setter
    def immediate_exit(self, on: bool) -> None: ...

    def run(self, immediate_exit: bool = False) -> Exit:
        """``KVM_RUN``; ``KvmError(EINTR)`` when kicked or with ``immediate_exit``."""
        ...


class SdeiServer(Protocol):
    """Who serves SDEI for the vCPUs of a loop (the provider, or the reference machine for
    the simulated guest)."""

    def before_run(self, index: int) -> Event | None:
        """The entry check: enter the handler of a deliverable event, if any."""
        ...

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        """Serve ``exit_`` if it is an SDEI call; None for any other exit."""
        ...


class VcpuLoop:
    """The loop of vCPU ``index``; ``server`` None when the kernel serves SDEI itself (or
    nothing does). ``kick_signal``: the signal that interrupts a running ``KVM_RUN`` (None
    for a vCPU a signal cannot interrupt, such as the simulated guest).

    ``run`` is called from the vCPU's thread; ``kick`` and ``request_stop`` from any thread.
    """

    def __init__(self, index: int, vcpu: RunnableVcpu, server: SdeiServer | None = None, *,
                 kick_signal: int | None = None) -> None:
        self.index = index
        self.vcpu = vcpu
        self.server = server
        self.kick_signal = kick_signal
        self.thread: int | None = None
        """The thread that last called ``run`` (the one a kick's signal goes to)."""
        self.in_run = False
        self.unfinished = False
        """The last exit was MMIO: KVM completes its access at the next ``KVM_RUN``."""
        self.runs = 0
        """``KVM_RUN`` calls that could enter the guest, since the loop was made."""
        self.parked = False
        """The thread is parked by a pause request (out of ``KVM_RUN``, MMIO finished)."""
        self._stop = False
        self._pause = False
        self._cond = threading.Condition()

    def run(self) -> Exit | None:
        """Run until an exit that is not SDEI's and return it, or None when a stop was
        requested (the request is then consumed; calling ``run`` again goes on). Answer an
        MMIO read with the vCPU's ``set_mmio_data`` before calling ``run`` again."""
        self.thread = threading.get_ident()
        vcpu, server = self.vcpu, self.server
        while True:
            self.finish()
            vcpu.immediate_exit = False
            if self._stop:  # checked after clearing: a later request sets the flag again
                self._stop = False
                return None
            if self._pause:
                self._park()
                continue  # resumed (or asked to stop meanwhile): check again
            if server is not None:
                server.before_run(self.index)
            self.runs += 1
            self.in_run = True
            try:
                exit_ = vcpu.run()
            except KvmError as e:
                if e.errno != errno.EINTR:
                    raise
                continue  # kicked: the entry check or the stop check above takes it
            finally:
                self.in_run = False
            if server is not None and server.handle_exit(self.index, exit_) is not None:
                continue
            self.unfinished = isinstance(exit_, MmioExit)
            return exit_

    def finish(self) -> None:
        """Let KVM finish the access of the last MMIO exit without entering the guest (a
        no-op when there is none). Call it before reading or saving a stopped vCPU."""
        if not self.unfinished:
            return
        try:
            self.vcpu.run(immediate_exit=True)
        except KvmError as e:
            if e.errno != errno.EINTR:
                raise
        else:
            raise VmmError(f"vCPU {self.index}: KVM_RUN with immediate_exit entered the guest")
        self.unfinished = False

    def kick(self) -> bool:
        """Make the vCPU's thread pass its entry check soon; False (nothing done) when no
        thread runs it yet or the caller is that thread, which checks before its next entry
        anyway."""
        tid = self.thread
        if tid is None or tid == threading.get_ident():
            return False
        self.vcpu.immediate_exit = True  # covers the window just before KVM_RUN
        if self.in_run and self.kick_signal is not None:
            signal.pthread_kill(tid, self.kick_signal)  # interrupts a running KVM_RUN
        return True

    def request_stop(self) -> None:
        """Ask ``run`` to return None at its next check (from any thread); a parked thread
        leaves its pause to return."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self.kick()

    def request_pause(self) -> None:
        """Ask the thread in ``run`` to park at its next check, out of ``KVM_RUN``, until
        ``resume`` (from any thread; ``wait_parked`` waits for it)."""
        with self._cond:
            self._pause = True
        self.kick()

    def wait_parked(self, timeout: float) -> bool:
        """Wait until the thread has parked after ``request_pause``; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.parked or not self._pause, timeout)

    def resume(self) -> None:
        """End a pause: the parked thread goes on with its entry check."""
        with self._cond:
            self._pause = False
            self._cond.notify_all()

    def _park(self) -> None:
        with self._cond:
            self.parked = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._pause or self._stop)
            self.parked = False
