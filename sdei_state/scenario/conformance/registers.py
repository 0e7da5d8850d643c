"""Conformance scenarios: the register ABI (set/get of every SDEI register, checks, unknown
ids, the upstream firmware registers and the feature bitmaps, the SDEI feature gate)."""

from __future__ import annotations

from typing import Final

from .oracle import (
    ALL_ONES,
    BMAP,
    DENIED,
    EL1H,
    EL1H_DAIF,
    EV0,
    EV1,
    FW,
    NOT_SUPPORTED,
    NR_EVENTS,
    SDEI_IDS,
    SUCCESS,
    U32_SIZE_FW,
    U128_SIZE_FW,
    VERSION_1_1_KVM,
)
from .steps import Conformance, Script


def _all_sdei_reset(s: Script, v: int) -> None:
    for name in SDEI_IDS:
        s.get_reg(v, name, 1 if name == "SDEI_VCPU_STATE" else 0)


def reset_values() -> Conformance:
    s = Script(2)
    _all_sdei_reset(s, 0)
    _all_sdei_reset(s, 1)
    return s.build(
        "reset-values",
        "every one of the 47 SDEI registers reads its reset value on two fresh vCPUs "
        "(SDEI_VCPU_STATE 1, all others 0)",
        {"vcpu0:SDEI_VCPU_STATE": 1, "vcpu1:SDEI_VCPU_STATE": 1})


def set_reg_state() -> Conformance:
    s = Script()
    st = "SDEI_VCPU_STATE"
    s.set_reg(0, st, 2, errno="EINVAL", note="RES0 bit 1")
    s.set_reg(0, st, 1 << 63, errno="EINVAL", note="RES0 bit 63")
    s.set_reg(0, st, 3, errno="EINVAL")
    s.get_reg(0, st, 1, note="unchanged")
    s.set_reg(0, st, 0)
    s.get_reg(0, st, 0)
    s.set_reg(0, st, 2, errno="EINVAL")
    s.get_reg(0, st, 0, note="unchanged")
    es = "SDEI_EVENT_STATE(0)"
    for value, note in ((0b010, "ENABLED without REGISTERED"), (0b110, "(0,1,1) undefined"),
                        (0b1000, "PENDING without REGISTERED"),
                        (0b1100, "PENDING on unregister-pending"),
                        (0b10000, "RELATIVE without REGISTERED"),
                        (0b10100, "RELATIVE on unregister-pending"), (0b100000, "RES0 bit 5"),
                        (1 << 63 | 1, "RES0 bit 63")):
        s.set_reg(0, es, value, errno="EINVAL", note=note)
    s.get_reg(0, es, 0, note="unchanged")
    for value in (0b001, 0b011, 0b101, 0b111, 0b100, 0b1001, 0b11011, 0b11111):
        s.set_reg(0, es, value)
        s.get_reg(0, es, value)
    s.set_reg(0, es, 0b100011, errno="EINVAL")
    s.get_reg(0, es, 0b11111, note="unchanged")
    s.set_reg(0, es, 0b1011)
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x4_0000)
    s.set_reg(0, "SDEI_EVENT_EP_ARG(0)", 0x1234)
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b10, errno="EINVAL")
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b1011, note="enabled with a trigger pending")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1011)
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0x5_0000)
    s.cpu(0, pc=0x6000)
    s.dispatch(0, EV1, pc=0x5_0000, pstate=EL1H_DAIF, x1=0, x2=0x6000, x3=EL1H,
               note="the state written by SET_ONE_REG drives the model")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x4_0000, pstate=EL1H_DAIF, x1=0x1234, x2=0x6000, x3=EL1H)
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    return s.build(
        "set-reg-state",
        "SET_ONE_REG of SDEI_VCPU_STATE and SDEI_EVENT_STATE: RES0 bits and undefined states "
        "EINVAL (value unchanged), every legal state accepted, written state dispatches",
        {"SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 7, "SDEI_EVENT_STATE(1)": 3,
         "SDEI_CONTEXT(0, 18)": 0x6000})


