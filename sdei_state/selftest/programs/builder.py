"""Guest programs declared as data (``ProgramSpec``) and built into loadable images.

A ``ProgramSpec`` says what the guest does: the SDEI calls of the main program, the handlers
(their calls and how each one leaves), the calls of the resume stub, and the points where the
host is expected to inject an event. ``build()`` turns it into a ``GuestProgram``: the image
for the memslot, the entry point, every symbol, and a ``CallSite`` for every SDEI call (where
its ``hvc`` is, its resolved x0..x5, where its result is stored and which doorbell reports it),
so a host can match each KVM_EXIT_HYPERCALL and each doorbell to the program and compare what
the guest saw with the reference model. ``programs`` declares the selftest programs.

Register conventions (docs/guest.md has the full protocol):
- main: x27 = result area, x28 = doorbell base, both set first and never changed. Before the
  idle loop it loads ``IDLE_X[n]`` into x0..x17 and ``IDLE_NZCV`` into NZCV.
- handlers and the resume stub: x16 = their record, x17 = doorbell base; they preserve
  x18..x30 and SP as SDEI requires. A call loads x0 = function id and x1..x5 = its arguments
  (missing ones 0), so x6..x15 keep their values across it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Final

from ...guest import a64
from ...guest.a64 import SP, EncodeError, SysReg
from ...guest.asm import Asm, AsmError, Image
from ...guest.doorbell import Bell, BellKind, bell_code, parse_mmio
from ...guest.layout import (
    LAYOUT,
    MAX_MAIN_CALLS,
    MAX_RECORD_CALLS,
    MAX_SLOTS,
    RECORD_CALLS,
    FaultRecord,
    Layout,
    Record,
    fault_offset,
    record_offset,
)
from ...spec import CompleteStatus, Function

# Symbols every program defines.
ENTRY: Final = "main"
IDLE: Final = "idle"
INTERRUPT_POINT: Final = "interrupt_point"
RESUME: Final = "resume"
VECTORS: Final = "vectors"
ALT_VECTORS: Final = "vectors.alt"

# Registers with a fixed job (see the module docstring).
MAIN_RESULTS_REG: Final = 27
MAIN_BELL_REG: Final = 28
REC_REG: Final = 16
BELL_REG: Final = 17
SCRATCH: Final = 9  # main's scratch before the idle pattern is loaded


def idle_value(n: int) -> int:
    """What main loads into xn (n = 0..17) before idling: recognisable in every 16-bit chunk."""
    return 0x5DE1_0000_C0DE_0000 | n << 40 | n << 32 | n


IDLE_X: Final = tuple(idle_value(n) for n in range(18))
IDLE_NZCV: Final = 0x9000_0000
"""N and V set: handler-entry records and saved contexts must show it."""
EP_ARG_BASE: Final = 0xA5A5_0000_0000_0000
HANDLER_FILL_BASE: Final = 0x4A4A_0000_0000_0000
"""``Fill`` values the scenario handlers load into x6..x15 before a preemption point."""
VCPU0_MPIDR: Final = 0x8000_0000
"""MPIDR_EL1 of vCPU 0 as the guest reads it (RES1 bit 31, affinity 0)."""


def handler_label(name: str) -> str:
    """The label of a handler's entry point."""
    return f"handler.{name}"


class ProgramError(AsmError):
    """A program spec that cannot be built (names the program and the step)."""


@dataclass(frozen=True, slots=True)
class Addr:
    """An argument that is the address of a label (plus ``addend``)."""

    label: str
    addend: int = 0


@dataclass(frozen=True, slots=True)
class Offset:
    """An argument that is ``label - base`` (a relative-mode entry point: base = vectors)."""

    label: str
    base: str


Arg = int | Addr | Offset


@dataclass(frozen=True, slots=True)
class Call:
    """One SDEI call: x0 = ``function`` (a ``Function`` or any raw id), x1.. = ``args``."""

    function: int
    args: tuple[Arg, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.function, int) or not 0 <= self.function <= a64.U64_MASK:
            raise ProgramError(f"call function id {self.function!r} is not a u64")
        if len(self.args) > 5:
            raise ProgramError(f"{_fname(self.function)}: {len(self.args)} arguments, at most "
                               "5 (x1..x5)")
        for k, a in enumerate(self.args, 1):
            if isinstance(a, bool) or not isinstance(a, int | Addr | Offset):
                raise ProgramError(f"{_fname(self.function)}: x{k} = {a!r} is not an int, "
                                   "Addr or Offset")
            if isinstance(a, int) and not 0 <= a <= a64.U64_MASK:
                raise ProgramError(f"{_fname(self.function)}: x{k} = {a:#x} is not a u64")


