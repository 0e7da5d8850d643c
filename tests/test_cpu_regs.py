"""The ``CpuRegs`` contract, on every implementation that needs no KVM: ``read`` gives the shape
``write`` takes, so ``write(read(regs))`` changes nothing and ``read`` after ``write(m)`` is ``m``.

``KvmCpu`` runs over a simulated vCPU's ONE_REG view (its arm64 run is
``tests/arm64/test_arm64_run.py``); ``DictCpu`` is a user's own implementation, which the model
reads through ``read`` where the library's own give it their tuple (``cpu.read_values``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdei_state.cpu import CpuReg, CpuRegs, MemoryCpu, plain_u64s, read_values, write_values
from sdei_state.events import SW_SIGNALED
from sdei_state.guest.a64 import SysReg
from sdei_state.guest.interpreter import GuestCpu
from sdei_state.guest.layout import LAYOUT
from sdei_state.machine import Machine
from sdei_state.spec import Function
from sdei_state.testing.strategies import cpu_values
from sdei_state.vcpu.kvm_cpu import KvmCpu
from sdei_state.vcpu.sim import SimVm
from sdei_state.vcpu.sp_bank import BankedCpu
from sdei_state.vmm.guest_vcpu import GuestRegs


class DictCpu:
    """A user's ``CpuRegs``: a plain dict, ``read`` and ``write`` and nothing else."""

    def __init__(self) -> None:
        self.regs = MemoryCpu().snapshot()  # the reset values

    def read(self, regs: Sequence[CpuReg]) -> dict[CpuReg, int]:
        return {r: self.regs[r] for r in regs}

    def write(self, values: Mapping[CpuReg, int]) -> None:
        self.regs.update(values)


@dataclass(frozen=True)
class Impl:
    """How to make one implementation, and everything it holds (more than ``CpuRegs`` shows:
    the banked stack pointers, the transport's other registers)."""

    make: Callable[[], CpuRegs]
    held: Callable[[CpuRegs], object]


def _sim_kvm_cpu() -> CpuRegs:
    return KvmCpu(SimVm(1).vcpus[0])


def _transport_regs(cpu: CpuRegs) -> object:
    assert isinstance(cpu, KvmCpu)
    t = cpu.transport
    return t.get_regs(t.reg_list())


def _guest_state(cpu: CpuRegs) -> object:
    assert isinstance(cpu, GuestRegs)
    g = cpu.guest
    return (list(g.x), g.sp_el0, g.sp_el1, g.pc, g.pstate,
            {r: g.sys.get(r, 0) for r in SysReg})  # an absent system register reads as 0


def _banked(cpu: CpuRegs) -> object:
    assert isinstance(cpu, BankedCpu)
    return cpu.snapshot(), dict(cpu.banked)


IMPLS = {
    "MemoryCpu": Impl(MemoryCpu, lambda c: c.read(tuple(CpuReg))),
    "BankedCpu": Impl(BankedCpu, _banked),
    "KvmCpu over a simulated vCPU": Impl(_sim_kvm_cpu, _transport_regs),
    "GuestRegs": Impl(lambda: GuestRegs(GuestCpu(LAYOUT)), _guest_state),
    "DictCpu (a user's)": Impl(DictCpu, lambda c: dict(c.regs)),  # type: ignore[attr-defined]
}
ALL_REGS = tuple(CpuReg)
U64 = (1 << 64) - 1
asked = st.lists(st.sampled_from(ALL_REGS), max_size=12)
"""Registers as a caller may ask for them: any order, some twice."""


@pytest.mark.parametrize("name", IMPLS)
def test_each_is_a_cpu_regs(name: str) -> None:
    assert isinstance(IMPLS[name].make(), CpuRegs)


@pytest.mark.parametrize("name", IMPLS)
@given(start=cpu_values(max_size=len(CpuReg)), regs=asked)
def test_writing_what_was_read_changes_nothing(name: str, start: dict[CpuReg, int],
                                               regs: list[CpuReg]) -> None:
    impl = IMPLS[name]
    cpu = impl.make()
    cpu.write(start)
    before = impl.held(cpu)
    got = cpu.read(regs)
    assert list(got) == list(dict.fromkeys(regs))  # the order asked, each register once
    cpu.write(got)
    assert impl.held(cpu) == before
    # The model's tuple path gives what read gives, a register asked twice included.
    assert read_values(cpu, regs) == tuple(got[r] for r in regs)