def set_reg_entry_points() -> Conformance:
    s = Script()
    for i in range(NR_EVENTS):
        s.set_reg(0, f"SDEI_EVENT_STATE({i})", 1)
        addr, arg = f"SDEI_EVENT_EP_ADDR({i})", f"SDEI_EVENT_EP_ARG({i})"
        s.set_reg(0, addr, 0x10001, errno="EINVAL", note="not 4-byte aligned")
        s.set_reg(0, addr, 0x10002, errno="EINVAL")
        s.get_reg(0, addr, 0, note="unchanged")
        s.set_reg(0, addr, 0xFFFF_FFFF_FFFF_FFFC - 0x1000 * i)
        s.set_reg(0, addr, 3, errno="EINVAL")
        s.get_reg(0, addr, 0xFFFF_FFFF_FFFF_FFFC - 0x1000 * i, note="unchanged")
        s.set_reg(0, arg, ALL_ONES - i, note="any value")
        s.get_reg(0, arg, ALL_ONES - i)
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_REGISTER", EV1, 0x8000, 0, 0, 0, ret=DENIED, note="written registered")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0xFFFF_FFFF_FFFF_FFFC, pstate=EL1H_DAIF, x1=ALL_ONES, x2=0, x3=EL1H)
    s.call(0, "EVENT_UNREGISTER", EV1, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", 0)
    return s.build(
        "set-reg-entry-points",
        "SET_ONE_REG of SDEI_EVENT_EP_ADDR (unaligned EINVAL, unchanged after) and "
        "SDEI_EVENT_EP_ARG (any value) for both events; written values used by dispatch",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_EVENT_EP_ADDR(0)": 0xFFFF_FFFF_FFFF_FFFC,
         "SDEI_EVENT_EP_ARG(0)": ALL_ONES, "SDEI_EVENT_STATE(1)": 0,
         "cpu.pc": 0xFFFF_FFFF_FFFF_FFFC})


def _ctx_value(c: int, r: int) -> int:
    """A distinct test value for SDEI_CONTEXT(c, r), r < 19 (x0..x17 and PC)."""
    return 0xC0DE_0000_0000_0000 | c << 16 | r << 4


def set_reg_contexts() -> Conformance:
    s = Script()
    s.set_reg(0, "SDEI_EVENT_STATE(0)", 0b101, note="a normal handler is running")
    s.set_reg(0, "SDEI_EVENT_STATE(1)", 0b101, note="a critical handler is running")
    for i in range(2):  # a registered event has an entry point: restore refuses 0
        s.set_reg(0, f"SDEI_EVENT_EP_ADDR({i})", 0x10000 * (i + 1))
    pstates = {0: 0x6000_0004, 1: 0x8000_0005}
    for c in range(2):
        for r in range(19):
            s.set_reg(0, f"SDEI_CONTEXT({c}, {r})", _ctx_value(c, r))
        s.set_reg(0, f"SDEI_CONTEXT({c}, 19)", pstates[c])
    for c in range(2):
        for r in range(19):
            s.get_reg(0, f"SDEI_CONTEXT({c}, {r})", _ctx_value(c, r))
        s.get_reg(0, f"SDEI_CONTEXT({c}, 19)", pstates[c])
    ps = "SDEI_CONTEXT(0, 19)"
    for value, note in ((0x8, "EL2t"), (0x9, "EL2h"), (0xC, "EL3t"), (0xD, "EL3h"),
                        (0x1, "reserved AArch64 mode"), (0x13, "AArch32 Supervisor"),
                        (0x1A, "AArch32 Hyp"), (0x3C9, "EL2h with DAIF")):
        s.set_reg(0, ps, value, errno="EINVAL", note=note)
    s.get_reg(0, ps, 0x6000_0004, note="unchanged")
    for value in (0x0, 0x4, 0x10, 0xF000_03C5, 0xFFFF_FFFF_FFFF_FFE5):
        s.set_reg(0, ps, value, note="mode checked, other bits stored as given")
        s.get_reg(0, ps, value)
    s.set_reg(0, ps, 0x6000_0004)
    s.set_reg(0, "SDEI_CONTEXT(1, 19)", 0x9, errno="EINVAL")
    s.call(0, "EVENT_CONTEXT", 5, ret=_ctx_value(1, 5) - (1 << 64),
           note="innermost = critical")
    s.complete(0, "EVENT_COMPLETE", 0,
               x=(_ctx_value(1, 0), _ctx_value(1, 1), _ctx_value(1, 2), _ctx_value(1, 3)))
    s.no_dispatch(0, pc=_ctx_value(1, 18), pstate=0x8000_0005)
    s.call(0, "EVENT_CONTEXT", 17, ret=_ctx_value(0, 17) - (1 << 64))
    s.complete(0, "EVENT_COMPLETE", 0,
               x=(_ctx_value(0, 0), _ctx_value(0, 1), _ctx_value(0, 2), _ctx_value(0, 3)))
    s.no_dispatch(0, pc=_ctx_value(0, 18), pstate=0x6000_0004)
    return s.build(
        "set-reg-contexts",
        "SET/GET of all 40 SDEI_CONTEXT registers; PSTATE modes EL2/EL3/AArch32 non-User "
        "EINVAL, other bits stored; written contexts are what CONTEXT and COMPLETE use",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_STATE(1)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000,
         "SDEI_EVENT_EP_ADDR(1)": 0x20000, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 19)": 0, "cpu.x17": _ctx_value(0, 17), "cpu.x16": _ctx_value(0, 16),
         "cpu.pc": _ctx_value(0, 18), "cpu.pstate": 0x6000_0004})


