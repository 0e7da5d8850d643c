"""Conformance scenarios: priority classes, relative mode, masking, unregister-pending,
resets, signals, injection, and the handler-entry PSTATE under SCTLR_EL1."""

from __future__ import annotations

from typing import Final

from .oracle import DENIED, EL1H, EL1H_DAIF, EV0, EV1, INVALID, PENDING, SUCCESS
from .steps import Conformance, Script, arm


def nested_critical() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0xA, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    arm(s, 0, EV1, 0x20000, 0xB)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x100, 1: 0x101, 2: 0x102, 3: 0x103, 17: 0x117})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H)
    s.cpu(0, pc=0x10040, x={0: 0x200, 1: 0x201, 2: 0x202, 3: 0x203, 17: 0x217},
          note="inside the normal handler")
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF,
               note="critical preempts the running normal handler")
    s.get_reg(0, "SDEI_CONTEXT(1, 0)", 0x200)
    s.get_reg(0, "SDEI_CONTEXT(1, 18)", 0x10040)
    s.get_reg(0, "SDEI_CONTEXT(1, 19)", EL1H_DAIF)
    s.get_reg(0, "SDEI_CONTEXT(0, 0)", 0x100)
    s.get_reg(0, "SDEI_CONTEXT(0, 18)", 0x1000)
    s.call(0, "EVENT_CONTEXT", 0, ret=0x200, note="innermost: the critical context")
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    s.call(0, "EVENT_STATUS", EV1, ret=7)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="normal cannot preempt")
    s.inject(0, EV1, ok=True)
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="critical cannot preempt critical")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203),
               note="back in the normal handler")
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0xB, x2=0x10040, x3=EL1H_DAIF,
               note="the pending critical event runs again over the normal handler")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x200, 0x201, 0x202, 0x203))
    s.no_dispatch(0, pc=0x10040, pstate=EL1H_DAIF, note="normal still running")
    s.call(0, "EVENT_CONTEXT", 1, ret=0x101, note="innermost: the normal context")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0xA, x2=0x1000, x3=EL1H,
               note="the normal signal that waited")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x100, 0x101, 0x102, 0x103))
    s.no_dispatch(0, pc=0x1000, pstate=EL1H)
    return s.build(
        "nested-critical",
        "a critical handler nested on a normal one: both contexts, innermost EVENT_CONTEXT "
        "and COMPLETE, no preemption within a class, waiting triggers run afterwards",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "SDEI_CONTEXT(0, 18)": 0,
         "SDEI_CONTEXT(1, 18)": 0, "SDEI_CONTEXT(1, 19)": 0, "cpu.pc": 0x1000,
         "cpu.pstate": EL1H, "cpu.x17": 0x117})


def critical_first() -> Conformance:
    s = Script()
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 2, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.inject(0, EV1, ok=True)
    s.no_dispatch(0, pc=0, pstate=EL1H, note="masked")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x4000)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=2, x2=0x4000, x3=EL1H,
               note="critical first")
    s.no_dispatch(0, pc=0x20000, pstate=EL1H_DAIF, note="no normal while critical runs")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0x4000, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x4000, pstate=EL1H)
    return s.build(
        "critical-first",
        "with both events pending the critical one is taken first; the normal one waits "
        "until no handler runs",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "cpu.pc": 0x4000})


