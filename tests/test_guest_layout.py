"""The guest memory layout, the result records and the doorbell protocol."""

from __future__ import annotations

import dataclasses
import re
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.guest.doorbell import (
    Bell,
    BellError,
    BellKind,
    bell_address,
    bell_code,
    parse_code,
    parse_mmio,
)
from sdei_state.guest.layout import (
    LAYOUT,
    MAX_MAIN_CALLS,
    MAX_RECORD_CALLS,
    MAX_SLOTS,
    RECORD_CALLS,
    RECORD_FIELDS,
    RECORD_SIZE,
    RESULTS_USED,
    FaultRecord,
    Layout,
    LayoutError,
    Record,
    fault_offset,
    record_offset,
)


def test_default_layout_matches_the_lab() -> None:
    assert LAYOUT.base == LAYOUT.entry == 0x4000_0000
    assert LAYOUT.doorbell == 0x1000_0000
    assert LAYOUT.vectors % 0x800 == 0 and LAYOUT.alt_vectors % 0x800 == 0
    assert LAYOUT.mem_size % 0x10000 == 0
    assert not LAYOUT.in_memslot(LAYOUT.doorbell)
    assert LAYOUT.in_memslot(LAYOUT.stack_top - 16, 16)
    assert LAYOUT.results + RESULTS_USED <= LAYOUT.stack_top - 0x1000  # room for the stack


def test_record_and_area_offsets() -> None:
    assert len(RECORD_FIELDS) * 8 <= RECORD_CALLS
    assert record_offset("x0") == 0 and record_offset("x17") == 0x88
    assert record_offset("sp") == 0x90 and record_offset("count") == 0xC8
    assert fault_offset("vector") == 0 and fault_offset("count") == 0x28
    assert RECORD_SIZE == RECORD_CALLS + 8 * MAX_RECORD_CALLS
    assert LAYOUT.handler_record(1) - LAYOUT.handler_record(0) == RECORD_SIZE
    assert LAYOUT.main_result(MAX_MAIN_CALLS - 1) < LAYOUT.resume_record
    assert LAYOUT.resume_record + RECORD_SIZE <= LAYOUT.fault_record
    assert LAYOUT.handler_record(MAX_SLOTS - 1) + RECORD_SIZE == LAYOUT.results + RESULTS_USED
    with pytest.raises(KeyError, match="no record field 'x18'"):
        record_offset("x18")
    with pytest.raises(KeyError, match="no fault-record field 'pc'"):
        fault_offset("pc")
    with pytest.raises(LayoutError, match=re.escape("handler slot 4 outside 0..3")):
        LAYOUT.handler_record(MAX_SLOTS)
    with pytest.raises(LayoutError, match=re.escape("main call 128 outside 0..127")):
        LAYOUT.main_result(MAX_MAIN_CALLS)


@pytest.mark.parametrize(("changes", "message"), [
    ({"base": 0x4000_1000}, "layout.base = 0x40001000 is not 0x10000-aligned"),
    ({"mem_size": 0x8000}, "layout.mem_size = 0x8000 is not 0x10000-aligned"),
    ({"vectors": 0x4000_2400}, "layout.vectors = 0x40002400 is not 0x800-aligned"),
    ({"stack_top": 0x4000_FFF8}, "layout.stack_top = 0x4000fff8 is not 0x10-aligned"),
    ({"doorbell": 0x4000_8000}, "doorbell window 0x40008000..0x40010000 overlaps the memslot"),
    ({"handlers": 0x4000_2400}, "a vector table (0x800 bytes) overlaps the handlers"),
    ({"alt_handlers": 0x4000_4900}, "same offset from their vector tables"),
    ({"results": 0x4000_F000}, "layout.results + used = 0x40011000 lies above layout.stack_top"),
    ({"stack_top": 0x4002_0000}, "layout.stack_top = 0x40020000 lies above layout.base + mem"),
    ({"vectors": -1}, "layout.vectors = -1 is not a 48-bit guest address"),
    ({"base": True}, "layout.base = True is not a 48-bit guest address"),
])
def test_bad_layouts_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(LayoutError) as e:
        dataclasses.replace(LAYOUT, **changes)
    assert message in str(e.value)


