"""Conformance scenarios: the calls and their parameter checks (DEN0054C section 5)."""

from __future__ import annotations

from .oracle import (
    ALL_ONES,
    DENIED,
    EL1H,
    EL1H_DAIF,
    EV0,
    EV1,
    INVALID,
    NOT_SUPPORTED,
    OUT_OF_RESOURCE,
    PENDING,
    SUCCESS,
    VERSION_1_1_KVM,
)
from .steps import Conformance, Script, arm


def version_features() -> Conformance:
    s = Script()
    s.cpu(0, x={1: 11, 2: 22, 3: 33, 6: 66, 17: 1717, 18: 1818})
    s.call(0, "VERSION", ret=VERSION_1_1_KVM, note="1.1, KVM vendor; x1..x3 cleared")
    s.call(0, 0xC4000020, ret=VERSION_1_1_KVM, note="the same call by raw function id")
    s.call(0, "FEATURES", 0, ret=0, note="BIND_SLOTS: none")
    s.call(0, "FEATURES", 1, ret=1, note="RELATIVE_MODE supported")
    s.call(0, "FEATURES", 2, ret=INVALID)
    s.call(0, "FEATURES", 1 | 1 << 32, ret=INVALID, note="32-bit parameter: upper bits count")
    s.call(0, 0x84000020, ret=NOT_SUPPORTED, note="SMC32 VERSION")
    s.call(0, 0x84000030, ret=NOT_SUPPORTED, note="SMC32 FEATURES")
    s.call(0, 0xC4000033, ret=NOT_SUPPORTED, note="unassigned id in the SDEI block")
    s.call(0, 0xC400003F, ret=NOT_SUPPORTED, note="last id of the SDEI block")
    s.call(0, "FEATURES", 1, 2, 3, 4, 5, ret=1, note="x4, x5 are loaded with args 4 and 5")
    return s.build(
        "version-features",
        "VERSION value, FEATURES selectors, SMC32 and unassigned ids NOT_SUPPORTED, raw ids; "
        "a call clears x1-x3 and keeps x6-x30",
        {"cpu.x4": 4, "cpu.x5": 5, "cpu.x6": 66, "cpu.x17": 1717, "cpu.x18": 1818,
         "cpu.pc": 0, "cpu.pstate": EL1H, "SDEI_VCPU_STATE": 1})


def get_info() -> Conformance:
    s = Script()
    s.call(0, "EVENT_GET_INFO", EV0, 0, ret=0, note="EV_TYPE: private")
    s.call(0, "EVENT_GET_INFO", EV0, 1, ret=0, note="EV_SIGNALED: 0 = can be signalled")
    s.call(0, "EVENT_GET_INFO", EV0, 2, ret=0, note="EV_PRIORITY: normal")
    s.call(0, "EVENT_GET_INFO", EV0, 3, ret=INVALID, note="EV_ROUTING_MODE: private event")
    s.call(0, "EVENT_GET_INFO", EV0, 4, ret=INVALID, note="EV_ROUTING_AFF: private event")
    s.call(0, "EVENT_GET_INFO", EV0, 5, ret=INVALID, note="reserved selector")
    s.call(0, "EVENT_GET_INFO", EV0, 1 << 32, ret=INVALID, note="selector upper bits")
    s.call(0, "EVENT_GET_INFO", EV1, 0, ret=0, note="ASYNC_PF: private")
    s.call(0, "EVENT_GET_INFO", EV1, 1, ret=1, note="ASYNC_PF cannot be signalled")
    s.call(0, "EVENT_GET_INFO", EV1, 2, ret=1, note="ASYNC_PF: critical")
    s.call(0, "EVENT_GET_INFO", EV1, 3, ret=INVALID)
    s.call(0, "EVENT_GET_INFO", 1, 0, ret=INVALID, note="unknown standard event")
    s.call(0, "EVENT_GET_INFO", 0x40000000, 0, ret=INVALID, note="unknown vendor event")
    s.call(0, "EVENT_GET_INFO", 1 << 32, 0, ret=INVALID, note="event 0 with upper bits")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_GET_INFO", EV0, 3, ret=INVALID, note="routing of a registered private")
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_STATUS", 2, ret=INVALID)
    return s.build(
        "get-info",
        "EVENT_GET_INFO: every selector on both events (EV_SIGNALED spec polarity), routing "
        "selectors and unknown events INVALID_PARAMETERS",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000})


