"""The host side of a selftest guest run, written once for every backend.

A guest program (``sdei_state.guest``) runs on an *engine*: the pure-Python vCPU with the
reference ``Machine`` (``SimEngine``), or real KVM with the userspace provider or an in-kernel
SDEI (``runner_kvm``). ``Driver`` is the VMM loop that ``guest.sim.simulate`` is for one
simulated vCPU, over any engine and any number of vCPUs: the dispatch check before every
entry, every SDEI call served, the doorbells decoded and the program's triggers fired. It
records the same trace items ``simulate`` does (``Served``, ``Bell``, ``Injected``,
``Dispatched``), so a run on KVM compares item by item with the reference run
(``compare``), and the spec facts a suite checks read one ``VcpuRun`` whatever produced it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

from ..cpu import CALL_ARGS, CpuReg, CpuRegs
from ..events import Event
from ..guest.a64 import SysReg
from ..guest.builder import GuestProgram
from ..guest.doorbell import Bell, BellError, BellKind
from ..guest.layout import Layout
from ..guest.sim import Dispatched, GuestCpu, Injected, Served, SimError, SimRun, TraceItem
from ..guest.sim import HypercallExit as SimHypercall
from ..machine import Machine
from ..regs import ids
from ..regs.firmware import HostFirmware
from ..spec import FN_BASE, FN_COUNT
from ..vcpu.transport import RegTransport

if TYPE_CHECKING:
    from ..migration import Blob
    from ..vcpu.sim import SimVcpu, SimVm

FINAL_REGS: Final[tuple[CpuReg, ...]] = tuple(r for r in CpuReg if r is not CpuReg.SP)
"""Registers compared at the end of a run. SP is left out: the model's ``sp`` is SP_EL0 on
the simulated vCPU and the current SP over KVM; the records hold the SP the guest used."""
_PC_AND_ARGS: Final = (CpuReg.PC, *CALL_ARGS[1:])


class HostError(Exception):
    """The run could not go on: an exit the program cannot cause, a stray store, a guest
    that never settles. The message names the program, the vCPU and where."""


@dataclass(frozen=True, slots=True)
class HvcStop:
    """The vCPU left on an SDEI call (PC already past the hvc/smc)."""

    function_id: int


@dataclass(frozen=True, slots=True)
class MmioStop:
    """The vCPU stored to the doorbell window; the store is already completed."""

    phys_addr: int
    data: int
    length: int


Stop = HvcStop | MmioStop


class Engine(Protocol):
    """One VM the driver runs programs on; vCPU ``i`` runs ``programs[i]`` in its memslot."""

    name: str
    nr_vcpus: int

    def cpu(self, i: int) -> CpuRegs:
        """vCPU ``i``'s registers as the model sees them."""
        ...

    def enter(self, i: int) -> Stop:
        """Run vCPU ``i`` until its next exit to the host."""
        ...

    def dispatch(self, i: int) -> Dispatched | None:
        """The entry check: enter the handler of a deliverable event (None: nothing taken, or
        the engine cannot see dispatches because the kernel makes them)."""
        ...

    def serve(self, i: int) -> Served:
        """Serve the SDEI call vCPU ``i`` stopped on."""
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


def forwarded(function_id: int) -> bool:
    """True for the calls the SMCCC filter forwards to userspace: w0 in the SDEI block."""
    return FN_BASE <= function_id & 0xFFFF_FFFF < FN_BASE + FN_COUNT


def model_dispatch(machine: Machine, i: int, cpu: CpuRegs,
                   dispatch: Callable[[int], Event | None] | None = None) -> Dispatched | None:
    """``machine.dispatch`` (or ``dispatch``, the provider's entry check) recorded as
    ``simulate`` records it: the interrupted PC/PSTATE are the saved context's."""
    ev = machine.dispatch(i, cpu) if dispatch is None else dispatch(i)
    if ev is None:
        return None
    ctx = machine.state(i).contexts[ev.priority]
    return Dispatched(ev.number, cpu.read((CpuReg.PC,))[0], ctx.pc, ctx.pstate)


