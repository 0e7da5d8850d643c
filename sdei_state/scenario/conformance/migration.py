"""Conformance scenarios: migration in the middle of a handler."""

from __future__ import annotations

from .oracle import EL1H, EL1H_DAIF, EV0, EV1, INVALID, PENDING, SUCCESS
from .steps import Conformance, Script, arm


def migrate_normal_handler() -> Conformance:
    s = Script(2)
    arm(s, 1, EV0, 0x10000, 0x77)
    s.call(0, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS)
    s.cpu(1, pc=0x8000, pstate=0x8000_0005, sp=0x9000, vbar_el1=0x100000, elr_el1=0xE1,
          spsr_el1=0x3C5, x={0: 0x50, 1: 0x51, 2: 0x52, 3: 0x53, 17: 0x5F, 30: 0x3030})
    s.dispatch(1, EV0, pc=0x10000, pstate=0x8000_03C5, x1=0x77, x2=0x8000, x3=0x8000_0005)
    s.migrate(note="the normal handler is running on vCPU 1")
    s.get_reg(1, "SDEI_EVENT_STATE(0)", 7)
    s.get_reg(1, "SDEI_CONTEXT(0, 0)", 0x50)
    s.get_reg(1, "SDEI_CONTEXT(0, 18)", 0x8000)
    s.get_reg(1, "SDEI_CONTEXT(0, 19)", 0x8000_0005)
    s.get_reg(1, "SDEI_EVENT_EP_ARG(0)", 0x77)
    s.call(1, "EVENT_CONTEXT", 3, ret=0x53)
    s.complete(1, "EVENT_COMPLETE", 0, x=(0x50, 0x51, 0x52, 0x53))
    s.no_dispatch(1, pc=0x8000, pstate=0x8000_0005)
    s.call(0, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS, note="the registration survived")
    s.dispatch(1, EV0, pc=0x10000, pstate=0x8000_03C5, x1=0x77, x2=0x8000, x3=0x8000_0005)
    return s.build(
        "migrate-normal-handler",
        "migration while a normal handler runs: state, context, CPU registers (SP, VBAR, "
        "ELR, SPSR, x30) survive; CONTEXT and COMPLETE work on the destination",
        {"vcpu1:SDEI_EVENT_STATE(0)": 7, "vcpu1:SDEI_VCPU_STATE": 0,
         "vcpu0:SDEI_VCPU_STATE": 1, "vcpu1:cpu.x17": 0x5F, "vcpu1:cpu.x30": 0x3030,
         # Set in EL1h, so SP_EL1: it migrates as KVM's core sp_el1; SP_EL0 stays 0.
         "vcpu1:cpu.sp": 0x9000, "vcpu1:SP_EL1": 0x9000, "vcpu1:SP_EL0": 0,
         "vcpu1:cpu.vbar_el1": 0x100000, "vcpu1:cpu.elr_el1": 0xE1,
         "vcpu1:cpu.spsr_el1": 0x3C5, "vcpu1:SDEI_CONTEXT(0, 18)": 0x8000})


def migrate_nested() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0xA, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    arm(s, 0, EV1, 0x20000, 0xB)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x100, 1: 0x101, 2: 0x102, 3: 0x103})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H)
    s.cpu(0, pc=0x10040, x={0: 0x200, 1: 0x201, 2: 0x202, 3: 0x203})
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF)
    s.migrate(note="both handlers running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 7)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 7)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0x10040)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x1000)
    s.call(0, "EVENT_CONTEXT", 2, ret=0x202)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203))
    s.migrate(note="back in the normal handler")
    s.no_dispatch(0, pc=0x10040, pstate=EL1H_DAIF)
    s.call(0, "EVENT_CONTEXT", 2, ret=0x102)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.no_dispatch(0, pc=0x1000, pstate=EL1H)
    return s.build(
        "migrate-nested",
        "migration with a critical handler nested on a normal one, and again after the "
        "critical one completed: both contexts restored on the destination",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 18)": 0, "SDEI_VCPU_STATE": 0, "cpu.pc": 0x1000})


def migrate_unregister_pending() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 0x44)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1100, x={0: 0x40, 1: 0x41, 2: 0x42, 3: 0x43})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x44, x2=0x1100, x3=EL1H)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.migrate(note="unregister-pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.call(0, "EVENT_STATUS", EV0, ret=4)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.call(0, "EVENT_CONTEXT", 1, ret=0x41)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x7000, x=(0x40, 0x41, 0x42, 0x43))
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID)
    return s.build(
        "migrate-unregister-pending",
        "migration of an unregister-pending handler: state (0,0,1) and context survive, "
        "UNREGISTER still PENDING, COMPLETE_AND_RESUME finishes the unregistration",
        {"SDEI_EVENT_STATE(0)": 0, "SDEI_CONTEXT(0, 0)": 0, "cpu.pc": 0x7000,
         "cpu.elr_el1": 0x1100, "cpu.spsr_el1": EL1H})


def migrate_relative() -> Conformance:
    s = Script()
    s.cpu(0, vbar_el1=0x200000)
    s.call(0, "EVENT_REGISTER", EV0, 0xA00, 0x99, 2, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="masked: pending")
    s.migrate(note="relative, pending, masked")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b11011)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0xA00)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x1230)
    s.dispatch(0, EV0, pc=0x200A00, pstate=EL1H_DAIF, x1=0x99, x2=0x1230, x3=EL1H,
               note="VBAR_EL1 came across with the core registers")
    s.migrate(note="relative handler running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.cpu(0, vbar_el1=0x300000)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x300A00, pstate=EL1H_DAIF, x1=0x99, x2=0x1230, x3=EL1H)
    return s.build(
        "migrate-relative",
        "migration of a relative-mode event while pending and while its handler runs: "
        "RELATIVE, offset and VBAR_EL1 survive; entry = VBAR_EL1 at dispatch + offset",
        {"SDEI_EVENT_STATE(0)": 0b10111, "SDEI_EVENT_EP_ADDR(0)": 0xA00,
         "cpu.vbar_el1": 0x300000, "cpu.pc": 0x300A00})


def migrate_masked() -> Conformance:
    s = Script(2)
    arm(s, 0, EV0, 0x10000, 0x21)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x4440)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x21, x2=0x4440, x3=EL1H)
    s.call(0, "PE_MASK", ret=1, note="masked inside the handler")
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.migrate(note="masked vCPU in a handler with a trigger pending")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x4440, pstate=EL1H, note="still masked")
    s.migrate(note="masked, pending, idle")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_MASK", ret=0, note="the mask came across")
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x21, x2=0x4440, x3=EL1H)
    return s.build(
        "migrate-masked",
        "migration of a masked vCPU inside a handler and then idle with a pending trigger: "
        "mask and PENDING survive, delivery only after PE_UNMASK",
        {"vcpu0:SDEI_VCPU_STATE": 0, "vcpu0:SDEI_EVENT_STATE(0)": 7,
         "vcpu1:SDEI_VCPU_STATE": 1})


def migrate_pending_critical() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0x5A, 0, 0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.inject(0, EV1, ok=True, note="registered, disabled: pending")
    s.migrate()
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1001)
    s.no_dispatch(0, pc=0, pstate=EL1H)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0x5A, x2=0, x3=EL1H)
    s.migrate(note="critical handler running, no normal one")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b111)
    s.get_reg(0, "SDEI_CONTEXT(1, 19)", EL1H)
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "migrate-pending-critical",
        "migration of a pending critical event on a disabled registration, then of a "
        "running critical handler alone",
        {"SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(1, 19)": 0})