def register_checks() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", 1, 0x10000, 0, 0, 0, ret=INVALID, note="unknown event")
    s.call(0, "EVENT_REGISTER", 1 << 32, 0x10000, 0, 0, 0, ret=INVALID, note="upper bits")
    s.call(0, "EVENT_REGISTER", EV0, 0, 0, 0, 0, ret=INVALID, note="entry point 0")
    s.call(0, "EVENT_REGISTER", EV0, 0x10002, 0, 0, 0, ret=INVALID, note="unaligned")
    s.call(0, "EVENT_REGISTER", EV0, 0x10001, 0, 0, 0, ret=INVALID, note="unaligned")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 4, 0, ret=INVALID, note="flags bit 2")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 1 << 63, 0, ret=INVALID, note="flags bit 63")
    s.call(0, "EVENT_REGISTER", EV0, 0, 0, 2, 0, ret=INVALID, note="relative offset 0")
    s.call(0, "EVENT_REGISTER", EV0, 0x802, 0, 2, 0, ret=INVALID, note="relative unaligned")
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 42, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="registered, disabled")
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 43, 0, 0, ret=DENIED, note="already registered")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x10000, note="the first registration stands")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 42)
    s.call(0, "EVENT_REGISTER", EV1, 0x30000, ALL_ONES, 1, 0xFF00FFFFFF, ret=SUCCESS,
           note="RM_PE and any affinity: ignored for a private event")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 1)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0x30000)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", ALL_ONES)
    s.call(0, "EVENT_STATUS", EV1, ret=1)
    return s.build(
        "register-checks",
        "EVENT_REGISTER argument checks (event, entry point 0/unaligned, reserved flags, "
        "relative), DENIED when registered, routing ignored for private events",
        {"SDEI_EVENT_STATE(0)": 1, "SDEI_EVENT_EP_ADDR(0)": 0x10000, "SDEI_EVENT_EP_ARG(0)": 42,
         "SDEI_EVENT_STATE(1)": 1, "SDEI_EVENT_EP_ADDR(1)": 0x30000,
         "SDEI_EVENT_EP_ARG(1)": ALL_ONES})


def enable_disable_unregister() -> Conformance:
    s = Script()
    s.call(0, "EVENT_ENABLE", EV0, ret=DENIED, note="not registered")
    s.call(0, "EVENT_DISABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=DENIED)
    s.call(0, "EVENT_ENABLE", 5, ret=INVALID)
    s.call(0, "EVENT_DISABLE", 5, ret=INVALID)
    s.call(0, "EVENT_UNREGISTER", 5, ret=INVALID)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 7, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS, note="idempotent")
    s.call(0, "EVENT_STATUS", EV0, ret=3)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS, note="idempotent")
    s.call(0, "EVENT_STATUS", EV0, ret=1)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS, note="from enabled")
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0, note="canonical: cleared on unregister")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 0)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 8, 0, 0, ret=SUCCESS, note="register again")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS, note="from registered")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV1, 0x30000, 9, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    return s.build(
        "enable-disable-unregister",
        "ENABLE/DISABLE idempotent and DENIED unless registered; UNREGISTER from registered "
        "and enabled clears the entry point",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_EVENT_EP_ADDR(0)": 0, "SDEI_EVENT_EP_ARG(0)": 0,
         "SDEI_EVENT_STATE(1)": 3, "SDEI_EVENT_EP_ADDR(1)": 0x30000,
         "SDEI_EVENT_EP_ARG(1)": 9})


def handler_states() -> Conformance:
    s = Script()
    s.cpu(0, pc=0x1000)
    s.call(0, "EVENT_STATUS", EV0, ret=0, note="handler-unregistered (0,0,0)")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 42, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="handler-registered (1,0,0)")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=3, note="handler-enabled (1,1,0)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="to self (MPIDR 0)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="PENDING")
    s.cpu(0, x={0: 100, 1: 101, 2: 102, 3: 103})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=42, x2=0x1000, x3=EL1H)
    s.call(0, "EVENT_STATUS", EV0, ret=7, note="handler-enabled and running (1,1,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=5, note="handler-registered and running (1,0,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 5)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.call(0, "EVENT_STATUS", EV0, ret=4, note="handler-unregister-pending (0,0,1)")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 4)
    s.complete(0, "EVENT_COMPLETE", 0, x=(100, 101, 102, 103))
    s.call(0, "EVENT_STATUS", EV0, ret=0, note="unregistered once the handler completes")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0)
    return s.build(
        "handler-states",
        "all six handler states of DEN0054C Table 13 through EVENT_STATUS and "
        "SDEI_EVENT_STATE, plus PENDING",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_CONTEXT(0, 0)": 0, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(0, 19)": 0, "cpu.pc": 0x1000, "cpu.pstate": EL1H})