def served(program: GuestProgram, function_id: int, pc_and_args: Sequence[int],
           ret: int, completed: Event | None) -> Served:
    """A ``Served`` trace item as ``simulate`` makes it."""
    return Served(program.site_returning_to(pc_and_args[0]), function_id & 0xFFFF_FFFF,
                  tuple(pc_and_args[1:6]), ret, None if completed is None else completed.number)


def read_pc_and_args(cpu: CpuRegs) -> tuple[int, ...]:
    """PC and x1..x5 at a hypercall exit, in one batch."""
    return cpu.read(_PC_AND_ARGS)


# -- the simulated engine --------------------------------------------------------------------

class SimEngine:
    """Pure-Python vCPUs (``GuestCpu``) served by one reference ``Machine``: the prediction
    for the same programs on KVM, and the simulated backend's engine.

    With ``vm`` (a ``SimVm``), its machine serves the calls and each vCPU's registers are
    also a ``RegTransport`` (``GuestCpuTransport``): core and system registers from the
    ``GuestCpu``, firmware and SDEI registers from the simulated vCPU, so ``migrate`` saves
    and restores through ``sdei_state.migration`` as on KVM."""

    def __init__(self, programs: Sequence[GuestProgram], *, machine: Machine | None = None,
                 vm: SimVm | None = None, load: bool = True) -> None:
        self.name = "simulated vCPU"
        self.programs = tuple(programs)
        self.nr_vcpus = len(self.programs)
        if vm is not None and machine is not None:
            raise ValueError("give a machine or a SimVm, not both")
        self.vm = vm
        self.machine = vm.machine if vm is not None else (
            machine if machine is not None else Machine(self.nr_vcpus))
        self.cpus = [GuestCpu(p.layout, i, p.image if load else None)
                     for i, p in enumerate(self.programs)]

    def cpu(self, i: int) -> CpuRegs:
        return self.cpus[i]

    def enter(self, i: int) -> Stop:
        try:
            exit_ = self.cpus[i].run()
        except SimError as e:
            raise HostError(f"vCPU {i} ({self.programs[i].name}): {e}") from None
        if isinstance(exit_, SimHypercall):
            return HvcStop(self.cpus[i].x[0] & 0xFFFF_FFFF)
        return MmioStop(exit_.phys_addr, exit_.data, exit_.length)

    def dispatch(self, i: int) -> Dispatched | None:
        return model_dispatch(self.machine, i, self.cpus[i])

    def serve(self, i: int) -> Served:
        cpu = self.cpus[i]
        pa = read_pc_and_args(cpu)
        out = self.machine.hvc(i, cpu)
        return served(self.programs[i], out.function_id, pa, out.ret, out.completed)

    def inject(self, i: int, number: int) -> bool:
        return self.machine.inject(i, number)

    def deliverable(self, i: int) -> Event | None:
        return self.machine.deliverable(i)

    def memory(self, i: int) -> bytes:
        return bytes(self.cpus[i].mem)

    def sees(self, item: TraceItem) -> bool:
        return True

    def transports(self) -> list[RegTransport]:
        """Each vCPU as a ``RegTransport`` (needs ``vm``)."""
        if self.vm is None:
            raise ValueError("a SimEngine without a SimVm has no register transport")
        return [GuestCpuTransport(self.vm.vcpus[i], c) for i, c in enumerate(self.cpus)]

    def migrate(self) -> tuple[SimEngine, Migration]:
        """Save every register with ``save_vm``, restore into a new ``SimVm`` with fresh
        vCPUs with ``restore_vm``, copy the memslots. This engine is left as it was."""
        from ..migration import restore_vm, save_vm
        from ..vcpu.sim import SimVm

        if self.vm is None:
            raise ValueError("a SimEngine without a SimVm cannot migrate")
        t0 = time.perf_counter()
        blob = save_vm(self.transports())
        mems = [self.memory(i) for i in range(self.nr_vcpus)]
        dest = SimEngine(self.programs, vm=SimVm(self.nr_vcpus, host=self.vm.host), load=False)
        restore_vm(dest.transports(), blob)
        for cpu, m in zip(dest.cpus, mems, strict=True):
            cpu.mem[:] = m
        return dest, Migration(len(blob.reg_ids), len(blob.to_bytes()), sum(map(len, mems)),
                               time.perf_counter() - t0, blob)

    def close(self) -> None:
        pass


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


