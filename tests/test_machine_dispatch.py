"""Dispatch into the guest, nesting, completion and the entry context (DESIGN section 5,
"Dispatch"; DEN0054C 5.2 and 6.2 as summarised in reference/SDEI.md 2.6)."""

from __future__ import annotations

from typing import Final

import pytest
from helpers import ARG, EP, INTERRUPTED, U64, Vm, make_pending, reach

from sdei_state.cpu import CONTEXT_GPRS, CpuReg
from sdei_state.events import ASYNC_PF, SW_SIGNALED, Event
from sdei_state.spec import Function, Priority, RegisterFlags, Ret
from sdei_state.state import Context, EventState, HandlerState, VcpuState

S = HandlerState
EVENTS: Final = (SW_SIGNALED, ASYNC_PF)

# A full register file the dispatch must partly keep: x_n = 0x7700 + n, and the rest distinct.
FULL: Final = {
    **{CpuReg(n): 0x7700 + n for n in range(31)},
    CpuReg.SP: 0xFFFF_8000_0ABC_DEF0,
    CpuReg.PC: 0xFFFF_8000_0810_0004,
    CpuReg.PSTATE: 0x2000_0005,
    CpuReg.ELR_EL1: 0x1111_1110,
    CpuReg.SPSR_EL1: 0x3C4,
    CpuReg.VBAR_EL1: 0xFFFF_8000_0801_0000,
}


def armed(ev: Event, *, flags: int = 0, ep: int = EP) -> Vm:
    """A one-vCPU VM with ``ev`` registered, enabled, pending and the vCPU unmasked."""
    vm = Vm()
    reach(vm, 0, ev, S.ENABLED, flags=flags, ep=ep)
    vm.ret(0, Function.PE_UNMASK)
    make_pending(vm, 0, ev)
    return vm


# -- the entry context ------------------------------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_entry_registers(ev: Event) -> None:
    vm = armed(ev)
    vm.cpus[0].write(FULL)
    assert vm.dispatch(0) == ev
    after = vm.snapshot(0)
    assert after[CpuReg.X0] == ev.number
    assert after[CpuReg.X1] == ARG
    assert after[CpuReg.X2] == FULL[CpuReg.PC]
    assert after[CpuReg.X3] == FULL[CpuReg.PSTATE]
    for n in range(4, 31):  # x4..x17 keep their values, and so does everything above
        assert after[CpuReg(n)] == FULL[CpuReg(n)], f"x{n}"
    for r in (CpuReg.SP, CpuReg.ELR_EL1, CpuReg.SPSR_EL1, CpuReg.VBAR_EL1):
        assert after[r] == FULL[r], r.key
    assert after[CpuReg.PC] == EP
    assert after[CpuReg.PSTATE] == 0x2000_03C5
    # The class's context holds exactly what was interrupted; pending has become running.
    assert vm.state(0).contexts[ev.priority] == Context(
        tuple(FULL[r] for r in CONTEXT_GPRS), FULL[CpuReg.PC], FULL[CpuReg.PSTATE]
    )
    assert vm.state(0).contexts[1 - ev.priority].is_zero
    assert vm.ev(0, ev) == EventState(
        registered=True, enabled=True, running=True, ep_addr=EP, ep_arg=ARG
    )


# Interrupted PSTATE -> PSTATE on handler entry with KVM's reset SCTLR_EL1 (SPAN 1, DSSBS 0),
# worked out by hand from DESIGN section 5 (AArch64.TakeException to EL1): mode EL1h, nRW 0,
# DAIF set; NZCV (31:28), DIT (24) and PAN (22) kept; SSBS (12) = DSSBS = 0; UAO (23), TCO
# (25), SS (21), IL (20), BTYPE (11:10) and every other bit 0.
ENTRY_PSTATE: Final = [
    (0x0000_0005, 0x0000_03C5),  # EL1h
    (0x0000_0004, 0x0000_03C5),  # EL1t
    (0x0000_0000, 0x0000_03C5),  # EL0t
    (0x6000_0004, 0x6000_03C5),  # EL1t, Z C
    (0x0000_0085, 0x0000_03C5),  # EL1h with I already set
    (0x0000_0345, 0x0000_03C5),  # EL1h with D A F set
    (0xF1F0_1C00, 0xF140_03C5),  # EL0t, NZCV DIT UAO PAN SS IL SSBS BTYPE=3: UAO, SSBS go
    (0x2200_0400, 0x2000_03C5),  # EL0t, C, TCO, BTYPE=1: TCO goes
    (0x0030_0805, 0x0000_03C5),  # EL1h, SS IL BTYPE=2
    (0x0080_0005, 0x0000_03C5),  # EL1h, UAO: 0 on entry
    (0x0000_0001_0000_0005, 0x0000_03C5),  # EL1h, bit 32 (PM): not kept
    (0x8000_0010, 0x8000_03C5),  # AArch32 User, N
]


