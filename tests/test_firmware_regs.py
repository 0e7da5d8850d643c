"""Upstream firmware registers: declarations, value decoding, SET rules, migration checks.

The SET tables marked "lab" are what Linux 6.12 (and 6.1) answered in the lab
(/work/shared/lab/README.md sections 4 and 5); the others follow hypercalls.c's rules.
"""

from __future__ import annotations

import dataclasses
import errno

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.regs import firmware as fw
from sdei_state.regs import ids
from sdei_state.regs.firmware import (
    HOST_LINUX_6_1,
    HOST_LINUX_6_12,
    HOST_LINUX_6_18_NEOVERSE,
    HOST_SDEI,
    PSCI_VERSION,
    SMCCC_ARCH_WORKAROUND_1,
    SMCCC_ARCH_WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3,
    STD_BMAP,
    STD_HYP_BMAP,
    VENDOR_HYP_BMAP,
    VENDOR_HYP_BMAP_2,
    FwKind,
    HostFirmware,
    PsciVersion,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
EINVAL, ENOENT, EBUSY = errno.EINVAL, errno.ENOENT, errno.EBUSY


def set_(reg_id: int, value: int, host: HostFirmware = HOST_LINUX_6_12, *, current: int = 0,
         has_run: bool = False, psci_0_2: bool = True, protected: bool = False) -> int | None:
    return fw.check_set(reg_id, value, host=host, current=current, has_run=has_run,
                        psci_0_2=psci_0_2, protected=protected)


# --- declarations ----------------------------------------------------------------------------


def test_ids_and_kernel_order() -> None:
    assert [r.id for r in fw.FIRMWARE_REGS] == [
        0x6030000000140000, 0x6030000000140001, 0x6030000000140002, 0x6030000000140003,
        0x6030000000160000, 0x6030000000160001, 0x6030000000160002, 0x6030000000160003,
    ]
    assert [r.macro for r in fw.FIRMWARE_REGS] == [
        "KVM_REG_ARM_PSCI_VERSION", "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1",
        "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2", "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3",
        "KVM_REG_ARM_STD_BMAP", "KVM_REG_ARM_STD_HYP_BMAP", "KVM_REG_ARM_VENDOR_HYP_BMAP",
        "KVM_REG_ARM_VENDOR_HYP_BMAP_2",
    ]
    assert all(ids.parse(r.macro) == r.id for r in fw.FIRMWARE_REGS)


def test_declared_kinds_bits_and_storage() -> None:
    kinds = {r.name: (r.kind, r.stored) for r in fw.FIRMWARE_REGS}
    assert kinds == {
        "PSCI_VERSION": (FwKind.PSCI_VERSION, True),
        "SMCCC_ARCH_WORKAROUND_1": (FwKind.WORKAROUND, False),
        "SMCCC_ARCH_WORKAROUND_2": (FwKind.WORKAROUND, False),
        "SMCCC_ARCH_WORKAROUND_3": (FwKind.WORKAROUND, False),
        "STD_BMAP": (FwKind.BITMAP, True),
        "STD_HYP_BMAP": (FwKind.BITMAP, True),
        "VENDOR_HYP_BMAP": (FwKind.BITMAP, True),
        "VENDOR_HYP_BMAP_2": (FwKind.BITMAP, True),
    }
    std = fw.declaration(STD_BMAP)
    assert std.bits == ((0, "TRNG_V1_0"), (1, "SDEI"))
    assert std.upstream_mask == 0x1 and std.bit_mask == 0x3
    assert std.bit("SDEI") == 1 << fw.STD_BIT_SDEI == 0x2
    assert fw.declaration(VENDOR_HYP_BMAP).bit("PTP") == 0x2
    assert fw.declaration(VENDOR_HYP_BMAP_2).reset_known is False
    with pytest.raises(ValueError, match="STD_HYP_BMAP has no bit 'SDEI'"):
        fw.declaration(STD_HYP_BMAP).bit("SDEI")
    assert [fw.is_stored(r) for r in (PSCI_VERSION, SMCCC_ARCH_WORKAROUND_2, VENDOR_HYP_BMAP)] \
        == [True, False, True]
    with pytest.raises(ValueError, match=r"KVM_REG_ARM_FW_REG\(0x110\).* is not an upstream"):
        fw.is_stored(ids.fw_reg(0x110))
    assert not fw.is_firmware_reg(ids.core_reg("pc"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        std.upstream_mask = 3  # type: ignore[misc]


# --- value decoding --------------------------------------------------------------------------

DECODE = [
    (PSCI_VERSION, 0x10001, "PSCI 1.1"),
    (PSCI_VERSION, 0x10003, "PSCI 1.3"),
    (PSCI_VERSION, 0x2, "PSCI 0.2"),
    (PSCI_VERSION, 0x1, "PSCI 0.1"),
    (PSCI_VERSION, 0x0, "0x0 (not a PSCI version KVM knows)"),
    (PSCI_VERSION, 0xDEADBEEF, "0xdeadbeef (not a PSCI version KVM knows)"),
    (SMCCC_ARCH_WORKAROUND_1, 0, "NOT_AVAIL"),
    (SMCCC_ARCH_WORKAROUND_1, 1, "AVAIL"),
    (SMCCC_ARCH_WORKAROUND_1, 2, "NOT_REQUIRED"),
    (SMCCC_ARCH_WORKAROUND_1, 7, "0x7 (undefined level)"),
    (SMCCC_ARCH_WORKAROUND_1, 0x12, "0x12 (undefined level)"),
    (SMCCC_ARCH_WORKAROUND_2, 1, "UNKNOWN"),
    (SMCCC_ARCH_WORKAROUND_2, 3, "NOT_REQUIRED"),
    (SMCCC_ARCH_WORKAROUND_2, 0x12, "AVAIL|ENABLED"),
    (SMCCC_ARCH_WORKAROUND_2, 0x24, "0x24 (undefined level)"),
    (SMCCC_ARCH_WORKAROUND_3, 1, "AVAIL"),
    (SMCCC_ARCH_WORKAROUND_3, 3, "0x3 (undefined level)"),
    (STD_BMAP, 0x1, "TRNG_V1_0"),
    (STD_BMAP, 0x3, "TRNG_V1_0|SDEI"),
    (STD_BMAP, 0x0, "none"),
    (STD_BMAP, 0x8000000000000001, "TRNG_V1_0|bit63"),
    (STD_HYP_BMAP, 0x1, "PV_TIME"),
    (VENDOR_HYP_BMAP, 0x3, "FUNC_FEAT|PTP"),
    (VENDOR_HYP_BMAP_2, 0x2, "DISCOVER_IMPL_CPUS"),
]


@pytest.mark.parametrize(("reg_id", "value", "text"), DECODE)
def test_decode_value(reg_id: int, value: int, text: str) -> None:
    assert fw.decode_value(reg_id, value) == text


def test_decode_value_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="not an upstream firmware register"):
        fw.decode_value(ids.sys_reg(3, 0, 12, 0, 0), 0)
    with pytest.raises(ValueError, match="STD_BMAP = -1 is not an unsigned 64-bit value"):
        fw.decode_value(STD_BMAP, -1)


def _bits_back(reg_id: int, text: str) -> int:
    """Independent reading of decode_value's bitmap text."""
    if text == "none":
        return 0
    names = {n: b for b, n in fw.declaration(reg_id).bits}
    value = 0
    for part in text.split("|"):
        value |= 1 << (int(part[3:]) if part.startswith("bit") else names[part])
    return value


@settings(max_examples=300)
@given(st.sampled_from(fw.BITMAPS), U64)
def test_bitmap_decoding_is_lossless(reg_id: int, value: int) -> None:
    assert _bits_back(reg_id, fw.decode_value(reg_id, value)) == value


@settings(max_examples=300)
@given(st.sampled_from(fw.FIRMWARE_REGS), U64)
def test_decode_value_total(decl: fw.FirmwareReg, value: int) -> None:
    assert fw.decode_value(decl.id, value)


# --- SET: what the lab measured on 6.12 and 6.1 -----------------------------------------------

LAB_BEFORE_RUN = [  # (reg, value, errno) in the probe's order, vCPU with PSCI_0_2, not run
    (PSCI_VERSION, 0x10000, None),
    (PSCI_VERSION, 0x2, None),
    (PSCI_VERSION, 0x0, EINVAL),
    (PSCI_VERSION, 0x30000, EINVAL),
    (PSCI_VERSION, 0xDEADBEEF, EINVAL),
    (PSCI_VERSION, 0x10001, None),
    (ids.fw_reg(0x77), 0, ENOENT),
    (SMCCC_ARCH_WORKAROUND_1, 0x2, None),
    (SMCCC_ARCH_WORKAROUND_1, 0x7, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 0x0, None),
    (SMCCC_ARCH_WORKAROUND_2, 0x7, EINVAL),
    (SMCCC_ARCH_WORKAROUND_3, 0x0, None),
    (SMCCC_ARCH_WORKAROUND_3, 0x7, EINVAL),
    (STD_BMAP, 0x0, None),
    (STD_BMAP, 0x8000000000000001, EINVAL),
    (STD_BMAP, 0x1, None),
    (STD_HYP_BMAP, 0x0, None),
    (STD_HYP_BMAP, 0x8000000000000001, EINVAL),
    (STD_HYP_BMAP, 0x1, None),
    (VENDOR_HYP_BMAP, 0x0, None),
    (VENDOR_HYP_BMAP, 0x8000000000000003, EINVAL),
    (VENDOR_HYP_BMAP, 0x3, None),
]


@pytest.mark.parametrize("host", [HOST_LINUX_6_12, HOST_LINUX_6_1], ids=lambda h: h.name)
@pytest.mark.parametrize(("reg_id", "value", "err"), LAB_BEFORE_RUN)
def test_lab_set_before_run(host: HostFirmware, reg_id: int, value: int, err: int | None) -> None:
    assert set_(reg_id, value, host, current=host.reset_value(reg_id) if host.has(reg_id) else 0) \
        == err


LAB_AFTER_RUN = [  # (reg, current, value, errno): section F of kvm_run_hvc
    (STD_HYP_BMAP, 0x1, 0x0, EBUSY),
    (STD_HYP_BMAP, 0x1, 0x1, None),
    (VENDOR_HYP_BMAP, 0x3, 0x1, EBUSY),
    (VENDOR_HYP_BMAP, 0x3, 0x3, None),
    (PSCI_VERSION, 0x10001, 0x10000, None),  # PSCI_VERSION has no run-once lock
    (PSCI_VERSION, 0x10001, 0x10001, None),
]


@pytest.mark.parametrize(("reg_id", "current", "value", "err"), LAB_AFTER_RUN)
def test_lab_set_after_run(reg_id: int, current: int, value: int, err: int | None) -> None:
    assert set_(reg_id, value, current=current, has_run=True) == err


# --- SET: PSCI_VERSION -----------------------------------------------------------------------

PSCI_CASES = [  # (host, value, psci_0_2, protected, errno)
    (HOST_LINUX_6_12, 0x1, False, False, None),    # 0.1 only without PSCI_0_2
    (HOST_LINUX_6_12, 0x1, True, False, EINVAL),
    (HOST_LINUX_6_12, 0x2, False, False, EINVAL),  # 0.2+ only with PSCI_0_2
    (HOST_LINUX_6_12, 0x10001, False, False, EINVAL),
    (HOST_LINUX_6_12, 0x10000, True, False, None),
    (HOST_LINUX_6_12, 0x10002, True, False, EINVAL),  # newer than the host's latest (1.1)
    (HOST_LINUX_6_18_NEOVERSE, 0x10002, True, False, None),
    (HOST_LINUX_6_18_NEOVERSE, 0x10003, True, False, None),
    (HOST_LINUX_6_18_NEOVERSE, 0x10004, True, False, EINVAL),
    (HOST_LINUX_6_18_NEOVERSE, 0x20000, True, False, EINVAL),
    (HOST_LINUX_6_12, 0x10000, True, True, EINVAL),   # protected: < 1.1 refused
    (HOST_LINUX_6_12, 0x2, True, True, EINVAL),
    (HOST_LINUX_6_12, 0x1, False, True, EINVAL),
    (HOST_LINUX_6_12, 0x10001, True, True, None),
    (HOST_LINUX_6_18_NEOVERSE, 0x10003, True, True, None),
    (HOST_LINUX_6_12, 0x1_0001_0001, True, False, EINVAL),  # upper bits: not a version
]


@pytest.mark.parametrize(("host", "value", "psci_0_2", "protected", "err"), PSCI_CASES)
def test_psci_version_rules(host: HostFirmware, value: int, psci_0_2: bool, protected: bool,
                            err: int | None) -> None:
    assert set_(PSCI_VERSION, value, host, psci_0_2=psci_0_2, protected=protected) == err
    assert set_(PSCI_VERSION, value, host, psci_0_2=psci_0_2, protected=protected,
                has_run=True, current=0x2) == err
    assert fw.psci_ok(value, host, psci_0_2=psci_0_2, protected=protected) == (err is None)


def test_psci_versions_per_host() -> None:
    assert HOST_LINUX_6_12.psci_versions() == (
        PsciVersion.V0_2, PsciVersion.V1_0, PsciVersion.V1_1)
    assert HOST_LINUX_6_12.psci_versions(psci_0_2=False) == (PsciVersion.V0_1,)
    assert HOST_LINUX_6_18_NEOVERSE.psci_versions()[-1] is PsciVersion.V1_3
    assert PsciVersion.V1_3.label == "PSCI 1.3"


# --- SET: WORKAROUND registers ---------------------------------------------------------------

WA_REQUIRED = [  # (reg, value, lowest host level that accepts it)
    (SMCCC_ARCH_WORKAROUND_1, 0, 0),
    (SMCCC_ARCH_WORKAROUND_1, 1, 1),
    (SMCCC_ARCH_WORKAROUND_1, 2, 2),
    (SMCCC_ARCH_WORKAROUND_1, 3, None),
    (SMCCC_ARCH_WORKAROUND_1, 0x10, None),  # bits outside the level mask
    (SMCCC_ARCH_WORKAROUND_3, 2, 2),
    (SMCCC_ARCH_WORKAROUND_3, 0xF, None),
    (SMCCC_ARCH_WORKAROUND_2, 0, 0),     # NOT_AVAIL
    (SMCCC_ARCH_WORKAROUND_2, 1, 0),     # UNKNOWN narrows to NOT_AVAIL
    (SMCCC_ARCH_WORKAROUND_2, 2, 3),     # AVAIL narrows to NOT_REQUIRED
    (SMCCC_ARCH_WORKAROUND_2, 3, 3),
    (SMCCC_ARCH_WORKAROUND_2, 0x12, 3),  # AVAIL|ENABLED
    (SMCCC_ARCH_WORKAROUND_2, 0x10, None),  # ENABLED without AVAIL
    (SMCCC_ARCH_WORKAROUND_2, 0x11, None),
    (SMCCC_ARCH_WORKAROUND_2, 0x13, None),
    (SMCCC_ARCH_WORKAROUND_2, 4, None),
    (SMCCC_ARCH_WORKAROUND_2, 0x20, None),
]


@pytest.mark.parametrize(("reg_id", "value", "required"), WA_REQUIRED)
def test_wa_required_level(reg_id: int, value: int, required: int | None) -> None:
    assert fw.wa_required_level(reg_id, value) == required


def _host(wa1: int = 2, wa2: int = 0, wa3: int = 0) -> HostFirmware:
    return dataclasses.replace(HOST_LINUX_6_12, name="test", wa_levels=(
        (SMCCC_ARCH_WORKAROUND_1, wa1), (SMCCC_ARCH_WORKAROUND_2, wa2),
        (SMCCC_ARCH_WORKAROUND_3, wa3)))


WA_SET = [  # (reg, host level, value, errno)
    (SMCCC_ARCH_WORKAROUND_1, 1, 0, None),
    (SMCCC_ARCH_WORKAROUND_1, 1, 1, None),
    (SMCCC_ARCH_WORKAROUND_1, 1, 2, EINVAL),   # saved NOT_REQUIRED, host only AVAIL
    (SMCCC_ARCH_WORKAROUND_1, 0, 1, EINVAL),
    (SMCCC_ARCH_WORKAROUND_3, 1, 2, EINVAL),   # the Graviton4 WA3 case (Firecracker)
    (SMCCC_ARCH_WORKAROUND_3, 2, 1, None),
    (SMCCC_ARCH_WORKAROUND_2, 0, 0, None),
    (SMCCC_ARCH_WORKAROUND_2, 0, 1, None),
    (SMCCC_ARCH_WORKAROUND_2, 0, 2, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 0, 3, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 0, 0x12, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 3, 0, None),
    (SMCCC_ARCH_WORKAROUND_2, 3, 2, None),
    (SMCCC_ARCH_WORKAROUND_2, 3, 0x12, None),
    (SMCCC_ARCH_WORKAROUND_2, 3, 0x10, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 3, 0x13, EINVAL),
    (SMCCC_ARCH_WORKAROUND_2, 3, 7, EINVAL),
]


@pytest.mark.parametrize(("reg_id", "level", "value", "err"), WA_SET)
def test_workaround_set(reg_id: int, level: int, value: int, err: int | None) -> None:
    kw = {SMCCC_ARCH_WORKAROUND_1: "wa1", SMCCC_ARCH_WORKAROUND_2: "wa2",
          SMCCC_ARCH_WORKAROUND_3: "wa3"}[reg_id]
    host = _host(**{kw: level})
    assert set_(reg_id, value, host) == err
    assert set_(reg_id, value, host, has_run=True, current=12345) == err  # no lock, no state
    assert fw.wa_level_ok(reg_id, value, host) == (err is None)


@settings(max_examples=400)
@given(st.sampled_from([SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_3]), st.integers(0, 2),
       st.one_of(U64, st.integers(0, 0x1F)))
def test_wa1_wa3_rule_over_u64(reg_id: int, level: int, value: int) -> None:
    host = _host(wa1=level, wa3=level)
    ok = value <= 0xF and value <= level  # hypercalls.c: mask check, then host level < val
    assert set_(reg_id, value, host) == (None if ok else EINVAL)


@settings(max_examples=400)
@given(st.sampled_from([0, 3]), st.one_of(U64, st.integers(0, 0x1F)))
def test_wa2_rule_over_u64(level: int, value: int) -> None:
    lv, enabled = value & 0xF, bool(value & 0x10)
    narrowed = {0: 0, 1: 0, 2: 3, 3: 3}.get(lv)
    ok = (value <= 0x1F and (not enabled or lv == 2) and narrowed is not None
          and narrowed <= level)
    assert set_(SMCCC_ARCH_WORKAROUND_2, value, _host(wa2=level)) == (None if ok else EINVAL)


# --- SET: bitmaps ----------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.sampled_from(fw.BITMAPS), U64, U64, st.booleans())
def test_bitmap_rule_over_u64(reg_id: int, value: int, current: int, has_run: bool) -> None:
    host = HOST_LINUX_6_18_NEOVERSE
    known = host.known_bits(reg_id)
    assert known is not None
    if value & ~known:
        want: int | None = EINVAL  # unknown bit wins over the run-once lock
    elif has_run and value != current:
        want = EBUSY
    else:
        want = None
    assert set_(reg_id, value, host, current=current, has_run=has_run) == want


def test_bitmap_examples() -> None:
    assert set_(STD_BMAP, 0x3, HOST_LINUX_6_12) == EINVAL    # SDEI bit unknown upstream
    assert set_(STD_BMAP, 0x3, HOST_SDEI) is None
    assert set_(STD_BMAP, 0x1, HOST_SDEI, current=0x3, has_run=True) == EBUSY
    assert set_(STD_BMAP, 0x3, HOST_SDEI, current=0x3, has_run=True) is None
    assert set_(STD_BMAP, 0x4, HOST_SDEI, current=0x3, has_run=True) == EINVAL
    assert set_(VENDOR_HYP_BMAP_2, 0x0, HOST_LINUX_6_12) == ENOENT  # 6.15+ only
    assert set_(VENDOR_HYP_BMAP_2, 0x3, HOST_LINUX_6_18_NEOVERSE) is None
    assert set_(VENDOR_HYP_BMAP_2, 0x4, HOST_LINUX_6_18_NEOVERSE) == EINVAL
    # known_bits overrides the host per bitmap
    assert fw.check_set(STD_BMAP, 0x3, host=HOST_LINUX_6_12, current=1, has_run=False,
                        psci_0_2=True, known_bits={STD_BMAP: 0x3}) is None
    assert fw.check_set(STD_HYP_BMAP, 0x2, host=HOST_LINUX_6_12, current=1, has_run=False,
                        psci_0_2=True, known_bits={STD_BMAP: 0x3}) == EINVAL


# --- SET: ids --------------------------------------------------------------------------------

ID_CASES = [
    (0x6040000000140000, ENOENT),  # PSCI_VERSION as U128: size checked first
    (0x6020000000140001, ENOENT),
    (0x6080000000160000, ENOENT),  # STD_BMAP as U2048
    (ids.fw_reg(4), ENOENT),
    (ids.fw_reg(0x110), ENOENT),   # the SDEI block is not upstream
    (ids.fw_feat_bmap_reg(4), ENOENT),
]


@pytest.mark.parametrize(("reg_id", "err"), ID_CASES)
def test_set_id_errors(reg_id: int, err: int) -> None:
    assert set_(reg_id, 0) == err
    assert set_(reg_id, 0x10001) == err


@pytest.mark.parametrize("reg_id", [ids.core_reg("pc"), ids.sys_reg(3, 0, 12, 0, 0),
                                    0x4030000000140000, 0x6030000100140000, -1])
def test_set_refuses_non_firmware_ids(reg_id: int) -> None:
    with pytest.raises(ValueError, match=r"not in the firmware groups|unsigned 64-bit"):
        set_(reg_id, 0)


@pytest.mark.parametrize(("value", "current"), [(-1, 0), (1 << 64, 0), (0, -1)])
def test_set_refuses_values_outside_u64(value: int, current: int) -> None:
    with pytest.raises(ValueError, match="is not an unsigned 64-bit value"):
        set_(STD_BMAP, value, current=current)


# --- GET and reset ---------------------------------------------------------------------------


def test_lab_get_values() -> None:
    # kvm_probe on 6.12 and 6.1 -cpu max: the seven firmware registers and their values.
    for host in (HOST_LINUX_6_12, HOST_LINUX_6_1):
        assert {ids.short_name(r): fw.get_value(r, host=host) for r in host.reg_ids} == {
            "PSCI_VERSION": 0x10001, "SMCCC_ARCH_WORKAROUND_1": 2,
            "SMCCC_ARCH_WORKAROUND_2": 0, "SMCCC_ARCH_WORKAROUND_3": 0,
            "STD_BMAP": 0x1, "STD_HYP_BMAP": 0x1, "VENDOR_HYP_BMAP": 0x3,
        }


def test_get_value_rules() -> None:
    h = HOST_LINUX_6_18_NEOVERSE
    assert h.reg_ids == tuple(r.id for r in fw.FIRMWARE_REGS)
    assert fw.get_value(VENDOR_HYP_BMAP_2, host=h) == 0          # "reset to 0"
    assert fw.get_value(SMCCC_ARCH_WORKAROUND_3, host=h, stored=2) == 1  # host level, not stored
    assert fw.get_value(PSCI_VERSION, host=h) == 0x10003
    assert fw.get_value(PSCI_VERSION, host=h, stored=0x10000) == 0x10000
    assert fw.get_value(PSCI_VERSION, host=h, stored=0x10000, psci_0_2=False) == 0x1
    assert fw.get_value(STD_BMAP, host=HOST_SDEI) == 0x3
    assert fw.get_value(STD_BMAP, host=HOST_SDEI, stored=0x1) == 0x1
    with pytest.raises(ValueError, match="has no KVM_REG_ARM_FW_FEAT_BMAP_REG"):
        fw.get_value(VENDOR_HYP_BMAP_2, host=HOST_LINUX_6_12)


def test_host_validation() -> None:
    with pytest.raises(ValueError, match=r"psci_max must be a PsciVersion >= 0\.2"):
        HostFirmware("x", PsciVersion.V0_1, (), ())
    with pytest.raises(ValueError, match="not a distinct WORKAROUND"):
        HostFirmware("x", PsciVersion.V1_1, ((STD_BMAP, 0),), ())
    with pytest.raises(ValueError, match="SMCCC_ARCH_WORKAROUND_1 level 3"):
        HostFirmware("x", PsciVersion.V1_1, ((SMCCC_ARCH_WORKAROUND_1, 3),), ())
    with pytest.raises(ValueError, match="not a distinct feature bitmap"):
        HostFirmware("x", PsciVersion.V1_1, (), ((STD_BMAP, 1), (STD_BMAP, 1)))
    old = HostFirmware("4.16-ish", PsciVersion.V1_0, (), ())
    assert old.reg_ids == (PSCI_VERSION,)
    assert set_(SMCCC_ARCH_WORKAROUND_1, 0, old) == ENOENT
    assert set(fw.PRESETS) == {"6.12", "6.1", "sdei", "6.18-neoverse"}


# --- migration compatibility -----------------------------------------------------------------


def test_migration_helpers() -> None:
    assert fw.wa_level_ok(SMCCC_ARCH_WORKAROUND_3, 2, HOST_LINUX_6_18_NEOVERSE) is False
    assert fw.wa_level_ok(SMCCC_ARCH_WORKAROUND_3, 1, HOST_LINUX_6_18_NEOVERSE) is True
    assert fw.wa_level_ok(SMCCC_ARCH_WORKAROUND_3, 0, HostFirmware(
        "no-wa3", PsciVersion.V1_1, ((SMCCC_ARCH_WORKAROUND_1, 2),), ())) is False
    with pytest.raises(ValueError, match="PSCI_VERSION is not a WORKAROUND register"):
        fw.wa_level_ok(PSCI_VERSION, 0, HOST_LINUX_6_12)
    assert fw.psci_ok(0x10003, HOST_LINUX_6_12) is False
    assert fw.psci_ok(0x10001, HOST_LINUX_6_12) is True
    assert fw.unknown_bits(STD_BMAP, 0x3, HOST_LINUX_6_12) == 0x2
    assert fw.unknown_bits(STD_BMAP, 0x3, HOST_SDEI) == 0
    assert fw.unknown_bits(VENDOR_HYP_BMAP_2, 0x1, HOST_LINUX_6_12) == 0x1  # host lacks it
    assert fw.unknown_bits(VENDOR_HYP_BMAP_2, 0x0, HOST_LINUX_6_12) == 0
    with pytest.raises(ValueError, match="SMCCC_ARCH_WORKAROUND_1 is not a feature bitmap"):
        fw.unknown_bits(SMCCC_ARCH_WORKAROUND_1, 0, HOST_LINUX_6_12)


@settings(max_examples=300)
@given(st.sampled_from(fw.BITMAPS), U64, st.sampled_from(list(fw.PRESETS.values())))
def test_unknown_bits_agrees_with_check_set(reg_id: int, value: int, host: HostFirmware) -> None:
    if not host.has(reg_id):
        assert set_(reg_id, value, host) == ENOENT
        return
    assert (fw.unknown_bits(reg_id, value, host) == 0) == (set_(reg_id, value, host) is None)


# --- refusals in words -----------------------------------------------------------------------

_612 = "linux-6.12 -cpu max VHE"


@pytest.mark.parametrize(("reg_id", "value", "current", "has_run", "psci_0_2", "want"), [
    (VENDOR_HYP_BMAP_2, 0, 0, False, True, f"host {_612} has no VENDOR_HYP_BMAP_2"),
    (STD_BMAP, 0x0, 0x1, True, True,
     "the VM has run: STD_BMAP can no longer change (0x1 -> 0x0)"),
    (PSCI_VERSION, 0x10003, 0x10001, False, True,
     f"PSCI 1.3 is not a PSCI version this vCPU accepts on host {_612} "
     "(PSCI 0.2, PSCI 1.0, PSCI 1.1)"),
    (PSCI_VERSION, 0x10001, 0x1, False, False,
     f"PSCI 1.1 is not a PSCI version this vCPU accepts on host {_612} (PSCI 0.1)"),
    (SMCCC_ARCH_WORKAROUND_1, 0x10, 2, False, True,
     "0x10 is not a SMCCC_ARCH_WORKAROUND_1 value KVM accepts"),
    (SMCCC_ARCH_WORKAROUND_3, 1, 0, False, True,
     f"saved level AVAIL needs host level >= 1; host {_612} has NOT_AVAIL "
     "(the destination would be less safe)"),
    (STD_BMAP, 0x3, 0x1, False, True,
     f"bits 0x2 of 0x3 are unknown to host {_612} (known: 0x1)"),
])
def test_firmware_refusal_says_why_check_set_refused(
    reg_id: int, value: int, current: int, has_run: bool, psci_0_2: bool, want: str
) -> None:
    err = set_(reg_id, value, current=current, has_run=has_run, psci_0_2=psci_0_2)
    assert err is not None
    text = fw.firmware_refusal(reg_id, value, HOST_LINUX_6_12, current=current, errno_=err,
                               psci_0_2=psci_0_2)
    assert text == want