_CORE: Final = (*((ids.core_reg(f"x{n}"), f"x{n}") for n in range(31)),
                (ids.core_reg("sp"), "sp_el0"), (ids.core_reg("pc"), "pc"),
                (ids.core_reg("pstate"), "pstate"), (ids.core_reg("sp_el1"), "sp_el1"))
_SYS: Final = (SysReg.ELR_EL1, SysReg.SPSR_EL1, SysReg.SCTLR_EL1, SysReg.ESR_EL1,
               SysReg.FAR_EL1, SysReg.VBAR_EL1, SysReg.TPIDR_EL1, SysReg.TPIDR_EL0,
               SysReg.TPIDRRO_EL0)


def _sys_id(key: int) -> int:
    if key == SysReg.ELR_EL1:
        return ids.core_reg("elr_el1")
    if key == SysReg.SPSR_EL1:
        return ids.core_reg("spsr_el1")
    return ids.sys_reg(key >> 14 & 3, key >> 11 & 7, key >> 7 & 15, key >> 3 & 15, key & 7)


_SYS_IDS: Final = {_sys_id(k): k for k in _SYS}
_FW_GROUPS: Final = (ids.KVM_REG_ARM_FW, ids.KVM_REG_ARM_FW_FEAT_BMAP)
_CORE_IDS: Final = dict(_CORE)


class GuestCpuTransport:
    """``RegTransport`` of a simulated vCPU running guest code: the ``GuestCpu`` holds the
    core registers (``sp`` is SP_EL0, ``sp_el1`` listed apart, as KVM has them) and the system
    registers it keeps; the ``SimVcpu`` holds the firmware and SDEI registers, served by the
    same machine. It lists them as KVM does: core, firmware (SDEI block included), system."""

    def __init__(self, vcpu: SimVcpu, cpu: GuestCpu) -> None:
        self.vcpu = vcpu
        self.cpu = cpu
        self._fw = tuple(r for r in vcpu.reg_list()
                         if r & ids.KVM_REG_ARM_COPROC_MASK in _FW_GROUPS)

    @property
    def host(self) -> HostFirmware:
        return self.vcpu.host

    @property
    def has_run(self) -> bool:
        return self.vcpu.has_run

    @property
    def psci_0_2(self) -> bool:
        return self.vcpu.psci_0_2

    def reg_list(self) -> tuple[int, ...]:
        return (*_CORE_IDS, *self._fw, *_SYS_IDS)

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        fw = [r for r in reg_ids if r not in _CORE_IDS and r not in _SYS_IDS]
        got = dict(zip(fw, self.vcpu.get_regs(fw), strict=True))
        c = self.cpu
        for r in reg_ids:
            if r in _CORE_IDS:
                name = _CORE_IDS[r]
                got[r] = c.x[int(name[1:])] if name[0] == "x" else getattr(c, name)
            elif r in _SYS_IDS:
                got[r] = c.sys.get(_SYS_IDS[r], 0)
        return [got[r] for r in reg_ids]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        c = self.cpu
        for r, v in items:
            if r in _CORE_IDS:
                name = _CORE_IDS[r]
                if name[0] == "x":
                    c.x[int(name[1:])] = v
                else:
                    setattr(c, name, v)
            elif r in _SYS_IDS:
                c.sys[_SYS_IDS[r]] = v
            else:
                self.vcpu.set_reg(r, v)


