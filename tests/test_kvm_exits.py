"""Typed exits decoded from a ``struct kvm_run`` filled the way the kernel fills it."""

from __future__ import annotations

import dataclasses

import pytest

from sdei_state.kvm import ffi
from sdei_state.kvm.exits import (
    ArmNisvExit,
    ExitReason,
    FailEntryExit,
    HypercallExit,
    InternalErrorExit,
    MmioExit,
    OtherExit,
    SystemEventExit,
    decode_exit,
)
from sdei_state.kvm.ffi import FfiBackend


@pytest.fixture(params=["abi", "api"])
def be(request: pytest.FixtureRequest) -> FfiBackend:
    if request.param == "api" and ffi.api_unavailable_reason():
        pytest.skip(f"cffi API mode: {ffi.api_unavailable_reason()}")
    return ffi.backend(request.param)


def test_mmio(be: FfiBackend) -> None:
    run = be.ffi.new("struct kvm_run *")
    run.exit_reason = ExitReason.MMIO
    run.mmio.phys_addr = 0x10000000
    run.mmio.data = list((0x10001).to_bytes(8, "little"))
    run.mmio.len = 4
    run.mmio.is_write = 1
    ex = decode_exit(run)
    assert ex == MmioExit(6, 0x10000000, b"\x01\x00\x01\x00", True)
    assert ex.value == 0x10001
    run.mmio.data = list(b"\xff" * 8)
    assert ex.value == 0x10001, "an exit does not refer to kvm_run after decoding"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ex.phys_addr = 0  # type: ignore[misc]


def test_hypercall(be: FfiBackend) -> None:
    run = be.ffi.new("struct kvm_run *")
    run.exit_reason = ExitReason.HYPERCALL
    run.hypercall.nr = 0xC4000020
    run.hypercall.flags = 1
    ex = decode_exit(run)
    assert isinstance(ex, HypercallExit) and ex.nr == 0xC4000020 and ex.smc
    assert ex.args == (0,) * 6
    run.hypercall.flags = 0
    assert not decode_exit(run).smc  # type: ignore[attr-defined]


def test_system_event_old_and_new_layout(be: FfiBackend) -> None:
    run = be.ffi.new("struct kvm_run *")
    run.exit_reason = ExitReason.SYSTEM_EVENT
    run.system_event.type = 2
    run.system_event.data[0] = 1  # pre-5.18 kernels: 'flags', ndata left 0
    assert decode_exit(run) == SystemEventExit(24, 2, (1,))
    run.system_event.ndata = 2
    run.system_event.data[1] = 7
    assert decode_exit(run) == SystemEventExit(24, 2, (1, 7))


def test_other_kinds(be: FfiBackend) -> None:
    run = be.ffi.new("struct kvm_run *")
    run.exit_reason = ExitReason.FAIL_ENTRY
    run.fail_entry.hardware_entry_failure_reason = 0x21
    run.fail_entry.cpu = 1
    assert decode_exit(run) == FailEntryExit(9, 0x21, 1)
    run.exit_reason = ExitReason.INTERNAL_ERROR
    run.internal.suberror = 3
    run.internal.ndata = 1
    run.internal.data[0] = 9
    assert decode_exit(run) == InternalErrorExit(17, 3, (9,))
    run.exit_reason = ExitReason.ARM_NISV
    run.arm_nisv.esr_iss = 0x40
    run.arm_nisv.fault_ipa = 0x8000
    assert decode_exit(run) == ArmNisvExit(28, 0x40, 0x8000)
    run.exit_reason = ExitReason.HLT
    assert decode_exit(run) == OtherExit(5) and OtherExit(5).name == "HLT"
    assert OtherExit(999).name == "exit reason 999"


def test_run_layout(be: FfiBackend) -> None:
    f = be.ffi
    assert f.offsetof("struct kvm_run", "exit_reason") == 8
    assert f.offsetof("struct kvm_run", "mmio") == 32
    assert f.offsetof("struct kvm_run", "hypercall") == 32
    assert f.offsetof("struct kvm_run_hypercall", "flags") == 64  # kvm_run + 96
    assert f.sizeof("struct kvm_run") == 32 + 256