def relative_mode() -> Conformance:
    s = Script()
    s.call(0, "FEATURES", 1, ret=1)
    s.cpu(0, vbar_el1=0x400000)
    s.call(0, "EVENT_REGISTER", EV0, 0x800, 9, 2, 0, ret=SUCCESS, note="relative")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10001, note="REGISTERED + RELATIVE")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0x800, note="the offset, not an address")
    s.call(0, "EVENT_STATUS", EV0, ret=1, note="RELATIVE is not part of the status")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b11011)
    s.cpu(0, vbar_el1=0x600000, pc=0x1000, note="VBAR_EL1 moved after REGISTER")
    s.dispatch(0, EV0, pc=0x600800, pstate=EL1H_DAIF, x1=9, x2=0x1000, x3=EL1H,
               note="VBAR_EL1 at dispatch + offset")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b10111)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.cpu(0, vbar_el1=0xFFFF_FFFF_FFFF_F000)
    s.call(0, "EVENT_REGISTER", EV1, 0x2000, 3, 3, 0, ret=SUCCESS, note="relative, RM_PE")
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.inject(0, EV1, ok=True)
    s.dispatch(0, EV1, pc=0x1000, pstate=EL1H_DAIF, x1=3, x2=0x1000, x3=EL1H,
               note="VBAR_EL1 + offset wraps modulo 2^64")
    s.call(0, "EVENT_UNREGISTER", EV0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0, note="RELATIVE cleared with the registration")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    return s.build(
        "relative-mode",
        "REGISTER relative mode: RELATIVE bit, offset stored, entry = VBAR_EL1 at dispatch + "
        "offset (mod 2^64), cleared by UNREGISTER",
        {"SDEI_EVENT_STATE(1)": 0b10111, "SDEI_EVENT_EP_ADDR(1)": 0x2000,
         "SDEI_EVENT_EP_ARG(1)": 3, "SDEI_CONTEXT(1, 18)": 0x1000, "cpu.pc": 0x1000,
         "cpu.vbar_el1": 0xFFFF_FFFF_FFFF_F000})


def masked_vcpu() -> Conformance:
    s = Script(2)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0x33, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="vCPU 1 signals vCPU 0")
    s.no_dispatch(0, pc=0, pstate=EL1H, note="vCPU 0 masked")
    s.get_reg(0, "SDEI_VCPU_STATE", 1)
    s.get_reg(1, "SDEI_VCPU_STATE", 1)
    s.call(1, "PE_UNMASK", ret=SUCCESS, note="unmasks vCPU 1 only")
    s.get_reg(1, "SDEI_VCPU_STATE", 0)
    s.no_dispatch(0, pc=0, pstate=EL1H)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x700)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x33, x2=0x700, x3=EL1H)
    s.call(0, "PE_MASK", ret=1, note="mask from inside the handler")
    s.call(1, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x700, pstate=EL1H, note="masked: stays pending")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x33, x2=0x700, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    return s.build(
        "masked-vcpu",
        "per-vCPU mask: a signal to a masked vCPU stays pending, unmasking another vCPU does "
        "not help, PE_MASK inside a handler holds the retrigger until PE_UNMASK",
        {"vcpu0:SDEI_VCPU_STATE": 0, "vcpu1:SDEI_VCPU_STATE": 0, "SDEI_EVENT_STATE(0)": 3,
         "vcpu1:SDEI_EVENT_STATE(0)": 0, "cpu.pc": 0x700})


def unregister_pending() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 0x42)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, x={0: 0x10, 1: 0x11, 2: 0x12, 3: 0x13})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x42, x2=0x1000, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS, note="a trigger pending during the run")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1111)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100, note="pending trigger cleared")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0, note="entry point cleared at once")
    s.get_reg(0, "SDEI_EVENT_EP_ARG(0)", 0)
    s.call(0, "EVENT_STATUS", EV0, ret=4)
    s.call(0, "EVENT_UNREGISTER", EV0, ret=PENDING, note="again: PENDING")
    s.call(0, "EVENT_ENABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_DISABLE", EV0, ret=DENIED)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 1, 0, 0, ret=DENIED)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID, note="not registered on the target")
    s.inject(0, EV0, ok=False)
    s.call(0, "EVENT_CONTEXT", 0, ret=0x10, note="the context is still readable")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x10, 0x11, 0x12, 0x13))
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "EVENT_REGISTER", EV0, 0x20000, 1, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.no_dispatch(0, pc=0x1000, pstate=EL1H, note="no stale trigger")
    return s.build(
        "unregister-pending",
        "UNREGISTER while running: PENDING, state (0,0,1), entry point and pending trigger "
        "cleared, calls DENIED, context readable, unregistered on COMPLETE",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_EP_ADDR(0)": 0x20000, "SDEI_EVENT_EP_ARG(0)": 1,
         "SDEI_CONTEXT(0, 0)": 0})


