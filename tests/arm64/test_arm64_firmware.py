"""The upstream firmware pseudo-registers on real arm64 KVM: values, errors, the run-once
lock, and a save/restore round trip between two VMs."""

from __future__ import annotations

import errno

import pytest

from sdei_state.errors import RegError, RestoreError
from sdei_state.kvm import Kvm, Vcpu
from sdei_state.kvm.exits import MmioExit
from sdei_state.migration import Blob, VcpuRegisters, restore_vm, save_vm
from sdei_state.regs.ids import KVM_REG_SIZE_MASK, KVM_REG_SIZE_U128, fw_feat_bmap_reg, fw_reg
from sdei_state.vcpu.transport import RegTransport

from .arm64_support import (
    BMAP_REGS,
    FW_REGS,
    PSCI_VERSION,
    STD_BMAP,
    STD_HYP_BMAP,
    VENDOR_HYP_BMAP,
    WORKAROUND_1,
    WORKAROUND_2,
    WORKAROUND_3,
    VcpuFactory,
    call_then_report,
    guest,
    is_firmware,
    name,
)

# What each firmware register may hold (arch/arm64/include/uapi/asm/kvm.h, hypercalls.c).
PSCI_VERSIONS = {0x2: "0.2", 0x10000: "1.0", 0x10001: "1.1", 0x10002: "1.2", 0x10003: "1.3"}
WA_1_3_LEVELS = {0: "NOT_AVAIL", 1: "AVAIL", 2: "NOT_REQUIRED"}
WA_2_LEVELS = {0: "NOT_AVAIL", 1: "UNKNOWN", 2: "AVAIL", 3: "NOT_REQUIRED"}
WA_2_ENABLED = 1 << 4
# The bits each bitmap knows on 6.1 .. 6.14, and its reset value (all known bits set).
BMAP_BITS = {STD_BMAP: 0b1, STD_HYP_BMAP: 0b1, VENDOR_HYP_BMAP: 0b11}


def decode(reg_id: int, value: int) -> str:
    """A firmware register value in words; ValueError for a value outside its ABI."""
    if reg_id == PSCI_VERSION:
        return f"PSCI {PSCI_VERSIONS[value]}"
    if reg_id in (WORKAROUND_1, WORKAROUND_3):
        return WA_1_3_LEVELS[value]
    if reg_id == WORKAROUND_2:
        level = WA_2_LEVELS[value & 0xF]
        if value & ~(0xF | WA_2_ENABLED) or (value & WA_2_ENABLED and level != "AVAIL"):
            raise ValueError(f"{value:#x}")
        return level + ("|ENABLED" if value & WA_2_ENABLED else "")
    if reg_id in BMAP_BITS:
        if value & ~BMAP_BITS[reg_id]:
            raise ValueError(f"unknown bits in {value:#x}")
        return f"{value:#x}"
    raise KeyError(name(reg_id))


def test_firmware_registers_decode_to_known_values(vcpu: Vcpu) -> None:
    listed = [r for r in vcpu.reg_list() if is_firmware(r)]
    assert set(FW_REGS) | set(BMAP_REGS) <= set(listed)
    values = dict(zip(listed, vcpu.get_regs(listed), strict=True))
    for rid, v in values.items():
        assert rid & KVM_REG_SIZE_MASK == 0x0030_0000_0000_0000, f"{name(rid)} is not U64"
        try:
            decode(rid, v)
        except (KeyError, ValueError) as e:
            pytest.fail(f"{name(rid)} = {v:#x} does not decode: {e}")
    # Reset values: the latest PSCI these kernels implement, every known service enabled.
    assert values[PSCI_VERSION] == 0x10001, decode(PSCI_VERSION, values[PSCI_VERSION])
    for rid, bits in BMAP_BITS.items():
        assert values[rid] == bits, name(rid)


@pytest.mark.parametrize("reg_id", [
    fw_reg(0x77), fw_feat_bmap_reg(0x77),
    fw_reg(0x100),  # the SDEI block: upstream KVM has no in-kernel SDEI
    (PSCI_VERSION & ~KVM_REG_SIZE_MASK) | KVM_REG_SIZE_U128,  # a known regno, not U64
])
def test_unknown_firmware_register_is_enoent(vcpu: Vcpu, reg_id: int) -> None:
    for op, call in (("GET", lambda: vcpu.get_reg(reg_id)),
                     ("SET", lambda: vcpu.set_reg(reg_id, 0))):
        with pytest.raises(RegError) as ei:
            call()
        assert (ei.value.errno, ei.value.reg_id, ei.value.op) == (errno.ENOENT, reg_id, op)