@pytest.mark.parametrize(("interrupted", "entry"), ENTRY_PSTATE, ids=lambda v: hex(v))
def test_entry_pstate(interrupted: int, entry: int) -> None:
    for ev in EVENTS:
        vm = armed(ev)
        vm.cpus[0][CpuReg.PSTATE] = interrupted
        assert vm.dispatch(0) == ev
        assert vm.cpus[0][CpuReg.PSTATE] == entry
        assert vm.cpus[0][CpuReg.X3] == interrupted
        assert vm.state(0).contexts[ev.priority].pstate == interrupted


# AArch32 SPSR layout (Arm ARM; KVM's PSR_AA32_*): T 5, E 9, IT[7:2] 15:10, GE 19:16, PAN 22,
# SSBS 23, DIT 24, IT[1:0] 26:25, Q 27, NZCV 31:28.
AA32_BUSY: Final = 0xCFCF_FE30
"""AArch32 User, Thumb, inside an IT block, GE and Q set, big-endian, N Z, PAN, DIT and SSBS."""
AA32_BUSY_ENTRY: Final = 0xC140_03C5
"""NZCV, DIT (24), PAN (22), at the same bits in both layouts, kept; SSBS comes from
SCTLR_EL1.DSSBS (0 at reset), not from the AArch32 SSBS; T, E, IT, GE and Q dropped."""

RESET_SCTLR: Final = 0x00C5_0078
NO_SPAN: Final = RESET_SCTLR & ~(1 << 23)
DSSBS: Final = RESET_SCTLR | 1 << 44


# (interrupted PSTATE, SCTLR_EL1 at dispatch, entry PSTATE), by hand from DESIGN section 5.
ENTRY_WITH_SCTLR: Final = [
    (0x0000_0005, NO_SPAN, 0x0040_03C5),  # SPAN 0: PAN set on entry
    (0x0040_0005, NO_SPAN, 0x0040_03C5),
    (0x0040_0005, RESET_SCTLR, 0x0040_03C5),  # SPAN 1: PAN kept
    (0x0000_0005, DSSBS, 0x0000_13C5),  # SSBS = DSSBS
    (0x0000_1005, RESET_SCTLR, 0x0000_03C5),  # the interrupted SSBS does not carry
    (0x0080_1005, NO_SPAN | 1 << 44, 0x0040_13C5),  # UAO goes; PAN set; SSBS from DSSBS
    (AA32_BUSY, NO_SPAN | 1 << 44, 0xC140_13C5),  # AArch32 source, both SCTLR rules
]


@pytest.mark.parametrize(("interrupted", "sctlr", "entry"), ENTRY_WITH_SCTLR,
                         ids=lambda v: hex(v))
def test_entry_pstate_reads_sctlr_at_dispatch(interrupted: int, sctlr: int, entry: int) -> None:
    for ev in EVENTS:
        vm = armed(ev)
        vm.cpus[0][CpuReg.PSTATE] = interrupted
        vm.cpus[0][CpuReg.SCTLR_EL1] = sctlr  # set after REGISTER: read at dispatch
        assert vm.dispatch(0) == ev
        assert hex(vm.cpus[0][CpuReg.PSTATE]) == hex(entry)
        assert vm.cpus[0][CpuReg.SCTLR_EL1] == sctlr  # read, never written


