"""The host side of a selftest guest run, written once for every backend.

A guest program (``selftest.programs``) runs on an *engine*: the simulated guest with the
reference ``Machine`` (``sim_engine.SimEngine``), or real KVM with the userspace provider or
an in-kernel SDEI (``runner_kvm``). Every engine hands out its vCPUs as ``vmm.RunnableVcpu``
(typed exits) and its SDEI serving as a ``vmm.ModelServer`` (None when the kernel serves), and
``Driver`` runs them with the one VMM loop (``vmm.VcpuLoop``): the dispatch check before every
entry, every SDEI call served, the doorbells decoded and the program's triggers fired. It
records the trace items of ``trace`` the same way on every engine, so a run on KVM compares
item by item with the reference run (``simulate``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from ..cpu import CALL_ARGS, CpuReg, CpuRegs
from ..errors import SdeiStateError
from ..events import Event
from ..guest.doorbell import Bell, BellError, BellKind
from ..guest.interpreter import SimError
from ..kvm.exits import Exit, HypercallExit, MmioExit
from ..machine import CallOutcome, Machine
from ..vmm import ModelServer, RunnableVcpu, VcpuLoop
from .programs.program import GuestProgram
from .trace import FINAL_REGS, Dispatched, Injected, Served, TraceItem, VcpuRun

if TYPE_CHECKING:
    from ..migration import Blob

_PC: Final = (CpuReg.PC,)
_PC_AND_ARGS: Final = (CpuReg.PC, *CALL_ARGS[1:])


class HostError(SdeiStateError):
    """The run could not go on: an exit the program cannot cause, a stray store, a guest
    that never settles. The message names the program, the vCPU and where."""


@dataclass(frozen=True, slots=True)
class Migration:
    """What one migration carried and how long it took."""

    registers: int
    """Registers per vCPU in the blob."""
    blob_bytes: int
    memory_bytes: int
    seconds: float
    blob: Blob
    """What was saved (every register of every vCPU)."""


class Engine(Protocol):
    """One VM the driver runs programs on; vCPU ``i`` runs ``programs[i]`` in its memslot."""

    name: str
    nr_vcpus: int

    @property
    def server(self) -> ModelServer | None:
        """Who serves SDEI calls and makes dispatches in userspace (None: the kernel does,
        and the host cannot see it)."""
        ...

    def vcpu(self, i: int) -> RunnableVcpu:
        """vCPU ``i`` as the VMM loop runs it."""
        ...

    def cpu(self, i: int) -> CpuRegs:
        """vCPU ``i``'s registers as the model sees them."""
        ...

    def inject(self, i: int, number: int) -> bool:
        """Hypervisor injection of event ``number`` on vCPU ``i``."""
        ...

    def deliverable(self, i: int) -> Event | None:
        """The event the next entry of vCPU ``i`` would take, if any."""
        ...

    def memory(self, i: int) -> bytes:
        """A copy of vCPU ``i``'s memslot."""
        ...

    def sees(self, item: TraceItem) -> bool:
        """Whether the host can observe ``item`` on this engine (a call KVM answers itself
        never exits; an in-kernel SDEI serves and dispatches without the host)."""
        ...

    def migrate(self) -> tuple[Engine, Migration]:
        """Save every register of every vCPU, restore into a new VM of the same kind, copy
        the memslots; the new engine goes on from the same point."""
        ...

    def close(self) -> None: ...


class _Traced:
    """An engine's ``ModelServer`` for one vCPU's loop, recording what it does: a dispatch
    with the interrupted PC/PSTATE of the saved context, a call with x1..x5 as the guest
    made it."""

    def __init__(self, server: ModelServer, program: GuestProgram,
                 trace: list[TraceItem]) -> None:
        self.server = server
        self.program = program
        self.trace = trace

    def before_run(self, index: int) -> Event | None:
        ev = self.server.before_run(index)
        if ev is not None:
            ctx = self.server.machine.state(index).contexts[ev.priority]
            pc = self.server.cpu(index).read(_PC)[CpuReg.PC]
            self.trace.append(Dispatched(ev.number, pc, ctx.pc, ctx.pstate))
        return ev

    def handle_exit(self, index: int, exit_: Exit) -> CallOutcome | None:
        if not isinstance(exit_, HypercallExit):
            return self.server.handle_exit(index, exit_)
        pa = self.server.cpu(index).read(_PC_AND_ARGS)  # before the call rewrites x1..x3
        out = self.server.handle_exit(index, exit_)
        if out is not None:
            self.trace.append(Served(
                self.program.site_returning_to(pa.pop(CpuReg.PC)), out.function_id & 0xFFFF_FFFF,
                tuple(pa.values()), out.ret,
                None if out.completed is None else out.completed.number))
        return out


