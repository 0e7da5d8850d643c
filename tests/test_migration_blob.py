"""Migration blobs: binary and JSON forms, the construct declaration vs the struct fast path,
registers of every KVM size (U8 .. U2048), and refusal of truncated, corrupted, wrong-version
and inconsistent blobs."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.errors import BlobError
from sdei_state.migration import (
    BLOB,
    Blob,
    VcpuRegisters,
    blob_json,
    blob_size,
    format_table,
    save_vm,
)
from sdei_state.migration.wire import reg_words, table_words
from sdei_state.regs import ids
from sdei_state.vcpu.sim import SimVm

U64 = (1 << 64) - 1
# 80 examples in the dev profile, 800 in ci (tests/conftest.py).
prop = settings(max_examples=settings().max_examples * 8 // 10)
DOC = Path(__file__).resolve().parent.parent / "docs" / "migration.md"

HEADER = 24  # magic 8, format 2, abi 2, nr_regs 4, nr_vcpus 4, row_words 4 (written out)

# Real arm64 ids of every width a VMM meets (written out, not taken from the module under test).
V0 = 0x6040_0000_0010_0054      # core fp_regs.vregs[0], U128
V31 = 0x6040_0000_0010_0090     # core fp_regs.vregs[31], U128
FPSR = 0x6020_0000_0010_00D4    # core fp_regs.fpsr, U32
ZREG0 = 0x6080_0000_0015_0000   # KVM_REG_ARM64_SVE_ZREG(0, 0), U2048
PREG0 = 0x6050_0000_0015_0400   # KVM_REG_ARM64_SVE_PREG(0, 0), U256
PC = 0x6030_0000_0010_0040      # core regs.pc, U64


def reg_id(size: int, low: int) -> int:
    """An arm64 id of the given KVM_REG_SIZE field (0..8: U8..U2048)."""
    return 0x6000_0000_0000_0000 | size << 52 | (low & 0x0FFF_FFFF)


def values_of(size: int) -> st.SearchStrategy[int]:
    """Values of a register of size field ``size``, with the edges (0, all ones, top bit)."""
    top = (1 << (8 << size)) - 1
    return st.one_of(st.integers(0, top), st.sampled_from([0, 1, top, top >> 1, (top >> 1) + 1]))


@st.composite
def blobs(draw: st.DrawFn, max_regs: int = 12, max_vcpus: int = 5) -> Blob:
    n = draw(st.integers(1, max_regs))
    lows = draw(st.lists(st.integers(0, 0x0FFF_FFFF), min_size=n, max_size=n, unique=True))
    sizes = draw(st.lists(st.sampled_from([0, 1, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8]),
                          min_size=n, max_size=n))
    table = tuple(reg_id(s, low) for s, low in zip(sizes, lows, strict=True))
    v = draw(st.integers(1, max_vcpus))
    rows = tuple(tuple(draw(values_of(s)) for s in sizes) for _ in range(v))
    return Blob(table, rows)


def small_blob() -> Blob:
    return Blob((reg_id(3, 0x140000), reg_id(3, 0x100002), reg_id(2, 0x110001)),
                ((1, 2, 3), (U64, 0, 0xFFFF_FFFF)))


def rebuild(data: bytes, **fields: int) -> bytes:
    """The blob with header fields changed and a valid CRC, to test checks behind the CRC."""
    magic, fmt, abi, n, v, w = struct.unpack_from("<8sHHIII", data)
    vals = {"format_version": fmt, "abi_version": abi, "nr_regs": n, "nr_vcpus": v,
            "row_words": w} | fields
    head = struct.pack("<8sHHIII", magic, vals["format_version"], vals["abi_version"],
                       vals["nr_regs"], vals["nr_vcpus"], vals["row_words"])
    return with_crc(head + data[HEADER:-4])


def with_crc(body: bytes | bytearray) -> bytes:
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def wide_blob() -> Blob:
    """Two vCPUs with a U32, a U64, two U128, a U256 and a U2048 register."""
    table = (FPSR, PC, V0, V31, PREG0, ZREG0)
    return Blob(table, (
        (0xFFFF_FFFF, U64, (1 << 128) - 1, 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210,
         1 << 255, (1 << 2048) - 1),
        (0, 1, 1 << 64, U64, 0, 0xAB << 2040),
    ))


# -- round trips and the declaration -----------------------------------------------------


@prop
@given(blobs())
def test_binary_round_trip(blob: Blob) -> None:
    assert Blob.from_bytes(blob.to_bytes()) == blob


@prop
@given(blobs())
def test_json_round_trip(blob: Blob) -> None:
    assert Blob.from_json(blob.to_json()) == blob
    assert Blob.from_json(blob.to_json(indent=2).encode()) == blob


@prop
@given(blobs())
def test_fast_path_equals_the_construct_declaration(blob: Blob) -> None:
    data = blob.to_bytes()
    assert data == blob.build_with_construct()
    assert Blob.parse_with_construct(data) == blob
    parsed = BLOB.parse(data)
    assert parsed.body.value.header.nr_regs == len(blob.reg_ids)
    assert list(parsed.body.value.reg_ids) == list(blob.reg_ids)


@prop
@given(blobs(max_regs=4, max_vcpus=2), st.data())
def test_construct_and_fast_path_refuse_the_same_damage(blob: Blob, data: st.DataObject) -> None:
    raw = bytearray(blob.to_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(BlobError):
        Blob.from_bytes(bytes(raw))
    with pytest.raises(BlobError):
        Blob.parse_with_construct(bytes(raw))


def test_exact_layout() -> None:
    data = small_blob().to_bytes()
    assert data[:8] == b"SDEIREGS"
    assert struct.unpack_from("<HHIII", data, 8) == (1, 1, 3, 2, 3)
    assert struct.unpack_from("<3Q", data, HEADER) == small_blob().reg_ids
    assert struct.unpack_from("<6Q", data, HEADER + 24) == (1, 2, 3, U64, 0, 0xFFFF_FFFF)
    assert struct.unpack_from("<I", data, len(data) - 4)[0] == zlib.crc32(data[:-4])
    assert len(data) == HEADER + 8 * 3 + 8 * 6 + 4


def test_exact_layout_of_wide_registers() -> None:
    blob = wide_blob()
    data = blob.to_bytes()
    w = 1 + 1 + 2 + 2 + 4 + 32
    assert blob.row_words == w == table_words(blob.reg_ids)
    assert struct.unpack_from("<HHIII", data, 8) == (1, 1, 6, 2, w)
    row0 = struct.unpack_from(f"<{w}Q", data, HEADER + 8 * 6)
    assert row0[:6] == (0xFFFF_FFFF, U64, U64, U64, 0xFEDC_BA98_7654_3210,
                        0x0123_4567_89AB_CDEF)  # each U128 low word first
    assert row0[6:10] == (0, 0, 0, 1 << 63)
    assert row0[10:] == (U64,) * 32
    row1 = struct.unpack_from(f"<{w}Q", data, HEADER + 8 * 6 + 8 * w)
    assert row1[2:4] == (0, 1) and row1[-1] == 0xAB << 56 and not any(row1[10:-1])
    assert len(data) == blob_size(6, 2, w) == HEADER + 8 * 6 + 8 * w * 2 + 4


@pytest.mark.parametrize(("reg", "words"), [
    (reg_id(0, 1), 1), (FPSR, 1), (PC, 1), (V0, 2), (PREG0, 4), (reg_id(6, 1), 8),
    (reg_id(7, 1), 16), (ZREG0, 32)])
def test_a_register_takes_its_size_in_words_and_at_least_one(reg: int, words: int) -> None:
    assert reg_words(reg) == words
    assert len(Blob((reg,), ((0,),)).to_bytes()) == HEADER + 8 + 8 * words + 4


@pytest.mark.parametrize("vcpus", [1, 64, 4096])
def test_size_is_about_eight_bytes_per_register_per_vcpu(vcpus: int) -> None:
    n = 92
    size = blob_size(n, vcpus)
    assert size == blob_size(n, vcpus, n) == 28 + 8 * n + 8 * n * vcpus
    per_vcpu = size / vcpus
    assert 8 * n <= per_vcpu <= 8 * n + (28 + 8 * n) / vcpus


@prop
@given(blobs(max_vcpus=3))
def test_size_is_eight_bytes_per_word_per_vcpu(blob: Blob) -> None:
    n, v = len(blob.reg_ids), blob.nr_vcpus
    w = sum(max(1, ids.reg_size(r) // 8) for r in blob.reg_ids)
    assert len(blob.to_bytes()) == blob_size(n, v, w) == 28 + 8 * n + 8 * w * v


def test_a_simulated_vm_blob_has_the_expected_size() -> None:
    vm = SimVm(4)
    data = save_vm(vm.vcpus).to_bytes()
    assert len(data) == 28 + 8 * 93 * 5  # 37 core, 7 firmware, 47 SDEI, SCTLR_EL1, VBAR_EL1


# -- corruption --------------------------------------------------------------------------


@pytest.mark.parametrize("blob", [small_blob(), wide_blob()], ids=["u64", "wide"])
def test_every_byte_flip_is_detected(blob: Blob) -> None:
    data = blob.to_bytes()
    for pos in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[pos] ^= mask
            with pytest.raises(BlobError):
                Blob.from_bytes(bytes(bad))


def test_a_flipped_value_byte_is_a_crc_error() -> None:
    bad = bytearray(small_blob().to_bytes())
    bad[HEADER + 30] ^= 0x10
    with pytest.raises(BlobError, match="CRC32"):
        Blob.from_bytes(bytes(bad))


@pytest.mark.parametrize("blob", [small_blob(), wide_blob()], ids=["u64", "wide"])
def test_truncation_at_every_length_is_detected(blob: Blob) -> None:
    data = blob.to_bytes()
    for length in range(len(data)):
        with pytest.raises(BlobError, match="truncated"):
            Blob.from_bytes(data[:length])


def test_trailing_bytes_are_refused() -> None:
    with pytest.raises(BlobError, match="trailing bytes"):
        Blob.from_bytes(small_blob().to_bytes() + b"\0")


def test_wrong_magic() -> None:
    data = b"NOTSDEI!" + small_blob().to_bytes()[8:]
    with pytest.raises(BlobError, match="magic"):
        Blob.from_bytes(data)


def test_wrong_format_version() -> None:
    with pytest.raises(BlobError, match="format version 2"):
        Blob.from_bytes(rebuild(small_blob().to_bytes(), format_version=2))


def test_wrong_abi_version() -> None:
    with pytest.raises(BlobError, match="ABI version 7"):
        Blob.from_bytes(rebuild(small_blob().to_bytes(), abi_version=7))
    with pytest.raises(BlobError, match="ABI version 2"):
        Blob(small_blob().reg_ids, small_blob().rows, abi_version=2)


def retyped(blob: Blob, col: int, new_id: int) -> bytes:
    """The blob's bytes with id table entry ``col`` replaced (valid CRC, header untouched)."""
    data = bytearray(blob.to_bytes()[:-4])
    struct.pack_into("<Q", data, HEADER + 8 * col, new_id)
    return with_crc(data)


