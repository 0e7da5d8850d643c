"""arm64 ONE_REG ids: encoding, decoding, validation, printing and parsing.

Expected ids are the uapi/api.rst values (computed by hand in the comments) and the ids the lab
measured on Linux 6.12 (x0 0x6030000000100000, pc ...0040, pstate ...0042, FW ...1400{00..03},
bitmaps ...1600{00..02}).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdei_state.regs import ids, sysregs
from sdei_state.regs.ids import (
    CoreRegId,
    DemuxRegId,
    FwFeatBmapRegId,
    FwRegId,
    Group,
    InvalidRegId,
    RegSize,
    SveKind,
    SveRegId,
    SysRegId,
)

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)

# --- constants and encoders ------------------------------------------------------------------


def test_uapi_constants() -> None:
    assert ids.KVM_REG_ARM64 == 0x6000000000000000
    assert ids.KVM_REG_SIZE_MASK == 0x00F0000000000000
    assert [s.bits for s in RegSize] == [n << 52 for n in range(9)]
    assert RegSize.U2048.nbytes == 256 and RegSize.U32.nbytes == 4
    assert RegSize.U128.macro == "KVM_REG_SIZE_U128"
    assert {g.macro: g.bits for g in Group} == {
        "KVM_REG_ARM_CORE": 0x100000,
        "KVM_REG_ARM_DEMUX": 0x110000,
        "KVM_REG_ARM64_SYSREG": 0x130000,
        "KVM_REG_ARM_FW": 0x140000,  # 1310720 in kvm-bindings
        "KVM_REG_ARM64_SVE": 0x150000,
        "KVM_REG_ARM_FW_FEAT_BMAP": 0x160000,  # 1441792 in kvm-bindings
    }


# api.rst "arm64 core/FP-SIMD registers" table (the doc's 0x6060 for SPSR_FIQ is a typo: U64).
API_RST_CORE = [
    ("x0", 0x6030000000100000),
    ("x1", 0x6030000000100002),
    ("x30", 0x603000000010003C),
    ("sp", 0x603000000010003E),
    ("pc", 0x6030000000100040),
    ("pstate", 0x6030000000100042),
    ("sp_el1", 0x6030000000100044),
    ("elr_el1", 0x6030000000100046),
    ("spsr_el1", 0x6030000000100048),
    ("spsr_abt", 0x603000000010004A),
    ("spsr_und", 0x603000000010004C),
    ("spsr_irq", 0x603000000010004E),
    ("spsr_fiq", 0x6030000000100050),
    ("v0", 0x6040000000100054),
    ("v1", 0x6040000000100058),
    ("v31", 0x60400000001000D0),
    ("fpsr", 0x60200000001000D4),
    ("fpcr", 0x60200000001000D5),
]


@pytest.mark.parametrize(("name", "reg_id"), API_RST_CORE)
def test_core_ids_match_api_rst(name: str, reg_id: int) -> None:
    assert ids.core_reg(name) == reg_id
    assert ids.core_reg(name.upper()) == reg_id
    assert ids.short_name(reg_id) == name
    assert ids.parse(name) == reg_id


def test_core_member_names_and_sp_el0() -> None:
    assert ids.core_reg("regs.regs[7]") == 0x603000000010000E
    assert ids.core_reg("spsr[4]") == ids.core_reg("spsr_fiq")
    assert ids.core_reg("fp_regs.vregs[2]") == ids.core_reg("v2")
    assert ids.core_reg("SP_EL0") == ids.core_reg("sp")  # "sp = sp_el0" in struct kvm_regs
    with pytest.raises(ValueError, match="'x31' is not a core register"):
        ids.core_reg("x31")


def test_core_table_is_what_kvm_lists() -> None:
    # The lab's 6.12 vCPU listed 75 registers in group 0x0010.
    assert len(ids.CORE_MEMBERS) == len(ids.CORE_REG_IDS) == 75
    assert ids.CORE_REG_IDS[0] == 0x6030000000100000
    assert ids.CORE_REG_IDS[-1] == 0x60200000001000D5
    assert list(ids.CORE_REG_IDS) == sorted(ids.CORE_REG_IDS, key=lambda i: i & 0xFFFF)
    assert {ids.decode_id(i).size for i in ids.CORE_REG_IDS} == {
        RegSize.U32, RegSize.U64, RegSize.U128}


# (name, encoding, id): VBAR_EL1 = 3<<14 | 0<<11 | 12<<7 | 0<<3 | 0 = 0xc600, etc.
SYSREG_CASES = [
    ("VBAR_EL1", (3, 0, 12, 0, 0), 0x603000000013C600),
    ("MPIDR_EL1", (3, 0, 0, 0, 5), 0x603000000013C005),
    ("MIDR_EL1", (3, 0, 0, 0, 0), 0x603000000013C000),
    ("SCTLR_EL1", (3, 0, 1, 0, 0), 0x603000000013C080),
    ("CNTV_CTL_EL0", (3, 3, 14, 3, 1), 0x603000000013DF19),  # KVM_REG_ARM_TIMER_CTL
    ("KVM_REG_ARM_TIMER_CNT", (3, 3, 14, 3, 2), 0x603000000013DF1A),
    ("KVM_REG_ARM_TIMER_CVAL", (3, 3, 14, 0, 2), 0x603000000013DF02),
    ("MDSCR_EL1", (2, 0, 0, 2, 2), 0x6030000000138012),
    ("PMCCFILTR_EL0", (3, 3, 14, 15, 7), 0x603000000013DF7F),
]


@pytest.mark.parametrize(("name", "enc", "reg_id"), SYSREG_CASES)
def test_sysreg_ids(name: str, enc: tuple[int, int, int, int, int], reg_id: int) -> None:
    assert ids.sys_reg(*enc) == reg_id
    r = ids.decode_id(reg_id)
    assert isinstance(r, SysRegId) and r.encoding == enc and r.name == name
    assert ids.parse(name) == reg_id


# Encodings and names of the get-reg-list selftest's blessed lists (kernel comments).
KERNEL_BLESSED = [
    ((3, 0, 0, 0, 6), "REVIDR_EL1"), ((3, 1, 0, 0, 1), "CLIDR_EL1"),
    ((3, 1, 0, 0, 7), "AIDR_EL1"), ((3, 3, 0, 0, 1), "CTR_EL0"),
    ((2, 0, 0, 2, 0), "MDCCINT_EL1"), ((2, 0, 1, 1, 4), "OSLSR_EL1"),
    ((2, 4, 0, 7, 0), "DBGVCR32_EL2"), ((3, 0, 0, 2, 6), "ID_MMFR4_EL1"),
    ((3, 0, 0, 3, 4), "ID_PFR2_EL1"), ((3, 0, 0, 4, 5), "ID_AA64SMFR0_EL1"),
    ((3, 0, 0, 5, 4), "ID_AA64AFR0_EL1"), ((3, 0, 0, 7, 4), "ID_AA64MMFR4_EL1"),
    ((3, 0, 1, 0, 2), "CPACR_EL1"), ((3, 0, 2, 0, 3), "TCR2_EL1"),
    ((3, 0, 5, 2, 0), "ESR_EL1"), ((3, 0, 6, 0, 0), "FAR_EL1"), ((3, 0, 7, 4, 0), "PAR_EL1"),
    ((3, 0, 10, 2, 0), "MAIR_EL1"), ((3, 0, 10, 2, 4), "POR_EL1"),
    ((3, 0, 12, 1, 1), "DISR_EL1"), ((3, 0, 13, 0, 4), "TPIDR_EL1"),
    ((3, 0, 14, 1, 0), "CNTKCTL_EL1"), ((3, 2, 0, 0, 0), "CSSELR_EL1"),
    ((3, 3, 13, 0, 3), "TPIDRRO_EL0"), ((3, 3, 14, 0, 1), "CNTPCT_EL0"),
    ((3, 3, 14, 2, 2), "CNTP_CVAL_EL0"), ((3, 4, 3, 0, 0), "DACR32_EL2"),
    ((3, 4, 5, 3, 0), "FPEXC32_EL2"), ((3, 0, 9, 14, 2), "PMINTENCLR_EL1"),
    ((3, 3, 9, 12, 5), "PMSELR_EL0"), ((3, 3, 9, 14, 3), "PMOVSSET_EL0"),
    ((3, 0, 1, 2, 0), "ZCR_EL1"), ((3, 0, 2, 1, 3), "APIBKEYHI_EL1"),
    ((3, 0, 2, 3, 1), "APGAKEYHI_EL1"),
]


@pytest.mark.parametrize(("enc", "name"), KERNEL_BLESSED)
def test_sysreg_names_match_kernel_selftest(enc: tuple[int, int, int, int, int],
                                            name: str) -> None:
    assert ids.short_name(ids.sys_reg(*enc)) == name


def test_numbered_sysreg_families() -> None:
    assert ids.parse("DBGBVR0_EL1") == ids.sys_reg(2, 0, 0, 0, 4)
    assert ids.parse("DBGWCR15_EL1") == ids.sys_reg(2, 0, 0, 15, 7)
    # sysreg.h: PMEVCNTRn_EL0 = (3, 3, 14, 0b10:n[4:3], n[2:0]); TYPER uses 0b11.
    assert ids.parse("PMEVCNTR0_EL0") == ids.sys_reg(3, 3, 14, 8, 0)
    assert ids.parse("PMEVCNTR30_EL0") == ids.sys_reg(3, 3, 14, 11, 6)
    assert ids.parse("PMEVTYPER9_EL0") == ids.sys_reg(3, 3, 14, 13, 1)


def test_sysreg_table_names_round_trip() -> None:
    assert len(sysregs.SYSREGS) > 200
    for name, *enc in sysregs.SYSREGS:
        reg_id = ids.sys_reg(*enc)
        assert ids.short_name(reg_id) == name
        assert ids.parse(name) == reg_id == ids.parse(name.lower())
    # KVM exposes these as core registers, so the sysreg table must not claim them.
    for core_name in ("ELR_EL1", "SPSR_EL1", "SP_EL0", "SP_EL1", "FPSR", "FPCR"):
        assert core_name not in sysregs.ENCODING_BY_NAME
        assert ids.decode_id(ids.parse(core_name)).group is Group.CORE


def test_sysreg_field_range_checked() -> None:
    with pytest.raises(ValueError, match=r"op0 = 4 is out of range \(0..3\)"):
        ids.sys_reg(4, 0, 0, 0, 0)
    with pytest.raises(ValueError, match=r"CRm = 16"):
        ids.sys_reg(3, 0, 0, 16, 0)
    with pytest.raises(ValueError, match="op2"):
        ids.sys_reg(3, 0, 0, 0, True)


def test_fw_and_bitmap_ids() -> None:
    assert [ids.fw_reg(r) for r in range(4)] == [0x6030000000140000 + r for r in range(4)]
    assert [ids.fw_feat_bmap_reg(r) for r in range(4)] == [
        0x6030000000160000 + r for r in range(4)]
    assert ids.fw_reg(0xFFFF) == 0x603000000014FFFF
    with pytest.raises(ValueError, match="FW regno = 65536"):
        ids.fw_reg(0x10000)
    with pytest.raises(ValueError, match="bitmap regno = -1"):
        ids.fw_feat_bmap_reg(-1)


def test_sve_and_demux_ids() -> None:
    # api.rst: 0x6080 0000 0015 00 <n:5><slice:5>, 0x6050 0000 0015 04 <n:4><slice:5>,
    # 0x6050 0000 0015 060 <slice:5>, 0x6060 0000 0015 ffff.
    assert ids.sve_zreg(0) == 0x6080000000150000
    assert ids.sve_zreg(31, 31) == 0x60800000001503FF
    assert ids.sve_preg(0) == 0x6050000000150400
    assert ids.sve_preg(15, 1) == 0x60500000001505E1
    assert ids.sve_ffr() == 0x6050000000150600
    assert ids.KVM_REG_ARM64_SVE_VLS == 0x606000000015FFFF
    # 0x6020 0000 0011 00 <csselr:8>
    assert ids.demux_ccsidr(0) == 0x6020000000110000
    assert ids.demux_ccsidr(13) == 0x602000000011000D
    with pytest.raises(ValueError, match="CSSELR = 14"):
        ids.demux_ccsidr(14)
    with pytest.raises(ValueError, match="P register = 16"):
        ids.sve_preg(16)


# --- decode ----------------------------------------------------------------------------------


def test_decode_each_group() -> None:
    assert ids.decode_id(0x6030000000100040) == CoreRegId(0x6030000000100040, RegSize.U64, 0x40)
    assert ids.decode_id(0x6020000000110003) == DemuxRegId(0x6020000000110003, RegSize.U32, 3)
    assert ids.decode_id(0x603000000013C600) == SysRegId(
        0x603000000013C600, RegSize.U64, 3, 0, 12, 0, 0)
    assert ids.decode_id(0x6030000000140110) == FwRegId(0x6030000000140110, RegSize.U64, 0x110)
    assert ids.decode_id(0x6030000000160003) == FwFeatBmapRegId(
        0x6030000000160003, RegSize.U64, 3)
    assert ids.decode_id(0x60800000001500A2) == SveRegId(
        0x60800000001500A2, RegSize.U2048, SveKind.ZREG, 5, 2)
    assert ids.decode_id(0x60500000001505E1) == SveRegId(
        0x60500000001505E1, RegSize.U256, SveKind.PREG, 15, 1)
    assert ids.decode_id(0x6050000000150603) == SveRegId(
        0x6050000000150603, RegSize.U256, SveKind.FFR, 0, 3)
    assert ids.decode_id(ids.KVM_REG_ARM64_SVE_VLS).kind is SveKind.VLS  # type: ignore[attr-defined]


def test_decoded_ids_are_frozen() -> None:
    r = ids.decode_id(ids.fw_reg(0))
    assert isinstance(r, FwRegId)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.regno = 1  # type: ignore[misc]
    assert r.group is Group.FW and r.nbytes == 8 and hash(r) == hash(ids.decode_id(ids.fw_reg(0)))


MALFORMED = [
    (0x4030000000140000, "arch field 0x40 is not KVM_REG_ARM64"),  # arm32's KVM_REG_ARM
    (0x0000000000000000, "arch field 0x00"),
    (0x6090000000140000, "size field 9 is not a KVM_REG_SIZE_* value"),
    (0x60F0000000140000, "size field 15"),
    (0x6030000100140000, "bits 51..28 must be zero (set: 0x100000000)"),
    (0x6030000010140000, "bits 51..28 must be zero (set: 0x10000000)"),
    (0x6030000000120000, "group 0x12 is not an arm64 register group"),  # arm32 VFP
    (0x6030000000170000, "group 0x17"),
    (0x603000000000C600, "group 0x0 "),
    (0x6030000000100001, "core index 0x1 is not where a struct kvm_regs member starts"),
    (0x6030000000100052, "core index 0x52"),  # padding before the 16-aligned vregs
    (0x6040000000100055, "core index 0x55"),  # inside vregs[0]
    (0x60300000001000D6, "core index 0xd6"),  # fp_regs.__reserved
    (0x6020000000100040, "core register regs.pc (pc) is U64 but the size field says U32"),
    (0x6030000000100054, "core register fp_regs.vregs[0] (v0) is U128 but the size field says U64"),
    (0x60300000001000D4, "core register fp_regs.fpsr (fpsr) is U32 but the size field says U64"),
    (0x6020000000110100, "demux id 0x1 is not KVM_REG_ARM_DEMUX_ID_CCSIDR"),
    (0x602000000011000E, "CSSELR value 14 selects no cache"),
    (0x6030000000110000, "CCSIDR (demux) is U32 but the size field says U64"),
    (0x602000000013C600, "a system register (ARM64_SYS_REG) is U64 but the size field says U32"),
    (0x6040000000140000, "KVM_REG_ARM_FW register (KVM_REG_ARM_FW_REG) is U64 but the size "
                         "field says U128 (kvm_arm_set_fw_reg() answers ENOENT)"),
    (0x6080000000140110, "size field says U2048"),
    (0x6020000000160000, "KVM_REG_ARM_FW_FEAT_BMAP register (KVM_REG_ARM_FW_FEAT_BMAP_REG) is "
                         "U64 but the size field says U32"),
    (0x6050000000150000, "SVE ZREG is U2048 but the size field says U256"),
    (0x6080000000150400, "SVE PREG is U256 but the size field says U2048"),
    (0x6030000000150600, "SVE FFR is U256"),
    (0x603000000015FFFF, "SVE VLS is U512 but the size field says U64"),
    (0x6050000000150620, "SVE fields 0x0620 are not a ZREG"),
    (0x605000000015FFFE, "SVE fields 0xfffe"),
]


@pytest.mark.parametrize(("reg_id", "reason"), MALFORMED)
def test_malformed_ids_rejected_with_reason(reg_id: int, reason: str) -> None:
    with pytest.raises(InvalidRegId) as exc:
        ids.decode_id(reg_id)
    assert reason in exc.value.reason
    assert exc.value.reg_id == reg_id
    assert f"{reg_id:#018x} is not a valid arm64 register id: " in str(exc.value)
    assert isinstance(exc.value, ValueError)
    assert not ids.is_valid(reg_id)
    assert ids.name_of(reg_id) is None
    assert ids.describe(reg_id) == f"{reg_id:#018x}  /* invalid: {exc.value.reason} */"
    assert ids.short_name(reg_id) == f"{reg_id:#018x}"


@pytest.mark.parametrize("bad", [-1, 1 << 64, "0x6030000000140000", 1.0, True, None])
def test_decode_rejects_non_u64(bad: object) -> None:
    with pytest.raises(InvalidRegId, match="unsigned 64-bit"):
        ids.decode_id(bad)  # type: ignore[arg-type]
    assert "invalid" in ids.describe(bad)  # type: ignore[arg-type]
    assert not ids.is_valid(bad)  # type: ignore[arg-type]


def test_reg_size_is_the_kernel_macro() -> None:
    assert ids.reg_size(0x6030000000140000) == 8
    assert ids.reg_size(0x60200000001000D4) == 4
    assert ids.reg_size(ids.sve_zreg(0)) == 256
    assert ids.reg_size(0x6040000000140000) == 16  # also for ids KVM refuses
    assert ids.reg_size(0x0000000000000000) == 1
    with pytest.raises(InvalidRegId):
        ids.reg_size(-1)


# --- describe / short_name -------------------------------------------------------------------

DESCRIBE = [
    (0x6030000000140000, "KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION */", "PSCI_VERSION"),
    (0x6030000000140003, "KVM_REG_ARM_FW_REG(3)  /* SMCCC_ARCH_WORKAROUND_3 */",
     "SMCCC_ARCH_WORKAROUND_3"),
    (0x6030000000140077, "KVM_REG_ARM_FW_REG(0x77)", "KVM_REG_ARM_FW_REG(0x77)"),
    (0x6030000000160001, "KVM_REG_ARM_FW_FEAT_BMAP_REG(1)  /* STD_HYP_BMAP */", "STD_HYP_BMAP"),
    (0x6030000000160003, "KVM_REG_ARM_FW_FEAT_BMAP_REG(3)  /* VENDOR_HYP_BMAP_2 */",
     "VENDOR_HYP_BMAP_2"),
    (0x603000000013C600, "ARM64_SYS_REG(3, 0, 12, 0, 0)  /* VBAR_EL1 */", "VBAR_EL1"),
    (0x603000000013DF1A, "ARM64_SYS_REG(3, 3, 14, 3, 2)  /* KVM_REG_ARM_TIMER_CNT */",
     "KVM_REG_ARM_TIMER_CNT"),
    (0x603000000013C01B, "ARM64_SYS_REG(3, 0, 0, 3, 3)", "ARM64_SYS_REG(3, 0, 0, 3, 3)"),
    (0x6030000000100000,
     "KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.regs[0])",
     "x0"),
    (0x603000000010004A,
     "KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(spsr[1])"
     "  /* spsr_abt */", "spsr_abt"),
    (0x6040000000100058,
     "KVM_REG_ARM64 | KVM_REG_SIZE_U128 | KVM_REG_ARM_CORE | "
     "KVM_REG_ARM_CORE_REG(fp_regs.vregs[1])", "v1"),
    (0x60200000001000D5,
     "KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(fp_regs.fpcr)",
     "fpcr"),
    (0x6020000000110002,
     "KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_DEMUX | KVM_REG_ARM_DEMUX_ID_CCSIDR | 2"
     "  /* CCSIDR(2) */", "CCSIDR(2)"),
    (0x6080000000150020, "KVM_REG_ARM64_SVE_ZREG(1, 0)", "Z1"),
    (0x6080000000150021, "KVM_REG_ARM64_SVE_ZREG(1, 1)", "KVM_REG_ARM64_SVE_ZREG(1, 1)"),
    (0x6050000000150460, "KVM_REG_ARM64_SVE_PREG(3, 0)", "P3"),
    (0x6050000000150600, "KVM_REG_ARM64_SVE_FFR(0)", "FFR"),
    (0x606000000015FFFF, "KVM_REG_ARM64_SVE_VLS", "SVE_VLS"),
]


@pytest.mark.parametrize(("reg_id", "line", "short"), DESCRIBE)
def test_describe_and_short_name(reg_id: int, line: str, short: str) -> None:
    assert ids.describe(reg_id) == line
    assert ids.short_name(reg_id) == short
    assert ids.parse(line) == reg_id
    assert ids.parse(short) == reg_id
    unnamed = "(" in short and not short.startswith("CCSIDR")  # the expression stood in
    assert ids.name_of(reg_id) == (None if unnamed else short)


# --- SDEI names (delegated to sdei_state.regs.sdei) ------------------------------------------


def test_sdei_names_come_from_the_sdei_module() -> None:
    assert ids.describe(0x6030000000140110) == (
        "KVM_REG_ARM_FW_REG(0x110)  /* SDEI_EVENT_STATE(0) */")
    assert ids.short_name(0x6030000000140173) == "SDEI_CONTEXT(1, 19)"
    assert ids.parse("SDEI_EVENT_STATE(0)") == 0x6030000000140110
    assert ids.parse("sdei_context( 1,19 )") == 0x6030000000140173
    assert ids.parse("KVM_REG_ARM_FW_REG(0x100)  /* SDEI_VCPU_STATE */") == 0x6030000000140100
    assert ids.short_name(0x6030000000140101) == "KVM_REG_ARM_FW_REG(0x101)"  # unused regno
    # Outside the block the sdei module is not consulted.
    assert ids.short_name(0x6030000000140200) == "KVM_REG_ARM_FW_REG(0x200)"
    with pytest.raises(ValueError, match="comment names SDEI_VCPU_STATE"):
        ids.parse("KVM_REG_ARM_FW_REG(0x110)  /* SDEI_VCPU_STATE */")


def test_real_sdei_names_round_trip() -> None:
    from sdei_state.regs import sdei

    named = 0
    for regno in range(ids.SDEI_FIRST_REGNO, ids.SDEI_LAST_REGNO + 1):
        reg_id = ids.fw_reg(regno)
        name = sdei.regno_name(regno)
        assert ids.name_of(reg_id) == name
        assert ids.parse(ids.short_name(reg_id)) == reg_id
        assert ids.parse(ids.describe(reg_id)) == reg_id
        named += name is not None
    assert named > 0


# --- parse -----------------------------------------------------------------------------------

PARSE_OK = [
    ("vbar_el1", 0x603000000013C600),
    ("  VBAR_EL1  ", 0x603000000013C600),
    ("S3_0_C12_C0_0", 0x603000000013C600),
    ("s3_3_c14_c3_2", 0x603000000013DF1A),
    ("psci_version", 0x6030000000140000),
    ("KVM_REG_ARM_PSCI_VERSION", 0x6030000000140000),
    ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2", 0x6030000000140002),
    ("KVM_REG_ARM_VENDOR_HYP_BMAP_2", 0x6030000000160003),
    ("KVM_REG_ARM_TIMER_CTL", 0x603000000013DF19),
    ("KVM_REG_ARM_PTIMER_CNT", 0x603000000013DF01),  # (3, 3, 14, 0, 1)
    ("TIMER_CVAL", 0x603000000013DF02),
    ("PC", 0x6030000000100040),
    ("regs.pstate", 0x6030000000100042),
    ("ccsidr(1)", 0x6020000000110001),
    ("z0", 0x6080000000150000),
    ("KVM_REG_ARM64_SVE_PREG(2, 0)", 0x6050000000150440),
    ("KVM_REG_ARM64_SVE_VLS", 0x606000000015FFFF),
    ("ARM64_SYS_REG(3,0,12,0,0)", 0x603000000013C600),
    ("ARM64_SYS_REG(0x3, 0, 0xc, 0, 0)", 0x603000000013C600),
    ("KVM_REG_ARM_FW_REG(272)", 0x6030000000140110),
    ("KVM_REG_ARM_FW_REG(0x110)", 0x6030000000140110),
    ("KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | 0x1", 0x6030000000140001),
    ("KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc)",
     0x6030000000100040),
    # a line of the kernel's blessed list, tab and trailing comma included
    ("\tKVM_REG_ARM_FW_FEAT_BMAP_REG(0),\t/* KVM_REG_ARM_STD_BMAP */", 0x6030000000160000),
    ("\tARM64_SYS_REG(3, 0, 0, 0, 0),\t/* MIDR_EL1 */", 0x603000000013C000),
    ("0x6030000000140000", 0x6030000000140000),
    ("0x6030_0000_0014_0000", 0x6030000000140000),
    ("6931039826524504064", 0x6030000000140000),
    ("0x0", 0),  # numbers are taken as given
    ("0x6040000000140000  /* invalid: anything */", 0x6040000000140000),
    ("0xffffffffffffffff", (1 << 64) - 1),
]


@pytest.mark.parametrize(("text", "reg_id"), PARSE_OK)
def test_parse(text: str, reg_id: int) -> None:
    assert ids.parse(text) == reg_id


PARSE_BAD = [
    ("", "no register given"),
    ("   ,", "no register given"),
    ("FOO_EL1", "unknown register 'FOO_EL1'"),
    ("VBAR_EL", "did you mean VBAR_EL2, VBAR_EL1"),
    ("CNTVCT_EL0", "CNTVCT_EL0 is ambiguous for KVM"),
    ("CNTV_CVAL_EL0", "KVM_REG_ARM_TIMER_CVAL"),
    ("-1", "'-1': -1 is not an unsigned 64-bit register id"),
    ("0x10000000000000000", "is not an unsigned 64-bit register id"),
    ("0xZZ", "is not a number"),
    ("ARM64_SYS_REG(4, 0, 0, 0, 0)", "op0 = 4 is out of range"),
    ("ARM64_SYS_REG(3, 0, 0, 0)", "ARM64_SYS_REG() takes 5 argument(s), got 4"),
    ("KVM_REG_ARM_FW_REG(x)", "KVM_REG_ARM_FW_REG() argument"),
    ("KVM_REG_ARM_CORE_REG(regs.regs[31])", "not a struct kvm_regs member"),
    ("KVM_REG_ARM_CORE", "builds 0x0000000000100000, which is not a valid arm64 register id: "
                         "arch field 0x00"),
    ("KVM_REG_ARM64 | KVM_REG_SIZE_U32 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(regs.pc)",
     "core register regs.pc (pc) is U64 but the size field says U32"),
    ("KVM_REG_ARM64 | | KVM_REG_ARM_FW", "empty operand"),
    ("KVM_REG_ARM_FW_REG(0)  /* VBAR_EL1 */",
     "the comment names VBAR_EL1 (0x603000000013c600) but the expression is PSCI_VERSION"),
    ("KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION", "malformed /* comment */"),
    ("KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION */ x", "malformed /* comment */"),
]


@pytest.mark.parametrize(("text", "message"), PARSE_BAD)
def test_parse_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        ids.parse(text)
    assert message in str(exc.value)


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ValueError, match="register must be given as text, not int"):
        ids.parse(0x6030000000140000)  # type: ignore[arg-type]


# --- properties ------------------------------------------------------------------------------

_GROUPS = st.sampled_from([0x10, 0x11, 0x13, 0x14, 0x15, 0x16, 0x12, 0x17, 0xFFF])


@st.composite
def arm64_like_ids(draw: st.DrawFn) -> int:
    """Mostly arm64 ids with random size, group and fields, sometimes with stray bits."""
    reg_id = (ids.KVM_REG_ARM64 | draw(st.integers(0, 15)) << 52 | draw(_GROUPS) << 16
              | draw(st.integers(0, 0xFFFF)))
    if draw(st.integers(0, 9)) == 0:
        reg_id |= 1 << draw(st.integers(28, 51))
    return reg_id


ANY_ID = st.one_of(U64, arm64_like_ids())


@settings(max_examples=400)
@given(ANY_ID)
def test_describe_and_short_name_parse_back(reg_id: int) -> None:
    assert ids.parse(ids.describe(reg_id)) == reg_id
    assert ids.parse(ids.short_name(reg_id)) == reg_id


@settings(max_examples=400)
@given(ANY_ID)
def test_decode_is_total_and_consistent(reg_id: int) -> None:
    assert ids.reg_size(reg_id) == 1 << ((reg_id >> 52) & 0xF)
    try:
        r = ids.decode_id(reg_id)
    except InvalidRegId as e:
        assert e.reason and not ids.is_valid(reg_id)
        return
    assert ids.is_valid(reg_id)
    assert r.id == reg_id
    assert r.nbytes == ids.reg_size(reg_id)
    assert r.group == (reg_id >> 16) & 0xFFF
    assert reg_id & ids.KVM_REG_ARCH_MASK == ids.KVM_REG_ARM64
    assert reg_id & 0x000F_FFFF_F000_0000 == 0


@settings(max_examples=200)
@given(st.integers(0, 3), st.integers(0, 7), st.integers(0, 15), st.integers(0, 15),
       st.integers(0, 7))
def test_sys_reg_encode_decode(op0: int, op1: int, crn: int, crm: int, op2: int) -> None:
    r = ids.decode_id(ids.sys_reg(op0, op1, crn, crm, op2))
    assert isinstance(r, SysRegId) and r.encoding == (op0, op1, crn, crm, op2)


@settings(max_examples=200)
@given(st.integers(0, 0xFFFF))
def test_fw_regno_encode_decode(regno: int) -> None:
    fw = ids.decode_id(ids.fw_reg(regno))
    bmap = ids.decode_id(ids.fw_feat_bmap_reg(regno))
    assert isinstance(fw, FwRegId) and fw.regno == regno
    assert isinstance(bmap, FwFeatBmapRegId) and bmap.regno == regno


def test_every_valid_core_index_is_a_member() -> None:
    # Every index below 0x200 and every size; above that a stride (nothing is valid there).
    fields = [*range(0x200), *range(0x200, 0x10000, 0x101)]
    valid = {
        f: s for f in fields for s in RegSize
        if ids.is_valid(ids.KVM_REG_ARM64 | s.bits | ids.KVM_REG_ARM_CORE | f)
    }
    assert valid == {c.offset: c.size for c in ids.CORE_MEMBERS}


def test_sve_fields_exhaustive() -> None:
    kinds: dict[SveKind, int] = {}
    for f in range(0x10000):
        for size in (RegSize.U64, RegSize.U256, RegSize.U512, RegSize.U2048):
            reg_id = ids.KVM_REG_ARM64 | size.bits | ids.KVM_REG_ARM64_SVE | f
            if ids.is_valid(reg_id):
                r = ids.decode_id(reg_id)
                assert isinstance(r, SveRegId)
                kinds[r.kind] = kinds.get(r.kind, 0) + 1
                assert ids.parse(r.expr) == reg_id
    assert kinds == {SveKind.ZREG: 32 * 32, SveKind.PREG: 16 * 32, SveKind.FFR: 32,
                     SveKind.VLS: 1}


# --- the encoding's place in the layers -----------------------------------------------------

def _package_imports(path: Path) -> set[str]:
    """The sdei_state modules ``path`` imports (relative imports resolved to dotted names)."""
    import ast

    pkg = path.parent.relative_to(ROOT).parts  # ("sdei_state", "regs") or ("sdei_state",)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(pkg[: len(pkg) - node.level + 1])
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
                out.update(names)
            elif node.module and node.module.startswith("sdei_state"):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("sdei_state"))
    return out


ROOT = Path(__file__).resolve().parents[1]
MODEL = {"sdei_state.spec", "sdei_state.events", "sdei_state.state", "sdei_state.machine",
         "sdei_state.cpu", "sdei_state.errors"}


def test_errors_import_nothing_of_the_package() -> None:
    assert _package_imports(ROOT / "sdei_state" / "errors.py") == set()


@pytest.mark.parametrize("path", sorted((ROOT / "sdei_state" / "regs").glob("*.py")),
                         ids=lambda p: p.name)
def test_the_encoding_imports_only_the_model_and_itself(path: Path) -> None:
    outward = {m for m in _package_imports(path)
               if m not in MODEL and not m.startswith("sdei_state.regs")}
    assert outward == set(), f"{path.name} imports {sorted(outward)}"


def test_the_bindings_take_register_ids_from_regs_ids() -> None:
    # kvm/ may use the encoding's id vocabulary, never rebuild it.
    from sdei_state.kvm import arm64

    assert not {"core_reg", "sys_reg", "fw_reg", "reg_size", "REG_PC"} & set(vars(arm64))