# -- runs and the driver ---------------------------------------------------------------------

@dataclass(frozen=True)
class VcpuRun:
    """What one vCPU did: the trace, its memslot and registers at the end."""

    program: GuestProgram
    trace: tuple[TraceItem, ...]
    memory: bytes
    regs: Mapping[CpuReg, int]
    finished: bool
    """True if it settled in the idle loop; False if it stopped at a terminal doorbell or
    where the caller asked (``Driver.run(until=...)``)."""
    engine: str = ""

    @classmethod
    def of_sim(cls, run: SimRun) -> VcpuRun:
        """The result of ``guest.sim.simulate`` in this form."""
        return cls(run.program, run.trace, run.memory,
                   dict(zip(FINAL_REGS, run.cpu.read(FINAL_REGS), strict=True)),
                   run.finished, "simulate (reference model)")

    def bells(self, kind: BellKind | None = None) -> list[Bell]:
        """The doorbells rung, optionally of one kind, in order."""
        return [t for t in self.trace if isinstance(t, Bell) and (kind is None or t.kind is kind)]

    def served(self) -> list[Served]:
        return [t for t in self.trace if isinstance(t, Served)]

    def dispatches(self) -> list[Dispatched]:
        return [t for t in self.trace if isinstance(t, Dispatched)]

    def main_results(self) -> list[int]:
        """x0 of main's calls as their doorbells carried them, by call index."""
        return [b.data for b in self.bells(BellKind.MAIN_CALL)]


@dataclass
class _VcpuState:
    trace: list[TraceItem] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)
    fired: list[bool] = field(default_factory=list)
    finished: bool = False
    terminal: bool = False


class Driver:
    """The VMM loop over an engine, one program per vCPU (``simulate`` for any engine).

    ``run(i)`` runs vCPU ``i`` until it settles in its idle loop with every trigger fired and
    nothing deliverable, a terminal doorbell (a fault, a completion that returned), or
    ``until(bell)``; it may be called again to go on (another vCPU may have signalled it)."""

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
        for _ in range(max_exits):
            d = eng.dispatch(i)
            if d is not None:
                st.trace.append(d)
            stop = eng.enter(i)
            if isinstance(stop, HvcStop):
                st.trace.append(eng.serve(i))
                continue
            try:
                bell = prog.bell(stop.phys_addr, stop.data, stop.length)
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

    def result(self, i: int) -> VcpuRun:
        """What vCPU ``i`` has done so far."""
        eng, st = self.engine, self._st[i]
        regs = dict(zip(FINAL_REGS, eng.cpu(i).read(FINAL_REGS), strict=True))
        return VcpuRun(self.programs[i], tuple(st.trace), eng.memory(i), regs, st.finished,
                       eng.name)

    def mark(self, i: int) -> int:
        """How many trace items vCPU ``i`` has so far (to split a trace at a point)."""
        return len(self._st[i].trace)


# -- comparing a run with the reference run --------------------------------------------------

_REGIONS: Final = (("code", "base", "vectors"), ("vectors", "vectors", "handlers"),
                   ("handlers", "handlers", "alt_vectors"),
                   ("alt vectors", "alt_vectors", "alt_handlers"),
                   ("alt handlers", "alt_handlers", "code_end"),
                   ("results", "results", "stack_top"))