def private_reset() -> Conformance:
    s = Script(2)
    arm(s, 0, EV0, 0x10000, 1)
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 2, 0, 0, ret=SUCCESS)
    s.call(1, "EVENT_REGISTER", EV0, 0x30000, 3, 0, 0, ret=SUCCESS)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x900, x={0: 0x90, 1: 0x91, 2: 0x92, 3: 0x93})
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=1, x2=0x900, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.inject(0, EV1, ok=True, note="registered, disabled: pending")
    s.call(0, "PRIVATE_RESET", ret=DENIED, note="a handler is running")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b100, note="unregister-pending")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0, note="unregistered, pending cleared")
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(0)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ADDR(1)", 0)
    s.get_reg(0, "SDEI_EVENT_EP_ARG(1)", 0)
    s.call(1, "EVENT_STATUS", EV0, ret=1, note="vCPU 1 untouched")
    s.call(0, "PRIVATE_RESET", ret=DENIED, note="still running")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0x90, 0x91, 0x92, 0x93))
    s.call(0, "PRIVATE_RESET", ret=SUCCESS)
    s.call(0, "EVENT_STATUS", EV0, ret=0)
    s.call(0, "SHARED_RESET", ret=SUCCESS)
    s.call(1, "PRIVATE_RESET", ret=SUCCESS)
    s.call(1, "EVENT_STATUS", EV0, ret=0)
    return s.build(
        "private-reset",
        "PRIVATE_RESET: DENIED with a running handler (left unregister-pending), other events "
        "and pending triggers cleared, only the calling vCPU, mask unchanged",
        {"vcpu0:SDEI_EVENT_STATE(0)": 0, "vcpu0:SDEI_EVENT_STATE(1)": 0,
         "vcpu1:SDEI_EVENT_STATE(0)": 0, "vcpu1:SDEI_EVENT_EP_ADDR(0)": 0,
         "vcpu0:SDEI_VCPU_STATE": 0, "vcpu1:SDEI_VCPU_STATE": 1})