def pending_and_mask() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="registered but disabled")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001, note="registered + pending")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="edge-triggered: merges")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001)
    s.no_dispatch(0, pc=0, pstate=EL1H, x0=0, note="disabled and masked")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked: every vCPU starts masked")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.call(0, "PE_MASK", ret=0, note="was already masked")
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.get_reg(0, "SDEI_VCPU_STATE", 0)
    s.call(0, "PE_UNMASK", ret=SUCCESS, note="unmask when unmasked")
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7, note="PENDING cleared on dispatch")
    s.no_dispatch(0, pc=0x10000, pstate=EL1H_DAIF, x0=EV0, note="nothing pending")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="retrigger while running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.no_dispatch(0, pc=0x10000, pstate=EL1H_DAIF, note="same class is running")
    s.call(0, "PE_MASK", ret=1, note="this call masked the PE")
    s.call(0, "PE_MASK", ret=0)
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked: the retrigger stays pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H,
               note="the retrigger runs the handler again")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "pending-and-mask",
        "PENDING while disabled or masked, edge-triggered merging, PE_MASK/PE_UNMASK results "
        "and SDEI_VCPU_STATE, retrigger during a handler runs it again",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_VCPU_STATE": 0, "cpu.pc": 0, "cpu.pstate": EL1H})


def dispatch_entry() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 0xABCDEF)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    # Interrupted: EL0t with Z, C, PAN, SS, IL, BTYPE=0b10 and I set.
    s.cpu(0, pc=0x80000, pstate=0x6070_0880, sp=0x7000, vbar_el1=0x400000,
          x={**{n: 0x1000 + n for n in range(18)}, 18: 0x18, 30: 0x30})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x6040_03C5, x1=0xABCDEF, x2=0x80000,
               x3=0x6070_0880, note="EL1h, DAIF set; SS, IL, BTYPE cleared; NZCV, PAN kept")
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0x1000)
    s.get_reg(0, "SDEI_CONTEXT(0, 17)", 0x1011)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x80000)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0x6070_0880)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0, note="no critical handler: zero")
    s.call(0, "EVENT_CONTEXT", 0, ret=0x1000)
    s.call(0, "EVENT_CONTEXT", 3, ret=0x1003)
    s.call(0, "EVENT_CONTEXT", 17, ret=0x1011)
    s.call(0, "EVENT_CONTEXT", 18, ret=INVALID)
    s.call(0, "EVENT_CONTEXT", 1 << 32, ret=INVALID)
    return s.build(
        "dispatch-entry",
        "handler entry: x0-x3, PC, PSTATE (mode, DAIF, SS/IL/BTYPE cleared, flags kept), "
        "x4-x30/SP_EL0 kept, the handler on SP_EL1, context saved in SDEI_CONTEXT(0, *) and "
        "read by EVENT_CONTEXT",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_CONTEXT(0, 6)": 0x1006, "SDEI_CONTEXT(0, 1)": 0x1001,
         "SDEI_CONTEXT(0, 19)": 0x6070_0880, "cpu.x6": 0x1006, "cpu.x17": 0x1011,
         # SP is banked: the EL0t code's stack stays in SP_EL0 while the EL1h handler runs
         # on SP_EL1, which nothing set (0), as on KVM.
         "cpu.x18": 0x18, "cpu.x30": 0x30, "SP_EL0": 0x7000, "SP_EL1": 0, "cpu.sp": 0,
         "cpu.pc": 0x10000, "cpu.pstate": 0x6040_03C5, "cpu.elr_el1": 0, "cpu.spsr_el1": 0,
         "cpu.vbar_el1": 0x400000})


def complete() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 5)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x2000, pstate=0x8000_0005,
          x={0: 0xA0, 1: 0xA1, 2: 0xA2, 3: 0xA3, 4: 0xA4, 5: 0xA5, 6: 0xA6, 17: 0xB1, 18: 0xC0})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x8000_03C5, x1=5, x2=0x2000, x3=0x8000_0005)
    s.cpu(0, pc=0x10400, pstate=0x3C4, x={4: 2, 5: 3, 6: 4, 17: 5, 18: 0xD0},
          note="the handler clobbers x0-x17 and x18 (it should preserve x18)")
    s.complete(0, "EVENT_COMPLETE", 1, x=(0xA0, 0xA1, 0xA2, 0xA3),
               note="EV_FAILED is treated as handled")
    s.no_dispatch(0, pc=0x2000, pstate=0x8000_0005, x0=0xA0)
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0, note="COMPLETE clears the class's context")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 3)
    return s.build(
        "complete",
        "EVENT_COMPLETE restores x0-x17, PC and PSTATE (not x18+, not ELR/SPSR), EV_FAILED "
        "acts as handled, clears the context registers",
        {"cpu.x4": 0xA4, "cpu.x5": 0xA5, "cpu.x6": 0xA6, "cpu.x17": 0xB1, "cpu.x18": 0xD0,
         "cpu.pc": 0x2000, "cpu.pstate": 0x8000_0005, "cpu.elr_el1": 0, "cpu.spsr_el1": 0,
         "SDEI_EVENT_STATE(0)": 3, "SDEI_CONTEXT(0, 17)": 0})


