"""The ``stress`` suite: vCPU threads signalling each other, none lost, none taken twice.

A VMM runs one thread per vCPU. Here each vCPU runs ``guest.programs.stress``: it registers
event 0, then signals every other vCPU round after round, spinning between signals, and its
handler counts entries in guest memory and checks its entry registers. On KVM each thread
runs ``SdeiProvider.run(i)`` (dispatch before each entry, SDEI calls served, kicks: a signal
that makes an event pending on a vCPU inside ``KVM_RUN`` interrupts it with ``SIGUSR1``); on
the simulated backend each thread runs the interpreter against one shared ``Machine``.

EVENT_SIGNAL is edge-triggered: a signal that finds event 0 pending merges into it. So the
accounting is per *pending edge*, each reported by the provider's kick hook (the machine's
``on_pending``): for every vCPU, edges = handler entries (the guest's counter) + still pending
at the end. Every SIGNAL must return SUCCESS and every entry see x0 = 0, x1 = its ep_arg and
x4..x17 intact, as the model predicts once every vCPU has registered.
"""

from __future__ import annotations

import errno
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import KvmError
from ..events import SW_SIGNALED
from ..guest.doorbell import BellKind, parse_mmio
from ..guest.programs import (
    STRESS_BAD_ENTRIES,
    STRESS_BROKEN,
    STRESS_ENTRIES,
    STRESS_ERRORS,
    STRESS_SENT,
    StressProgram,
    stress,
)
from ..guest.sim import GuestCpu, HypercallExit, SimError
from ..machine import Machine
from .core import Case, CheckFailed, Skip, Suite, expect_eq


@dataclass(frozen=True)
class Plan:
    """How big a stress run is; the KVM one spins longer so signals find their targets
    inside KVM_RUN."""

    nr_vcpus: int
    rounds: int
    delay: int
    idle_delay: int
    timeout: float


PLANS: Final = {
    "sim": {4: Plan(4, 40, 20, 200, 120.0), 8: Plan(8, 12, 20, 200, 120.0)},
    # Under the lab's TCG a guest spin of 20M iterations lasts a few ms: long enough that
    # about half the signals find their target inside KVM_RUN (measured: 37 of 58 edges).
    "kvm": {4: Plan(4, 10, 20_000_000, 50_000, 240.0),
            8: Plan(8, 4, 5_000_000, 50_000, 240.0)},
}


@dataclass
class StressRun:
    """What a stress run counted, per vCPU."""

    plan: Plan
    sent: list[int] = field(default_factory=list)
    errors: list[int] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)
    bad: list[int] = field(default_factory=list)
    broken: list[int] = field(default_factory=list)
    edges: list[int] = field(default_factory=list)
    pending: list[bool] = field(default_factory=list)
    running: list[bool] = field(default_factory=list)
    interrupted: int = 0
    """KVM_RUN calls a kick's signal interrupted inside the guest (KVM only)."""
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Loop:
    """What every vCPU thread shares: the ready barrier, who is done, failures."""

    def __init__(self, n: int, timeout: float) -> None:
        self.ready = threading.Barrier(n, timeout=timeout)
        self.done = [False] * n
        self.failures: list[str] = []
        self.deadline = time.monotonic() + timeout
        self.lock = threading.Lock()

    def fail(self, i: int, what: str) -> None:
        with self.lock:
            self.failures.append(f"vCPU {i}: {what}")
        self.ready.abort()

    def bell(self, i: int, prog: StressProgram, phys: int, data: int | bytes, length: int,
             write: bool) -> bool:
        """Handle one doorbell of vCPU ``i``; True when its thread should stop."""
        b = parse_mmio(prog.layout, phys, data, length, write)
        if b.kind is BellKind.MAIN_CALL and b.index == 0:
            if b.data:
                self.fail(i, f"setup calls returned {b.data:#x} (OR of REGISTER, ENABLE, "
                             "PE_UNMASK)")
                return True
            self.ready.wait()  # every vCPU has registered: signals are valid from now on
            return False
        if b.kind is BellKind.MAIN_CALL and b.index == 1:
            self.done[i] = True
            return False
        if b.kind is BellKind.IDLE:
            if time.monotonic() > self.deadline:
                self.fail(i, "did not finish in time")
                return True
            return all(self.done)
        self.fail(i, f"doorbell {b}")
        return True