def unknown_ids() -> Conformance:
    s = Script()
    unknown = (
        (FW | 0x101, "gap after SDEI_VCPU_STATE"),
        (FW | 0x112, "SDEI_EVENT_STATE(2): no third event"),
        (FW | 0x124, "SDEI_EVENT_EP_ADDR(2)"),
        (FW | 0x154, "SDEI_CONTEXT(0, 20)"),
        (FW | 0x174, "SDEI_CONTEXT(1, 20)"),
        (FW | 0x180, "SDEI_CONTEXT(2, 0): no third class"),
        (FW | 0x1FF, "end of the SDEI block"),
        (FW | 0x4, "firmware regno 4"),
        (U32_SIZE_FW | 0x100, "SDEI_VCPU_STATE with size U32"),
        (U128_SIZE_FW | 0x110, "SDEI_EVENT_STATE(0) with size U128"),
        (U32_SIZE_FW | 0x0, "PSCI_VERSION with size U32"),
        (BMAP | 0x4, "bitmap regno 4"),
    )
    for reg_id, note in unknown:
        s.get_reg(0, reg_id, errno="ENOENT", note=note)
        s.set_reg(0, reg_id, 0, errno="ENOENT", note=note)
    s.get_reg(0, "SDEI_VCPU_STATE", 1, note="nothing changed")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    return s.build(
        "unknown-ids",
        "GET/SET of ids the vCPU does not list (gaps in the SDEI block, absent events and "
        "classes, other sizes, firmware and bitmap regnos past the end): ENOENT",
        {"SDEI_VCPU_STATE": 1})


def feature_gate_off() -> Conformance:
    s = Script()
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="SDEI (bit 1) off before the first run")
    s.get_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1)
    s.call(0, "VERSION", ret=NOT_SUPPORTED)
    s.call(0, "FEATURES", 1, ret=NOT_SUPPORTED)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=NOT_SUPPORTED)
    s.call(0, "EVENT_STATUS", EV0, ret=NOT_SUPPORTED)
    s.call(0, "PE_UNMASK", ret=NOT_SUPPORTED)
    s.call(0, "PRIVATE_RESET", ret=NOT_SUPPORTED)
    s.call(0, "EVENT_COMPLETE", 0, ret=NOT_SUPPORTED)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0, note="nothing changed")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x3, errno="EBUSY", note="the VM has run")
    s.get_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1)
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="writing the same value is allowed")
    return s.build(
        "feature-gate-off",
        "KVM_REG_ARM_STD_BMAP bit 1 clear: every SDEI call NOT_SUPPORTED and nothing changes; "
        "turning it back on after the first run EBUSY",
        {"KVM_REG_ARM_STD_BMAP": 0x1, "SDEI_VCPU_STATE": 1})


