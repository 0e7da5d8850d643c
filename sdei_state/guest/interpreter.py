"""A pure-Python AArch64 CPU for the A64 subset: the simulated guest's interpreter.

``GuestCpu`` executes the words ``a64`` emits, at EL1 with the MMU off and one RAM memslot
(``Layout``), and stops where KVM would exit to userspace: at ``hvc``/``smc`` (``CallStop``,
PC already past the instruction, as KVM_EXIT_HYPERCALL under an SMCCC filter that forwards to
userspace) and at a plain store outside the memslot (``StoreStop``, the store already done and
PC past it). Anything else the subset does not know raises ``SimError`` or takes the
"unknown instruction" exception into the program's vectors.

This package knows nothing of SDEI: ``sdei_state.vmm.guest_vcpu`` makes a ``GuestCpu`` look
like a KVM vCPU (typed exits, ONE_REG-style registers) so the VMM loop and the reference model
drive it exactly as they drive a real one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from .a64 import U64_MASK, Index, SysReg
from .asm import Image
from .disasm import Insn, Op, decode_insn
from .layout import Layout

# PSTATE bits the interpreter changes (Arm ARM, "Process state, PSTATE"); the SDEI model has
# its own names for them, which this leaf package must not import.
_MODE_MASK: Final = 0x1F
_EL1H: Final = 0b00101
_EL0T, _EL1T = 0b00000, 0b00100
_DAIF: Final = 0xF << 6
_BTYPE: Final = 0b11 << 10
_IL: Final = 1 << 20
_SS: Final = 1 << 21
_MPIDR_RES1: Final = 1 << 31

RESET_PSTATE: Final = _EL1H | _DAIF
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
class CallStop:
    """``hvc``/``smc`` executed; PC is already past it."""

    pc: int
    smc: bool
    imm: int


@dataclass(frozen=True, slots=True)
class StoreStop:
    """A store outside the memslot at ``insn_pc``; already done, PC is past it."""

    insn_pc: int
    phys_addr: int
    data: int
    length: int


Stop = CallStop | StoreStop
"""Where ``GuestCpu.run`` gives control back to its host."""


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

    def __init__(self, layout: Layout, image: Image | None = None, *, affinity: int = 0) -> None:
        self.layout = layout
        self.mpidr = _MPIDR_RES1 | affinity
        """MPIDR_EL1 as ``mrs`` reads it: RES1 bit 31 and the host-given affinity fields."""
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

    def run(self, max_steps: int = 100_000) -> Stop:
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
        keep = self.pstate & ~(_MODE_MASK | _SS | _IL | _BTYPE)
        self.pstate = keep | _DAIF | _EL1H
        self.pc = (self.sys.get(SysReg.VBAR_EL1, 0) + (0x200 if from_spx else 0)) & U64_MASK

    def _step(self, pc: int) -> Stop | None:
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

    # Instruction groups (each returns None, a branch target, or a Stop).

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

    def _ldst(self, i: Insn, pc: int) -> Stop | None:
        size = 4 if i.op in (Op.LDR_W, Op.STR_W) else 8
        base = self._r_sp(i.rn)
        addr = base if i.index is Index.POST else (base + i.imm) & U64_MASK
        ram = self._access(i, addr, size, i.rn == 31)
        if not ram:
            return StoreStop(pc, addr, self._r(i.rd) & ((1 << 8 * size) - 1), size)
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

    def _exc(self, i: Insn, pc: int) -> Stop | None:
        if i.op in (Op.HVC, Op.SMC):
            return CallStop(pc + 4, i.op is Op.SMC, i.imm)
        if i.op is Op.SVC:
            raise _Exception(EC_SVC64, i.imm)
        raise _Exception(EC_BRK, i.imm)

    def _system(self, i: Insn, pc: int) -> int | None:
        op = i.op
        if op in (Op.NOP, Op.ISB, Op.DSB_SY):
            return None
        if op is Op.ERET:
            spsr = self.sys.get(SysReg.SPSR_EL1, 0)
            if spsr & _MODE_MASK not in (_EL0T, _EL1T, _EL1H):
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
        special = {SysReg.NZCV: p & NZCV_MASK, SysReg.DAIF: p & _DAIF,
                   SysReg.CURRENTEL: p & 0xC, SysReg.SPSEL: p & 1,
                   SysReg.MPIDR_EL1: self.mpidr,
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
            self.pstate = (self.pstate & ~_DAIF) | (v & _DAIF)
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


_Exec = Callable[[GuestCpu, Insn, int], "Stop | int | None"]
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
