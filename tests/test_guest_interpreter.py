"""The guest interpreter (``guest.interpreter.GuestCpu``) on its own: reset state, stops,
exceptions into the program's vectors, flags and conditions as the Arm ARM defines them."""

from __future__ import annotations

from typing import Final

import pytest

from sdei_state.guest import a64 as A
from sdei_state.guest.asm import Asm
from sdei_state.guest.doorbell import Bell, BellKind
from sdei_state.guest.interpreter import CallStop, GuestCpu, SimError, StoreStop, cond_holds
from sdei_state.guest.layout import LAYOUT
from sdei_state.selftest.programs import program as B
from sdei_state.selftest.programs.catalog import PROGRAMS

U64: Final = (1 << 64) - 1


def test_guest_cpu_starts_like_a_fresh_kvm_vcpu() -> None:
    prog = PROGRAMS["calls"]()
    cpu = GuestCpu(prog.layout, prog.image)
    assert cpu.pc == prog.entry and cpu.pstate == 0x3C5
    first = cpu.run()
    assert isinstance(first, CallStop) and first.pc == prog.main_calls[0].return_pc
    assert (cpu.x[0], cpu.sys[A.SysReg.VBAR_EL1]) == (0xC400_0020, prog.layout.vectors)
    assert cpu.sp_el1 == prog.layout.stack_top and cpu.pstate == 0x5  # DAIF cleared


def test_undefined_instruction_reaches_the_programs_vector() -> None:
    prog = PROGRAMS["calls"]()
    cpu = GuestCpu(prog.layout, prog.image)
    bad = prog.main_calls[0].hvc
    off = bad - prog.layout.base
    cpu.mem[off:off + 4] = bytes(4)  # udf #0
    exit_ = cpu.run()
    assert isinstance(exit_, StoreStop)
    bell = prog.bell(exit_.phys_addr, exit_.data)
    assert bell == Bell(BellKind.FAULT, index=4, data=1 << 25)  # sync, current EL, SPx
    fault = prog.fault_record(bytes(cpu.mem))
    assert (fault.vector, fault.elr_el1, fault.spsr_el1, fault.count) == (
        prog.symbol("vectors.4"), bad, 0x5, 1)


def test_doorbell_must_be_a_plain_store() -> None:
    prog = PROGRAMS["calls"]()
    cpu = GuestCpu(prog.layout, prog.image)
    idle = prog.idle
    word = A.stp(0, 1, B.MAIN_BELL_REG, 0)
    off = idle - prog.layout.base
    cpu.mem[off:off + 4] = word.to_bytes(4, "little")
    cpu.pc = idle
    cpu.x[B.MAIN_BELL_REG] = prog.layout.doorbell
    with pytest.raises(SimError, match="KVM cannot emulate"):
        cpu.run()


@pytest.mark.parametrize(("cond", "nzcv", "holds"), [
    (A.Cond.EQ, 1 << 30, True), (A.Cond.NE, 1 << 30, False), (A.Cond.CS, 1 << 29, True),
    (A.Cond.CC, 1 << 29, False), (A.Cond.MI, 1 << 31, True), (A.Cond.PL, 1 << 31, False),
    (A.Cond.VS, 1 << 28, True), (A.Cond.VC, 0, True), (A.Cond.HI, 1 << 29, True),
    (A.Cond.HI, 3 << 29, False), (A.Cond.LS, 3 << 29, True), (A.Cond.GE, 9 << 28, True),
    (A.Cond.LT, 1 << 31, True), (A.Cond.GT, 0, True), (A.Cond.GT, 1 << 30, False),
    (A.Cond.LE, 1 << 30, True), (A.Cond.AL, 0, True), (A.Cond.NV, 0, True),
])
def test_condition_codes(cond: A.Cond, nzcv: int, holds: bool) -> None:
    assert cond_holds(cond, nzcv) is holds


def test_subs_sets_flags_like_the_arm_arm() -> None:
    a = Asm(LAYOUT.base)
    cases = [(0, 1), (1, 1), (1 << 63, 1), (5, 3)]
    for n, (x, y) in enumerate(cases):
        a.mov_imm(1, x)
        a.emit(A.subs_imm(2, 1, y), A.mrs(3, A.SysReg.NZCV), A.hvc(n))
    cpu = GuestCpu(LAYOUT, a.assemble())
    got = []
    for _ in cases:
        exit_ = cpu.run()
        assert isinstance(exit_, CallStop)
        got.append((cpu.x[2], cpu.x[3] >> 28))
    assert got == [(U64, 0b1000), (0, 0b0110), ((1 << 63) - 1, 0b0011), (2, 0b0010)]


def test_mpidr_is_res1_bit_31_and_the_given_affinity() -> None:
    a = Asm(LAYOUT.base)
    a.emit(A.mrs(0, A.SysReg.MPIDR_EL1), A.hvc(0))
    cpu = GuestCpu(LAYOUT, a.assemble(), affinity=0x0102)
    assert isinstance(cpu.run(), CallStop) and cpu.x[0] == 0x8000_0102