@pytest.mark.parametrize("name", IMPLS)
@given(start=cpu_values(max_size=len(CpuReg)), values=cpu_values())
def test_reading_what_was_written_gives_it_back(name: str, start: dict[CpuReg, int],
                                                values: dict[CpuReg, int]) -> None:
    cpu = IMPLS[name].make()
    cpu.write(start)
    cpu.write(values)
    got = cpu.read(list(values))
    assert got == values and list(got) == list(values)


@pytest.mark.parametrize("name", IMPLS)
@given(start=cpu_values(max_size=len(CpuReg)), values=cpu_values())
def test_the_models_write_path_equals_write(name: str, start: dict[CpuReg, int],
                                            values: dict[CpuReg, int]) -> None:
    """``write_values`` (the model's own values, stored without a second check) leaves every
    implementation holding exactly what ``write`` of the same mapping leaves, SP (banked by
    PSTATE) and the empty write included."""
    impl = IMPLS[name]
    fast, slow = impl.make(), impl.make()
    fast.write(start)
    slow.write(start)
    write_values(fast, tuple(values), tuple(values.values()))
    slow.write(values)
    assert impl.held(fast) == impl.held(slow)


@pytest.mark.parametrize("name", [n for n in IMPLS if not n.startswith("DictCpu")])
def test_a_refused_write_names_the_register(name: str) -> None:
    """The library's own (a user's checks what it chooses to)."""
    cpu = IMPLS[name].make()
    with pytest.raises(ValueError, match=r"\bx3 = -1\b"):
        cpu.write({CpuReg.X3: -1})


def _signal_dispatch_resume(cpu: CpuRegs) -> list[object]:
    """A handler's life on one vCPU through the model: what the guest saw at each step."""
    m = Machine(1)
    cpu.write({CpuReg.PC: 0x8000, CpuReg.SCTLR_EL1: 0x30D0_0980, CpuReg.VBAR_EL1: 0x4000_0000,
               **{CpuReg(n): 0x100 + n for n in range(18)}})
    seen: list[object] = []
    ev = SW_SIGNALED.number
    for fn, args in ((Function.EVENT_REGISTER, [ev, 0x10, 0xA5, 1, 0]),  # relative to VBAR
                     (Function.EVENT_ENABLE, [ev]), (Function.PE_UNMASK, []),
                     (Function.EVENT_SIGNAL, [ev, 0])):
        cpu.write({CpuReg.X0: fn, **{CpuReg(1 + i): a for i, a in enumerate(args)}})
        seen.append(m.hvc(0, cpu).ret)
    seen.append(m.dispatch(0, cpu))
    seen.append(cpu.read(ALL_REGS))
    cpu.write({CpuReg.X0: Function.EVENT_COMPLETE_AND_RESUME, CpuReg.X1: 0x9000})
    seen.append(m.hvc(0, cpu))
    seen.append(cpu.read(ALL_REGS))
    return seen


def test_the_model_reads_a_users_cpu_regs_as_its_own() -> None:
    """The machine takes the library's implementations' tuple and reads any other through
    ``read``: the same calls give the same results and registers."""
    assert _signal_dispatch_resume(DictCpu()) == _signal_dispatch_resume(MemoryCpu())


def test_a_tuple_read_cpu_without_values_is_refused_when_defined() -> None:
    """The base has no body to fall back on: a subclass that forgets ``_values`` fails at
    its definition, with its name, not on its first read."""
    from sdei_state.cpu import TupleReadCpu

    with pytest.raises(TypeError, match="Forgetful: a TupleReadCpu must define _values"):
        class Forgetful(TupleReadCpu):
            __slots__ = ()


_any_values = st.lists(st.one_of(st.integers(-2, 3), st.integers(U64 - 2, U64 + 2),
                                 st.booleans(), st.floats(0, 2), st.none()), max_size=8)
"""Values a write may be given: plain u64s, the bounds either side, and what is not an int."""


@given(_any_values)
def test_the_plain_u64_fast_check_admits_only_what_the_walk_accepts(values: list[object]) -> None:
    """``plain_u64s`` lets a write skip ``MemoryCpu._check``'s walk: it must admit nothing the
    walk refuses (and it admits every plain int in range, so the usual write is not walked)."""
    fast = plain_u64s(values)
    assert fast == all(type(v) is int and 0 <= v <= U64 for v in values)
    regs = {CpuReg(n): v for n, v in enumerate(values)}
    try:
        MemoryCpu._check(regs)  # type: ignore[arg-type]
        walked = True
    except (ValueError, TypeError):
        walked = False
    assert walked or not fast