def test_resume_pstate_reads_sctlr_at_completion() -> None:
    """COMPLETE_AND_RESUME computes the PSTATE from the SCTLR_EL1 of that moment."""
    vm = armed(SW_SIGNALED)
    vm.cpus[0][CpuReg.PSTATE] = 0x0000_0005
    assert vm.dispatch(0) == SW_SIGNALED
    assert vm.cpus[0][CpuReg.PSTATE] == 0x3C5
    vm.cpus[0][CpuReg.SCTLR_EL1] = NO_SPAN | 1 << 44  # the handler changed SCTLR_EL1
    vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, 0x9000)
    assert hex(vm.cpus[0][CpuReg.PSTATE]) == hex(0x0040_13C5)
    assert vm.cpus[0][CpuReg.SPSR_EL1] == 0x5
    assert vm.cpus[0][CpuReg.PC] == 0x9000


def test_entry_pstate_from_aarch32_user_keeps_named_fields_only() -> None:
    """From AArch32 only NZCV, DIT and PAN carry over (the same bits in KVM's SPSR layout);
    copying the AArch32 bits as they are would turn IT/GE/Q/SSBS bits into AArch64 SSBS,
    ALLINT, UAO and TCO (and set RES0 bits) in the handler's PSTATE."""
    vm = armed(SW_SIGNALED)
    vm.cpus[0][CpuReg.PSTATE] = AA32_BUSY
    assert vm.dispatch(0) == SW_SIGNALED
    assert vm.cpus[0][CpuReg.X3] == AA32_BUSY
    assert hex(vm.cpus[0][CpuReg.PSTATE]) == hex(AA32_BUSY_ENTRY)


def test_resume_pstate_from_aarch32_user_keeps_named_fields_only() -> None:
    vm = armed(SW_SIGNALED)
    vm.cpus[0][CpuReg.PSTATE] = AA32_BUSY
    assert vm.dispatch(0) == SW_SIGNALED
    vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, 0x9000)
    assert vm.cpus[0][CpuReg.SPSR_EL1] == AA32_BUSY
    assert hex(vm.cpus[0][CpuReg.PSTATE]) == hex(AA32_BUSY_ENTRY)


@pytest.mark.parametrize(
    ("vbar", "ep", "entry"),
    [
        (0xFFFF_8000_0801_0000, 0x800, 0xFFFF_8000_0801_0800),
        (0, 0x1000, 0x1000),
        (0xFFFF_FFFF_FFFF_F000, 0x2000, 0x1000),  # wraps modulo 2^64
        (0x4000_0000, 0xFFFF_FFFF_FFFF_FFFC, 0x3FFF_FFFC),
    ],
    ids=str,
)
def test_relative_entry_is_vbar_plus_ep(vbar: int, ep: int, entry: int) -> None:
    for ev in EVENTS:
        vm = armed(ev, flags=int(RegisterFlags.RELATIVE), ep=ep)
        vm.cpus[0][CpuReg.VBAR_EL1] = vbar
        assert vm.dispatch(0) == ev
        assert vm.cpus[0][CpuReg.PC] == entry


def test_relative_uses_vbar_at_dispatch_not_at_register() -> None:
    vm = Vm()
    vm.cpus[0][CpuReg.VBAR_EL1] = 0x1000_0000
    reach(vm, 0, SW_SIGNALED, S.ENABLED, flags=int(RegisterFlags.RELATIVE | RegisterFlags.RM_PE),
          ep=0x400)
    vm.ret(0, Function.PE_UNMASK)
    make_pending(vm, 0, SW_SIGNALED)
    vm.cpus[0][CpuReg.VBAR_EL1] = 0x2000_0000  # the guest moved its vectors
    assert vm.dispatch(0) == SW_SIGNALED
    assert vm.cpus[0][CpuReg.PC] == 0x2000_0400
    assert vm.cpus[0][CpuReg.VBAR_EL1] == 0x2000_0000


def test_absolute_entry_ignores_vbar() -> None:
    vm = armed(ASYNC_PF, flags=int(RegisterFlags.RM_PE))
    vm.cpus[0][CpuReg.VBAR_EL1] = 0x5000_0000
    assert vm.dispatch(0) == ASYNC_PF
    assert vm.cpus[0][CpuReg.PC] == EP


# -- completion -----------------------------------------------------------------------------------

