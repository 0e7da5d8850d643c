"""A pure-Python vCPU for the A64 subset, and a reference run of a guest program on it.

``GuestCpu`` executes the words ``a64`` emits, at EL1 with the MMU off, and stops where KVM
would exit to userspace: at ``hvc``/``smc`` (as KVM_EXIT_HYPERCALL under an SMCCC filter that
forwards to userspace, PC already past the instruction) and at a store outside the memslot
(as KVM_EXIT_MMIO, here already completed, i.e. as after a ``KVM_RUN`` with
``immediate_exit``). It implements ``CpuRegs``, so the reference ``Machine`` serves its calls
and dispatches into it exactly as the userspace provider does over ONE_REG.

``simulate()`` runs a ``GuestProgram`` that way, injecting the events its triggers ask for,
and returns the trace (every call served, doorbell, injection and dispatch) and the final
memory: what the same program must produce on real KVM. It is a test instrument, not an
emulator: only the subset is known, and anything else raises ``SimError`` or takes the
"unknown instruction" exception into the program's vectors.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ..cpu import CpuReg
from ..machine import Machine, affinity_of
from ..state import PSTATE_BTYPE, PSTATE_DAIF, PSTATE_IL, PSTATE_MODE_MASK, PSTATE_SS, Mode
from .a64 import U64_MASK, Index, SysReg
from .asm import Image
from .builder import GuestProgram
from .disasm import Insn, Op, decode_insn
from .doorbell import Bell, BellError, BellKind
from .layout import Layout

RESET_PSTATE: Final = int(Mode.EL1H) | PSTATE_DAIF
"""PSTATE of a vCPU after KVM_ARM_VCPU_INIT: EL1h, D, A, I and F masked."""
RESET_SCTLR_EL1: Final = 0x00C50078
"""KVM's reset SCTLR_EL1: MMU and alignment checks off, SP alignment check (SA) on."""
SCTLR_SA: Final = 1 << 3
NZCV_MASK: Final = 0xF000_0000
N, Z, C, V = 1 << 31, 1 << 30, 1 << 29, 1 << 28

# ESR_EL1 exception classes the simulator raises.
EC_UNKNOWN: Final = 0x00
EC_SVC64: Final = 0x15
EC_DABT_CUR: Final = 0x25
EC_SP_ALIGN: Final = 0x26
EC_BRK: Final = 0x3C
ESR_IL: Final = 1 << 25
DFSC_ALIGNMENT: Final = 0x21


class SimError(Exception):
    """The simulated guest did something the simulator (or KVM) cannot handle."""


@dataclass(frozen=True, slots=True)
class HypercallExit:
    """``hvc``/``smc`` executed; PC is already past it (as KVM_EXIT_HYPERCALL)."""

    pc: int
    smc: bool
    imm: int


@dataclass(frozen=True, slots=True)
class MmioExit:
    """A store outside the memslot at ``insn_pc``; completed, PC is past it."""

    insn_pc: int
    phys_addr: int
    data: int
    length: int


Exit = HypercallExit | MmioExit


def _add(a: int, b: int, carry: int) -> tuple[int, int]:
    """AddWithCarry on 64 bits: (result, NZCV)."""
    u = a + b + carry
    r = u & U64_MASK
    s = (a - (1 << 64) if a >> 63 else a) + (b - (1 << 64) if b >> 63 else b) + carry
    flags = (r >> 63) << 31 | (r == 0) << 30 | (u >> 64 & 1) << 29 | (
        (r - (1 << 64) if r >> 63 else r) != s) << 28
    return r, flags


def cond_holds(cond: int, nzcv: int) -> bool:
    """ConditionHolds() of the Arm ARM for a 4-bit condition and PSTATE.NZCV."""
    n, z, c, v = (bool(nzcv & f) for f in (N, Z, C, V))
    base = {0: z, 1: c, 2: n, 3: v, 4: c and not z, 5: n == v, 6: n == v and not z, 7: True}
    r = base[cond >> 1]
    return (not r) if cond & 1 and cond != 15 else r