PSCI_1_1: Final = 0x10001
"""KVM_ARM_PSCI_1_1 = PSCI_VERSION(1, 1): what the default simulated host (6.12 + SDEI) has."""


def firmware_registers() -> Conformance:
    s = Script(2)
    # The default simulated host: Linux 6.12 on QEMU -cpu max (measured in the lab) plus the
    # SDEI ABI; it has no VENDOR_HYP_BMAP_2 (6.15+).
    for v, (name, value) in enumerate((("KVM_REG_ARM_PSCI_VERSION", PSCI_1_1),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1", 2),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_2", 0),
                                       ("KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_3", 0),
                                       ("KVM_REG_ARM_STD_BMAP", 0x3),
                                       ("KVM_REG_ARM_STD_HYP_BMAP", 0x1),
                                       ("KVM_REG_ARM_VENDOR_HYP_BMAP", 0x3))):
        s.get_reg(v % 2, name, value)
    s.get_reg(0, "KVM_REG_ARM_VENDOR_HYP_BMAP_2", errno="ENOENT", note="a 6.15+ register")
    s.set_reg(0, "KVM_REG_ARM_VENDOR_HYP_BMAP_2", 0, errno="ENOENT")
    psci = "KVM_REG_ARM_PSCI_VERSION"
    s.set_reg(1, psci, 0x10000, note="PSCI 1.0, through vCPU 1")
    s.get_reg(0, psci, 0x10000, note="VM-wide")
    s.set_reg(0, psci, 0x2, note="PSCI 0.2")
    s.set_reg(0, psci, 0x1, errno="EINVAL", note="0.1 on a PSCI_0_2 vCPU")
    s.set_reg(0, psci, 0x10002, errno="EINVAL", note="1.2 is newer than the host's 1.1")
    s.set_reg(0, psci, 0x30000, errno="EINVAL", note="no such version")
    s.get_reg(1, psci, 0x2, note="unchanged")
    wa1, wa2, wa3 = (f"KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_{n}" for n in (1, 2, 3))
    s.set_reg(0, wa1, 1, note="AVAIL on a NOT_REQUIRED host: at least as safe")
    s.get_reg(0, wa1, 2, note="a check only: nothing stored")
    s.set_reg(0, wa1, 3, errno="EINVAL", note="undefined level")
    s.set_reg(0, wa1, 0x12, errno="EINVAL", note="bits above the level field")
    s.set_reg(0, wa2, 0, note="NOT_AVAIL")
    s.set_reg(0, wa2, 1, note="UNKNOWN narrows to NOT_AVAIL")
    s.set_reg(0, wa2, 3, errno="EINVAL", note="NOT_REQUIRED: the host is NOT_AVAIL")
    s.set_reg(0, wa2, 0x10, errno="EINVAL", note="ENABLED without AVAIL")
    s.set_reg(0, wa3, 0)
    s.set_reg(0, wa3, 1, errno="EINVAL", note="AVAIL: the host is NOT_AVAIL")
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="the VM runs")
    s.set_reg(1, psci, PSCI_1_1, note="PSCI_VERSION has no run-once lock")
    s.get_reg(0, psci, PSCI_1_1)
    return s.build(
        "firmware-registers",
        "every upstream firmware register read on the default host; PSCI_VERSION VM-wide "
        "and checked; WORKAROUND writes are checks (never stored); absent registers ENOENT",
        {"KVM_REG_ARM_PSCI_VERSION": PSCI_1_1, "vcpu1:KVM_REG_ARM_PSCI_VERSION": PSCI_1_1,
         "KVM_REG_ARM_SMCCC_ARCH_WORKAROUND_1": 2, "KVM_REG_ARM_STD_BMAP": 0x3})