def test_another_valid_layout() -> None:
    lay = Layout(base=0x8000_0000, vectors=0x8000_2000, handlers=0x8000_2800,
                 alt_vectors=0x8000_4000, alt_handlers=0x8000_4800, code_end=0x8000_6000,
                 results=0x8000_8000, stack_top=0x8001_0000, doorbell=0x9000_0000)
    assert lay.end == 0x8001_0000


def _record_bytes(layout: Layout, addr: int, values: list[int]) -> bytearray:
    mem = bytearray(layout.mem_size)
    struct.pack_into(f"<{len(values)}Q", mem, addr - layout.base, *values)
    return mem


def test_record_parse_reads_every_field() -> None:
    addr = LAYOUT.handler_record(2)
    fields = [0x100 + n for n in range(len(RECORD_FIELDS))]
    calls = [0xCA11_0000 + n for n in range(5)]
    mem = _record_bytes(LAYOUT, addr, fields + [0] * (RECORD_CALLS // 8 - len(fields)) + calls)
    rec = Record.parse(mem, LAYOUT, addr, 5)
    assert rec.x == tuple(fields[:18])
    assert (rec.sp, rec.nzcv, rec.daif, rec.currentel, rec.spsel, rec.elr_el1, rec.spsr_el1,
            rec.count) == tuple(fields[18:])
    assert rec.calls == tuple(calls)
    assert rec.pstate == rec.nzcv | rec.daif | rec.currentel | rec.spsel
    with pytest.raises(ValueError, match="ncalls = 97"):
        Record.parse(mem, LAYOUT, addr, MAX_RECORD_CALLS + 1)
    with pytest.raises(ValueError, match="outside the memslot"):
        Record.parse(mem, LAYOUT, LAYOUT.doorbell, 0)
    with pytest.raises(ValueError, match="does not reach"):
        Record.parse(mem[:0x100], LAYOUT, addr, 0)


def test_fault_record_parse() -> None:
    mem = _record_bytes(LAYOUT, LAYOUT.fault_record, [1, 2, 3, 4, 5, 6])
    assert FaultRecord.parse(mem, LAYOUT) == FaultRecord(1, 2, 3, 4, 5, 6)


# -- doorbells -----------------------------------------------------------------------------

EXPECTED_CODES = [
    (BellKind.MAIN_CALL, 0, 0, 0x000), (BellKind.MAIN_CALL, 0, 127, 0x07F),
    (BellKind.IDLE, 0, 0, 0x100), (BellKind.RESUMED, 0, 0, 0x101),
    (BellKind.RESUME_CALL, 0, 0, 0x180), (BellKind.RESUME_CALL, 0, 95, 0x1DF),
    (BellKind.HANDLER_ENTRY, 0, 0, 0x200), (BellKind.HANDLER_CALL, 0, 0, 0x201),
    (BellKind.HANDLER_CALL, 1, 95, 0x360), (BellKind.HANDLER_EXIT, 2, 0, 0x4FE),
    (BellKind.COMPLETE_RETURNED, 3, 0, 0x5FF), (BellKind.FAULT, 0, 0, 0xF00),
    (BellKind.FAULT, 0, 15, 0xF0F),
]


@pytest.mark.parametrize(("kind", "slot", "index", "code"), EXPECTED_CODES)
def test_doorbell_codes(kind: BellKind, slot: int, index: int, code: int) -> None:
    assert bell_code(kind, slot, index) == code
    assert parse_code(code, 7) == Bell(kind, slot if kind.name.startswith(("HANDLER", "COMPLETE"))
                                       else 0, index, 7)
    assert bell_address(LAYOUT, kind, slot, index) == LAYOUT.doorbell + 8 * code


BELLS = st.one_of(
    st.builds(Bell, st.just(BellKind.MAIN_CALL), st.just(0), st.integers(0, MAX_MAIN_CALLS - 1)),
    st.builds(Bell, st.sampled_from([BellKind.IDLE, BellKind.RESUMED])),
    st.builds(Bell, st.just(BellKind.RESUME_CALL), st.just(0),
              st.integers(0, MAX_RECORD_CALLS - 1)),
    st.builds(Bell, st.sampled_from([BellKind.HANDLER_ENTRY, BellKind.HANDLER_EXIT,
                                     BellKind.COMPLETE_RETURNED]), st.integers(0, MAX_SLOTS - 1)),
    st.builds(Bell, st.just(BellKind.HANDLER_CALL), st.integers(0, MAX_SLOTS - 1),
              st.integers(0, MAX_RECORD_CALLS - 1)),
    st.builds(Bell, st.just(BellKind.FAULT), st.just(0), st.integers(0, 15)),
)


@settings(max_examples=200)
@given(bell=BELLS, data=st.integers(0, (1 << 64) - 1))
def test_doorbell_round_trip_through_an_mmio_exit(bell: Bell, data: int) -> None:
    bell = dataclasses.replace(bell, data=data)
    addr = LAYOUT.doorbell + 8 * bell.code
    assert parse_mmio(LAYOUT, addr, data.to_bytes(8, "little")) == bell
    assert parse_mmio(LAYOUT, addr, data) == bell
    assert str(bell).startswith(bell.kind.name)


def test_every_code_is_either_assigned_once_or_refused() -> None:
    seen = {}
    for code in range(0x1000):
        try:
            bell = parse_code(code)
        except BellError as e:
            assert f"doorbell code {code:#x} is not assigned" in str(e)
            continue
        assert bell.code == code
        seen[(bell.kind, bell.slot, bell.index)] = code
    assert len(seen) == MAX_MAIN_CALLS + 2 + MAX_RECORD_CALLS + 16 + MAX_SLOTS * (
        3 + MAX_RECORD_CALLS)


@pytest.mark.parametrize(("args", "message"), [
    ((LAYOUT.doorbell, 0, 8, False), "MMIO read of 8 bytes at 0x10000000: doorbells are writes"),
    ((LAYOUT.doorbell, 0, 4), "doorbells are 8-byte stores"),
    ((LAYOUT.doorbell - 8, 0), "outside the doorbell window 0x10000000..0x10008000"),
    ((LAYOUT.doorbell + 0x8000, 0), "outside the doorbell window"),
    ((LAYOUT.doorbell + 4, 0), "not 8-byte aligned"),
    ((LAYOUT.doorbell + 8 * 0x102, 0), "doorbell code 0x102 is not assigned"),
    ((LAYOUT.doorbell + 8 * 0x600, 0), "doorbell code 0x600 is not assigned"),
])
def test_bad_mmio_exits_are_named(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(BellError) as e:
        parse_mmio(LAYOUT, *args)
    assert message in str(e.value)


@pytest.mark.parametrize(("kind", "slot", "index", "message"), [
    (BellKind.MAIN_CALL, 0, 128, "MAIN_CALL: index = 128 outside 0..127"),
    (BellKind.HANDLER_CALL, 4, 0, "HANDLER_CALL: slot = 4 outside 0..3"),
    (BellKind.HANDLER_CALL, 0, 96, "HANDLER_CALL: index = 96 outside 0..95"),
    (BellKind.FAULT, 0, 16, "FAULT: index = 16 outside 0..15"),
])
def test_bad_bell_fields(kind: BellKind, slot: int, index: int, message: str) -> None:
    with pytest.raises(BellError, match=re.escape(message)):
        bell_code(kind, slot, index)


def test_terminal_kinds() -> None:
    assert {k for k in BellKind if k.terminal} == {BellKind.FAULT, BellKind.COMPLETE_RETURNED}
