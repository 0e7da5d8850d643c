"""Save and restore over the register transport: round trips, restore over any previous
contents, refusal before any write, failures during the write, and a live migration of a
critical handler nested on a normal one."""

from __future__ import annotations

import errno
from collections.abc import Sequence

import pytest
from conftest import SimVmFactory
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.cpu import CONTEXT_GPRS, CpuReg
from sdei_state.errors import RegError, RestoreError
from sdei_state.events import ASYNC_PF, SW_SIGNALED
from sdei_state.migration import (
    Blob,
    VcpuRegisters,
    restore_vcpu,
    restore_vm,
    save_vcpu,
    save_vm,
)
from sdei_state.regs import firmware
from sdei_state.regs.sdei import SDEI_REG_IDS, encode_map
from sdei_state.spec import Function, Ret
from sdei_state.state import VcpuState
from sdei_state.testing.strategies import canonical_vcpu_states, u64s, vcpu_states
from sdei_state.vcpu.sim import SimVcpu, SimVm

# 40 examples in the dev profile, 400 in ci (tests/conftest.py): each saves and restores VMs.
prop = settings(max_examples=settings().max_examples * 4 // 10)

EV0, EV1 = SW_SIGNALED.number, ASYNC_PF.number
NORMAL_EP, CRITICAL_EP, RESUME = 0xFFFF_8000_1000_0000, 0xFFFF_8000_2000_0000, 0xFFFF_8000_0300
STD_BMAP = 0x6030_0000_0016_0000
WA3 = 0x6030_0000_0014_0003
EVENT_STATE_0 = 0x6030_0000_0014_0110
CONTEXT_0_3 = 0x6030_0000_0014_0143
PC_ID = 0x6030_0000_0010_0040


def load(v: SimVcpu, state: VcpuState, cpu: Sequence[int]) -> None:
    """Put a vCPU into ``state`` with CPU registers ``cpu`` (x0..x30, sp, pc, elr, spsr,
    vbar; PSTATE stays EL1h) through its registers."""
    v.set_regs(sorted(encode_map(state).items()))
    regs = [*(CpuReg(n) for n in range(31)), CpuReg.SP, CpuReg.PC, CpuReg.ELR_EL1,
            CpuReg.SPSR_EL1, CpuReg.VBAR_EL1]
    v.cpu.write(dict(zip(regs, cpu, strict=True)))


cpu_values = st.lists(u64s(), min_size=36, max_size=36)


def registers(vm: SimVm) -> list[list[int]]:
    return [v.get_regs(v.reg_list()) for v in vm.vcpus]


# -- round trips -------------------------------------------------------------------------


def test_save_vcpu_follows_the_reg_list(sim_vcpu: SimVcpu) -> None:
    saved = save_vcpu(sim_vcpu)
    assert saved.reg_ids == sim_vcpu.reg_list()
    assert list(saved.row) == sim_vcpu.get_regs(sim_vcpu.reg_list())


@prop
@given(st.lists(st.tuples(canonical_vcpu_states(), cpu_values), min_size=1, max_size=3))
def test_save_restore_round_trip(vcpus: list[tuple[VcpuState, list[int]]]) -> None:
    src = SimVm(len(vcpus))
    for v, (state, cpu) in zip(src.vcpus, vcpus, strict=True):
        load(v, state, cpu)
    blob = save_vm(src.vcpus)
    dst = SimVm(len(vcpus))
    results = restore_vm(dst.vcpus, Blob.from_bytes(blob.to_bytes()))
    assert save_vm(dst.vcpus) == blob
    assert dst.machine.states() == src.machine.states()
    assert all(r.written == tuple(sorted(blob.reg_ids)) for r in results)
    assert all(r.dropped == () and r.added == () for r in results)


@prop
@given(canonical_vcpu_states(), cpu_values, vcpu_states(), cpu_values, st.booleans())
def test_restore_succeeds_whatever_the_destination_held(
    state: VcpuState, cpu: list[int], old: VcpuState, old_cpu: list[int], ran: bool
) -> None:
    src = SimVm(1)
    load(src.vcpus[0], state, cpu)
    saved = save_vcpu(src.vcpus[0])
    dst = SimVm(1)
    load(dst.vcpus[0], old, old_cpu)  # any per-register-valid leftovers, canonical or not
    if ran:
        dst.vcpus[0].dispatch()  # a destination that has run: same bitmaps still restore
    restore_vcpu(dst.vcpus[0], saved)
    assert save_vcpu(dst.vcpus[0]) == saved
    assert dst.vcpus[0].state == state


def test_restore_vcpu_takes_a_plain_mapping(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].call("EVENT_REGISTER", [EV0, 0x1000, 1, 0, 0])
    saved = save_vcpu(src.vcpus[0]).as_dict()
    dst = sim_vm(1)
    restore_vcpu(dst.vcpus[0], saved)
    assert save_vcpu(dst.vcpus[0]).as_dict() == saved


def test_restore_through_json(sim_vm: SimVmFactory) -> None:
    src = sim_vm(2)
    src.vcpus[1].call("EVENT_REGISTER", [EV1, 0x1000, 1, 0, 0])
    blob = save_vm(src.vcpus)
    dst = sim_vm(2)
    restore_vm(dst.vcpus, Blob.from_json(blob.to_json()))
    assert registers(dst) == registers(src)


# -- refusal before any write ------------------------------------------------------------


def refused(dst: SimVm, blob: Blob) -> RestoreError:
    before = registers(dst)
    with pytest.raises(RestoreError) as e:
        restore_vm(dst.vcpus, blob)
    assert e.value.written == 0
    assert "nothing written" in str(e.value)
    assert registers(dst) == before
    return e.value


def with_value(blob: Blob, vcpu: int, reg_id: int, value: int) -> Blob:
    rows = [list(r) for r in blob.rows]
    rows[vcpu][blob.reg_ids.index(reg_id)] = value
    return Blob(blob.reg_ids, tuple(tuple(r) for r in rows))


def test_a_context_without_a_running_handler_is_refused(sim_vm: SimVmFactory) -> None:
    blob = with_value(save_vm(sim_vm(2).vcpus), 1, CONTEXT_0_3, 0x1234)
    err = refused(sim_vm(2), blob)
    assert err.reg_id == CONTEXT_0_3
    assert "vCPU 1" in str(err) and "SDEI_CONTEXT(0, 3)" in str(err)
    assert "0x6030000000140143" in str(err) and "no normal handler is running" in str(err)


def test_an_invalid_register_value_is_refused(sim_vm: SimVmFactory) -> None:
    blob = with_value(save_vm(sim_vm(1).vcpus), 0, EVENT_STATE_0, 0x2)
    err = refused(sim_vm(1), blob)
    assert err.reg_id == EVENT_STATE_0 and "ENABLED" in str(err)


def test_refusal_counts_the_other_problems(sim_vm: SimVmFactory) -> None:
    blob = with_value(save_vm(sim_vm(1).vcpus), 0, EVENT_STATE_0, 0x2)
    blob = with_value(blob, 0, 0x6030_0000_0014_0123, 5)  # EP_ARG(1), event 1 unregistered
    assert "1 more problem" in str(refused(sim_vm(1), blob))


def test_a_less_safe_destination_is_refused(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1, host=firmware.HOST_LINUX_6_18_NEOVERSE)  # WA3 AVAIL
    src.vcpus[0].set_reg(0x6030_0000_0014_0000, 0x10001)  # PSCI 1.1, which 6.12 accepts
    blob = save_vm(src.vcpus)
    err = refused(sim_vm(1, host=firmware.HOST_LINUX_6_12), blob)  # WA3 NOT_AVAIL
    assert err.reg_id == WA3 and "less safe" in str(err)


def test_a_bitmap_change_on_a_destination_that_has_run_is_refused(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].set_reg(STD_BMAP, 0x3 & ~0x2)
    blob = save_vm(src.vcpus)
    dst = sim_vm(1)
    dst.vcpus[0].call("VERSION")
    err = refused(dst, blob)
    assert err.reg_id == STD_BMAP and "has run" in str(err)


def test_vcpu_count_must_match(sim_vm: SimVmFactory) -> None:
    err = refused(sim_vm(3), save_vm(sim_vm(2).vcpus))
    assert "2 vCPU(s)" in str(err) and "has 3" in str(err)


def test_restore_vcpu_refuses_before_writing(sim_vm: SimVmFactory) -> None:
    saved = save_vcpu(sim_vm(1).vcpus[0]).as_dict()
    saved[CONTEXT_0_3] = 1
    v = sim_vm(1).vcpus[0]
    v.set_reg(PC_ID, 0x4444)
    with pytest.raises(RestoreError) as e:
        restore_vcpu(v, saved)
    assert e.value.reg_id == CONTEXT_0_3 and e.value.written == 0
    assert v.get_reg(PC_ID) == 0x4444


def test_uninitialized_destination_is_refused(sim_vm: SimVmFactory) -> None:
    blob = save_vm(sim_vm(1).vcpus)
    with pytest.raises(RestoreError, match="cannot read the destination"):
        restore_vm(sim_vm(1, initialized=False).vcpus, blob)
    with pytest.raises(RestoreError, match="cannot read the destination"):
        restore_vcpu(sim_vm(1, initialized=False).vcpus[0], blob.vcpu(0))


# -- failures during the write -----------------------------------------------------------


class Faulty:
    """A transport over a SimVcpu that fails one SET, or lies on one GET (and has no
    ``host`` attribute, so restore has to infer the destination's firmware)."""

    def __init__(self, inner: SimVcpu, *, fail_set: int | None = None,
                 lie_get: int | None = None) -> None:
        self.inner = inner
        self.fail_set = fail_set
        self.lie_get = lie_get

    def reg_list(self) -> tuple[int, ...]:
        return self.inner.reg_list()

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs([reg_id])[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        out = self.inner.get_regs(reg_ids)
        return [v ^ 1 if r == self.lie_get else v for r, v in zip(reg_ids, out, strict=True)]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs([(reg_id, value)])

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        for rid, value in items:
            if rid == self.fail_set:
                raise RegError(errno.EIO, rid, "SET", "injected failure")
            self.inner.set_reg(rid, value)


def test_a_failing_write_names_the_register_and_the_count(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].call("EVENT_REGISTER", [EV0, 0x1000, 1, 0, 0])
    saved = save_vcpu(src.vcpus[0])
    dst = sim_vm(1)
    with pytest.raises(RestoreError) as e:
        restore_vcpu(Faulty(dst.vcpus[0], fail_set=EVENT_STATE_0), saved)
    order = sorted(saved.reg_ids)
    assert e.value.written == order.index(EVENT_STATE_0)
    assert e.value.reg_id == EVENT_STATE_0
    assert "SDEI_EVENT_STATE(0)" in str(e.value) and "EIO" in str(e.value)
    assert dst.vcpus[0].get_reg(order[e.value.written - 1]) == saved[order[e.value.written - 1]]


def test_a_wrong_read_back_is_reported(sim_vm: SimVmFactory) -> None:
    saved = save_vcpu(sim_vm(1).vcpus[0])
    with pytest.raises(RestoreError) as e:
        restore_vcpu(Faulty(sim_vm(1).vcpus[0], lie_get=PC_ID), saved)
    assert e.value.reg_id == PC_ID and "read back" in str(e.value)


def test_workarounds_are_not_compared_on_read_back(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1, host=firmware.HOST_LINUX_6_12)  # WA3 0
    blob = save_vm(src.vcpus)
    dst = sim_vm(1, host=firmware.HOST_LINUX_6_18_NEOVERSE)  # WA3 1: safer, reads back 1
    restore_vm(dst.vcpus, blob)
    assert dst.vcpus[0].get_reg(WA3) == 1


def test_inferred_host_restores_like_the_known_one(sim_vm: SimVmFactory) -> None:
    src = sim_vm(1)
    src.vcpus[0].call("EVENT_REGISTER", [EV0, 0x1000, 1, 0, 0])
    saved = save_vcpu(src.vcpus[0])
    dst = sim_vm(1)
    restore_vcpu(Faulty(dst.vcpus[0]), saved)
    assert save_vcpu(dst.vcpus[0]) == saved


# -- live migration of nested handlers ---------------------------------------------------


def nested_vm() -> SimVm:
    """vCPU 0 inside a critical handler that interrupted a normal one, driven by real calls."""
    vm = SimVm(2)
    v, other = vm.vcpus
    assert v.call("EVENT_REGISTER", [EV0, NORMAL_EP, 0xA0, 0, 0]).ret == Ret.SUCCESS
    assert v.call("EVENT_REGISTER", [EV1, CRITICAL_EP, 0xA1, 0, 0]).ret == Ret.SUCCESS
    assert v.call("EVENT_ENABLE", [EV0]).ret == Ret.SUCCESS
    assert v.call("EVENT_ENABLE", [EV1]).ret == Ret.SUCCESS
    assert v.call("PE_UNMASK").ret == Ret.SUCCESS
    assert other.call("EVENT_SIGNAL", [EV0, v.mpidr]).ret == Ret.SUCCESS
    v.cpu.write({**{r: 0x100 + r.value for r in CONTEXT_GPRS}, CpuReg.X20: 0x2020,
                 CpuReg.SP: 0x8_0000, CpuReg.PC: 0x40_0000, CpuReg.PSTATE: 0x6000_0000,
                 CpuReg.VBAR_EL1: 0xFFFF_8000_0001_0000})  # interrupted at EL0t
    assert v.dispatch() == SW_SIGNALED
    assert v.cpu[CpuReg.PC] == NORMAL_EP
    v.cpu.write({CpuReg.X7: 0x777, CpuReg.PC: NORMAL_EP + 0x40})  # the normal handler works
    assert v.inject(EV1)
    assert v.dispatch() == ASYNC_PF
    assert v.cpu[CpuReg.PC] == CRITICAL_EP
    assert v.state.event(SW_SIGNALED).running and v.state.event(ASYNC_PF).running
    return vm


def finish(vm: SimVm) -> list[tuple[int, int, int, int]]:
    """Complete both handlers: the critical one with COMPLETE, the normal one (after reading
    its context) with COMPLETE_AND_RESUME. Returns what the guest saw at each step."""
    v = vm.vcpus[0]
    seen = []
    v.cpu.write({CpuReg.X9: 0x99})
    assert v.call("EVENT_CONTEXT", [7]).ret == 0x777  # the critical handler's interrupted x7
    out = v.call(Function.EVENT_COMPLETE, [0])
    assert out.completed == ASYNC_PF
    seen.append(v.cpu.read([CpuReg.X0, CpuReg.X7, CpuReg.PC, CpuReg.PSTATE]))
    assert v.call("EVENT_CONTEXT", [3]).ret == 0x103  # back in the normal handler
    out = v.call(Function.EVENT_COMPLETE_AND_RESUME, [RESUME])
    assert out.completed == SW_SIGNALED
    seen.append(v.cpu.read([CpuReg.X3, CpuReg.PC, CpuReg.ELR_EL1, CpuReg.SPSR_EL1]))
    assert v.dispatch() is None
    return [(a, b, c, d) for a, b, c, d in map(dict.values, seen)]


def test_migrate_a_critical_handler_nested_on_a_normal_one(sim_vm: SimVmFactory) -> None:
    src = nested_vm()
    wire = save_vm(src.vcpus).to_bytes()
    dst = sim_vm(2)
    restore_vm(dst.vcpus, Blob.from_bytes(wire))
    assert registers(dst) == registers(src)
    assert dst.machine.states() == src.machine.states()

    seen_dst = finish(dst)
    seen_src = finish(src)
    assert seen_dst == seen_src
    # Back in the normal handler: its x0 (the event number 0), x7, PC and entry PSTATE
    # (interrupted 0x60000000 with EL1h and DAIF set).
    assert seen_src[0] == (EV0, 0x777, NORMAL_EP + 0x40, 0x6000_03C5)
    assert seen_src[1] == (0x103, RESUME, 0x40_0000, 0x6000_0000)
    assert registers(dst) == registers(src)
    assert dst.machine.states() == src.machine.states()
    assert dst.vcpus[0].get_regs(list(SDEI_REG_IDS)) == src.vcpus[0].get_regs(
        list(SDEI_REG_IDS))


def test_migrate_nested_then_migrate_again_mid_completion(sim_vm: SimVmFactory) -> None:
    src = nested_vm()
    mid = sim_vm(2)
    restore_vm(mid.vcpus, Blob.from_bytes(save_vm(src.vcpus).to_bytes()))
    v = mid.vcpus[0]
    assert v.call(Function.EVENT_COMPLETE, [0]).completed == ASYNC_PF
    dst = sim_vm(2)
    restore_vm(dst.vcpus, Blob.from_json(save_vm(mid.vcpus).to_json()))
    assert dst.vcpus[0].call(Function.EVENT_COMPLETE, [0]).completed == SW_SIGNALED
    assert dst.vcpus[0].cpu[CpuReg.PC] == 0x40_0000
    assert dst.vcpus[0].cpu[CpuReg.X20] == 0x2020  # never saved by SDEI: a core register


def test_saved_registers_are_a_mapping_of_the_listed_ids() -> None:
    blob = save_vm(nested_vm().vcpus)
    regs = blob.vcpu(0)
    assert isinstance(regs, VcpuRegisters)
    assert regs[EVENT_STATE_0] == 0b111  # REGISTERED | ENABLED | RUNNING
    assert regs[CONTEXT_0_3] == 0x103


# -- registers wider and narrower than 64 bits -------------------------------------------

# Real arm64 ids (written out): what KVM_GET_REG_LIST reports besides U64 registers.
FPSR = 0x6020_0000_0010_00D4    # core fp_regs.fpsr, U32
FPCR = 0x6020_0000_0010_00D5    # core fp_regs.fpcr, U32
VREG = tuple(0x6040_0000_0010_0054 + 4 * n for n in range(4))  # fp_regs.vregs[0..3], U128
ZREG = (0x6080_0000_0015_0000, 0x6080_0000_0015_0020)  # SVE_ZREG(0, 0), (1, 0), U2048
U64_WORD = (1 << 64) - 1
WIDE_LIST = (PC_ID, *VREG, FPSR, FPCR, *ZREG)
"""In KVM's order: core registers (V0-V3 after pc, then fpsr/fpcr), then SVE."""


class WideVcpu:
    """A tiny vCPU-like transport: a fixed register list of U32, U64, U128 and U2048 ids,
    values stored as integers of the register's width, and KVM's width rule on SET (a value
    that does not fit is refused before anything is stored, as the real bindings' ERANGE)."""

    def __init__(self) -> None:
        self.values = dict.fromkeys(WIDE_LIST, 0)
        self.writes: list[int] = []

    def reg_list(self) -> tuple[int, ...]:
        return WIDE_LIST

    def get_reg(self, reg_id: int) -> int:
        if reg_id not in self.values:
            raise RegError(errno.ENOENT, reg_id, "GET")
        return self.values[reg_id]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        return [self.get_reg(r) for r in reg_ids]

    def set_reg(self, reg_id: int, value: int) -> None:
        if reg_id not in self.values:
            raise RegError(errno.ENOENT, reg_id, "SET")
        width = 8 << ((reg_id >> 52) & 0xF)
        if value < 0 or value >> width:
            raise RegError(errno.ERANGE, reg_id, "SET", f"does not fit {width} bits")
        self.values[reg_id] = value
        self.writes.append(reg_id)

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        for rid, value in items:
            self.set_reg(rid, value)


def widths(reg_id: int) -> st.SearchStrategy[int]:
    top = (1 << (8 << ((reg_id >> 52) & 0xF))) - 1
    edges = sorted({0, top, (top >> 1) + 1, top & U64_WORD, top & (1 << 64)})
    return st.one_of(st.integers(0, top), st.sampled_from(edges))  # all ones, top bit, word


wide_rows = st.tuples(*(widths(r) for r in WIDE_LIST))


@prop
@given(st.lists(wide_rows, min_size=1, max_size=3), st.booleans())
def test_wide_registers_save_and_restore(rows: list[tuple[int, ...]], as_json: bool) -> None:
    src = [WideVcpu() for _ in rows]
    for v, row in zip(src, rows, strict=True):
        v.values = dict(zip(WIDE_LIST, row, strict=True))
    blob = save_vm(src)
    assert blob.reg_ids == WIDE_LIST and blob.rows == tuple(rows)
    assert blob.row_words == 1 + 2 * 4 + 1 + 1 + 32 * 2
    wire = Blob.from_json(blob.to_json()) if as_json else Blob.from_bytes(blob.to_bytes())
    assert wire == blob
    dst = [WideVcpu() for _ in rows]
    results = restore_vm(dst, wire)
    for v, row, result in zip(dst, rows, results, strict=True):
        assert [v.values[r] for r in WIDE_LIST] == list(row)
        assert result.written == tuple(sorted(WIDE_LIST)) == tuple(v.writes)
    assert save_vm(dst) == blob


def test_a_value_too_wide_for_its_register_is_refused_before_any_write() -> None:
    v = WideVcpu()
    for reg, value, message in [
        (VREG[1], 1 << 128, "a 129-bit value does not fit its 16-byte register"),
        (ZREG[0], 1 << 2048, "a 2049-bit value does not fit its 256-byte register"),
        (FPSR, 1 << 32, "0x100000000 does not fit its 4-byte register"),
        (PC_ID, -1, "-1 is not an unsigned 64-bit value"),
        (VREG[0], -1, "-1 is not an unsigned 128-bit value"),
    ]:
        saved = dict.fromkeys(WIDE_LIST, 0) | {reg: value}
        with pytest.raises(RestoreError) as e:
            restore_vcpu(v, saved)
        assert e.value.reg_id == reg and e.value.written == 0
        assert f"saved value {message}" in str(e.value) and "nothing written" in str(e.value)
        assert v.writes == []


def test_plain_mapping_values_are_checked_before_any_write_on_the_sim(sim_vm: SimVmFactory) -> None:
    saved = save_vcpu(sim_vm(1).vcpus[0]).as_dict()
    for reg in (PC_ID, 0x6030_0000_0014_0000, EVENT_STATE_0):  # core, PSCI_VERSION, SDEI
        bad = saved | {reg: -1}
        v = sim_vm(1).vcpus[0]
        v.set_reg(PC_ID, 0x4444)
        with pytest.raises(RestoreError) as e:
            restore_vcpu(v, bad)
        assert e.value.reg_id == reg and e.value.written == 0
        assert "-1 is not an unsigned 64-bit value" in str(e.value)
        assert "more problem" not in str(e.value)  # reported once, not by every rule
        assert v.get_reg(PC_ID) == 0x4444
