"""Code generation: ``build(ProgramSpec) -> GuestProgram`` with the ``sdei_state.guest``
assembler (see ``program`` for the declarations and the register conventions)."""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from ...guest import a64
from ...guest.a64 import SP, EncodeError, SysReg
from ...guest.asm import Asm, Image
from ...guest.doorbell import BellKind, bell_code
from ...guest.layout import (
    LAYOUT,
    MAX_MAIN_CALLS,
    MAX_RECORD_CALLS,
    MAX_SLOTS,
    RECORD_CALLS,
    Layout,
    fault_offset,
    record_offset,
)
from ...spec import Function
from .program import (
    ALT_VECTORS,
    BELL_REG,
    ENTRY,
    IDLE,
    IDLE_NZCV,
    IDLE_X,
    INTERRUPT_POINT,
    MAIN_BELL_REG,
    MAIN_RESULTS_REG,
    REC_REG,
    RESUME,
    SCRATCH,
    VECTORS,
    Addr,
    Arg,
    Call,
    CallSite,
    Complete,
    Conduit,
    Fill,
    GuestProgram,
    Handler,
    HandlerInfo,
    Offset,
    ProgramError,
    ProgramSpec,
    Region,
    SetVbar,
    handler_label,
)

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