HANDLER_CLOBBER: Final = {
    **{CpuReg(n): 0xDEAD_0000 + n for n in range(31)},
    CpuReg.SP: 0x5555_0000,
    CpuReg.PC: EP + 0x80,
    CpuReg.PSTATE: 0x3C5,
    CpuReg.ELR_EL1: 0xE1E1,
    CpuReg.SPSR_EL1: 0x5F5F,
}


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_complete_restores_exactly(ev: Event) -> None:
    vm = armed(ev)
    vm.cpus[0].write(FULL)
    assert vm.dispatch(0) == ev
    vm.cpus[0].write(HANDLER_CLOBBER)  # what the handler did to the registers
    out = vm.call(0, Function.EVENT_COMPLETE, 0)
    assert (out.function_id, out.ret, out.completed) == (Function.EVENT_COMPLETE, 0, ev)
    after = vm.snapshot(0)
    for r in CONTEXT_GPRS:
        assert after[r] == FULL[r], r.key
    assert after[CpuReg.PC] == FULL[CpuReg.PC]
    assert after[CpuReg.PSTATE] == FULL[CpuReg.PSTATE]
    # x18..x30, SP, ELR, SPSR: the handler must preserve them itself; SDEI does not touch them.
    for r in (*[CpuReg(n) for n in range(18, 31)], CpuReg.SP, CpuReg.ELR_EL1, CpuReg.SPSR_EL1):
        assert after[r] == HANDLER_CLOBBER[r], r.key
    assert after[CpuReg.VBAR_EL1] == FULL[CpuReg.VBAR_EL1]
    assert vm.state(0).contexts == (Context(), Context())
    assert vm.hs(0, ev) == S.ENABLED


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_complete_and_resume_sets_elr_spsr_pstate_pc(ev: Event) -> None:
    vm = armed(ev)
    vm.cpus[0].write(FULL)
    assert vm.dispatch(0) == ev
    vm.cpus[0].write(HANDLER_CLOBBER)
    resume = FULL[CpuReg.VBAR_EL1] + 0x280
    out = vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, resume)
    assert (out.function_id, out.ret, out.completed) == (
        Function.EVENT_COMPLETE_AND_RESUME, 0, ev
    )
    after = vm.snapshot(0)
    for r in CONTEXT_GPRS:
        assert after[r] == FULL[r], r.key
    assert after[CpuReg.ELR_EL1] == FULL[CpuReg.PC]
    assert after[CpuReg.SPSR_EL1] == FULL[CpuReg.PSTATE]
    assert after[CpuReg.PSTATE] == 0x2000_03C5
    assert after[CpuReg.PC] == resume
    for r in (*[CpuReg(n) for n in range(18, 31)], CpuReg.SP):
        assert after[r] == HANDLER_CLOBBER[r], r.key
    assert vm.state(0).contexts == (Context(), Context())
    assert vm.hs(0, ev) == S.ENABLED


def test_resume_address_any_aligned_value() -> None:
    for resume in (0, 4, U64 - 3):
        vm = armed(SW_SIGNALED)
        assert vm.dispatch(0) == SW_SIGNALED
        assert vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, resume).completed == SW_SIGNALED
        assert vm.cpus[0][CpuReg.PC] == resume


# -- priority and nesting ---------------------------------------------------------------------


def test_critical_preempts_a_running_normal_handler() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)  # interrupted INTERRUPTED
    reach(vm, 0, ASYNC_PF, S.ENABLED)
    normal_regs = {**{CpuReg(n): 0x3300 + n for n in range(18)},
                   CpuReg.PC: EP + 0x10, CpuReg.PSTATE: 0x3C5}
    vm.cpus[0].write(normal_regs)
    assert vm.inject(0, ASYNC_PF.number)
    assert vm.dispatch(0) == ASYNC_PF
    st = vm.state(0)
    assert st.running_event(Priority.NORMAL) == SW_SIGNALED
    assert st.running_event(Priority.CRITICAL) == ASYNC_PF
    assert st.contexts[Priority.CRITICAL] == Context(
        tuple(0x3300 + n for n in range(18)), EP + 0x10, 0x3C5
    )
    assert st.contexts[Priority.NORMAL].pc == INTERRUPTED[CpuReg.PC]
    assert vm.cpus[0][CpuReg.X2] == EP + 0x10

    # Completing unwinds innermost first: back into the normal handler, then out of it.
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == ASYNC_PF
    assert vm.cpus[0][CpuReg.PC] == EP + 0x10
    assert vm.cpus[0][CpuReg.X5] == 0x3305
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.cpus[0][CpuReg.PC] == INTERRUPTED[CpuReg.PC]
    assert vm.cpus[0][CpuReg.X5] == INTERRUPTED[CpuReg.X5]
    assert vm.state(0).contexts == (Context(), Context())