def _threads(n: int, body: Callable[[int], None], loop: _Loop, timeout: float) -> None:
    def wrap(i: int) -> None:
        try:
            body(i)
        except threading.BrokenBarrierError:
            loop.fail(i, "another vCPU failed before every vCPU was ready")
        except Exception as e:
            loop.fail(i, f"{type(e).__name__}: {e}")

    ts = [threading.Thread(target=wrap, args=(i,), name=f"vcpu{i}", daemon=True)
          for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(1.0, loop.deadline - time.monotonic() + 10))
        if t.is_alive():
            loop.fail(int(t.name[4:]), "its thread did not end (stuck in KVM_RUN?)")


def _collect(out: StressRun, progs: Sequence[StressProgram], mems: Sequence[bytes],
             machine: Machine, edges: Counter[int]) -> None:
    for i, p in enumerate(progs):
        m = mems[i]
        out.sent.append(p.counter(m, STRESS_SENT))
        out.errors.append(p.counter(m, STRESS_ERRORS))
        out.entries.append(p.counter(m, STRESS_ENTRIES))
        out.bad.append(p.counter(m, STRESS_BAD_ENTRIES))
        out.broken.append(p.counter(m, STRESS_BROKEN))
        es = machine.state(i).event(SW_SIGNALED)
        out.pending.append(es.pending)
        out.running.append(es.running)
        out.edges.append(edges[i])


def run_sim(plan: Plan) -> StressRun:
    """The stress on simulated vCPUs: one thread per ``GuestCpu``, one shared machine."""
    n = plan.nr_vcpus
    progs = [stress(i, n, plan.rounds, delay=plan.delay, idle_delay=plan.idle_delay)
             for i in range(n)]
    edges: Counter[int] = Counter()
    edge_lock = threading.Lock()

    def on_pending(i: int) -> None:
        with edge_lock:
            edges[i] += 1

    machine = Machine(n, on_pending=on_pending)
    cpus = [GuestCpu(p.layout, i, p.image) for i, p in enumerate(progs)]
    loop = _Loop(n, plan.timeout)
    t0 = time.perf_counter()

    def body(i: int) -> None:
        cpu, prog = cpus[i], progs[i]
        while True:
            machine.dispatch(i, cpu)
            try:
                ex = cpu.run()
            except SimError as e:
                loop.fail(i, str(e))
                return
            if isinstance(ex, HypercallExit):
                machine.hvc(i, cpu)
                continue
            if loop.bell(i, prog, ex.phys_addr, ex.data, ex.length, True):
                return

    _threads(n, body, loop, plan.timeout)
    out = StressRun(plan, failures=loop.failures, seconds=time.perf_counter() - t0)
    _collect(out, progs, [bytes(c.mem) for c in cpus], machine, edges)
    return out


class _CountingVcpu:
    """A vCPU for the provider that counts the KVM_RUN calls a kick interrupted."""

    def __init__(self, vcpu: Any) -> None:
        self.vcpu = vcpu
        self.interrupted = 0
        """KVM_RUN calls entered with immediate_exit clear that ended in EINTR: a kick's
        signal arrived while the vCPU was in KVM_RUN (the provider's own immediate_exit runs,
        which complete a doorbell store, are not counted)."""

    @property
    def cpu(self) -> Any:
        return self.vcpu.cpu

    @property
    def kvm_run(self) -> Any:
        return self.vcpu.kvm_run

    def run(self) -> Any:
        entered_clear = not self.vcpu.kvm_run.immediate_exit
        try:
            return self.vcpu.run()
        except KvmError as e:
            if e.errno == errno.EINTR and entered_clear:
                self.interrupted += 1
            raise

    def reg_list(self) -> tuple[int, ...]:
        return tuple(self.vcpu.reg_list())

    def get_reg(self, reg_id: int) -> int:
        return int(self.vcpu.get_reg(reg_id))

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        return list(self.vcpu.get_regs(reg_ids))

    def set_reg(self, reg_id: int, value: int) -> None:
        self.vcpu.set_reg(reg_id, value)

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        self.vcpu.set_regs(items)