@dataclass
class _VcpuState:
    trace: list[TraceItem] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    fired: list[bool] = field(default_factory=list)
    finished: bool = False
    terminal: bool = False


class Driver:
    """The VMM loop over an engine, one program per vCPU.

    ``run(i)`` runs vCPU ``i`` until it settles in its idle loop with every trigger fired and
    nothing deliverable, a terminal doorbell (a fault, a completion that returned), or
    ``until(bell)``; it may be called again to go on (another vCPU may have signalled it, or
    ``engine`` may have been replaced by its migrated copy)."""

    def __init__(self, engine: Engine, programs: Sequence[GuestProgram]) -> None:
        if len(programs) != engine.nr_vcpus:
            raise ValueError(f"{len(programs)} programs for {engine.nr_vcpus} vCPUs")
        self.engine = engine
        self.programs = tuple(programs)
        self._st = [_VcpuState(fired=[False] * len(p.triggers)) for p in self.programs]

    def run(self, i: int, *, until: Callable[[Bell], bool] | None = None,
            max_exits: int = 5000) -> bool:
        """Run vCPU ``i``; True if it settled (``finished``), False if it stopped at a
        terminal doorbell or at ``until``."""
        eng, prog, st = self.engine, self.programs[i], self._st[i]
        if st.terminal:
            raise HostError(f"vCPU {i} ({prog.name}) stopped at a terminal doorbell")
        st.finished = False
        server = eng.server
        loop = VcpuLoop(i, eng.vcpu(i), None if server is None else _Traced(server, prog,
                                                                             st.trace))
        for _ in range(max_exits):
            try:
                ex = loop.run()
            except SimError as e:
                raise HostError(f"vCPU {i} ({prog.name}): {e}") from None
            if not isinstance(ex, MmioExit) or not ex.is_write:
                raise HostError(self._unexpected(i, ex))
            # Complete the store now, so the vCPU stops where the simulated one does (a
            # dispatch, a comparison or a migration at this point sees PC past it).
            loop.finish()
            try:
                bell = prog.bell(ex.phys_addr, ex.value, len(ex.data))
            except BellError as e:
                raise HostError(f"vCPU {i} ({prog.name}): {e}") from None
            st.trace.append(bell)
            if bell.kind.terminal:
                st.terminal = True
                return False
            st.seen[bell.code] = st.seen.get(bell.code, 0) + 1
            for n, t in enumerate(prog.triggers):
                if not st.fired[n] and t.bell == bell.code and t.occurrence == st.seen[bell.code]:
                    st.fired[n] = True
                    st.trace.append(Injected(t.event, eng.inject(i, t.event)))
            if until is not None and until(bell):
                return False
            if bell.kind is BellKind.IDLE and all(st.fired) and eng.deliverable(i) is None:
                st.finished = True
                return True
        raise HostError(f"vCPU {i} ({prog.name}) did not settle within {max_exits} exits")

    def _unexpected(self, i: int, ex: Exit | None) -> str:
        pc = self.engine.cpu(i).read(_PC)[CpuReg.PC]
        if isinstance(ex, HypercallExit):
            return (f"vCPU {i}: hypercall {ex.nr:#x} at pc {pc:#x} reached userspace and "
                    "nothing here serves it (no SMCCC filter forwards it to a provider)")
        return f"vCPU {i}: unexpected exit {ex!r} at pc {pc:#x}"

    def result(self, i: int) -> VcpuRun:
        """What vCPU ``i`` has done so far."""
        eng, st = self.engine, self._st[i]
        regs = eng.cpu(i).read(FINAL_REGS)
        return VcpuRun(self.programs[i], tuple(st.trace), eng.memory(i), regs, st.finished,
                       eng.name)

    def mark(self, i: int) -> int:
        """How many trace items vCPU ``i`` has so far (to split a trace at a point)."""
        return len(self._st[i].trace)


def simulate(program: GuestProgram, *, machine: Machine | None = None,
             max_exits: int = 5000) -> VcpuRun:
    """The reference run: ``program`` on one simulated vCPU with ``machine`` (a fresh
    one-vCPU ``Machine`` by default) serving every call, run until it settles or stops at a
    terminal doorbell. What the same program must produce on real KVM."""
    from .sim_engine import SimEngine

    eng = SimEngine([program], machine=machine)
    drv = Driver(eng, [program])
    drv.run(0, max_exits=max_exits)
    run = drv.result(0)
    return VcpuRun(run.program, run.trace, run.memory, run.regs, run.finished,
                   "simulate (reference model)")