def bitmap_ebusy() -> Conformance:
    s = Script(2)
    std, hyp, vendor = "KVM_REG_ARM_STD_BMAP", "KVM_REG_ARM_STD_HYP_BMAP", \
        "KVM_REG_ARM_VENDOR_HYP_BMAP"
    s.set_reg(0, std, 0x3, note="same value")
    s.set_reg(1, hyp, 0, note="PV time off, before the first run")
    s.get_reg(0, hyp, 0, note="VM-wide")
    s.set_reg(0, vendor, 0x1)
    s.set_reg(0, std, 0x4, errno="EINVAL", note="a bit the host does not know")
    s.set_reg(0, hyp, 0x2, errno="EINVAL")
    s.no_dispatch(1, pc=0, pstate=EL1H, note="a dispatch check is a run")
    s.set_reg(0, std, 0x1, errno="EBUSY", note="changed after the first run")
    s.set_reg(1, hyp, 0x1, errno="EBUSY")
    s.set_reg(0, vendor, 0x3, errno="EBUSY")
    s.set_reg(0, std, 0x4, errno="EINVAL", note="unknown bits are EINVAL before EBUSY")
    s.set_reg(0, std, 0x3, note="the same value is accepted")
    s.set_reg(1, vendor, 0x1)
    s.get_reg(1, std, 0x3)
    s.get_reg(1, hyp, 0)
    s.get_reg(0, vendor, 0x1)
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="SDEI still on")
    s.migrate(note="the destination VM has not run yet")
    s.get_reg(1, hyp, 0, note="restored")
    s.get_reg(1, vendor, 0x1)
    s.set_reg(0, hyp, 0x1, note="writable again until the destination runs")
    s.call(1, "PE_UNMASK", ret=SUCCESS)
    s.set_reg(0, hyp, 0x0, errno="EBUSY")
    return s.build(
        "bitmap-ebusy",
        "feature bitmaps: VM-wide, unknown bits EINVAL, any change after the first run EBUSY "
        "(the same value allowed), writable on a migration destination until it runs",
        {"KVM_REG_ARM_STD_BMAP": 0x3, "vcpu1:KVM_REG_ARM_STD_HYP_BMAP": 0x1,
         "KVM_REG_ARM_VENDOR_HYP_BMAP": 0x1, "vcpu1:SDEI_VCPU_STATE": 0})


def feature_gate_off_written_state() -> Conformance:
    s = Script()
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x1, note="SDEI (bit 1) off before the first run")
    s.set_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x10000)
    s.set_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="registered, enabled, pending")
    s.set_reg(0, "SDEI_VCPU_STATE", 0, note="unmasked")
    s.no_dispatch(0, pc=0, pstate=EL1H, note="gate off: nothing is dispatched")
    s.inject(0, EV0, ok=False, note="gate off: nothing is injected (on, it would merge)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="still pending, not running")
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x7, errno="EINVAL",
              note="unknown bit 2: EINVAL, checked before the EBUSY of a run VM")
    s.set_reg(0, "KVM_REG_ARM_STD_BMAP", 0x3, errno="EBUSY", note="the VM has run")
    s.migrate()
    s.no_dispatch(0, pc=0, pstate=EL1H, note="the gate migrates with the state")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    return s.build(
        "feature-gate-off-written-state",
        "KVM_REG_ARM_STD_BMAP bit 1 clear with a deliverable event written through ONE_REG: "
        "no dispatch, no injection, before and after migration; unknown bits EINVAL first",
        {"KVM_REG_ARM_STD_BMAP": 0x1, "SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 0b1011,
         "SDEI_EVENT_EP_ADDR(0)": 0x10000, "cpu.pc": 0, "cpu.pstate": EL1H})