def signal_by_mpidr() -> Conformance:
    s = Script(17)
    arm(s, 16, EV0, 0x16000, 16)
    arm(s, 1, EV0, 0x11000, 1)
    s.call(0, "EVENT_SIGNAL", EV0, 0x100, ret=SUCCESS, note="Aff1=1, Aff0=0: vCPU 16")
    s.get_reg(16, "SDEI_EVENT_STATE(0)", 0b1011)
    s.get_reg(1, "SDEI_EVENT_STATE(0)", 0b11, note="vCPU 1 (Aff0=1) not signalled")
    s.dispatch(16, EV0, pc=0x16000, pstate=EL1H_DAIF, x1=16, x2=0, x3=EL1H)
    s.call(0, "EVENT_SIGNAL", EV0, 0x8000_0001, ret=SUCCESS, note="RES1 bit 31 ignored")
    s.call(0, "EVENT_SIGNAL", EV0, 0x4000_0001, ret=SUCCESS, note="U bit ignored; merges")
    s.call(0, "EVENT_SIGNAL", EV0, 0x11, ret=INVALID, note="Aff0=17: no such vCPU")
    s.call(0, "EVENT_SIGNAL", EV0, 0x200, ret=INVALID, note="vCPU 32 does not exist")
    s.call(0, "EVENT_SIGNAL", EV0, 1 << 32 | 1, ret=INVALID, note="Aff3=1")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=INVALID, note="vCPU 0 has no registration")
    s.call(0, "EVENT_SIGNAL", EV1, 1, ret=INVALID, note="ASYNC_PF is not signalable")
    s.call(0, "EVENT_SIGNAL", 1 << 32, 1, ret=INVALID, note="event upper bits")
    s.dispatch(1, EV0, pc=0x11000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    s.call(1, "EVENT_SIGNAL", EV0, 1, ret=SUCCESS, note="to self, while running")
    s.complete(1, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(1, EV0, pc=0x11000, pstate=EL1H_DAIF, x1=1, x2=0, x3=EL1H)
    return s.build(
        "signal-by-mpidr",
        "EVENT_SIGNAL by target MPIDR across vCPUs (Aff1 routing, bits 31/30 ignored, Aff3, "
        "missing vCPU or registration, non-signalable event), signal to self",
        {"vcpu1:SDEI_EVENT_STATE(0)": 7, "vcpu16:SDEI_EVENT_STATE(0)": 7,
         "vcpu0:SDEI_EVENT_STATE(0)": 0, "vcpu1:cpu.pc": 0x11000, "vcpu16:cpu.pc": 0x16000,
         "vcpu16:SDEI_CONTEXT(0, 19)": EL1H})


def inject() -> Conformance:
    s = Script(2)
    s.inject(0, EV1, ok=False, note="not registered")
    s.inject(0, 0x40000000, ok=False, note="unknown event")
    s.inject(0, 1 << 32, ok=False, note="upper bits")
    s.call(0, "EVENT_REGISTER", EV1, 0x20000, 0x77, 0, 0, ret=SUCCESS)
    s.inject(1, EV1, ok=False, note="registered on vCPU 0 only")
    s.inject(0, EV1, ok=True)
    s.inject(0, EV1, ok=True, note="merges into the pending trigger")
    s.get_reg(0, "SDEI_EVENT_STATE(1)", 0b1001)
    s.call(0, "EVENT_REGISTER", EV0, 0x10000, 0x66, 0, 0, ret=SUCCESS)
    s.inject(0, EV0, ok=True, note="the hypervisor may inject event 0")
    s.call(0, "EVENT_ENABLE", EV1, ret=SUCCESS)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.call(0, "PE_UNMASK", ret=SUCCESS)
    s.cpu(0, pc=0x5554)
    s.dispatch(0, EV1, pc=0x20000, pstate=EL1H_DAIF, x1=0x77, x2=0x5554, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x66, x2=0x5554, x3=EL1H)
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x5554, pstate=EL1H, note="one dispatch per trigger")
    return s.build(
        "inject",
        "hypervisor injection: refused for unknown or unregistered events (per vCPU), "
        "pending while disabled, merging, event 0 injectable",
        {"SDEI_EVENT_STATE(0)": 3, "SDEI_EVENT_STATE(1)": 3, "vcpu1:SDEI_EVENT_STATE(1)": 0})


def disable_while_running() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 0x55)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x2220)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x55, x2=0x2220, x3=EL1H)
    s.call(0, "EVENT_DISABLE", EV0, ret=SUCCESS, note="no effect on the running handler")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1101, note="registered, running, pending")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1001)
    s.no_dispatch(0, pc=0x2220, pstate=EL1H, note="disabled: the trigger waits")
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS)
    s.dispatch(0, EV0, pc=0x10000, pstate=EL1H_DAIF, x1=0x55, x2=0x2220, x3=EL1H)
    s.call(0, "EVENT_ENABLE", EV0, ret=SUCCESS, note="enable while running: no change")
    s.call(0, "EVENT_STATUS", EV0, ret=7)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x3330, x=(0, 0, 0, 0))
    return s.build(
        "disable-while-running",
        "DISABLE and ENABLE inside a handler: the running handler goes on, a trigger that "
        "arrives while disabled waits for ENABLE",
        {"SDEI_EVENT_STATE(0)": 3, "cpu.pc": 0x3330, "cpu.elr_el1": 0x2220,
         "cpu.spsr_el1": EL1H, "cpu.pstate": EL1H_DAIF})


def aarch32_and_el2() -> Conformance:
    s = Script()
    arm(s, 0, EV0, 0x10000, 0x32)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x8000, pstate=0x9, note="the guest is at EL2h (nested virtualization)")
    s.no_dispatch(0, pc=0x8000, pstate=0x9, note="never save a context that returns to EL2")
    s.get_reg(0, "SDEI_EVENT_STATE(0)", 0b1011, note="still pending")
    s.cpu(0, pc=0x8000, pstate=0xD, note="EL3h")
    s.no_dispatch(0, pc=0x8000, pstate=0xD)
    # AArch32 User with N, Z and T (bit 5): an AArch32 SPSR layout. NZCV keep their place;
    # T has no AArch64 meaning (bit 5 is RES0 there) and is dropped.
    s.cpu(0, pc=0x8002, pstate=0xC000_0030)
    s.dispatch(0, EV0, pc=0x10000, pstate=0xC000_03C5, x1=0x32, x2=0x8002, x3=0xC000_0030,
               note="EL1h, DAIF set, NZCV kept, AArch32 T dropped")
    s.get_reg(0, "SDEI_CONTEXT(0, 19)", 0xC000_0030)
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x9000, x=(0, 0, 0, 0))
    return s.build(
        "aarch32-and-el2",
        "no dispatch while the guest is at EL2/EL3 (event stays pending); interrupting "
        "AArch32 User: entry PSTATE, COMPLETE_AND_RESUME ELR/SPSR",
        {"cpu.pc": 0x9000, "cpu.pstate": 0xC000_03C5, "cpu.elr_el1": 0x8002,
         "cpu.spsr_el1": 0xC000_0030, "SDEI_EVENT_STATE(0)": 3})


