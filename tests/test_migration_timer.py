"""The restore order of the architected timer (``save.TIMER_ORDER``): counters, compare
values, controls, before every other register; the rest ascending."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdei_state.errors import RestoreError
from sdei_state.migration.save import TIMER_ORDER, restore_order, restore_vcpu
from sdei_state.regs.ids import REG_PC, REG_VBAR_EL1, sys_reg

CNTV_CTL, CNTV_CVAL, CNTVCT = sys_reg(3, 3, 14, 3, 1), sys_reg(3, 3, 14, 0, 2), \
    sys_reg(3, 3, 14, 3, 2)
CNTP_CTL, CNTP_CVAL, CNTPCT = sys_reg(3, 3, 14, 2, 1), sys_reg(3, 3, 14, 2, 2), \
    sys_reg(3, 3, 14, 0, 1)


def test_the_swapped_encoding_is_why() -> None:
    assert CNTV_CVAL < CNTVCT, "ascending ids would write CVAL before the counter"
    assert TIMER_ORDER == (CNTVCT, CNTPCT, CNTV_CVAL, CNTP_CVAL, CNTV_CTL, CNTP_CTL)


@given(st.lists(st.sampled_from([*TIMER_ORDER, REG_PC, REG_VBAR_EL1, 0x6030000000140000]),
                unique=True))
def test_restore_order(ids: list[int]) -> None:
    order = restore_order(ids)
    assert sorted(order) == sorted(ids)
    timer = [r for r in order if r in TIMER_ORDER]
    assert order[:len(timer)] == timer == [r for r in TIMER_ORDER if r in ids]
    rest = order[len(timer):]
    assert rest == sorted(rest)


class _Recorder:
    """A transport over a fixed register set that records the order of SETs."""

    def __init__(self, values: dict[int, int]) -> None:
        self.values = dict(values)
        self.order: list[int] = []

    def reg_list(self) -> tuple[int, ...]:
        return tuple(self.values)

    def get_reg(self, reg_id: int) -> int:
        return self.values[reg_id]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.order.append(reg_id)
        self.values[reg_id] = value

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        return [self.values[r] for r in reg_ids]

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        for rid, v in items:
            self.set_reg(rid, v)


def test_restore_writes_the_counter_before_the_compare_value() -> None:
    saved = {REG_PC: 0x4000_0000, CNTV_CTL: 1, CNTV_CVAL: 0x1234_5678, CNTVCT: 0x1000_0000,
             REG_VBAR_EL1: 0x4000_0800}
    t = _Recorder(dict.fromkeys(saved, 0))
    result = restore_vcpu(t, saved)
    assert t.order == [CNTVCT, CNTV_CVAL, CNTV_CTL, REG_PC, REG_VBAR_EL1]
    assert result.written == tuple(t.order)


def test_istatus_is_not_compared_on_read_back() -> None:
    """KVM computes CNTV_CTL.ISTATUS at each read: a timer saved just before it fired reads
    back fired. Any other difference still fails the read-back."""
    saved = {CNTVCT: 100, CNTV_CVAL: 101, CNTV_CTL: 0x1}

    class Fires(_Recorder):
        def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
            return [v | 0x4 if r == CNTV_CTL else v for r, v in zip(
                reg_ids, super().get_regs(reg_ids), strict=True)]

    restore_vcpu(Fires(dict.fromkeys(saved, 0)), saved)

    class Flips(_Recorder):
        def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
            return [v ^ 0x2 if r == CNTV_CTL else v for r, v in zip(
                reg_ids, super().get_regs(reg_ids), strict=True)]

    with pytest.raises(RestoreError, match="CNTV_CTL"):
        restore_vcpu(Flips(dict.fromkeys(saved, 0)), saved)
