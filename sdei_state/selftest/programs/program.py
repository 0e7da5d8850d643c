"""Guest programs declared as data (``ProgramSpec``), and what building one gives
(``GuestProgram``: the image, every address, a ``CallSite`` for every SDEI call).

A ``ProgramSpec`` says what the guest does: the SDEI calls of the main program, the handlers
(their calls and how each one leaves), the calls of the resume stub, and the points where the
host is expected to inject an event. ``builder.build()`` turns it into a ``GuestProgram``, so
a host can match each KVM_EXIT_HYPERCALL and each doorbell to the program and compare what
the guest saw with the reference model. ``catalog`` declares the selftest programs.

Register conventions (docs/guest.md has the full protocol):
- main: x27 = result area, x28 = doorbell base, both set first and never changed. Before the
  idle loop it loads ``IDLE_X[n]`` into x0..x17 and ``IDLE_NZCV`` into NZCV.
- handlers and the resume stub: x16 = their record, x17 = doorbell base; they preserve
  x18..x30 and SP as SDEI requires. A call loads x0 = function id and x1..x5 = its arguments
  (missing ones 0), so x6..x15 keep their values across it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from ...guest import a64
from ...guest.asm import AsmError, Image
from ...guest.doorbell import Bell, parse_mmio
from ...guest.layout import (
    FaultRecord,
    Layout,
    Record,
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


def fname(fid: int) -> str:
    """A function id in messages: its ``Function`` name, else the number."""
    try:
        return Function(fid).name
    except ValueError:
        return f"function {fid:#x}"


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
            raise ProgramError(f"{fname(self.function)}: {len(self.args)} arguments, at most "
                               "5 (x1..x5)")
        for k, a in enumerate(self.args, 1):
            if isinstance(a, bool) or not isinstance(a, int | Addr | Offset):
                raise ProgramError(f"{fname(self.function)}: x{k} = {a!r} is not an int, "
                                   "Addr or Offset")
            if isinstance(a, int) and not 0 <= a <= a64.U64_MASK:
                raise ProgramError(f"{fname(self.function)}: x{k} = {a:#x} is not a u64")


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