def where(layout: Layout, address: int, program: GuestProgram | None = None) -> str:
    """A guest address in words: ``handler 'sdei' record x3``, ``main result 4``, ``stack``."""
    from ..guest.layout import (
        FAULT_FIELDS,
        HANDLER_RECORDS,
        MAIN_RESULTS,
        RECORD_CALLS,
        RECORD_FIELDS,
        RECORD_SIZE,
        RESUME_RECORD,
    )

    off = address - layout.results
    if 0 <= off < HANDLER_RECORDS + 4 * RECORD_SIZE:
        def rec(base: int, what: str) -> str:
            o = off - base
            if o >= RECORD_CALLS:
                return f"{what} record, result of call {(o - RECORD_CALLS) // 8}"
            n = o // 8
            return f"{what} record {RECORD_FIELDS[n] if n < len(RECORD_FIELDS) else hex(o)}"

        if off < RESUME_RECORD:
            return f"main result {(off - MAIN_RESULTS) // 8}"
        if off < RESUME_RECORD + RECORD_SIZE:
            return rec(RESUME_RECORD, "resume stub")
        if off >= HANDLER_RECORDS:
            slot = (off - HANDLER_RECORDS) // RECORD_SIZE
            names = {h.slot: h.name for h in program.handlers} if program else {}
            return rec(HANDLER_RECORDS + slot * RECORD_SIZE,
                       f"handler {names.get(slot, slot)!r}")
        n = (off - 0x800) // 8
        if 0 <= n < len(FAULT_FIELDS):
            return f"fault record {FAULT_FIELDS[n]}"
    if layout.results + 0x2000 <= address < layout.stack_top:
        return "stack"
    for name, lo, hi in _REGIONS:
        if getattr(layout, lo) <= address < getattr(layout, hi):
            return name
    return "memory"


def _item(t: TraceItem) -> str:
    if isinstance(t, Served):
        done = f", completed event {t.completed:#x}" if t.completed is not None else ""
        return (f"call at {t.site} fn {t.function_id:#x} args "
                f"({', '.join(hex(a) for a in t.args)}) -> {t.ret}{done}")
    if isinstance(t, Dispatched):
        return (f"dispatch of event {t.event:#x} to {t.entry:#x} interrupting pc "
                f"{t.interrupted_pc:#x} pstate {t.interrupted_pstate:#x}")
    if isinstance(t, Injected):
        return f"injection of event {t.event:#x}: {'ok' if t.ok else 'refused'}"
    return f"doorbell {t}"


def compare(expected: VcpuRun, got: VcpuRun, sees: Callable[[TraceItem], bool], *,
            regs: bool = True) -> list[str]:
    """Differences between a run and the reference run of the same program: every trace
    item the engine can observe, in order, then the memslot word by word, then the final
    registers. Empty when they agree."""
    out: list[str] = []
    want = [t for t in expected.trace if sees(t)]
    have = list(got.trace)
    for n, (w, h) in enumerate(zip(want, have, strict=False)):
        if w != h:
            out.append(f"trace item {n}: got {_item(h)}; the model predicts {_item(w)}")
            break
    else:
        if len(want) != len(have):
            n = min(len(want), len(have))
            extra = (f"the model predicts more: {_item(want[n])}" if len(want) > n
                     else f"got more: {_item(have[n])}")
            out.append(f"trace: {len(have)} items, the model predicts {len(want)}; {extra}")
    lay = expected.program.layout
    a, b = expected.memory, got.memory
    if len(a) != len(b):
        out.append(f"memslot sizes differ: {len(b):#x} vs {len(a):#x}")
    else:
        for off in range(0, len(a), 8):
            if a[off:off + 8] != b[off:off + 8]:
                addr = lay.base + off
                gv = int.from_bytes(b[off:off + 8], "little")
                wv = int.from_bytes(a[off:off + 8], "little")
                out.append(f"memory at {addr:#x} ({where(lay, addr, expected.program)}): "
                           f"{gv:#x}, the model predicts {wv:#x}")
                break
    if regs:
        for r in FINAL_REGS:
            if expected.regs.get(r) != got.regs.get(r):
                out.append(f"final {r.key}: {got.regs.get(r, 0):#x}, the model predicts "
                           f"{expected.regs.get(r, 0):#x}")
                break
    return out