def test_row_words_must_match_the_table() -> None:
    # The length agrees with the header; the table says 2 + 1 + 1 words, the header 3.
    data = retyped(small_blob(), 0, V0)
    with pytest.raises(BlobError, match="row_words is 3, but the register table of 3 "
                                        "registers takes 4 64-bit words per row"):
        Blob.from_bytes(data)
    with pytest.raises(BlobError, match="declaration"):
        Blob.parse_with_construct(data)
    # And the other way: a U128 register retyped U64 leaves the header one word long.
    data = retyped(wide_blob(), 2, PC | 0x100)
    with pytest.raises(BlobError, match=r"row_words is 42, but .* takes 41"):
        Blob.from_bytes(data)
    with pytest.raises(BlobError, match="declaration"):
        Blob.parse_with_construct(data)


@pytest.mark.parametrize("fields", [{"nr_regs": 2}, {"nr_regs": 4}, {"nr_vcpus": 1},
                                    {"nr_vcpus": 3}, {"nr_regs": 0xFFFF_FFFF},
                                    {"row_words": 2}, {"row_words": 4}, {"row_words": 0},
                                    {"row_words": 0xFFFF_FFFF}])
def test_counts_inconsistent_with_the_length_are_refused(fields: dict[str, int]) -> None:
    with pytest.raises(BlobError, match="declares"):
        Blob.from_bytes(rebuild(small_blob().to_bytes(), **fields))


