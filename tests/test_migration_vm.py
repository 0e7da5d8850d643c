"""Whole-VM snapshots (``sdei_state.migration.vm``): guest memory with zero pages elided, the
version-2 blob with its sections (the construct declaration and the struct fast path agree),
backward compatibility with version 1, preflight and restore that refuse before writing."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vgic_fake import FakeVgic

from sdei_state.errors import BlobError, RestoreError
from sdei_state.migration import (
    Blob,
    MemoryRegion,
    VmSnapshot,
    preflight_snapshot,
    restore_memory,
    restore_vm_snapshot,
    save_memory,
    save_vgic,
    save_vm,
    save_vm_snapshot,
    wire,
)
from sdei_state.migration.memory import PAGE
from sdei_state.migration.sections import format_tables
from sdei_state.migration.vm import MPIDR_EL1
from sdei_state.vcpu.sim import SimVcpu, SimVm
from sdei_state.vmm.gic import GicLayout

prop = settings(max_examples=settings().max_examples * 3 // 10)


class Ram:
    """A memslot backed by a bytearray (``GuestRam``)."""

    def __init__(self, slot: int, guest_phys_addr: int, size: int, data: bytes = b"") -> None:
        self.slot, self.guest_phys_addr, self.size = slot, guest_phys_addr, size
        self.mem = bytearray(size)
        self.mem[:len(data)] = data
        self.writes = 0

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.mem[offset:offset + length])

    def write(self, offset: int, data: bytes) -> None:
        self.writes += 1
        self.mem[offset:offset + len(data)] = data


class WithMpidr:
    """A simulated vCPU that also answers MPIDR_EL1 (as a KVM vCPU lists it)."""

    def __init__(self, v: SimVcpu) -> None:
        self.v = v

    def reg_list(self) -> tuple[int, ...]:
        return self.v.reg_list()

    def get_reg(self, reg_id: int) -> int:
        return self.v.mpidr if reg_id == MPIDR_EL1 else self.v.get_reg(reg_id)

    def set_reg(self, reg_id: int, value: int) -> None:
        self.v.set_reg(reg_id, value)

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        return self.v.get_regs(reg_ids)

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        self.v.set_regs(items)


pages = st.lists(st.sampled_from([bytes(PAGE), b"\x01" * PAGE, bytes(PAGE - 1) + b"\xff",
                                  bytes(range(256)) * 16]), min_size=1, max_size=12)


@given(pages)
def test_memory_round_trip_keeps_only_nonzero_pages(ps: list[bytes]) -> None:
    data = b"".join(ps)
    region = save_memory(Ram(3, 0x4000_0000, len(data), data))
    assert region.contents() == data
    assert region.stored == sum(PAGE for p in ps if any(p))
    assert region == MemoryRegion.of_bytes(3, 0x4000_0000, data)
    dst = Ram(3, 0x4000_0000, len(data), b"\xaa" * len(data))  # not fresh: cleared too
    restore_memory([region], [dst])
    assert bytes(dst.mem) == data


def test_large_zero_memory_costs_nothing() -> None:
    ram = Ram(0, 0x4000_0000, 64 << 20)
    ram.mem[5 * PAGE:6 * PAGE] = b"\x07" * PAGE
    region = save_memory(ram)
    assert region.runs == ((5 * PAGE, b"\x07" * PAGE),)
    fresh = Ram(0, 0x4000_0000, 64 << 20)
    restore_memory([region], [fresh])
    assert fresh.writes == 1


def test_memory_region_refusals() -> None:
    bad: list[dict[str, object]] = [dict(size=100), dict(guest_phys_addr=1), dict(size=0),
           dict(runs=((1, b"x" * PAGE),)), dict(runs=((0, b""),)),
           dict(runs=((PAGE, b"x" * PAGE), (0, b"y" * PAGE))),
           dict(runs=((0, b"x" * PAGE), (PAGE, b"y" * PAGE))),
           dict(runs=((PAGE, b"x" * 2 * PAGE),)), dict(slot=-1)]
    for kw in bad:
        args: dict[str, object] = dict(slot=0, guest_phys_addr=0, size=2 * PAGE, runs=())
        args.update(kw)
        with pytest.raises(BlobError, match="memory"):
            MemoryRegion(**args)  # type: ignore[arg-type]
    with pytest.raises(RestoreError, match=r"nothing written.*slot 1"):
        restore_memory([MemoryRegion(0, 0, PAGE)], [Ram(1, 0, PAGE)])


def _snapshot(n: int = 2, mem: bytes = b"\x05" * PAGE + bytes(PAGE)) -> VmSnapshot:
    vm = SimVm(n)
    vcpus = [WithMpidr(v) for v in vm.vcpus]
    layout = GicLayout.default(n)
    gic = FakeVgic(layout, tuple(v.v.mpidr for v in vcpus))
    return save_vm_snapshot(vcpus, gic=gic, memory=[Ram(0, 0x4000_0000, len(mem), mem)])


def test_version_1_is_unchanged() -> None:
    blob = save_vm(SimVm(2).vcpus)
    snap = VmSnapshot(blob)
    assert snap.to_bytes() == blob.to_bytes()
    assert snap.to_bytes()[8:10] == b"\x01\x00"
    assert VmSnapshot.from_bytes(blob.to_bytes()) == snap


def test_version_2_round_trip_and_declaration_agree() -> None:
    snap = _snapshot()
    data = snap.to_bytes()
    assert data[8:10] == b"\x02\x00"
    assert VmSnapshot.from_bytes(data) == snap
    b = snap.vcpus
    secs = wire.unpack_sections(data)[3]
    assert [t for t, _ in secs] == [b"VGIC", b"MEMR"]
    assert wire.build_with_construct(b.reg_ids, b.rows, b.abi_version, secs) == data
    assert wire.parse_with_construct(data, sections=True) == wire.unpack_sections(data)
    with pytest.raises(BlobError, match=r"format version 2.*VmSnapshot.from_bytes"):
        Blob.from_bytes(data)
    with pytest.raises(BlobError, match="declaration"):
        Blob.parse_with_construct(data)


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def test_damaged_version_2_is_refused() -> None:
    data = _snapshot().to_bytes()
    body = data[:-4]
    rows_end = len(save_vm(SimVm(2).vcpus).to_bytes()) - 4
    head = rows_end + 4  # first section's head
    cases = {
        "unknown tag": _recrc(body[:head] + b"XXXX" + body[head + 4:]),
        "reserved": _recrc(body[:head + 4] + b"\x01" + body[head + 5:]),
        "past the end": _recrc(body[:head + 8] + struct.pack("<Q", 1 << 40) + body[head + 16:]),
        "trailing bytes": _recrc(body + bytes(8)),
        "corrupted": data[:-5] + bytes([data[-5] ^ 1]) + data[-4:],
        "truncated": data[:rows_end],
    }
    for what, bad in cases.items():
        with pytest.raises(BlobError, match=what):
            VmSnapshot.from_bytes(bad)


def test_section_payloads_are_checked() -> None:
    snap = _snapshot()
    b = snap.vcpus
    good = wire.unpack_sections(snap.to_bytes())[3]
    vgic = good[0][1]
    for payload, what in ((vgic + bytes(8), "VGIC section"), (vgic[:-8], "VGIC section"),
                          (good[1][1][:-1], "MEMR section")):
        secs = [(b"VGIC", payload), good[1]] if "VGIC" in what else [good[0], (b"MEMR", payload)]
        with pytest.raises(BlobError, match=what):
            VmSnapshot.from_bytes(wire.pack(b.reg_ids, b.rows, b.abi_version, secs))
    with pytest.raises(BlobError, match="second VGIC"):
        VmSnapshot.from_bytes(wire.pack(b.reg_ids, b.rows, b.abi_version,
                                        [good[0], good[0]]))


def test_docs_carry_the_section_tables() -> None:
    from test_migration_blob import DOC

    text = DOC.read_text()
    assert format_tables() in text
    assert wire.format_table() in text


@prop
@given(st.integers(1, 3), st.binary(min_size=1, max_size=64), st.integers(0, 7))
def test_restore_snapshot_into_a_fresh_vm(n: int, blob: bytes, page: int) -> None:
    mem = bytearray(8 * PAGE)
    mem[page * PAGE:page * PAGE + len(blob)] = blob
    src_vm = SimVm(n)
    src = [WithMpidr(v) for v in src_vm.vcpus]
    mpidrs = tuple(v.v.mpidr for v in src)
    sgic = FakeVgic(GicLayout.default(n), mpidrs)
    for key, a in sgic.table.items():
        if a.name.startswith("GICD_ISENABLER"):
            sgic.values[key] = len(blob)
    snap = save_vm_snapshot(src, gic=sgic, memory=[Ram(0, 0x4000_0000, len(mem), bytes(mem))])
    snap = VmSnapshot.from_bytes(snap.to_bytes())
    dst = [WithMpidr(v) for v in SimVm(n).vcpus]
    dgic = FakeVgic(GicLayout.default(n), mpidrs)
    ram = Ram(0, 0x4000_0000, len(mem))
    assert preflight_snapshot(snap, dst, gic=dgic, memory=[ram]).ok
    restore_vm_snapshot(dst, snap, gic=dgic, memory=[ram])
    assert bytes(ram.mem) == bytes(mem)
    assert save_vgic(dgic, mpidrs) == snap.vgic
    assert save_vm([d.v for d in dst]) == snap.vcpus


def test_restore_snapshot_refuses_before_writing() -> None:
    snap = _snapshot()
    dst = [WithMpidr(v) for v in SimVm(2).vcpus]
    mpidrs = tuple(v.v.mpidr for v in dst)
    cases = [
        (FakeVgic(GicLayout.default(2, nr_irqs=256), mpidrs), [Ram(0, 0x4000_0000, 2 * PAGE)],
         "nr_irqs"),
        (FakeVgic(GicLayout.default(2), mpidrs), [Ram(1, 0x4000_0000, 2 * PAGE)], "memslots"),
        (None, [Ram(0, 0x4000_0000, 2 * PAGE)], "the destination has none"),
    ]
    for gic, ram, what in cases:
        report = preflight_snapshot(snap, dst, gic=gic, memory=ram)
        assert not report.ok and any(what in str(p) for p in report.problems), report
        with pytest.raises(RestoreError, match="nothing written"):
            restore_vm_snapshot(dst, snap, gic=gic, memory=ram)
        assert all(r.writes == 0 for r in ram)
        assert gic is None or gic.log == []


def test_json_round_trip_and_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is "
                                     "not installed")
    from sdei_state.migration.blob_json import schema

    validator = jsonschema.Draft202012Validator(schema())
    snap = _snapshot()
    text = snap.to_json()
    obj = json.loads(text)
    assert obj["format"] == "sdei-state/blob/2" and set(obj) >= {"vgic", "memory"}
    validator.validate(obj)
    assert VmSnapshot.from_json(text) == snap
    plain = VmSnapshot(snap.vcpus)
    assert plain.to_json() == snap.vcpus.to_json()
    validator.validate(json.loads(plain.to_json()))
    assert VmSnapshot.from_json(plain.to_json()) == plain
    v1_with_memory = dict(obj, format="sdei-state/blob/1")
    assert not validator.is_valid(v1_with_memory)
    with pytest.raises(BlobError, match="unknown key"):
        VmSnapshot.from_json_obj(v1_with_memory)


def test_json_refusals_name_the_key() -> None:
    obj = json.loads(_snapshot().to_json())
    cases: list[tuple[dict[str, object], str]] = [
        (dict(obj, vgic=dict(obj["vgic"], extra=1)), "unknown key 'extra'"),
        (dict(obj, vgic={k: v for k, v in obj["vgic"].items() if k != "nr_irqs"}),
         "lacks key 'nr_irqs'"),
        (dict(obj, vgic=dict(obj["vgic"], values=[[1, 2]])), r"vgic.values\[0\]"),
        (dict(obj, vgic=dict(obj["vgic"], nr_irqs=100)), "nr_irqs"),
        (dict(obj, memory=[dict(obj["memory"][0], runs=[[0, "not base64!"]])]), "base64"),
        (dict(obj, memory=[dict(obj["memory"][0], size=True)]), r"memory\[0\].size"),
        (dict(obj, memory={}), "'memory' is not a list"),
    ]
    for bad, what in cases:
        with pytest.raises(BlobError, match=what):
            VmSnapshot.from_json(json.dumps(bad))


def test_a_vcpu_blob_reader_names_the_snapshot_reader() -> None:
    with pytest.raises(BlobError, match=r"whole-VM snapshot: read it with VmSnapshot.from_json"):
        Blob.from_json(_snapshot().to_json())
