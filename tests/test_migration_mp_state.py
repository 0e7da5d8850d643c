"""Each vCPU's power state in a whole-VM snapshot (the ``MPST`` section): saved from vCPUs that
offer ``KVM_{GET,SET}_MP_STATE``, round-tripped through bytes and JSON, refused when malformed
(naming the section or key, the vCPU and the value), restored after the registers, and left
alone by snapshots without it. The real-KVM run is tests/arm64/test_arm64_mp_state.py."""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.errors import BlobError, KvmError, RestoreError
from sdei_state.kvm import MpState
from sdei_state.migration import (
    VmSnapshot,
    preflight_snapshot,
    restore_vm_snapshot,
    save_vm,
    save_vm_snapshot,
    wire,
)
from sdei_state.migration.blob_json import schema
from sdei_state.migration.sections import MPST_PAYLOAD, TAG_MPST
from sdei_state.vcpu.sim import SimVcpu, SimVm
from sdei_state.vcpu.transport import MpStateVcpu, RegsPassThrough, mp_state_vcpus

prop = settings(max_examples=settings().max_examples * 3 // 10)
states = st.sampled_from(list(MpState))


class RegsOnly(RegsPassThrough):
    """A register view that does not offer the power state (as the provider's views)."""

    def __init__(self, v: SimVcpu) -> None:
        self.regs_of = v


def _powered(vm: SimVm, ss: Sequence[MpState]) -> SimVm:
    for v, s in zip(vm.vcpus, ss, strict=True):
        v.set_mp_state(s)
    return vm


def test_sim_vcpu_takes_arm64_states_only() -> None:
    v = SimVm(1).vcpus[0]
    assert isinstance(v, MpStateVcpu) and v.get_mp_state() is MpState.RUNNABLE
    for s in MpState:
        v.set_mp_state(int(s))
        assert v.get_mp_state() is s
    for bad in (3, 1 << 32, -1, True, "5", 5.0):
        with pytest.raises(KvmError, match=f"KVM_SET_MP_STATE: mp_state {bad!r} is none of"):
            v.set_mp_state(bad)  # type: ignore[arg-type]
    assert v.get_mp_state() is MpState.SUSPENDED


def test_only_vcpus_that_offer_it_are_read() -> None:
    vm = SimVm(2)
    assert mp_state_vcpus(vm.vcpus) == list(vm.vcpus)
    assert mp_state_vcpus([vm.vcpus[0], RegsOnly(vm.vcpus[1])]) is None
    assert save_vm_snapshot([RegsOnly(v) for v in vm.vcpus]).mp_states is None
    assert save_vm_snapshot(vm.vcpus, mp_state=()).mp_states is None
    views = [RegsOnly(v) for v in _powered(vm, [MpState.STOPPED] * 2).vcpus]
    assert save_vm_snapshot(views, mp_state=vm.vcpus).mp_states == (MpState.STOPPED,) * 2
    with pytest.raises(ValueError, match="mp_state: 1 vCPU"):
        save_vm_snapshot(views, mp_state=vm.vcpus[:1])


@prop
@given(st.lists(states, min_size=1, max_size=5))
def test_round_trip_bytes_and_json(ss: list[MpState]) -> None:
    vm = _powered(SimVm(len(ss)), ss)
    snap = save_vm_snapshot(vm.vcpus)
    assert snap.mp_states == tuple(ss)
    data = snap.to_bytes()
    assert data[8:10] == b"\x02\x00" and wire.unpack_sections(data)[3] == (
        (TAG_MPST, struct.pack(f"<{len(ss) + 1}I", len(ss), *ss)),)
    assert wire.build_with_construct(snap.vcpus.reg_ids, snap.vcpus.rows, 1,
                                     wire.unpack_sections(data)[3]) == data
    assert VmSnapshot.from_bytes(data) == snap
    obj = json.loads(snap.to_json())
    assert obj["format"] == "sdei-state/blob/2" and obj["mp_states"] == [int(s) for s in ss]
    assert VmSnapshot.from_json(snap.to_json()) == snap


@prop
@given(st.lists(states, min_size=1, max_size=4))
def test_restore_sets_each_vcpu_after_its_registers(ss: list[MpState]) -> None:
    src = _powered(SimVm(len(ss)), ss)
    snap = VmSnapshot.from_bytes(save_vm_snapshot(src.vcpus).to_bytes())
    dst = SimVm(len(ss))
    assert preflight_snapshot(snap, dst.vcpus).ok
    restore_vm_snapshot(dst.vcpus, snap)
    assert [v.get_mp_state() for v in dst.vcpus] == ss
    assert save_vm(dst.vcpus) == snap.vcpus


def test_old_snapshots_load_and_leave_power_states_alone() -> None:
    vm = SimVm(2)
    blob = save_vm(vm.vcpus)
    old = VmSnapshot(blob)
    assert old.to_bytes() == blob.to_bytes() and old.mp_states is None
    assert json.loads(old.to_json())["format"] == "sdei-state/blob/1"
    dst = _powered(SimVm(2), [MpState.RUNNABLE, MpState.STOPPED])
    restore_vm_snapshot(dst.vcpus, VmSnapshot.from_bytes(old.to_bytes()))
    assert [v.get_mp_state() for v in dst.vcpus] == [MpState.RUNNABLE, MpState.STOPPED]


def _with_mpst(payload: bytes, n: int = 2, times: int = 1) -> bytes:
    b = save_vm(SimVm(n).vcpus)
    return wire.pack(b.reg_ids, b.rows, b.abi_version, [(TAG_MPST, payload)] * times)


@pytest.mark.parametrize(("payload", "times", "says"), [
    (struct.pack("<3I", 2, 0, 7), 1, r"MPST section: vCPU 1: mp_state 7 is none of 0 RUNNABLE, "
                                     r"5 STOPPED, 10 SUSPENDED"),
    (struct.pack("<2I", 1, 5), 1, r"MPST section: 1 power state\(s\) for 2 vCPU\(s\)"),
    (struct.pack("<4I", 3, 0, 0, 0), 1, r"MPST section: 3 power state\(s\) for 2 vCPU\(s\)"),
    (struct.pack("<3I", 2, 0, 0) + bytes(4), 1, "MPST section refused by its declaration"),
    (struct.pack("<2I", 2, 0), 1, "MPST section refused by its declaration"),
    (struct.pack("<3I", 2, 0, 5), 2, "section 1: a second MPST section"),
])
def test_malformed_sections_are_refused(payload: bytes, times: int, says: str) -> None:
    with pytest.raises(BlobError, match=says):
        VmSnapshot.from_bytes(_with_mpst(payload, times=times))


def test_malformed_json_is_refused() -> None:
    obj = json.loads(save_vm_snapshot(SimVm(2).vcpus).to_json())
    for bad, says in (([0], r"'mp_states': 1 power state\(s\) for 2"),
                      ([0, 9], "'mp_states': vCPU 1: mp_state 9 is none of"),
                      ([0, True], "'mp_states': vCPU 1: mp_state True is none of"),
                      ("RUNNABLE", "'mp_states': 'RUNNABLE' is not a list")):
        with pytest.raises(BlobError, match=says):
            VmSnapshot.from_json(json.dumps(dict(obj, mp_states=bad)))
    with pytest.raises(BlobError, match="unknown key"):
        VmSnapshot.from_json(json.dumps(dict(obj, format="sdei-state/blob/1")))
    with pytest.raises(BlobError, match=r"VmSnapshot.mp_states: vCPU 0: mp_state 2"):
        VmSnapshot(save_vm(SimVm(1).vcpus), mp_states=(2,))  # type: ignore[arg-type]


def test_schema_names_the_same_states() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (the test extra) is "
                                     "not installed")
    sch = schema()
    assert sch["properties"]["mp_states"]["items"]["enum"] == [int(s) for s in MpState]
    v = jsonschema.Draft202012Validator(sch)
    obj = json.loads(save_vm_snapshot(_powered(SimVm(2), [MpState.RUNNABLE,
                                                          MpState.STOPPED]).vcpus).to_json())
    v.validate(obj)
    assert not v.is_valid(dict(obj, mp_states=[0, 3]))
    assert not v.is_valid(dict(obj, format="sdei-state/blob/1"))