@dataclass(frozen=True, slots=True)
class Fill:
    """Load ``values`` into x(first), x(first+1), ... (recognisable registers for a context)."""

    first: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SetVbar:
    """Main only: VBAR_EL1 = address of ``label`` (then ``isb``)."""

    label: str


Step = Call | Fill | SetVbar


@dataclass(frozen=True, slots=True)
class Complete:
    """Leave with EVENT_COMPLETE(status)."""

    status: int = int(CompleteStatus.EV_HANDLED)


@dataclass(frozen=True, slots=True)
class CompleteAndResume:
    """Leave with EVENT_COMPLETE_AND_RESUME(target) (by default the resume stub)."""

    target: Arg = Addr(RESUME)


Finish = Complete | CompleteAndResume


class Region(Enum):
    """Where a handler is placed: after the primary or after the alternate vector table."""

    PRIMARY = "primary"
    ALT = "alt"


@dataclass(frozen=True, slots=True)
class Handler:
    """An SDEI handler: records its entry state, makes ``steps`` calls, leaves by ``finish``."""

    name: str
    event: int
    """The event number the program registers it for (documentation and lookups)."""
    steps: tuple[Call | Fill, ...] = ()
    finish: Finish = Complete()
    region: Region = Region.PRIMARY

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ProgramError(f"handler name {self.name!r}: use letters, digits, _ and -")


@dataclass(frozen=True, slots=True)
class Trigger:
    """Host action the program expects: on the ``occurrence``-th doorbell with code ``bell``,
    inject ``event`` into the vCPU (then complete the doorbell store and run the dispatch
    check before entering the guest again)."""

    bell: int
    event: int
    occurrence: int = 1