def test_construct_declaration_refuses_damage_too() -> None:
    data = small_blob().to_bytes()
    for bad in (data[:-1], data + b"\0", rebuild(data, row_words=4),
                b"X" + data[1:], data[:-4] + b"\0\0\0\0"):
        with pytest.raises(BlobError, match="declaration"):
            Blob.parse_with_construct(bad)


# -- inconsistent content ----------------------------------------------------------------


def test_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(BlobError, match="vCPU 1 has 2 values for a table of 3 registers"):
        Blob(small_blob().reg_ids, ((1, 2, 3), (1, 2)))


def test_duplicate_register_is_refused() -> None:
    rid = reg_id(3, 0x140000)
    with pytest.raises(BlobError, match="appears twice"):
        Blob((rid, rid), ((1, 2),))


def test_duplicate_register_in_a_binary_blob_is_refused() -> None:
    blob = small_blob()
    data = bytearray(blob.to_bytes())
    data[HEADER + 8:HEADER + 16] = data[HEADER:HEADER + 8]  # id #1 := id #0
    body = bytes(data[:-4])
    with pytest.raises(BlobError, match=r"PSCI_VERSION .* appears twice"):
        Blob.from_bytes(body + struct.pack("<I", zlib.crc32(body)))


def test_sizes_beyond_u2048_are_refused() -> None:
    for field in range(9, 16):
        with pytest.raises(BlobError, match=f"size field {field} .* U8 .. U2048"):
            Blob((reg_id(field, 0x100000),), ((0,),))
    with pytest.raises(BlobError, match="size field 9"):
        Blob.from_bytes(retyped(Blob((reg_id(8, 1),), ((0,),)), 0, reg_id(9, 1)))


