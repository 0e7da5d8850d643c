"""``KvmCpu``: the CpuRegs view over ONE_REG ids (no kernel needed: a recording transport)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sdei_state.cpu import CpuReg, CpuRegs
from sdei_state.regs import ids
from sdei_state.vcpu.kvm_cpu import REG_IDS, SP_BY_MODE, KvmCpu, sp_reg_id
from sdei_state.vcpu.transport import RegTransport


class FakeVcpu:
    """A RegTransport over a dict that records every call (to count round trips)."""

    def __init__(self) -> None:
        self.regs: dict[int, int] = {}
        self.calls: list[tuple[str, tuple[int, ...]]] = []

    def reg_list(self) -> tuple[int, ...]:
        return tuple(self.regs)

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs([reg_id])[0]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs([(reg_id, value)])

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        self.calls.append(("get", tuple(reg_ids)))
        return [self.regs.get(r, 0) for r in reg_ids]

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        self.calls.append(("set", tuple(r for r, _ in items)))
        self.regs.update(items)


def test_protocols() -> None:
    fake = FakeVcpu()
    assert isinstance(fake, RegTransport)
    assert isinstance(KvmCpu(fake), CpuRegs)


def test_register_ids() -> None:
    assert REG_IDS[CpuReg.X0] == 0x6030000000100000
    assert REG_IDS[CpuReg.X30] == 0x603000000010003C
    assert REG_IDS[CpuReg.PC] == 0x6030000000100040
    assert REG_IDS[CpuReg.PSTATE] == 0x6030000000100042
    assert REG_IDS[CpuReg.ELR_EL1] == 0x6030000000100046  # offsetof(elr_el1) = 280
    assert REG_IDS[CpuReg.SPSR_EL1] == 0x6030000000100048  # spsr[0] at 288
    assert REG_IDS[CpuReg.VBAR_EL1] == 0x603000000013C600
    assert REG_IDS[CpuReg.SCTLR_EL1] == 0x603000000013C080  # ARM64_SYS_REG(3, 0, 1, 0, 0)
    assert set(REG_IDS) == set(CpuReg) - {CpuReg.SP}
    assert len(set(REG_IDS.values())) == len(REG_IDS)


@pytest.mark.parametrize(("mode", "reg"), [
    (0b00000, ids.REG_SP_EL0),  # EL0t
    (0b00100, ids.REG_SP_EL0),  # EL1t
    (0b00101, ids.REG_SP_EL1),  # EL1h
    (0b10000, ids.REG_X[13]),  # AArch32 User
    (0b10011, ids.REG_X[19]),  # AArch32 SVC
])
def test_sp_follows_the_mode(mode: int, reg: int) -> None:
    fake = FakeVcpu()
    fake.regs.update({ids.REG_PSTATE: 0x3C0 | mode, reg: 0xABC0,
                      ids.REG_X[1]: 11, ids.REG_PC: 0x1000})
    cpu = KvmCpu(fake)
    assert cpu.read([CpuReg.X1, CpuReg.SP, CpuReg.PC]) == {CpuReg.X1: 11, CpuReg.SP: 0xABC0,
                                                          CpuReg.PC: 0x1000}
    cpu.write({CpuReg.SP: 0x5550})
    assert fake.regs[reg] == 0x5550
    # Writing PSTATE with SP: the new PSTATE decides, no extra read.
    fake.calls.clear()
    cpu.write({CpuReg.PSTATE: 0x3C5, CpuReg.SP: 0x7770})
    assert fake.calls == [("set", (ids.REG_PSTATE, ids.REG_SP_EL1))]
    assert fake.regs[ids.REG_SP_EL1] == 0x7770


def test_one_round_trip_per_call() -> None:
    fake = FakeVcpu()
    cpu = KvmCpu(fake)
    cpu.read(list(CpuReg))
    cpu.write({r: 1 for r in CpuReg if r != CpuReg.SP})
    assert [c[0] for c in fake.calls] == ["get", "set"]


def test_el2_has_no_sp_and_bad_values_are_refused() -> None:
    fake = FakeVcpu()
    fake.regs[ids.REG_PSTATE] = 0b01001  # EL2h
    cpu = KvmCpu(fake)
    with pytest.raises(ValueError, match="no stack pointer"):
        cpu.read([CpuReg.SP])
    with pytest.raises(ValueError, match="unsigned 64-bit"):
        cpu.write({CpuReg.X3: -1})
    with pytest.raises(ValueError, match="different values"):
        cpu.write({CpuReg.PSTATE: 0b10000, CpuReg.SP: 1, CpuReg.X13: 2})
    assert fake.calls == [("get", (ids.REG_PSTATE, ids.REG_SP_EL0, ids.REG_SP_EL1))]


def test_every_aarch64_sp_mode_covered() -> None:
    for m in (0b00000, 0b00100, 0b00101, 0b01000):
        assert sp_reg_id(m) in (ids.REG_SP_EL0, ids.REG_SP_EL1)
    assert len(SP_BY_MODE) == 12