class Conduit(Enum):
    """The instruction SDEI calls use: ``hvc #0`` (default) or ``smc #0``."""

    HVC = "hvc"
    SMC = "smc"


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    """Everything a guest program does, as data."""

    name: str
    description: str
    main: tuple[Step, ...]
    handlers: tuple[Handler, ...] = ()
    resume: tuple[Call | Fill, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    conduit: Conduit = Conduit.HVC
    unmask_daif: bool = True
    """Main clears PSTATE.DAIF (msr daifclr, #0xf) so the mask set on handler entry shows."""


@dataclass(frozen=True, slots=True)
class CallSite:
    """One SDEI call instruction of a built program."""

    site: str
    """``main.3``, ``handler.normal.0``, ``resume.1``."""
    index: int
    hvc: int
    """Address of the hvc/smc; a KVM_EXIT_HYPERCALL for it has PC = hvc + 4."""
    function_id: int
    args: tuple[int, int, int, int, int]
    """x1..x5 as the guest loads them."""
    result: int
    """Address where the guest stores x0 after the call."""
    bell: int
    """Doorbell code rung with x0 after the call."""

    @property
    def return_pc(self) -> int:
        """PC at the KVM_EXIT_HYPERCALL of this call: past the hvc/smc."""
        return self.hvc + 4


@dataclass(frozen=True, slots=True)
class HandlerInfo:
    """A built handler."""

    name: str
    slot: int
    event: int
    address: int
    region: Region
    record: int
    """Address of its record (layout.Record)."""
    calls: tuple[CallSite, ...]
    finish: Finish
    finish_function: int
    finish_x1: int
    """x1 of the completion call: the status, or the resolved resume address."""
    finish_hvc: int


@dataclass(frozen=True)
class GuestProgram:
    """A guest program ready to load: copy ``image.data`` to ``layout.base``, set PC =
    ``entry`` (PSTATE EL1h with DAIF masked, as KVM resets a vCPU) and run."""

    spec: ProgramSpec
    layout: Layout
    image: Image
    calls: tuple[CallSite, ...]
    handlers: tuple[HandlerInfo, ...]
    resume_calls: tuple[CallSite, ...]
    main_calls: tuple[CallSite, ...]
    _by_return_pc: Mapping[int, CallSite] = field(repr=False, compare=False,
                                                  default_factory=dict)

    @property
    def name(self) -> str:
        """The program name (the key in ``PROGRAMS``)."""
        return self.spec.name

    @property
    def entry(self) -> int:
        """The initial PC (the ``main`` label, at layout.base)."""
        return self.image.symbol(ENTRY)

    @property
    def idle(self) -> int:
        """Address of the IDLE doorbell store at the top of the idle loop."""
        return self.image.symbol(IDLE)

    @property
    def interrupt_point(self) -> int:
        """The ``b idle`` after the IDLE doorbell: the PC once the doorbell store completed,
        where an event injected at an IDLE exit interrupts main."""
        return self.image.symbol(INTERRUPT_POINT)

    @property
    def resume(self) -> int:
        """Address of the resume stub (the default COMPLETE_AND_RESUME target)."""
        return self.image.symbol(RESUME)

    @property
    def triggers(self) -> tuple[Trigger, ...]:
        """The injections the program expects from the host."""
        return self.spec.triggers

    def symbol(self, name: str) -> int:
        """Address of a label; KeyError naming the program and the label."""
        try:
            return self.image.symbols[name]
        except KeyError:
            raise KeyError(f"program {self.name!r} has no symbol {name!r}") from None

    def call_returning_to(self, pc: int) -> CallSite | None:
        """The call whose KVM_EXIT_HYPERCALL leaves PC = ``pc`` (its hvc + 4), if any."""
        return self._by_return_pc.get(pc)

    def completion_returning_to(self, pc: int) -> HandlerInfo | None:
        """The handler whose completion call would leave PC = ``pc`` (its hvc + 4) if it
        failed (a successful completion never returns to it)."""
        return next((h for h in self.handlers if h.finish_hvc + 4 == pc), None)

    def site_returning_to(self, pc: int) -> str | None:
        """The site name of any hypercall of the program, from its exit PC: a call site
        (``main.3``) or a handler's completion (``handler.<name>.complete``)."""
        call = self.call_returning_to(pc)
        if call is not None:
            return call.site
        h = self.completion_returning_to(pc)
        return None if h is None else f"{handler_label(h.name)}.complete"

    def handler(self, name: str) -> HandlerInfo:
        """A handler by name; KeyError listing the program's handlers."""
        for h in self.handlers:
            if h.name == name:
                return h
        raise KeyError(f"program {self.name!r} has no handler {name!r} "
                       f"(have {', '.join(h.name for h in self.handlers) or 'none'})")

    def handler_at(self, address: int) -> HandlerInfo | None:
        """The handler whose entry point is ``address`` (where a dispatch jumps), if any."""
        return next((h for h in self.handlers if h.address == address), None)

    def bell(self, phys_addr: int, data: bytes | int, length: int = 8,
             is_write: bool = True) -> Bell:
        """Decode a KVM_EXIT_MMIO of this program as a doorbell (BellError if it is not)."""
        return parse_mmio(self.layout, phys_addr, data, length, is_write)

    def handler_record(self, mem: bytes | bytearray | memoryview, name: str) -> Record:
        """Read a handler's record from a copy of the memslot."""
        h = self.handler(name)
        return Record.parse(mem, self.layout, h.record, len(h.calls))

    def resume_record(self, mem: bytes | bytearray | memoryview) -> Record:
        """Read the resume stub's record from a copy of the memslot."""
        return Record.parse(mem, self.layout, self.layout.resume_record, len(self.resume_calls))

    def fault_record(self, mem: bytes | bytearray | memoryview) -> FaultRecord:
        """Read the fault record from a copy of the memslot."""
        return FaultRecord.parse(mem, self.layout)


def _fname(fid: int) -> str:
    try:
        return Function(fid).name
    except ValueError:
        return f"function {fid:#x}"


# -- code generation -----------------------------------------------------------------------

class _Builder:
    def __init__(self, spec: ProgramSpec, layout: Layout) -> None:
        self.spec = spec
        self.layout = layout
        self.a = Asm(layout.base)
        self.pending_sites: list[tuple[str, int, int, Call, int, int]] = []
        self.slots = {h.name: i for i, h in enumerate(spec.handlers)}

    def fail(self, where: str, msg: str) -> ProgramError:
        return ProgramError(f"program {self.spec.name!r}, {where}: {msg}")

    # Loading arguments: ints use the shortest sequence, label values are fixed up later.
    def load_arg(self, reg: int, arg: Arg) -> None:
        if isinstance(arg, Addr):
            if arg.addend:
                self.a.mov_addr(reg, arg.label, addend=arg.addend)
            else:
                self.a.adr(reg, arg.label)
        elif isinstance(arg, Offset):
            self.a.mov_addr(reg, arg.label, minus=arg.base)
        else:
            self.a.mov_imm(reg, arg)

    def call(self, where: str, index: int, call: Call, result_reg: int, result_off: int,
             bell_reg: int, code: int) -> None:
        self.a.mov_imm(0, call.function)
        for k in range(1, 6):
            self.load_arg(k, call.args[k - 1] if k <= len(call.args) else 0)
        site = f"{where}.{index}"
        hvc = self.a.label(f"{site}.hvc")
        self.a.emit(self.conduit())
        self.a.emit(a64.str_x(0, result_reg, result_off), a64.str_x(0, bell_reg, 8 * code))
        self.pending_sites.append((site, index, hvc, call, result_off, code))

    def conduit(self) -> int:
        return a64.smc(0) if self.spec.conduit is Conduit.SMC else a64.hvc(0)

    def fill(self, where: str, f: Fill, allowed: range) -> None:
        regs = range(f.first, f.first + len(f.values))
        if not f.values:
            raise self.fail(where, "Fill with no values")
        if regs[0] not in allowed or regs[-1] not in allowed:
            raise self.fail(where, f"Fill x{f.first}..x{f.first + len(f.values) - 1} outside "
                                   f"x{allowed[0]}..x{allowed[-1]}")
        for r, v in zip(regs, f.values, strict=True):
            self.a.mov_imm(r, v)

    def record_state(self, scratch: int, sp_adjust: int) -> None:
        """Store SP (+ sp_adjust), NZCV, DAIF, CurrentEL, SPSel, ELR/SPSR_EL1 and bump count."""
        a, rec = self.a, REC_REG
        a.emit(a64.add_imm(scratch, SP, sp_adjust), a64.str_x(scratch, rec, record_offset("sp")))
        for reg, name in ((SysReg.NZCV, "nzcv"), (SysReg.DAIF, "daif"),
                          (SysReg.CURRENTEL, "currentel"), (SysReg.SPSEL, "spsel"),
                          (SysReg.ELR_EL1, "elr_el1"), (SysReg.SPSR_EL1, "spsr_el1")):
            a.emit(a64.mrs(scratch, reg), a64.str_x(scratch, rec, record_offset(name)))
        cnt = record_offset("count")
        a.emit(a64.ldr_x(scratch, rec, cnt), a64.add_imm(scratch, scratch, 1),
               a64.str_x(scratch, rec, cnt))

    # -- the parts of a program -------------------------------------------------------------

    def main(self) -> None:
        """Set up x27/x28, SP and VBAR_EL1, make the calls, load the idle pattern, idle."""
        a, lay = self.a, self.layout
        a.label(ENTRY)
        a.mov_imm(MAIN_BELL_REG, lay.doorbell)
        a.mov_imm(MAIN_RESULTS_REG, lay.results)
        a.mov_imm(SCRATCH, lay.stack_top)
        a.emit(a64.add_imm(SP, SCRATCH, 0))
        a.adr(SCRATCH, VECTORS)
        a.emit(a64.msr(SysReg.VBAR_EL1, SCRATCH), a64.isb())
        if self.spec.unmask_daif:
            a.emit(a64.msr_daifclr(0xF))
        ncall = 0
        for n, step in enumerate(self.spec.main):
            where = f"main step {n}"
            if isinstance(step, Call):
                if ncall >= MAX_MAIN_CALLS:
                    raise self.fail(where, f"more than {MAX_MAIN_CALLS} main calls")
                self.call("main", ncall, step, MAIN_RESULTS_REG, 8 * ncall, MAIN_BELL_REG,
                          bell_code(BellKind.MAIN_CALL, index=ncall))
                ncall += 1
            elif isinstance(step, Fill):
                self.fill(where, step, range(0, 27))
            elif isinstance(step, SetVbar):
                a.adr(SCRATCH, step.label)
                a.emit(a64.msr(SysReg.VBAR_EL1, SCRATCH), a64.isb())
            else:
                raise self.fail(where, f"{step!r} is not a main step")
        a.mov_imm(SCRATCH, IDLE_NZCV)
        a.emit(a64.msr(SysReg.NZCV, SCRATCH))
        for n, v in enumerate(IDLE_X):
            a.mov_imm(n, v)
        a.label(IDLE)
        a.emit(a64.str_x(0, MAIN_BELL_REG, 8 * bell_code(BellKind.IDLE)))
        a.label(INTERRUPT_POINT)
        a.b(IDLE)

    def resume_stub(self) -> None:
        """Entered by COMPLETE_AND_RESUME like a synchronous exception: records, makes its
        calls, restores x0..x17 and returns to the interrupted context with ``eret``."""
        a, lay, frame = self.a, self.layout, 160
        a.label(RESUME)
        a.emit(a64.stp_pre(0, 1, SP, -frame))
        a.emit(*(a64.stp(r, r + 1, SP, 8 * r) for r in range(2, 18, 2)))
        a.mov_imm(REC_REG, lay.resume_record)
        for r in range(0, 18, 2):  # x0..x17 on arrival, copied from the frame
            a.emit(a64.ldp(0, 1, SP, 8 * r), a64.stp(0, 1, REC_REG, record_offset(f"x{r}")))
        self.record_state(0, frame)
        a.mov_imm(BELL_REG, lay.doorbell)
        a.emit(a64.ldr_x(0, REC_REG, record_offset("elr_el1")),
               a64.str_x(0, BELL_REG, 8 * bell_code(BellKind.RESUMED)))
        self.handler_steps("resume", "resume", self.spec.resume,
                           lambda j: bell_code(BellKind.RESUME_CALL, index=j))
        a.emit(*(a64.ldp(r, r + 1, SP, 8 * r) for r in range(2, 18, 2)))
        a.emit(a64.ldp_post(0, 1, SP, frame), a64.eret())

    def handler_steps(self, where: str, site: str, steps: tuple[Call | Fill, ...],
                      code: Callable[[int], int]) -> None:
        j = 0
        for n, step in enumerate(steps):
            if isinstance(step, Call):
                if j >= MAX_RECORD_CALLS:
                    raise self.fail(f"{where} step {n}", f"more than {MAX_RECORD_CALLS} calls")
                self.call(site, j, step, REC_REG, RECORD_CALLS + 8 * j, BELL_REG, code(j))
                j += 1
            elif isinstance(step, Fill):
                self.fill(f"{where} step {n}", step, range(0, 16))
            else:
                raise self.fail(f"{where} step {n}", f"{step!r} is not a handler step")

    def handler(self, h: Handler, slot: int) -> None:
        """Record x0..x17 and the PSTATE view, ring ENTRY, make the calls, complete."""
        a, lay = self.a, self.layout
        rec = lay.handler_record(slot)
        a.label(handler_label(h.name))
        # x16/x17 become the bases: park them on the stack until x0..x15 are stored.
        a.emit(a64.stp_pre(REC_REG, BELL_REG, SP, -16))
        a.mov_imm(REC_REG, rec)
        a.emit(*(a64.stp(r, r + 1, REC_REG, 8 * r) for r in range(0, 16, 2)))
        a.emit(a64.ldp_post(0, 1, SP, 16), a64.stp(0, 1, REC_REG, record_offset("x16")))
        self.record_state(0, 0)
        a.mov_imm(BELL_REG, lay.doorbell)
        a.emit(a64.ldr_x(0, REC_REG, record_offset("x0")),
               a64.str_x(0, BELL_REG, 8 * bell_code(BellKind.HANDLER_ENTRY, slot)))
        self.handler_steps(f"handler {h.name!r}", handler_label(h.name), h.steps,
                           lambda j: bell_code(BellKind.HANDLER_CALL, slot, j))
        if isinstance(h.finish, Complete):
            a.mov_imm(0, Function.EVENT_COMPLETE)
            self.load_arg(1, h.finish.status)
        else:
            a.mov_imm(0, Function.EVENT_COMPLETE_AND_RESUME)
            self.load_arg(1, h.finish.target)
        a.emit(a64.str_x(1, BELL_REG, 8 * bell_code(BellKind.HANDLER_EXIT, slot)))
        a.label(f"{handler_label(h.name)}.complete")
        a.emit(self.conduit())
        stuck = a.label(f"{handler_label(h.name)}.returned")
        a.emit(a64.str_x(0, BELL_REG, 8 * bell_code(BellKind.COMPLETE_RETURNED, slot)))
        a.b(stuck)

    def vectors(self, label: str, base: int) -> None:
        """16 entries that record the exception and ring FAULT(v) forever."""
        a, lay = self.a, self.layout
        a.org(base, why=label)
        a.label(label)
        for v in range(16):
            a.org(base + 0x80 * v, why=f"{label}.{v}")
            entry = a.label(f"{label}.{v}")
            a.mov_imm(16, lay.fault_record)
            a.adr(17, entry)
            a.emit(a64.str_x(17, 16, fault_offset("vector")))
            for reg, name in ((SysReg.ESR_EL1, "esr_el1"), (SysReg.ELR_EL1, "elr_el1"),
                              (SysReg.FAR_EL1, "far_el1"), (SysReg.SPSR_EL1, "spsr_el1")):
                a.emit(a64.mrs(17, reg), a64.str_x(17, 16, fault_offset(name)))
            cnt = fault_offset("count")
            a.emit(a64.ldr_x(17, 16, cnt), a64.add_imm(17, 17, 1), a64.str_x(17, 16, cnt),
                   a64.ldr_x(17, 16, fault_offset("esr_el1")))
            a.mov_imm(16, lay.doorbell)
            ring = a.emit(a64.str_x(17, 16, 8 * bell_code(BellKind.FAULT, index=v)))
            a.b(ring)
        a.org(base + 0x800, why=f"end of {label}")

    def build(self) -> GuestProgram:
        spec = self.spec
        if len(spec.handlers) > MAX_SLOTS:
            raise self.fail("handlers", f"{len(spec.handlers)} handlers, at most {MAX_SLOTS}")
        if len(self.slots) != len(spec.handlers):
            raise self.fail("handlers", "two handlers share a name")
        try:
            self.emit_all()
            image = self.a.assemble()
        except ProgramError:
            raise
        except EncodeError as e:  # an overlap, a label, an operand: name the program
            raise self.fail("assembly", str(e)) from None
        return self._program(image)

    def emit_all(self) -> None:
        spec, lay, a = self.spec, self.layout, self.a
        self.main()
        self.resume_stub()
        self.vectors(VECTORS, lay.vectors)
        a.org(lay.handlers, why="primary handlers")
        for h in spec.handlers:
            if h.region is Region.PRIMARY:
                self.handler(h, self.slots[h.name])
        uses_alt = any(h.region is Region.ALT for h in spec.handlers) or any(
            isinstance(s, SetVbar) and s.label == ALT_VECTORS for s in spec.main)
        if uses_alt:
            self.vectors(ALT_VECTORS, lay.alt_vectors)
            a.org(lay.alt_handlers, why="alternate handlers")
            for h in spec.handlers:
                if h.region is Region.ALT:
                    self.handler(h, self.slots[h.name])
        if a.pc > lay.code_end:
            raise self.fail("layout", f"code ends at {a.pc:#x}, past code_end {lay.code_end:#x}")

    def _program(self, image: Image) -> GuestProgram:
        def resolve(arg: Arg) -> int:
            if isinstance(arg, Addr):
                return (image.symbol(arg.label) + arg.addend) & a64.U64_MASK
            if isinstance(arg, Offset):
                return (image.symbol(arg.label) - image.symbol(arg.base)) & a64.U64_MASK
            return arg

        lay = self.layout
        sites: list[CallSite] = []
        for site, index, hvc, call, result_off, code in self.pending_sites:
            args = [resolve(x) for x in call.args] + [0] * (5 - len(call.args))
            owner = site.rsplit(".", 1)[0]
            if owner == "main":
                result = lay.main_result(index)
            elif owner == "resume":
                result = lay.resume_record + result_off
            else:
                name = owner.removeprefix("handler.")
                result = lay.handler_record(self.slots[name]) + result_off
            sites.append(CallSite(site, index, hvc, call.function & a64.U64_MASK,
                                  (args[0], args[1], args[2], args[3], args[4]), result, code))
        handlers = []
        for h in self.spec.handlers:
            label = handler_label(h.name)
            mine = tuple(s for s in sites if s.site.rsplit(".", 1)[0] == label)
            if isinstance(h.finish, Complete):
                fn, x1 = int(Function.EVENT_COMPLETE), h.finish.status
            else:
                fn, x1 = int(Function.EVENT_COMPLETE_AND_RESUME), resolve(h.finish.target)
            handlers.append(HandlerInfo(
                h.name, self.slots[h.name], h.event, image.symbol(label), h.region,
                lay.handler_record(self.slots[h.name]), mine, h.finish, fn, x1,
                image.symbol(f"{label}.complete")))
        by_pc = {s.return_pc: s for s in sites}
        return GuestProgram(
            self.spec, lay, image, tuple(sites), tuple(handlers),
            tuple(s for s in sites if s.site.startswith("resume.")),
            tuple(s for s in sites if s.site.startswith("main.")),
            MappingProxyType(by_pc))


def build(spec: ProgramSpec, layout: Layout = LAYOUT) -> GuestProgram:
    """Assemble a program spec; ProgramError names the program and what cannot be built."""
    return _Builder(spec, layout).build()