@pytest.mark.parametrize("bad", [0x0, 0x30000, 0xDEADBEEF, 0x10004])
def test_invalid_psci_version_is_einval_and_changes_nothing(vcpu: Vcpu, bad: int) -> None:
    before = vcpu.get_reg(PSCI_VERSION)
    with pytest.raises(RegError) as ei:
        vcpu.set_reg(PSCI_VERSION, bad)
    assert (ei.value.errno, ei.value.reg_id) == (errno.EINVAL, PSCI_VERSION)
    assert "PSCI_VERSION" in str(ei.value)
    assert vcpu.get_reg(PSCI_VERSION) == before


def test_legal_psci_versions_are_accepted(vcpu: Vcpu) -> None:
    for v in (0x10000, 0x2, 0x10001):
        vcpu.set_reg(PSCI_VERSION, v)
        assert vcpu.get_reg(PSCI_VERSION) == v


def test_bitmap_unknown_bit_is_einval(vcpu: Vcpu) -> None:
    for rid, bits in BMAP_BITS.items():
        with pytest.raises(RegError) as ei:
            vcpu.set_reg(rid, bits | 1 << 63)
        assert ei.value.errno == errno.EINVAL, name(rid)
        assert vcpu.get_reg(rid) == bits


def test_workaround_above_host_level_is_einval(vcpu: Vcpu) -> None:
    for rid in (WORKAROUND_1, WORKAROUND_3):
        host = vcpu.get_reg(rid)
        vcpu.set_reg(rid, host)  # the host's own level is always accepted
        for v in range(host + 1, 4):
            with pytest.raises(RegError) as ei:
                vcpu.set_reg(rid, v)
            assert ei.value.errno == errno.EINVAL, f"{name(rid)} host {host}, wrote {v}"


def test_bitmap_change_after_first_run_is_ebusy(kvm: Kvm) -> None:
    with guest(kvm, call_then_report(0x84000000)) as g:
        vcpu = g.vcpu
        vcpu.set_reg(STD_HYP_BMAP, 0)  # before the first run: any known bits
        vcpu.set_reg(STD_HYP_BMAP, 1)
        assert isinstance(vcpu.run(), MmioExit)
        for rid, bits in BMAP_BITS.items():
            with pytest.raises(RegError) as ei:
                vcpu.set_reg(rid, 0)
            assert (ei.value.errno, ei.value.reg_id) == (errno.EBUSY, rid), name(rid)
            vcpu.set_reg(rid, bits)  # the same value is still accepted
        # PSCI_VERSION is not locked by the first run (6.1 and 6.12 behave so).
        vcpu.set_reg(PSCI_VERSION, 0x10000)
        assert vcpu.get_reg(PSCI_VERSION) == 0x10000


# -- save / restore ---------------------------------------------------------------------------

def firmware_values(vcpu: RegTransport) -> dict[int, int]:
    ids = [r for r in vcpu.reg_list() if is_firmware(r)]
    return dict(zip(ids, vcpu.get_regs(ids), strict=True))


def test_firmware_save_restore_between_two_vms(make_vcpu: VcpuFactory) -> None:
    """sdei_state.migration on real KVM: save every listed register of one VM's vCPU,
    restore into another's; the firmware registers arrive (and the rest round-trips)."""
    src = make_vcpu()
    src.set_regs([(PSCI_VERSION, 0x10000), (STD_BMAP, 0), (VENDOR_HYP_BMAP, 0b01)])
    blob = Blob.from_bytes(save_vm([src]).to_bytes())
    saved = {r: v for r, v in blob.vcpu(0).items() if is_firmware(r)}
    assert saved[PSCI_VERSION] == 0x10000 and saved[VENDOR_HYP_BMAP] == 0b01
    dst = make_vcpu()
    assert firmware_values(dst) != saved, "the destination starts from different values"
    restore_vm([dst], blob)
    assert firmware_values(dst) == saved


def test_restore_refused_value_names_the_register(make_vcpu: VcpuFactory) -> None:
    """A bitmap bit the destination kernel does not know (STD_BMAP bit 1, SDEI) is refused
    before anything is written, naming the register."""
    src = make_vcpu()
    regs = dict(save_vm([src]).vcpu(0).items())
    regs[STD_BMAP] |= 0b10
    dst = make_vcpu()
    before = firmware_values(dst)
    with pytest.raises(RestoreError) as ei:
        restore_vm([dst], Blob.from_vcpus([VcpuRegisters.from_pairs(list(regs.items()))]))
    assert ei.value.reg_id == STD_BMAP and "STD_BMAP" in str(ei.value)
    assert firmware_values(dst) == before


def test_psci_version_reaches_the_guest(kvm: Kvm) -> None:
    """A guest's PSCI_VERSION call (hvc #0) returns what the register says."""
    for version in (None, 0x10000):
        with guest(kvm, call_then_report(0x84000000)) as g:
            if version is not None:
                g.vcpu.set_reg(PSCI_VERSION, version)
            want = g.vcpu.get_reg(PSCI_VERSION)
            ex = g.vcpu.run()
            assert isinstance(ex, MmioExit) and ex.is_write, ex
            assert ex.value == want == (version or 0x10001)
