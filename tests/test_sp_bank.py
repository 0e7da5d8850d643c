"""SP banked as KVM banks it: core ``sp`` is SP_EL0, core ``sp_el1`` is SP_EL1, and
``CpuReg.SP`` is the one PSTATE selects, by the one rule (``sp_bank.SP_BY_MODE``) that the
simulated vCPU and ``KvmCpu`` share."""

from __future__ import annotations

import pytest

from sdei_state.cpu import CpuReg
from sdei_state.migration import Blob, restore_vm, save_vm
from sdei_state.regs import ids
from sdei_state.vcpu.core_rules import ACCEPTED_MODES
from sdei_state.vcpu.kvm_cpu import KvmCpu
from sdei_state.vcpu.sim import SimVm
from sdei_state.vcpu.sp_bank import SP_BY_MODE, BankedCpu

SP_EL0, SP_EL1 = ids.REG_SP_EL0, ids.REG_SP_EL1
EL0T, EL1T, EL1H, EL2H, EL3H, USR = 0b00000, 0b00100, 0b00101, 0b01001, 0b01101, 0b10000


def test_sp_is_banked_as_kvm_banks_it() -> None:
    v = SimVm(1).vcpus[0]
    assert v.cpu[CpuReg.PSTATE] & 0x1F == EL1H  # reset: EL1h, so SP is SP_EL1
    v.cpu.write({CpuReg.SP: 0x1000})
    assert v.get_regs((SP_EL0, SP_EL1)) == [0, 0x1000]
    v.set_reg(SP_EL0, 0x2000)
    assert v.cpu[CpuReg.SP] == 0x1000
    v.set_reg(ids.REG_PSTATE, EL0T)
    assert v.cpu[CpuReg.SP] == 0x2000
    v.set_reg(ids.REG_PSTATE, EL1T)
    assert v.cpu.read((CpuReg.X0, CpuReg.SP)) == {CpuReg.X0: 0, CpuReg.SP: 0x2000}
    v.set_regs(((ids.REG_PSTATE, USR), (ids.REG_X[13], 0x1313)))
    assert v.cpu[CpuReg.SP] == 0x1313 and v.cpu.as_json()["sp"] == 0x1313
    assert v.get_regs((SP_EL0, SP_EL1)) == [0x2000, 0x1000]  # the banks are untouched


@pytest.mark.parametrize("mode", sorted(ACCEPTED_MODES))
def test_kvm_cpu_reads_and_writes_the_sim_as_the_sim_does(mode: int) -> None:
    """KvmCpu over a simulated vCPU's ONE_REG view and that vCPU's own BankedCpu agree on SP
    in every mode KVM accepts, both ways."""
    v = SimVm(1).vcpus[0]
    v.set_regs(((SP_EL0, 0xE0), (SP_EL1, 0xE1), (ids.REG_X[13], 0x13),
                (ids.REG_PSTATE, 0x3C0 | mode)))
    kvm = KvmCpu(v)
    assert kvm.read((CpuReg.SP, CpuReg.PSTATE)) == v.cpu.read((CpuReg.SP, CpuReg.PSTATE))
    kvm.write({CpuReg.SP: 0xABC})
    assert v.cpu[CpuReg.SP] == 0xABC
    v.cpu.write({CpuReg.SP: 0xDEF})
    assert kvm.read((CpuReg.SP,)) == {CpuReg.SP: 0xDEF}


@pytest.mark.parametrize(("mode", "home"), sorted(SP_BY_MODE.items()))
def test_banked_cpu_follows_sp_by_mode(mode: int, home: int) -> None:
    cpu = BankedCpu()
    cpu.write({CpuReg.PSTATE: mode, CpuReg.SP: 0x55})
    held = dict(cpu.banked)
    held.update({rid: cpu[CpuReg(n)] for n, rid in enumerate(ids.REG_X)})
    assert held[home] == 0x55
    assert [rid for rid, v in held.items() if v] == [home]
    assert cpu[CpuReg.SP] == 0x55 and cpu.snapshot()[CpuReg.SP] == 0x55


def test_el2h_and_el3h_keep_an_sp_of_their_own() -> None:
    """KVM refuses these modes, but a scenario may put the model there: SP must not fail."""
    cpu = BankedCpu({CpuReg.SP: 0x11})  # EL1h at reset
    cpu.write({CpuReg.PSTATE: EL2H, CpuReg.SP: 0x22})
    assert cpu[CpuReg.SP] == 0x22
    cpu.write({CpuReg.PSTATE: EL3H})
    assert cpu[CpuReg.SP] == 0x22
    cpu.write({CpuReg.PSTATE: EL1H})
    assert cpu[CpuReg.SP] == 0x11 and cpu.banked == {SP_EL0: 0, SP_EL1: 0x11}


def test_a_refused_write_changes_nothing() -> None:
    cpu = BankedCpu({CpuReg.SP: 0x11, CpuReg.X13: 0x13})
    before = (cpu.snapshot(), dict(cpu.banked))
    with pytest.raises(ValueError, match=r"different values"):
        cpu.write({CpuReg.PSTATE: USR, CpuReg.SP: 1, CpuReg.X13: 2})
    with pytest.raises(ValueError, match=r"sp = -1 is not an unsigned 64-bit value"):
        cpu.write({CpuReg.PSTATE: EL0T, CpuReg.SP: -1})
    assert (cpu.snapshot(), dict(cpu.banked)) == before
    cpu.write({CpuReg.PSTATE: USR, CpuReg.SP: 7, CpuReg.X13: 7})  # the same value: fine
    assert cpu[CpuReg.X13] == 7


def test_dispatch_and_complete_switch_stacks() -> None:
    vm = SimVm(1)
    v = vm.vcpus[0]
    for fn, args in (("EVENT_REGISTER", [0, 0x10000, 0, 0, 0]), ("EVENT_ENABLE", [0]),
                     ("PE_UNMASK", []), ("EVENT_SIGNAL", [0, 0])):
        assert v.call(fn, args).ret == 0
    v.cpu.write({CpuReg.PSTATE: EL0T, CpuReg.PC: 0x8000, CpuReg.SP: 0x7000})
    assert v.dispatch() is not None
    assert v.cpu[CpuReg.PSTATE] & 0x1F == EL1H
    assert v.cpu[CpuReg.SP] == 0  # the handler runs on SP_EL1
    v.cpu.write({CpuReg.SP: 0x9000})
    v.call("EVENT_COMPLETE", [0])
    assert v.cpu.read((CpuReg.PC, CpuReg.SP)) == {CpuReg.PC: 0x8000, CpuReg.SP: 0x7000}  # SP_EL0
    assert v.get_regs((SP_EL0, SP_EL1)) == [0x7000, 0x9000]


def test_migration_carries_both_banks() -> None:
    src = SimVm(1)
    src.vcpus[0].set_regs(((SP_EL0, 0xA0), (SP_EL1, 0xA1)))
    dest = SimVm(1)
    restore_vm(dest.vcpus, Blob.from_bytes(save_vm(src.vcpus).to_bytes()))
    assert dest.vcpus[0].cpu.banked == {SP_EL0: 0xA0, SP_EL1: 0xA1}
    assert dest.vcpus[0].cpu[CpuReg.SP] == 0xA1