SCTLR_NO_SPAN: Final = 0x0045_0078
"""KVM's reset SCTLR_EL1 0x00C50078 with SPAN (bit 23) clear."""
SCTLR_SPAN_DSSBS: Final = 0x1000_00C5_0078
"""KVM's reset SCTLR_EL1 with DSSBS (bit 44) set."""
SCTLR_NO_SPAN_DSSBS: Final = 0x1000_0045_0078


def entry_pstate_sctlr() -> Conformance:
    # AArch64.TakeException to EL1: EL1h + DAIF (0x3C5); NZCV (31:28), DIT (24), PAN (22)
    # kept; PAN (0x40_0000) set when SPAN is 0; SSBS (0x1000) = DSSBS; UAO, TCO, SS, IL,
    # BTYPE and the rest 0. AArch32 SPSRs keep NZCV, DIT, PAN at the same bits.
    s = Script()
    arm(s, 0, EV0, 0x10000, 0x51)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x1000, pstate=0x0080_1005, sctlr_el1=SCTLR_NO_SPAN,
          x={0: 0xC0, 1: 0xC1, 2: 0xC2, 3: 0xC3},
          note="SPAN 0, DSSBS 0; interrupted EL1h with UAO (23) and SSBS (12) set")
    s.dispatch(0, EV0, pc=0x10000, pstate=0x0040_03C5, x1=0x51, x2=0x1000, x3=0x0080_1005,
               note="PAN set (SPAN 0), UAO 0, SSBS 0 (DSSBS 0)")
    s.cpu(0, sctlr_el1=SCTLR_SPAN_DSSBS, note="the handler sets SPAN and DSSBS")
    s.complete(0, "EVENT_COMPLETE_AND_RESUME", 0x2000, x=(0xC0, 0xC1, 0xC2, 0xC3))
    s.no_dispatch(0, pc=0x2000, pstate=0x0000_13C5, x0=0xC0,
                  note="SCTLR_EL1 of the COMPLETE_AND_RESUME: PAN kept (clear), SSBS set")
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pc=0x3000, pstate=0xF1C0_0030,
          note="AArch32 User with NZCV, DIT (24), AArch32 SSBS (23), PAN (22), T (5)")
    s.dispatch(0, EV0, pc=0x10000, pstate=0xF140_13C5, x1=0x51, x2=0x3000, x3=0xF1C0_0030,
               note="NZCV, DIT, PAN kept; SSBS from DSSBS; AArch32 SSBS and T dropped")
    s.complete(0, "EVENT_COMPLETE", 0, x=(0, 0, 0, 0))
    s.no_dispatch(0, pc=0x3000, pstate=0xF1C0_0030, x0=0)
    s.call(0, "EVENT_SIGNAL", EV0, 0, ret=SUCCESS)
    s.cpu(0, pstate=0x6000_0010, sctlr_el1=SCTLR_NO_SPAN_DSSBS,
          note="AArch32 User with Z, C; SPAN 0, DSSBS 1")
    s.migrate(note="SCTLR_EL1 travels as a system register")
    s.get_reg(0, "SCTLR_EL1", SCTLR_NO_SPAN_DSSBS)
    s.dispatch(0, EV0, pc=0x10000, pstate=0x6040_13C5, x1=0x51, x2=0x3000, x3=0x6000_0010,
               note="on the destination: PAN set (SPAN 0), SSBS set (DSSBS 1)")
    return s.build(
        "entry-pstate-sctlr",
        "handler-entry and resume PSTATE follow SCTLR_EL1 at that moment (SPAN 0 sets PAN, "
        "SSBS = DSSBS, UAO 0), AArch32 sources keep NZCV/DIT/PAN only, SCTLR_EL1 migrates",
        {"SDEI_EVENT_STATE(0)": 7, "SDEI_CONTEXT(0, 19)": 0x6000_0010, "cpu.pc": 0x10000,
         "cpu.pstate": 0x6040_13C5, "cpu.elr_el1": 0x1000, "cpu.spsr_el1": 0x0080_1005,
         "SCTLR_EL1": SCTLR_NO_SPAN_DSSBS})