def test_preflight_names_each_vcpu_that_cannot_take_it() -> None:
    snap = save_vm_snapshot(_powered(SimVm(2), [MpState.RUNNABLE, MpState.STOPPED]).vcpus)
    dst = SimVm(2)
    views = [RegsOnly(v) for v in dst.vcpus]
    report = preflight_snapshot(snap, views)
    assert [str(p) for p in report.problems] == [
        f"vCPU {i}: power state {s} saved, but the destination vCPU has no KVM_SET_MP_STATE "
        "(pass its kvm.Vcpu as mp_state=)" for i, s in enumerate(("RUNNABLE", "STOPPED"))]
    with pytest.raises(RestoreError, match=r"nothing written: vCPU 0: power state RUNNABLE"):
        restore_vm_snapshot(views, snap)
    assert not preflight_snapshot(snap, dst.vcpus, mp_state=dst.vcpus[:1]).ok
    assert preflight_snapshot(snap, views, mp_state=dst.vcpus).ok
    restore_vm_snapshot(views, snap, mp_state=dst.vcpus)
    assert dst.vcpus[1].get_mp_state() is MpState.STOPPED


def test_docs_table_comes_from_the_declaration() -> None:
    assert [s.name for s in MPST_PAYLOAD.subcons if s.name] == ["nr_vcpus", "mp_states"]