@pytest.mark.parametrize(("reg", "value", "message"), [
    (FPSR, 1 << 32, r"fp_regs.fpsr.* = 0x100000000 does not fit its 4-byte register"),
    (reg_id(0, 1), 0x100, "0x100 does not fit its 1-byte register"),
    (V0, 1 << 128, r"vregs\[0\].* = a 129-bit value does not fit its 16-byte register"),
    (PREG0, 1 << 256, "a 257-bit value does not fit its 32-byte register"),
    (ZREG0, 1 << 2048, r"SVE_ZREG\(0, 0\).* = a 2049-bit value does not fit its 256-byte"),
])
def test_value_wider_than_its_register_is_refused(reg: int, value: int, message: str) -> None:
    with pytest.raises(BlobError, match=message):
        Blob((PC, reg), ((0, 0), (0, value)))
    with pytest.raises(BlobError, match=message):
        VcpuRegisters((reg,), (value,))
    obj = {"format": "sdei-state/blob/1", "abi_version": 1,
           "registers": [f"{reg:#018x}"], "vcpus": [[value]]}
    with pytest.raises(BlobError, match=message):
        Blob.from_json(json.dumps(obj))


@pytest.mark.parametrize("value", [-1, 1 << 64, True, "1", None])
def test_values_outside_u64_are_refused(value: object) -> None:
    with pytest.raises(BlobError, match="not an unsigned 64-bit value"):
        Blob((reg_id(3, 1),), ((value,),))  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, True, "1", None, 1.0])
def test_wide_values_must_be_unsigned_integers(value: object) -> None:
    with pytest.raises(BlobError, match="not an unsigned 128-bit value"):
        Blob((PC, V0), ((0, value),))  # type: ignore[arg-type]
    with pytest.raises(BlobError, match="not an unsigned 2048-bit value"):
        Blob((ZREG0,), ((value,),))  # type: ignore[arg-type]


def test_a_u64_register_in_a_wide_table_is_still_range_checked() -> None:
    with pytest.raises(BlobError, match=r"regs.pc.* = 18446744073709551616 is not an "
                                        "unsigned 64-bit value"):
        Blob((V0, PC), ((1 << 100, 1 << 64),))


def test_empty_blobs_are_refused() -> None:
    with pytest.raises(BlobError, match="no vCPU"):
        Blob((reg_id(3, 1),), ())
    with pytest.raises(BlobError, match="empty"):
        Blob((), ((),))
    with pytest.raises(BlobError, match="no vCPU"):
        Blob.from_vcpus([])