def run_kvm(kvm: Any, plan: Plan) -> StressRun:
    """The stress on real vCPUs: one thread per vCPU, each in ``SdeiProvider.run``."""
    from ..kvm import MmioExit
    from ..provider import KICK_SIGNAL, SdeiProvider, install_kick_handler
    from .runner_kvm import _new_vm

    if threading.current_thread() is not threading.main_thread():
        raise Skip("the kick signal handler can only be installed from the main thread")
    n = plan.nr_vcpus
    progs = [stress(i, n, plan.rounds, delay=plan.delay, idle_delay=plan.idle_delay)
             for i in range(n)]
    edges: Counter[int] = Counter()
    edge_lock = threading.Lock()

    def on_edge(i: int) -> None:
        with edge_lock:
            edges[i] += 1

    vm, vcpus = _new_vm(kvm, progs, True)
    previous = signal.getsignal(KICK_SIGNAL)
    try:
        provider = SdeiProvider(n, kick=on_edge)
        provider.install(vm)
        counting = [_CountingVcpu(v) for v in vcpus]
        for i, c in enumerate(counting):
            provider.attach(i, c)
        install_kick_handler()
        loop = _Loop(n, plan.timeout)
        t0 = time.perf_counter()

        def body(i: int) -> None:
            while True:
                ex = provider.run(i)
                if not isinstance(ex, MmioExit):
                    loop.fail(i, f"unexpected exit {ex!r}")
                    return
                if loop.bell(i, progs[i], ex.phys_addr, ex.data, len(ex.data), ex.is_write):
                    return

        _threads(n, body, loop, plan.timeout)
        out = StressRun(plan, failures=loop.failures, seconds=time.perf_counter() - t0,
                        interrupted=sum(c.interrupted for c in counting))
        mems = [vm.memory[i].read(0, vm.memory[i].size) for i in range(n)]
        _collect(out, progs, mems, provider.machine, edges)
        return out
    finally:
        signal.signal(KICK_SIGNAL, previous)
        vm.close()


def check(out: StressRun, kind: str) -> None:
    """The accounting and the model's predictions (see the module docstring)."""
    if out.failures:
        more = f" (+{len(out.failures) - 1} more)" if len(out.failures) > 1 else ""
        raise CheckFailed(out.failures[0] + more)
    p = out.plan
    per = p.rounds * (p.nr_vcpus - 1)
    for i in range(p.nr_vcpus):
        v = f"vCPU {i}"
        expect_eq(f"{v}: SIGNAL calls made", out.sent[i], per)
        expect_eq(f"{v}: OR of every SIGNAL result (the model: all SUCCESS)", out.errors[i], 0)
        expect_eq(f"{v}: entries with wrong x0/x1/x12..x15", out.bad[i], 0)
        expect_eq(f"{v}: rounds after which main's x12..x15 were not restored",
                  out.broken[i], 0)
        expect_eq(f"{v}: event 0 running at the end (stopped in the idle loop)",
                  out.running[i], False)
        taken, still = out.entries[i], int(out.pending[i])
        if out.edges[i] != taken + still:
            raise CheckFailed(f"{v}: {out.edges[i]} pending edges but {taken} handler entries "
                              f"+ {still} still pending: a signal was "
                              f"{'lost' if out.edges[i] > taken + still else 'taken twice'}")
        if taken > per:
            raise CheckFailed(f"{v}: {taken} handler entries for {per} signals received")
    if sum(out.entries) == 0:
        raise CheckFailed("no handler ran at all")
    if kind == "kvm" and out.interrupted == 0:
        raise CheckFailed("no KVM_RUN was interrupted by a kick's signal: no signal found its "
                          "target inside the guest (raise the delay)")


def summary(out: StressRun, kind: str) -> str:
    """One line of counts, for the report's notes."""
    kicks = f"{out.interrupted} KVM_RUN interrupted by a kick, " if kind == "kvm" else ""
    return (f"{out.plan.nr_vcpus} vCPUs x {out.plan.rounds} rounds: {sum(out.sent)} signals, "
            f"{sum(out.edges)} pending edges, {sum(out.entries)} handler entries, "
            f"{sum(out.pending)} still pending, {kicks}{out.seconds:.1f}s")


def _case(nr_vcpus: int) -> Case:
    def run(backend: Any) -> None:
        kind = backend.kind
        plan = PLANS[kind][nr_vcpus]
        out = run_kvm(backend.kvm, plan) if kind == "kvm" else run_sim(plan)
        backend.memo.setdefault("notes", []).append(f"stress: {summary(out, kind)}")
        check(out, kind)

    return Case(f"signals-{nr_vcpus}-vcpu-threads", run,
                f"{nr_vcpus} vCPU threads signalling each other: every pending edge taken "
                "once or still pending")


def suite() -> Suite:
    return Suite("stress", "vCPU threads signalling each other; every signal taken once or "
                 "still pending", (_case(4), _case(8)), frozenset({"sdei"}))