class GuestCpu:
    """One simulated vCPU at EL1 with the MMU off and one RAM memslot (``layout``)."""

    def __init__(self, layout: Layout, vcpu: int = 0, image: Image | None = None) -> None:
        self.layout = layout
        self.vcpu = vcpu
        self.mem = bytearray(layout.mem_size)
        self.x = [0] * 31
        self.sp_el0 = 0
        self.sp_el1 = 0
        self.pc = layout.entry
        self.pstate = RESET_PSTATE
        self.sys: dict[int, int] = {SysReg.SCTLR_EL1: RESET_SCTLR_EL1}
        self.steps = 0
        if image is not None:
            self.load(image)

    def load(self, image: Image) -> None:
        """Copy an image into guest memory."""
        if not self.layout.in_memslot(image.base, len(image.data)):
            raise SimError(f"image {image.base:#x}..{image.end:#x} is outside the memslot")
        off = image.base - self.layout.base
        self.mem[off:off + len(image.data)] = image.data

    # -- CpuRegs (what Machine reads and writes) ---------------------------------------------

    def read(self, regs: Sequence[CpuReg]) -> tuple[int, ...]:
        """``CpuRegs.read``: core registers as KVM names them (``sp`` is SP_EL0)."""
        return tuple(self._get(r) for r in regs)

    def write(self, values: Mapping[CpuReg, int]) -> None:
        """``CpuRegs.write``: all values checked first, then written."""
        for reg, v in values.items():
            if not 0 <= v <= U64_MASK:
                raise ValueError(f"{CpuReg(reg).key} = {v!r} is not a u64")
        for reg, v in values.items():
            self._set(CpuReg(reg), v)

    def _get(self, r: CpuReg) -> int:
        if r <= CpuReg.X30:
            return self.x[r]
        return {CpuReg.SP: self.sp_el0, CpuReg.PC: self.pc, CpuReg.PSTATE: self.pstate,
                CpuReg.ELR_EL1: self.sys.get(SysReg.ELR_EL1, 0),
                CpuReg.SPSR_EL1: self.sys.get(SysReg.SPSR_EL1, 0),
                CpuReg.VBAR_EL1: self.sys.get(SysReg.VBAR_EL1, 0),
                CpuReg.SCTLR_EL1: self.sys[SysReg.SCTLR_EL1]}[r]

    def _set(self, r: CpuReg, v: int) -> None:
        if r <= CpuReg.X30:
            self.x[r] = v
        elif r is CpuReg.SP:  # KVM's core register "sp" is SP_EL0; SP_EL1 is separate
            self.sp_el0 = v
        elif r is CpuReg.PC:
            self.pc = v
        elif r is CpuReg.PSTATE:
            self.pstate = v
        else:
            key = {CpuReg.ELR_EL1: SysReg.ELR_EL1, CpuReg.SPSR_EL1: SysReg.SPSR_EL1,
                   CpuReg.VBAR_EL1: SysReg.VBAR_EL1, CpuReg.SCTLR_EL1: SysReg.SCTLR_EL1}[r]
            self.sys[key] = v

    # -- registers as instructions see them ----------------------------------------------------

    def _r(self, n: int) -> int:
        return 0 if n == 31 else self.x[n]

    def _w(self, n: int, v: int) -> None:
        if n != 31:
            self.x[n] = v & U64_MASK

    @property
    def sp(self) -> int:
        """The stack pointer in use: SP_EL1 when PSTATE.SP = 1 at EL1, else SP_EL0."""
        return self.sp_el1 if self.pstate & 1 and self.pstate & 0xC else self.sp_el0

    @sp.setter
    def sp(self, v: int) -> None:
        if self.pstate & 1 and self.pstate & 0xC:
            self.sp_el1 = v & U64_MASK
        else:
            self.sp_el0 = v & U64_MASK

    def _r_sp(self, n: int) -> int:
        return self.sp if n == 31 else self.x[n]

    def _w_sp(self, n: int, v: int) -> None:
        if n == 31:
            self.sp = v
        else:
            self.x[n] = v & U64_MASK

    # -- memory ----------------------------------------------------------------------------

    def read_mem(self, addr: int, size: int) -> bytes:
        """Bytes of guest memory (inside the memslot only)."""
        if not self.layout.in_memslot(addr, size):
            raise SimError(f"read of {size} bytes at {addr:#x} outside the memslot")
        off = addr - self.layout.base
        return bytes(self.mem[off:off + size])

    def _access(self, insn: Insn, addr: int, size: int, base_is_sp: bool) -> bool:
        """Check an access; True if it is RAM, False if MMIO. Raises on what KVM cannot do."""
        if base_is_sp and self.sys[SysReg.SCTLR_EL1] & SCTLR_SA and self.sp % 16:
            raise _Exception(EC_SP_ALIGN, 0)
        if addr % size:  # Device memory (MMU off): unaligned accesses fault
            raise _Exception(EC_DABT_CUR, DFSC_ALIGNMENT, far=addr)
        if self.layout.in_memslot(addr, size):
            return True
        if self.layout.base < addr + size and addr < self.layout.end:
            raise SimError(f"access at {addr:#x} straddles the memslot edge")
        if insn.op not in (Op.STR_X, Op.STR_W) or insn.index is not Index.OFFSET:
            # KVM emulates MMIO only for accesses with a valid syndrome (no writeback, no
            # pairs); a read would need data from the host, which no program asks for.
            raise SimError(f"{insn.text()} at {self.pc:#x}: MMIO access at {addr:#x} that "
                           "KVM cannot emulate (only plain str is a doorbell)")
        return False

    def _load(self, addr: int, size: int) -> int:
        off = addr - self.layout.base
        return int.from_bytes(self.mem[off:off + size], "little")

    def _store(self, addr: int, size: int, v: int) -> None:
        off = addr - self.layout.base
        self.mem[off:off + size] = (v & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    # -- execution -------------------------------------------------------------------------

    def run(self, max_steps: int = 100_000) -> Exit:
        """Execute until the next exit; SimError if none comes within ``max_steps``."""
        for _ in range(max_steps):
            pc = self.pc
            try:
                if pc % 4 or not self.layout.in_memslot(pc, 4):
                    raise SimError(f"instruction fetch at {pc:#x} outside the memslot")
                exit_ = self._step(pc)
            except _Exception as e:
                self._take(e, pc)
                continue
            self.steps += 1
            if exit_ is not None:
                return exit_
        raise SimError(f"no exit within {max_steps} instructions (pc = {self.pc:#x})")

    def _take(self, e: _Exception, pc: int) -> None:
        """Synchronous exception to EL1 (AArch64.TakeException, the parts the subset needs)."""
        from_spx = self.pstate & 1
        self.sys[SysReg.ELR_EL1] = (pc + 4 if e.ec == EC_SVC64 else pc) & U64_MASK
        self.sys[SysReg.SPSR_EL1] = self.pstate
        self.sys[SysReg.ESR_EL1] = e.ec << 26 | ESR_IL | e.iss
        if e.far is not None:
            self.sys[SysReg.FAR_EL1] = e.far
        keep = self.pstate & ~(PSTATE_MODE_MASK | PSTATE_SS | PSTATE_IL | PSTATE_BTYPE)
        self.pstate = keep | PSTATE_DAIF | int(Mode.EL1H)
        self.pc = (self.sys.get(SysReg.VBAR_EL1, 0) + (0x200 if from_spx else 0)) & U64_MASK

    def _step(self, pc: int) -> Exit | None:
        word = self._load(pc, 4)
        insn = decode_insn(word)
        if insn is None:
            raise _Exception(EC_UNKNOWN, 0)
        nxt = pc + 4
        op = insn.op
        handler = _EXEC.get(op)
        if handler is not None:
            result = handler(self, insn, pc)
            if result is None:
                self.pc = nxt
                return None
            if isinstance(result, int):  # a taken branch
                self.pc = result & U64_MASK
                return None
            self.pc = nxt
            return result
        raise SimError(f"{insn.text(pc)} at {pc:#x} is not simulated")  # pragma: no cover

    # Instruction groups (each returns None, a branch target, or an Exit).

    def _movw(self, i: Insn, pc: int) -> None:
        if i.op is Op.MOVZ:
            self._w(i.rd, i.imm << i.shift)
        elif i.op is Op.MOVN:
            self._w(i.rd, ~(i.imm << i.shift))
        else:
            mask = 0xFFFF << i.shift
            self._w(i.rd, (self._r(i.rd) & ~mask) | i.imm << i.shift)

    def _logic(self, i: Insn, pc: int) -> None:
        a, b = self._r(i.rn), self._r(i.rm)
        self._w(i.rd, {Op.ORR: a | b, Op.AND: a & b, Op.EOR: a ^ b}[i.op])

    def _arith(self, i: Insn, pc: int) -> None:
        if i.op in (Op.ADD_REG, Op.SUB_REG, Op.SUBS_REG):
            a, b = self._r(i.rn), self._r(i.rm)
        else:
            a, b = self._r_sp(i.rn), i.imm << i.shift
        sub = i.op in (Op.SUB_IMM, Op.SUBS_IMM, Op.SUB_REG, Op.SUBS_REG)
        r, flags = _add(a, (~b & U64_MASK) if sub else b, 1 if sub else 0)
        if i.op in (Op.ADDS_IMM, Op.SUBS_IMM, Op.SUBS_REG):
            self.pstate = (self.pstate & ~NZCV_MASK) | flags
            self._w(i.rd, r)
        elif i.op in (Op.ADD_IMM, Op.SUB_IMM):
            self._w_sp(i.rd, r)
        else:
            self._w(i.rd, r)

    def _ldst(self, i: Insn, pc: int) -> Exit | None:
        size = 4 if i.op in (Op.LDR_W, Op.STR_W) else 8
        base = self._r_sp(i.rn)
        addr = base if i.index is Index.POST else (base + i.imm) & U64_MASK
        ram = self._access(i, addr, size, i.rn == 31)
        if not ram:
            return MmioExit(pc, addr, self._r(i.rd) & ((1 << 8 * size) - 1), size)
        if i.op in (Op.LDR_X, Op.LDR_W):
            self._w(i.rd, self._load(addr, size))
        else:
            self._store(addr, size, self._r(i.rd))
        if i.index is not Index.OFFSET:
            self._w_sp(i.rn, base + i.imm)
        return None

    def _pair(self, i: Insn, pc: int) -> None:
        base = self._r_sp(i.rn)
        addr = base if i.index is Index.POST else (base + i.imm) & U64_MASK
        self._access(i, addr, 8, i.rn == 31)
        self._access(i, addr + 8, 8, False)
        if i.op is Op.LDP:
            self._w(i.rd, self._load(addr, 8))
            self._w(i.rt2, self._load(addr + 8, 8))
        else:
            self._store(addr, 8, self._r(i.rd))
            self._store(addr + 8, 8, self._r(i.rt2))
        if i.index is not Index.OFFSET:
            self._w_sp(i.rn, base + i.imm)

    def _pcrel(self, i: Insn, pc: int) -> int | None:
        target = i.target(pc)
        assert target is not None
        if i.op is Op.LDR_LIT:
            self._access(i, target, 8, False)
            self._w(i.rd, self._load(target, 8))
            return None
        if i.op in (Op.ADR, Op.ADRP):
            self._w(i.rd, target)
            return None
        if i.op is Op.BL:
            self.x[30] = pc + 4
            return target
        if i.op is Op.B:
            return target
        if i.op is Op.B_COND:
            return target if cond_holds(i.cond, self.pstate) else None
        zero = self._r(i.rd) == 0
        return target if zero == (i.op is Op.CBZ) else None

    def _branch_reg(self, i: Insn, pc: int) -> int:
        target = self.x[i.rn]
        if i.op is Op.BLR:
            self.x[30] = pc + 4
        return target

    def _exc(self, i: Insn, pc: int) -> Exit | None:
        if i.op in (Op.HVC, Op.SMC):
            return HypercallExit(pc + 4, i.op is Op.SMC, i.imm)
        if i.op is Op.SVC:
            raise _Exception(EC_SVC64, i.imm)
        raise _Exception(EC_BRK, i.imm)

    def _system(self, i: Insn, pc: int) -> int | None:
        op = i.op
        if op in (Op.NOP, Op.ISB, Op.DSB_SY):
            return None
        if op is Op.ERET:
            spsr = self.sys.get(SysReg.SPSR_EL1, 0)
            if spsr & PSTATE_MODE_MASK not in (Mode.EL0T, Mode.EL1T, Mode.EL1H):
                raise SimError(f"eret at {pc:#x} to SPSR_EL1 = {spsr:#x}: not simulated")
            self.pstate = spsr
            return self.sys.get(SysReg.ELR_EL1, 0)
        if op is Op.MSR_DAIFSET:
            self.pstate |= i.imm << 6
        elif op is Op.MSR_DAIFCLR:
            self.pstate &= ~(i.imm << 6)
        elif op is Op.MSR_SPSEL:
            self.pstate = (self.pstate & ~1) | i.imm
        elif op is Op.MRS:
            self._w(i.rd, self._mrs(i.sysreg))
        elif op is Op.MSR:
            self._msr(i.sysreg, self._r(i.rd))
        else:
            raise SimError(f"{i.text(pc)} at {pc:#x} is not simulated")
        return None

    def _mrs(self, key: int) -> int:
        p = self.pstate
        special = {SysReg.NZCV: p & NZCV_MASK, SysReg.DAIF: p & PSTATE_DAIF,
                   SysReg.CURRENTEL: p & 0xC, SysReg.SPSEL: p & 1,
                   SysReg.MPIDR_EL1: 1 << 31 | affinity_of(self.vcpu),
                   SysReg.CNTVCT_EL0: self.steps}
        if key == SysReg.SP_EL0:
            return self.sp_el0
        if key in special:
            return special[SysReg(key)]
        return self.sys.get(key, 0)

    def _msr(self, key: int, v: int) -> None:
        if key == SysReg.NZCV:
            self.pstate = (self.pstate & ~NZCV_MASK) | (v & NZCV_MASK)
        elif key == SysReg.DAIF:
            self.pstate = (self.pstate & ~PSTATE_DAIF) | (v & PSTATE_DAIF)
        elif key == SysReg.SPSEL:
            self.pstate = (self.pstate & ~1) | (v & 1)
        elif key == SysReg.SP_EL0:
            self.sp_el0 = v
        else:
            self.sys[key] = v


class _Exception(Exception):
    """A synchronous exception the guest takes (architectural, not a simulator error)."""

    def __init__(self, ec: int, iss: int, far: int | None = None) -> None:
        super().__init__(ec)
        self.ec, self.iss, self.far = ec, iss, far


_Exec = Callable[[GuestCpu, Insn, int], "Exit | int | None"]
_EXEC: Final[Mapping[Op, _Exec]] = {
    **dict.fromkeys((Op.MOVZ, Op.MOVK, Op.MOVN), GuestCpu._movw),
    **dict.fromkeys((Op.ORR, Op.AND, Op.EOR), GuestCpu._logic),
    **dict.fromkeys((Op.ADD_IMM, Op.ADDS_IMM, Op.SUB_IMM, Op.SUBS_IMM, Op.ADD_REG, Op.SUB_REG,
                     Op.SUBS_REG), GuestCpu._arith),
    **dict.fromkeys((Op.LDR_X, Op.STR_X, Op.LDR_W, Op.STR_W), GuestCpu._ldst),
    **dict.fromkeys((Op.LDP, Op.STP), GuestCpu._pair),
    **dict.fromkeys((Op.LDR_LIT, Op.ADR, Op.ADRP, Op.B, Op.BL, Op.B_COND, Op.CBZ, Op.CBNZ),
                    GuestCpu._pcrel),
    **dict.fromkeys((Op.BR, Op.BLR, Op.RET), GuestCpu._branch_reg),
    **dict.fromkeys((Op.HVC, Op.SMC, Op.SVC, Op.BRK), GuestCpu._exc),
    **dict.fromkeys((Op.NOP, Op.ISB, Op.DSB_SY, Op.ERET, Op.MSR_DAIFSET, Op.MSR_DAIFCLR,
                     Op.MSR_SPSEL, Op.MRS, Op.MSR), GuestCpu._system),
}


# -- the reference run ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Served:
    """The host served an SDEI call (KVM_EXIT_HYPERCALL)."""

    site: str | None
    """``GuestProgram.site_returning_to`` of the exit PC (None: no site of the program)."""
    function_id: int
    args: tuple[int, ...]
    """x1..x5 as read at the exit."""
    ret: int
    """Signed x0 as the guest sees it (0 for a completion that resumed a context)."""
    completed: int | None
    """Event number whose handler a successful COMPLETE / COMPLETE_AND_RESUME finished."""


@dataclass(frozen=True, slots=True)
class Injected:
    """The host injected ``event`` (``ok`` False: refused, not registered)."""

    event: int
    ok: bool


@dataclass(frozen=True, slots=True)
class Dispatched:
    """The entry check took an event: the vCPU now runs its handler."""

    event: int
    entry: int
    interrupted_pc: int
    interrupted_pstate: int


TraceItem = Served | Bell | Injected | Dispatched


@dataclass(frozen=True)
class SimRun:
    """The outcome of ``simulate``."""

    program: GuestProgram
    trace: tuple[TraceItem, ...]
    memory: bytes
    """The memslot at the end."""
    cpu: GuestCpu
    finished: bool
    """True if the program reached the idle loop with every trigger fired and nothing left to
    dispatch; False if it stopped at a terminal doorbell (a fault or a failed completion)."""

    def bells(self, kind: BellKind | None = None) -> list[Bell]:
        """The doorbells rung, optionally of one kind, in order."""
        return [t for t in self.trace if isinstance(t, Bell) and (kind is None or t.kind is kind)]

    def served(self) -> list[Served]:
        """The hypercalls served, in order."""
        return [t for t in self.trace if isinstance(t, Served)]

    def dispatches(self) -> list[Dispatched]:
        """The dispatches the entry check made, in order."""
        return [t for t in self.trace if isinstance(t, Dispatched)]


def simulate(program: GuestProgram, *, machine: Machine | None = None, vcpu: int = 0,
             max_exits: int = 5000) -> SimRun:
    """Run ``program`` on a ``GuestCpu`` with ``machine`` (a fresh one-vCPU ``Machine`` by
    default) as the userspace SDEI provider: serve every hypercall, run the dispatch check
    before every entry, fire the program's triggers on their doorbells."""
    machine = machine if machine is not None else Machine(vcpu + 1)
    cpu = GuestCpu(program.layout, vcpu, program.image)
    seen: dict[int, int] = {}
    fired = [False] * len(program.triggers)
    trace: list[TraceItem] = []
    for _ in range(max_exits):
        interrupted = cpu.pc, cpu.pstate
        ev = machine.dispatch(vcpu, cpu)
        if ev is not None:
            trace.append(Dispatched(ev.number, cpu.pc, *interrupted))
        exit_ = cpu.run()
        if isinstance(exit_, HypercallExit):
            site = program.site_returning_to(exit_.pc)
            args = cpu.read((CpuReg.X1, CpuReg.X2, CpuReg.X3, CpuReg.X4, CpuReg.X5))
            out = machine.hvc(vcpu, cpu)
            trace.append(Served(site, out.function_id, args, out.ret,
                                out.completed.number if out.completed else None))
            continue
        try:
            bell = program.bell(exit_.phys_addr, exit_.data, exit_.length)
        except BellError as e:
            raise SimError(f"store at {exit_.insn_pc:#x}: {e}") from None
        trace.append(bell)
        if bell.kind.terminal:
            return SimRun(program, tuple(trace), bytes(cpu.mem), cpu, False)
        seen[bell.code] = seen.get(bell.code, 0) + 1
        for n, t in enumerate(program.triggers):
            if not fired[n] and t.bell == bell.code and t.occurrence == seen[bell.code]:
                fired[n] = True
                trace.append(Injected(t.event, machine.inject(vcpu, t.event)))
        if bell.kind is BellKind.IDLE and all(fired) and machine.deliverable(vcpu) is None:
            return SimRun(program, tuple(trace), bytes(cpu.mem), cpu, True)
    raise SimError(f"program {program.name!r} did not settle within {max_exits} exits")


def read_u64(mem: bytes, layout: Layout, addr: int) -> int:
    """One u64 of a memslot copy."""
    return int(struct.unpack_from("<Q", mem, addr - layout.base)[0])