def test_critical_resume_inside_normal_handler_keeps_normal_running() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING,
          interrupted={CpuReg.PC: EP + 0x20, CpuReg.PSTATE: 0x3C5})
    assert vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, 0x8000).completed == ASYNC_PF
    assert vm.cpus[0][CpuReg.PC] == 0x8000
    assert vm.cpus[0][CpuReg.ELR_EL1] == EP + 0x20
    assert vm.hs(0, SW_SIGNALED) == S.ENABLED_RUNNING
    assert vm.ret(0, Function.EVENT_CONTEXT, 3) == INTERRUPTED[CpuReg.X3]


def test_same_class_never_nests() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.dispatch(0) is None
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING)
    make_pending(vm, 0, ASYNC_PF)
    assert vm.dispatch(0) is None
    assert vm.ev(0, SW_SIGNALED).pending and vm.ev(0, ASYNC_PF).pending


def test_normal_waits_while_critical_runs() -> None:
    vm = Vm()
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING)
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.dispatch(0) is None
    assert vm.machine.deliverable(0) is None
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == ASYNC_PF
    assert vm.machine.deliverable(0) == SW_SIGNALED
    assert vm.dispatch(0) == SW_SIGNALED


def test_critical_first_when_both_pending() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    reach(vm, 0, ASYNC_PF, S.ENABLED)
    vm.ret(0, Function.PE_UNMASK)
    make_pending(vm, 0, SW_SIGNALED)
    make_pending(vm, 0, ASYNC_PF)
    assert vm.dispatch(0) == ASYNC_PF
    assert vm.dispatch(0) is None  # normal may not preempt critical
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == ASYNC_PF
    assert vm.dispatch(0) == SW_SIGNALED


# -- the re-check after COMPLETE, ENABLE and PE_UNMASK ------------------------------------------


def test_pending_taken_after_complete() -> None:
    vm = Vm()
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING)
    assert vm.inject(0, ASYNC_PF.number)
    assert vm.dispatch(0) is None
    assert vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, 0x4000).completed == ASYNC_PF
    assert vm.dispatch(0) == ASYNC_PF
    # The new dispatch interrupted the resumed context, not the original one.
    assert vm.cpus[0][CpuReg.X2] == 0x4000


def test_pending_taken_after_enable() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.REGISTERED)
    vm.ret(0, Function.PE_UNMASK)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.dispatch(0) is None  # disabled: stays pending
    assert vm.ev(0, SW_SIGNALED).pending
    assert vm.ret(0, Function.EVENT_ENABLE, 0) == Ret.SUCCESS
    assert vm.dispatch(0) == SW_SIGNALED


def test_pending_taken_after_unmask() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.state(0).masked
    assert vm.dispatch(0) is None
    assert vm.ret(0, Function.PE_UNMASK) == Ret.SUCCESS
    assert vm.dispatch(0) == SW_SIGNALED


def test_masked_vcpu_defers() -> None:
    vm = armed(ASYNC_PF)
    assert vm.ret(0, Function.PE_MASK) == 1
    before, regs = vm.state(0), vm.snapshot(0)
    assert vm.dispatch(0) is None
    assert (vm.state(0), vm.snapshot(0)) == (before, regs)
    assert vm.ret(0, Function.PE_UNMASK) == 0
    assert vm.dispatch(0) == ASYNC_PF


def test_disable_while_pending_defers() -> None:
    vm = armed(SW_SIGNALED)
    assert vm.ret(0, Function.EVENT_DISABLE, 0) == Ret.SUCCESS
    assert vm.dispatch(0) is None
    assert vm.ret(0, Function.EVENT_ENABLE, 0) == Ret.SUCCESS
    assert vm.dispatch(0) == SW_SIGNALED