def test_vcpus_with_different_tables_do_not_make_a_blob() -> None:
    a = VcpuRegisters((reg_id(3, 1), reg_id(3, 2)), (0, 0))
    b = VcpuRegisters((reg_id(3, 2), reg_id(3, 1)), (0, 0))
    c = VcpuRegisters((reg_id(3, 1), reg_id(3, 3)), (0, 0))
    with pytest.raises(BlobError, match="another order"):
        Blob.from_vcpus([a, b])
    with pytest.raises(BlobError, match="vCPU 1 differs in 2 register"):
        Blob.from_vcpus([a, c])


def test_blob_is_frozen() -> None:
    blob = small_blob()
    with pytest.raises(dataclasses.FrozenInstanceError):
        blob.rows = ()  # type: ignore[misc]


# -- JSON --------------------------------------------------------------------------------


def test_json_shape() -> None:
    obj = json.loads(small_blob().to_json())
    assert obj == {"format": "sdei-state/blob/1", "abi_version": 1,
                   "registers": ["0x6030000000140000", "0x6030000000100002",
                                 "0x6020000000110001"],
                   "vcpus": [[1, 2, 3], [U64, 0, 0xFFFF_FFFF]]}


@pytest.mark.parametrize(("change", "message"), [
    ({"extra": 1}, "unknown key 'extra'"),
    ({"format": "sdei-state/blob/2"}, "format 'sdei-state/blob/2'"),
    ({"abi_version": 3}, "ABI version 3"),
    ({"abi_version": "1"}, "not an integer"),
    ({"registers": ["0x6030000000140000", "PSCI", "0x6020000000110001"]}, r"registers\[1\]"),
    ({"registers": "0x1"}, "not a list"),
    ({"vcpus": [[1, 2, 3], [1, 2]]}, "vCPU 1 has 2 values"),
    ({"vcpus": [[1, 2, 3], [1, 2, -3]]}, "not an unsigned 64-bit value"),
    ({"vcpus": [[1, 2, 3], [1, 2, 1.5]]}, "not an unsigned 64-bit value"),
    ({"vcpus": [1, 2, 3]}, "list of lists"),
    ({"vcpus": []}, "no vCPU"),
])
def test_bad_json_blobs_are_refused(change: dict[str, object], message: str) -> None:
    obj = json.loads(small_blob().to_json()) | change
    with pytest.raises(BlobError, match=message):
        Blob.from_json(json.dumps(obj))


def test_json_carries_wide_values_as_integers() -> None:
    blob = wide_blob()
    obj = json.loads(blob.to_json())
    assert obj["registers"][2:] == ["0x6040000000100054", "0x6040000000100090",
                                    "0x6050000000150400", "0x6080000000150000"]
    assert obj["vcpus"][0][2:] == [(1 << 128) - 1, 0x0123_4567_89AB_CDEF_FEDC_BA98_7654_3210,
                                   1 << 255, (1 << 2048) - 1]
    assert Blob.from_json(blob.to_json()) == blob
    assert Blob.from_bytes(blob.to_bytes()) == blob
    assert Blob.parse_with_construct(blob.to_bytes()) == blob
    assert blob.to_bytes() == blob.build_with_construct()


def test_json_missing_key_and_bad_text() -> None:
    obj = json.loads(small_blob().to_json())
    del obj["vcpus"]
    with pytest.raises(BlobError, match="lacks key 'vcpus'"):
        Blob.from_json_obj(obj)
    with pytest.raises(BlobError, match="not valid JSON"):
        Blob.from_json("{")
    with pytest.raises(BlobError, match="is an object"):
        Blob.from_json("[]")


# -- VcpuRegisters -----------------------------------------------------------------------


def test_vcpu_registers_is_an_ordered_mapping() -> None:
    regs = VcpuRegisters.from_pairs([(reg_id(3, 9), 90), (reg_id(3, 1), 10)])
    assert list(regs) == [reg_id(3, 9), reg_id(3, 1)]
    assert regs[reg_id(3, 1)] == 10 and reg_id(3, 9) in regs and reg_id(3, 2) not in regs
    assert dict(regs.items()) == regs.as_dict() == {reg_id(3, 9): 90, reg_id(3, 1): 10}
    assert list(regs.values()) == [90, 10]
    with pytest.raises(KeyError):
        regs[reg_id(3, 2)]
    assert small_blob().vcpu(1) == VcpuRegisters(small_blob().reg_ids, (U64, 0, 0xFFFF_FFFF))
    with pytest.raises(IndexError):
        small_blob().vcpu(2)