def complete_and_resume() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 5)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    # Interrupted: EL1t with C and SS set.
    s.cpu(0, pc=0x3000, pstate=0x2020_0004, elr_el1=0x1234, spsr_el1=0x5,
          x={0: 0xB0, 1: 0xB1, 2: 0xB2, 3: 0xB3, 17: 0xBF})
    s.dispatch(0, EV0, pc=0x10000, pstate=0x2000_03C5, x1=5, x2=0x3000, x3=0x2020_0004)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x5002, ret=INVALID, note="unaligned resume")
    s.call(0, "EVENT_STATUS", EV0, ret=7, note="still running")
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x5000, x=(0xB0, 0xB1, 0xB2, 0xB3))
    s.no_dispatch(0, pc=0x5000, pstate=0x2000_03C5, x0=0xB0,
                  note="PC = resume address, PSTATE as on handler entry")
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x5002, ret=DENIED,
           note="nothing running: DENIED before the address check")
    return s.build(
        "complete-and-resume",
        "EVENT_COMPLETE_AND_RESUME: unaligned address INVALID_PARAMETERS while running, "
        "ELR/SPSR = interrupted PC/PSTATE, PC = resume address, entry PSTATE",
        {"cpu.pc": 0x5000, "cpu.pstate": 0x2000_03C5, "cpu.elr_el1": 0x3000,
         "cpu.spsr_el1": 0x2020_0004, "cpu.x17": 0xBF, "SDEI_EVENT_STATE(0)": 3,
         "SDEI_CONTEXT(0, 19)": 0, "cpu.x0": ALL_ONES - 2})


def context_and_complete_denied() -> Conformance:
    s = Script()
    s.call(0, "EVENT_CONTEXT", 0, ret=DENIED, note="no handler running")
    s.call(0, "EVENT_CONTEXT", 17, ret=DENIED)
    s.call(0, "EVENT_CONTEXT", 18, ret=INVALID, note="parameter checked first")
    s.call(0, "EVENT_CONTEXT", ALL_ONES, ret=INVALID)
    s.call(0, "EVENT_COMPLETE", 0, ret=DENIED)
    s.call(0, "EVENT_COMPLETE", 1, ret=DENIED)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x1000, ret=DENIED)
    s.call(0, "EVENT_COMPLETE_AND_RESUME", 0x1001, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_CONTEXT", 0, ret=DENIED, note="enabled but not running")
    s.call(0, "EVENT_COMPLETE", 0, ret=DENIED)
    return s.build(
        "context-complete-denied",
        "EVENT_CONTEXT (parameter checked before DENIED), COMPLETE and COMPLETE_AND_RESUME "
        "DENIED with no running handler",
        {"SDEI_EVENT_STATE(1)": 3, "cpu.pc": 0})


def interrupt_bind_routing() -> Conformance:
    s = Script()
    for intid, ret, note in ((0, INVALID, "SGI"), (15, INVALID, "SGI"),
                             (16, OUT_OF_RESOURCE, "first PPI"), (29, OUT_OF_RESOURCE, "PPI"),
                             (31, OUT_OF_RESOURCE, "last PPI"), (32, OUT_OF_RESOURCE, "SPI"),
                             (1019, OUT_OF_RESOURCE, "last SPI"), (1020, INVALID, "special"),
                             (1023, INVALID, "spurious"), (8192, INVALID, "LPI"),
                             (16 | 1 << 32, INVALID, "upper bits")):
        s.call(0, "INTERRUPT_BIND", intid, ret=ret, note=note)
    s.call(0, "INTERRUPT_RELEASE", EV0, ret=INVALID, note="nothing is bound")
    s.call(0, "INTERRUPT_RELEASE", 0x40000000, ret=INVALID)
    s.call(0, "INTERRUPT_RELEASE", EV1, ret=INVALID)
    s.call(0, "EVENT_ROUTING_SET", EV0, 0, 0, ret=INVALID, note="private event")
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ROUTING_SET", EV0, 1, 0, ret=INVALID, note="registered private event")
    s.call(0, "EVENT_ROUTING_SET", EV1, 0, 0, ret=INVALID)
    s.call(0, "EVENT_ROUTING_SET", 3, 0, 0, ret=INVALID, note="unknown event")
    s.call(0, "SHARED_RESET", ret=SUCCESS, note="no shared events, no bindings")
    return s.build(
        "bind-release-routing",
        "INTERRUPT_BIND: SGI/special/LPI INVALID_PARAMETERS, PPI/SPI OUT_OF_RESOURCE (no "
        "slots); INTERRUPT_RELEASE and ROUTING_SET INVALID_PARAMETERS; SHARED_RESET",
        {"SDEI_EVENT_STATE(0)": 1})