@pytest.mark.parametrize(
    "pstate", [0x9, 0x8, 0xD, 0xC, 0x13, 0x1F, 0x3C9, 0x6000_0009], ids=hex
)
def test_interrupted_el2_el3_or_aarch32_privileged_is_not_dispatched(pstate: int) -> None:
    """The client EL is EL1: a guest running at EL2 (nested) or in an AArch32 privileged mode
    is not interrupted; the event stays pending for the next entry check."""
    for ev in EVENTS:
        vm = armed(ev)
        vm.cpus[0][CpuReg.PSTATE] = pstate
        before, regs = vm.state(0), vm.snapshot(0)
        assert vm.dispatch(0) is None
        assert (vm.state(0), vm.snapshot(0)) == (before, regs)
        assert vm.ev(0, ev).pending
        vm.cpus[0][CpuReg.PSTATE] = 0x5
        assert vm.dispatch(0) == ev


def test_nothing_pending_nothing_happens() -> None:
    vm = Vm(2)
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    vm.ret(0, Function.PE_UNMASK)
    vm.cpus[0].write(FULL)
    before, regs = vm.state(0), vm.snapshot(0)
    assert vm.dispatch(0) is None
    assert (vm.state(0), vm.snapshot(0)) == (before, regs)


def test_dispatch_affects_only_its_vcpu() -> None:
    vm = Vm(2)
    for v in (0, 1):
        reach(vm, v, SW_SIGNALED, S.ENABLED)
        vm.ret(v, Function.PE_UNMASK)
    assert vm.ret(1, Function.EVENT_SIGNAL, 0, vm.mpidr(0)) == Ret.SUCCESS
    assert vm.dispatch(1) is None
    regs1 = vm.snapshot(1)
    assert vm.dispatch(0) == SW_SIGNALED
    assert vm.snapshot(1) == regs1
    assert vm.hs(1, SW_SIGNALED) == S.ENABLED


def test_inject_refused_unless_registered() -> None:
    for state in (S.UNREGISTERED, S.UNREGISTER_PENDING):
        vm = Vm()
        reach(vm, 0, ASYNC_PF, state)
        before = vm.state(0)
        assert vm.inject(0, ASYNC_PF.number) is False
        assert vm.state(0) == before
    vm = Vm()
    for number in (1, 0x40400001, 1 << 32, -1):
        assert vm.inject(0, number) is False
    assert vm.state(0) == VcpuState()


def test_inject_event_0_and_disabled_event_stays_pending() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.REGISTERED)
    reach(vm, 0, ASYNC_PF, S.REGISTERED)
    vm.ret(0, Function.PE_UNMASK)
    assert vm.inject(0, SW_SIGNALED.number) and vm.inject(0, ASYNC_PF.number)
    assert vm.dispatch(0) is None
    vm.ret(0, Function.EVENT_ENABLE, 0)
    assert vm.dispatch(0) == SW_SIGNALED
    vm.ret(0, Function.EVENT_ENABLE, ASYNC_PF.number)
    assert vm.dispatch(0) == ASYNC_PF  # critical preempts the running normal handler


def test_has_run_after_a_dispatch_check() -> None:
    vm = Vm()
    assert vm.machine.has_run is False
    assert vm.dispatch(0) is None
    assert vm.machine.has_run is True


def test_deliverable_matches_dispatch() -> None:
    vm = Vm()
    assert vm.machine.deliverable(0) is None
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.machine.deliverable(0) is None  # masked
    vm.ret(0, Function.PE_UNMASK)
    assert vm.machine.deliverable(0) == SW_SIGNALED
    assert vm.dispatch(0) == SW_SIGNALED
    assert vm.machine.deliverable(0) is None


# -- the SDEI feature gate (STD_BMAP bit 1) ---------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_gate_off_nothing_is_dispatched_or_injected(ev: Event) -> None:
    """DESIGN section 4: with the gate off nothing is injected or dispatched, even for state a
    VMM wrote through ONE_REG (here: registered, enabled, pending, unmasked)."""
    vm = armed(ev)
    vm.machine.enabled = False
    vm.machine.has_run = False
    before, regs = vm.state(0), vm.cpus[0].snapshot()
    assert vm.machine.deliverable(0) is None
    assert vm.dispatch(0) is None
    assert vm.machine.has_run is True  # the entry check still counts as a run
    assert vm.inject(0, ev.number) is False
    assert vm.kicked.count(0) == 1  # only make_pending's kick, none from the refused inject
    assert (vm.state(0), vm.cpus[0].snapshot()) == (before, regs)
    vm.machine.enabled = True  # the same state with the gate on: taken at once
    assert vm.dispatch(0) == ev