# -- documentation -----------------------------------------------------------------------


def test_docs_carry_the_generated_format_table() -> None:
    assert format_table() in DOC.read_text()


def test_construct_declaration_refuses_a_wrong_format_version() -> None:
    with pytest.raises(BlobError, match="declaration"):
        Blob.parse_with_construct(rebuild(small_blob().to_bytes(), format_version=2))


# -- JSON input limits and types ---------------------------------------------------------


def _doc(**change: object) -> str:
    obj = json.loads(small_blob().to_json()) | change
    return json.dumps(obj)


@pytest.mark.parametrize(("text", "message"), [
    (_doc(registers=["0x٦030000000140000", "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\] = '0x٦030000000140000' is not a register id"),
    (_doc(registers=["1", "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\] = '1' is not a register id"),
    (_doc(registers=[" 0x10", "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\] = ' 0x10'"),
    (_doc(registers=["0x1_0", "0x6030000000100002", "0x6020000000110001"]), r"registers\[0\]"),
    (_doc(registers=[-1, "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\] = -1 is not a register id"),
    (_doc(registers=[1 << 64, "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\] = 18446744073709551616"),
    (_doc(registers=["0x" + "f" * 17, "0x6030000000100002", "0x6020000000110001"]),
     r"registers\[0\]"),
    (_doc(registers=[True, "0x6030000000100002", "0x6020000000110001"]), r"registers\[0\]"),
    (_doc(abi_version=True), "abi_version = True is not an integer"),
    (_doc(abi_version=1.0), "abi_version = 1.0 is not an integer"),
    (_doc(format=["x"] * 1000), r"format \['x', 'x',.*\.\.\. is not supported"),
    (_doc(vcpus=[[1, 2, 3], 7]), r"vcpus\[1\] = 7"),
    (_doc(vcpus=[[1, 2, 3], [1, 2, [3]]]), r"\[3\] is not an unsigned 64-bit value"),
    ('{"vcpus": [], "vcpus": []}', "key 'vcpus' twice"),
    ('{"a": NaN}', "NaN, which is not JSON"),
    ('{"a": -Infinity}', "-Infinity, which is not JSON"),
    ('{"a": ' + "9" * 618 + "}", "an integer of 618 digits: no register value has more than 617"),
    ('{"a": -' + "9" * 5000 + "}", "an integer of 5000 digits"),
    ('{"a": ' * 100_000 + "}" * 100_000, "nested too deeply"),
    ("[" * 100_000, "nested too deeply"),
    (b"\xff\xfe\x00{", "not UTF-8: byte 0xff at offset 0"),
    (b'{"format": "\xff"}', "not UTF-8: byte 0xff at offset 12"),
    ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
    ("", "not valid JSON"),
])
def test_json_input_is_refused_with_a_typed_error(text: str | bytes, message: str) -> None:
    """Every bad JSON blob is a BlobError naming the key or value, in one short line: no
    KeyError, no RecursionError, no wrapping, no unbounded integer conversion."""
    with pytest.raises(BlobError, match=message) as e:
        Blob.from_json(text)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300


def test_json_accepts_integer_ids_and_the_widest_values() -> None:
    blob = wide_blob()
    obj = blob.to_json_obj()
    obj["registers"] = [int(r, 16) for r in obj["registers"]]
    assert Blob.from_json_obj(obj) == blob
    text = blob.to_json()
    assert str((1 << 2048) - 1) in text and Blob.from_json(text) == blob


def _schema_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is "
                                                          "not installed")
    schema = blob_json.schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@given(blobs())
@prop
def test_every_blob_validates_against_the_published_schema(blob: Blob) -> None:
    _schema_validator().validate(json.loads(blob.to_json()))


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=10), kids, max_size=4), max_leaves=12)


@given(st.data())
@prop
def test_what_the_schema_refuses_the_loader_refuses(data: st.DataObject) -> None:
    """The schema is not looser than the loader: a document it refuses, from_json refuses."""
    validator = _schema_validator()
    obj = json.loads(small_blob().to_json())
    key = data.draw(st.sampled_from([*obj, "extra"]))
    obj[key] = data.draw(_JSON)
    if not validator.is_valid(obj):
        with pytest.raises(BlobError):
            Blob.from_json(json.dumps(obj))
