"""Every call's arguments, errors and register effects, with the exact values of DESIGN
section 5. The state-dependent part of each call is in test_machine_table.py; this file covers
what does not depend on the handler state, and every error case."""

from __future__ import annotations

from typing import Final

import pytest
from helpers import ARG, EP, INTERRUPTED, U64, Vm, make_pending, reach, signed

from sdei_state.cpu import CpuReg, MemoryCpu
from sdei_state.events import ASYNC_PF, SW_SIGNALED, Event
from sdei_state.machine import Machine, affinity_of
from sdei_state.spec import (
    FN_BASE,
    FN_LAST,
    SMC32_BIT,
    VERSION_1_1_KVM,
    CompleteStatus,
    Function,
    Info,
    RegisterFlags,
    Ret,
    split_version,
)
from sdei_state.state import EventState, HandlerState, VcpuState

S = HandlerState
EVENT_NUMBERS: Final = (SW_SIGNALED.number, ASYNC_PF.number)
EVENTS: Final = (SW_SIGNALED, ASYNC_PF)
BAD_EVENT_NUMBERS: Final = (
    1,  # KVM v7's ASYNC_PF number: a reserved standard event here
    0x40400001,
    0x40000000,
    0x00FFFFFF,
    0x80000000,  # bit 31 must be zero
    0xFFFFFFFF,  # -1 as a 32-bit signed int: the v7 `int num` hole
    1 << 32,  # event 0 with an upper bit set
    (1 << 32) | 0x40400000,
    1 << 63,
    U64,
)

EVENT_CALLS: Final = (
    Function.EVENT_REGISTER,
    Function.EVENT_ENABLE,
    Function.EVENT_DISABLE,
    Function.EVENT_UNREGISTER,
    Function.EVENT_STATUS,
    Function.EVENT_GET_INFO,
    Function.EVENT_ROUTING_SET,
    Function.INTERRUPT_RELEASE,
    Function.EVENT_SIGNAL,
)
"""Calls whose x1 is an event number."""

FILLED: Final[dict[CpuReg, int]] = {
    r: 0x5000 + 0x11 * r.value for r in CpuReg if r != CpuReg.PSTATE
}


def filled_vm(nr: int = 1, *, enabled: bool = True) -> Vm:
    vm = Vm(nr, enabled=enabled)
    for cpu in vm.cpus:
        cpu.write(FILLED)
    return vm


def plausible_args(fn: Function) -> tuple[int, ...]:
    """Arguments a guest would pass; each would succeed on a fresh, enabled vCPU or fail for
    its state only."""
    return {
        Function.EVENT_REGISTER: (0, EP, ARG, 0, 0),
        Function.EVENT_CONTEXT: (0,),
        Function.EVENT_COMPLETE: (0,),
        Function.EVENT_COMPLETE_AND_RESUME: (0x1000,),
        Function.EVENT_GET_INFO: (0, 0),
        Function.EVENT_SIGNAL: (0, Vm.mpidr(0)),
        Function.INTERRUPT_BIND: (32,),
        Function.FEATURES: (1,),
    }.get(fn, (0,))


# -- function ids ----------------------------------------------------------------------------

UNKNOWN_IDS: Final = (
    *[f & ~SMC32_BIT for f in Function],  # the SMC32 twin of every SDEI call
    *range(0xC4000033, FN_LAST + 1),  # unassigned ids in the SDEI block
    FN_BASE - 1,
    FN_LAST + 1,
    0x84000000,  # PSCI_VERSION
    0x80000000,  # SMCCC_VERSION
    0xC6000000,
    0,
    0xFFFFFFFF,
)


@pytest.mark.parametrize("fid", UNKNOWN_IDS, ids=hex)
def test_unknown_smc32_and_unassigned_ids_are_not_supported(fid: int) -> None:
    vm = filled_vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)  # even with a handler to complete
    before, regs = vm.state(0), vm.snapshot(0)
    out = vm.call(0, fid, 0, 0, 0, 0, 0)
    assert out.ret == Ret.NOT_SUPPORTED
    assert out.completed is None
    assert vm.state(0) == before
    after = vm.snapshot(0)
    assert after[CpuReg.X0] == U64  # -1
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    assert {r: after[r] for r in CpuReg if r > CpuReg.X5} == {
        r: regs[r] for r in CpuReg if r > CpuReg.X5
    }


def test_function_id_is_w0() -> None:
    """SMCCC passes the function id in w0: bits[63:32] of x0 are not part of it."""
    vm = Vm()
    out = vm.call(0, (0xFFFF_FFFF << 32) | Function.VERSION)
    assert out.function_id == Function.VERSION
    assert out.ret == VERSION_1_1_KVM


@pytest.mark.parametrize("fn", list(Function), ids=lambda f: f.name)
def test_feature_gate_off_every_call_not_supported(fn: Function) -> None:
    vm = filled_vm(enabled=False)
    regs = vm.snapshot(0)
    out = vm.call(0, fn, *plausible_args(fn))
    assert out.ret == Ret.NOT_SUPPORTED
    assert out.completed is None
    assert vm.state(0) == VcpuState()
    after = vm.snapshot(0)
    assert after[CpuReg.X0] == U64
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    assert after[CpuReg.PC] == regs[CpuReg.PC]


def test_feature_gate_off_even_with_a_handler_running() -> None:
    """The gate answers before anything else: a COMPLETE of a running handler is refused too
    (state restored by a VMM with the bit clear cannot be driven by the guest)."""
    vm = Vm()
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING)
    vm.machine.enabled = False
    before = vm.state(0)
    for fn in Function:
        assert vm.call(0, fn, *plausible_args(fn)).ret == Ret.NOT_SUPPORTED, fn.name
    assert vm.state(0) == before


def test_has_run_after_a_call_even_when_refused() -> None:
    vm = Vm(2, enabled=False)
    assert vm.machine.has_run is False
    vm.call(1, 0x12345678)
    assert vm.machine.has_run is True


# -- register discipline of every call --------------------------------------------------------


@pytest.mark.parametrize("fn", list(Function), ids=lambda f: f.name)
def test_call_leaves_x1_to_x3_zero_and_the_rest_unchanged(fn: Function) -> None:
    vm = filled_vm()
    regs = vm.snapshot(0)
    args = plausible_args(fn)
    out = vm.call(0, fn, *args)
    after = vm.snapshot(0)
    assert out.completed is None  # nothing is running
    assert after[CpuReg.X0] == out.ret & U64
    assert signed(after[CpuReg.X0]) == out.ret
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    # x4, x5 hold what the guest loaded; everything from x6 up (x6..x17, x18..x30, SP, PC,
    # PSTATE, ELR, SPSR, VBAR) is as before the call.
    loaded = [*args, 0, 0, 0, 0, 0][:5]
    assert (after[CpuReg.X4], after[CpuReg.X5]) == (loaded[3], loaded[4])
    for r in CpuReg:
        if r >= CpuReg.X6:
            assert after[r] == regs[r], r.key


def test_x0_is_signed() -> None:
    vm = Vm()
    out = vm.call(0, Function.EVENT_ENABLE, 0)
    assert out.ret == -3
    assert vm.cpus[0][CpuReg.X0] == (1 << 64) - 3


def test_context_value_with_bit_63_reads_as_negative_x0() -> None:
    vm = Vm()
    ctx = {**INTERRUPTED, CpuReg.X7: 0x8000_0000_0000_0007}
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING, interrupted=ctx)
    out = vm.call(0, Function.EVENT_CONTEXT, 7)
    assert vm.cpus[0][CpuReg.X0] == 0x8000_0000_0000_0007
    assert out.ret == 0x8000_0000_0000_0007 - (1 << 64)


def test_hvc_reads_function_and_arguments_from_x0_to_x5() -> None:
    m = Machine(1)
    cpu = MemoryCpu({
        CpuReg.X0: Function.EVENT_REGISTER, CpuReg.X1: ASYNC_PF.number, CpuReg.X2: EP,
        CpuReg.X3: ARG, CpuReg.X4: int(RegisterFlags.RELATIVE), CpuReg.X5: 0xFFFF,
    })
    out = m.hvc(0, cpu)
    assert (out.function_id, out.ret) == (Function.EVENT_REGISTER, 0)
    assert m.state(0).event(ASYNC_PF) == EventState(
        registered=True, relative=True, ep_addr=EP, ep_arg=ARG
    )


def test_call_pads_missing_arguments_with_zero() -> None:
    m = Machine(1)
    cpu = MemoryCpu({CpuReg.X1: 7, CpuReg.X2: 7})
    assert m.call(0, Function.EVENT_GET_INFO, [], cpu).ret == 0  # event 0, EV_TYPE
    assert m.call(0, Function.FEATURES, [], cpu).ret == 0  # BIND_SLOTS


def test_vcpu_out_of_range_and_empty_vm() -> None:
    vm = Vm(2)
    with pytest.raises(IndexError, match=r"vCPU 2 out of range 0\.\.1"):
        vm.machine.call(2, Function.VERSION, [], MemoryCpu())
    with pytest.raises(IndexError):
        vm.machine.dispatch(-1, MemoryCpu())
    with pytest.raises(IndexError):
        vm.machine.inject(5, 0)
    with pytest.raises(ValueError, match="at least one vCPU"):
        Machine(0)


# -- VERSION, FEATURES ------------------------------------------------------------------------


def test_version_exact() -> None:
    vm = Vm()
    assert vm.ret(0, Function.VERSION) == 0x0001_0001_564B_CAA9
    assert split_version(0x0001_0001_564B_CAA9) == (1, 1, 0x564BCAA9)


@pytest.mark.parametrize(
    ("feature", "expected"),
    [(0, 0), (1, 1), (2, Ret.INVALID_PARAMETERS), (0xFFFF, Ret.INVALID_PARAMETERS),
     (1 << 32, Ret.INVALID_PARAMETERS), ((1 << 32) | 1, Ret.INVALID_PARAMETERS),
     (U64, Ret.INVALID_PARAMETERS)],
)
def test_features(feature: int, expected: int) -> None:
    assert Vm().ret(0, Function.FEATURES, feature) == expected


# -- 32-bit parameters with upper bits set ---------------------------------------------------


@pytest.mark.parametrize("number", BAD_EVENT_NUMBERS, ids=hex)
@pytest.mark.parametrize("fn", EVENT_CALLS, ids=lambda f: f.name)
def test_bad_event_number_is_invalid_and_changes_nothing(fn: Function, number: int) -> None:
    vm = Vm(1)
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    reach(vm, 0, ASYNC_PF, S.REGISTERED)
    before = vm.state(0)
    args = {
        Function.EVENT_REGISTER: (number, EP, ARG, 0, 0),
        Function.EVENT_GET_INFO: (number, Info.EV_TYPE),
        Function.EVENT_SIGNAL: (number, vm.mpidr(0)),
    }.get(fn, (number,))
    assert vm.ret(0, fn, *args) == Ret.INVALID_PARAMETERS
    assert vm.state(0) == before


@pytest.mark.parametrize("info", [1 << 32, (1 << 32) | 1, (1 << 33) | 2, 1 << 63], ids=hex)
def test_get_info_selector_upper_bits_invalid(info: int) -> None:
    vm = Vm()
    for n in EVENT_NUMBERS:
        assert vm.ret(0, Function.EVENT_GET_INFO, n, info) == Ret.INVALID_PARAMETERS


@pytest.mark.parametrize("param", [18, 19, 0xFFFF, 1 << 32, (1 << 32) | 2, U64], ids=hex)
def test_context_param_out_of_range_invalid_even_while_running(param: int) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    before = vm.state(0)
    assert vm.ret(0, Function.EVENT_CONTEXT, param) == Ret.INVALID_PARAMETERS
    assert vm.state(0) == before


# -- REGISTER ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bit", range(2, 64))
def test_register_reserved_flag_bits_invalid(bit: int) -> None:
    vm = Vm()
    for ev in EVENTS:
        assert vm.ret(0, Function.EVENT_REGISTER, ev.number, EP, ARG, 1 << bit, 0) == (
            Ret.INVALID_PARAMETERS
        )
    assert vm.state(0) == VcpuState()


@pytest.mark.parametrize("flags", [0, 1, 2, 3])
@pytest.mark.parametrize("ep", [0, 1, 2, 3, EP | 1, EP | 2, EP | 3, U64], ids=hex)
def test_register_bad_entry_point_invalid_also_relative(ep: int, flags: int) -> None:
    vm = Vm()
    for ev in EVENTS:
        assert vm.ret(0, Function.EVENT_REGISTER, ev.number, ep, ARG, flags, 0) == (
            Ret.INVALID_PARAMETERS
        )
    assert vm.state(0) == VcpuState()


@pytest.mark.parametrize("flags", [0, 1, 2, 3])
def test_register_stores_handler_and_ignores_routing(flags: int) -> None:
    """Routing mode and affinity mean nothing for a private event: RM_PE with a garbage
    affinity is accepted (TF-A would refuse it), and nothing of them is kept."""
    vm = Vm()
    for ev in EVENTS:
        ep = 0xFFFF_FFFF_FFFF_FFFC
        assert vm.ret(0, Function.EVENT_REGISTER, ev.number, ep, U64, flags, U64) == Ret.SUCCESS
        assert vm.ev(0, ev) == EventState(
            registered=True, relative=bool(flags & 2), ep_addr=ep, ep_arg=U64
        )


def test_register_does_not_change_mask_or_other_event_or_vcpu() -> None:
    vm = Vm(2)
    assert vm.ret(0, Function.EVENT_REGISTER, 0, EP, ARG, 0, 0) == Ret.SUCCESS
    assert vm.state(0).masked
    assert vm.ev(0, ASYNC_PF) == EventState()
    assert vm.state(1) == VcpuState()


@pytest.mark.parametrize(
    "state", [S.REGISTERED, S.ENABLED, S.UNREGISTER_PENDING, S.REGISTERED_RUNNING,
              S.ENABLED_RUNNING], ids=lambda s: s.mnemonic,
)
def test_register_denied_unless_unregistered_keeps_old_handler(state: HandlerState) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, state)
    before = vm.state(0)
    assert vm.ret(0, Function.EVENT_REGISTER, 0, 0x2000, 5, 0, 0) == Ret.DENIED
    assert vm.state(0) == before


def test_register_invalid_arguments_beat_denied() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.REGISTERED)
    assert vm.ret(0, Function.EVENT_REGISTER, 0, 0, ARG, 0, 0) == Ret.INVALID_PARAMETERS
    assert vm.ret(0, Function.EVENT_REGISTER, 0, EP, ARG, 4, 0) == Ret.INVALID_PARAMETERS


# -- ENABLE / DISABLE --------------------------------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_enable_disable_idempotent(ev: Event) -> None:
    vm = Vm()
    reach(vm, 0, ev, S.REGISTERED)
    for _ in range(2):
        assert vm.ret(0, Function.EVENT_DISABLE, ev.number) == Ret.SUCCESS
        assert vm.hs(0, ev) == S.REGISTERED
    for _ in range(2):
        assert vm.ret(0, Function.EVENT_ENABLE, ev.number) == Ret.SUCCESS
        assert vm.hs(0, ev) == S.ENABLED


@pytest.mark.parametrize("fn", [Function.EVENT_ENABLE, Function.EVENT_DISABLE])
@pytest.mark.parametrize("state", [S.UNREGISTERED, S.UNREGISTER_PENDING], ids=lambda s: s.mnemonic)
def test_enable_disable_denied_unless_registered(state: HandlerState, fn: Function) -> None:
    for ev in EVENTS:
        vm = Vm()
        reach(vm, 0, ev, state)
        before = vm.state(0)
        assert vm.ret(0, fn, ev.number) == Ret.DENIED
        assert vm.state(0) == before


def test_disable_keeps_pending_and_handler() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.ret(0, Function.EVENT_DISABLE, 0) == Ret.SUCCESS
    assert vm.ev(0, SW_SIGNALED) == EventState(
        registered=True, pending=True, ep_addr=EP, ep_arg=ARG
    )


# -- UNREGISTER ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_unregister_while_running(ev: Event) -> None:
    vm = Vm()
    reach(vm, 0, ev, S.ENABLED_RUNNING, flags=int(RegisterFlags.RELATIVE))
    make_pending(vm, 0, ev)  # a retrigger while the handler runs
    assert vm.ev(0, ev) == EventState(
        registered=True, enabled=True, running=True, pending=True, relative=True,
        ep_addr=EP, ep_arg=ARG,
    )
    ctx = vm.state(0).contexts[ev.priority]

    assert vm.ret(0, Function.EVENT_UNREGISTER, ev.number) == Ret.PENDING
    # (0,0,1): entry point, argument, RELATIVE and the pending trigger are gone at once.
    assert vm.ev(0, ev) == EventState(running=True)
    assert vm.state(0).contexts[ev.priority] == ctx  # still needed to complete
    assert vm.ret(0, Function.EVENT_UNREGISTER, ev.number) == Ret.PENDING
    assert vm.ev(0, ev) == EventState(running=True)

    # A trigger now has nowhere to go.
    assert not vm.inject(0, ev.number)
    if ev.signalable:
        assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(0)) == Ret.INVALID_PARAMETERS
    assert vm.ret(0, Function.EVENT_REGISTER, ev.number, EP, ARG, 0, 0) == Ret.DENIED

    out = vm.call(0, Function.EVENT_COMPLETE, 0)
    assert out.completed == ev
    assert vm.state(0) == VcpuState(masked=False)
    assert vm.ret(0, Function.EVENT_UNREGISTER, ev.number) == Ret.DENIED

    # Re-register and enable: the trigger that was pending at UNREGISTER is not delivered
    # (KVM v7 kept it and delivered it to the new handler).
    assert vm.ret(0, Function.EVENT_REGISTER, ev.number, EP, ARG, 0, 0) == Ret.SUCCESS
    assert vm.ret(0, Function.EVENT_ENABLE, ev.number) == Ret.SUCCESS
    assert vm.dispatch(0) is None


@pytest.mark.parametrize("state", [S.REGISTERED, S.ENABLED], ids=lambda s: s.mnemonic)
def test_unregister_idle_clears_everything(state: HandlerState) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, state, flags=3)
    make_pending(vm, 0, SW_SIGNALED)
    assert vm.ret(0, Function.EVENT_UNREGISTER, 0) == Ret.SUCCESS
    assert vm.ev(0, SW_SIGNALED) == EventState()
    assert vm.state(0).canonical_problems() == []


# -- CONTEXT -----------------------------------------------------------------------------------


def test_context_parameter_checked_before_running() -> None:
    vm = Vm()
    assert vm.ret(0, Function.EVENT_CONTEXT, 18) == Ret.INVALID_PARAMETERS
    assert vm.ret(0, Function.EVENT_CONTEXT, 17) == Ret.DENIED
    assert vm.ret(0, Function.EVENT_CONTEXT, 0) == Ret.DENIED


@pytest.mark.parametrize("ev", EVENTS, ids=lambda e: e.name)
def test_context_reads_each_saved_register(ev: Event) -> None:
    vm = Vm()
    reach(vm, 0, ev, S.ENABLED_RUNNING)
    vm.cpus[0].write({CpuReg(i): 0xBAD for i in range(31)})  # the handler clobbers things
    for i in range(18):
        assert vm.ret(0, Function.EVENT_CONTEXT, i) == 0x1100 + i


def test_context_reads_the_innermost_handler() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)  # context x_i = 0x1100 + i
    normal_handler = {CpuReg(i): 0x2200 + i for i in range(18)}
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING, interrupted={
        **normal_handler, CpuReg.PC: EP + 0x40, CpuReg.PSTATE: 0x3C5,
    })
    assert vm.ret(0, Function.EVENT_CONTEXT, 5) == 0x2205
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == ASYNC_PF
    assert vm.ret(0, Function.EVENT_CONTEXT, 5) == 0x1105


# -- COMPLETE / COMPLETE_AND_RESUME errors ---------------------------------------------------------


@pytest.mark.parametrize("x1", [0, 1, 2, 3, 0x1001, 0x1003, U64], ids=hex)
@pytest.mark.parametrize(
    "fn", [Function.EVENT_COMPLETE, Function.EVENT_COMPLETE_AND_RESUME], ids=lambda f: f.name
)
def test_complete_with_nothing_running_is_denied_before_address(fn: Function, x1: int) -> None:
    vm = filled_vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED)
    regs = vm.snapshot(0)
    before = vm.state(0)
    out = vm.call(0, fn, x1)
    assert out.completed is None
    assert out.ret == Ret.DENIED
    after = vm.snapshot(0)
    assert after[CpuReg.X0] == U64 - 2
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    assert after[CpuReg.PC] == regs[CpuReg.PC]
    assert vm.state(0) == before


@pytest.mark.parametrize("misalign", [1, 2, 3])
def test_resume_address_unaligned_invalid_and_handler_keeps_running(misalign: int) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    vm.cpus[0].write({CpuReg.ELR_EL1: 0x77, CpuReg.SPSR_EL1: 0x88})
    before = vm.state(0)
    regs = vm.snapshot(0)
    out = vm.call(0, Function.EVENT_COMPLETE_AND_RESUME, 0xFFFF_8000_0801_0280 | misalign)
    assert out.completed is None
    assert out.ret == Ret.INVALID_PARAMETERS
    after = vm.snapshot(0)
    assert after[CpuReg.X0] == U64 - 1
    assert (after[CpuReg.X1], after[CpuReg.X2], after[CpuReg.X3]) == (0, 0, 0)
    for r in (CpuReg.PC, CpuReg.PSTATE, CpuReg.ELR_EL1, CpuReg.SPSR_EL1, CpuReg.X6, CpuReg.X17):
        assert after[r] == regs[r]
    assert vm.state(0) == before


@pytest.mark.parametrize(
    "status", [CompleteStatus.EV_HANDLED, CompleteStatus.EV_FAILED, 2, 0x8000, U64]
)
def test_complete_status_is_not_acted_on(status: int) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    out = vm.call(0, Function.EVENT_COMPLETE, status)
    assert (out.completed, out.ret) == (SW_SIGNALED, 0)
    assert vm.hs(0, SW_SIGNALED) == S.ENABLED
    assert vm.cpus[0][CpuReg.PC] == INTERRUPTED[CpuReg.PC]


# -- STATUS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", list(HandlerState), ids=lambda s: s.mnemonic)
def test_status_is_the_state_vector(state: HandlerState) -> None:
    for ev in EVENTS:
        vm = Vm()
        reach(vm, 0, ev, state)
        assert vm.ret(0, Function.EVENT_STATUS, ev.number) == int(state)
        other = ASYNC_PF if ev is SW_SIGNALED else SW_SIGNALED
        assert vm.ret(0, Function.EVENT_STATUS, other.number) == 0


# -- GET_INFO -------------------------------------------------------------------------------------

GET_INFO: Final = {
    (SW_SIGNALED.number, Info.EV_TYPE): 0,
    (SW_SIGNALED.number, Info.EV_SIGNALED): 0,  # 0 = can be signalled (spec polarity)
    (SW_SIGNALED.number, Info.EV_PRIORITY): 0,
    (SW_SIGNALED.number, Info.EV_ROUTING_MODE): Ret.INVALID_PARAMETERS,
    (SW_SIGNALED.number, Info.EV_ROUTING_AFF): Ret.INVALID_PARAMETERS,
    (SW_SIGNALED.number, 5): Ret.INVALID_PARAMETERS,
    (ASYNC_PF.number, Info.EV_TYPE): 0,
    (ASYNC_PF.number, Info.EV_SIGNALED): 1,  # 1 = cannot be signalled
    (ASYNC_PF.number, Info.EV_PRIORITY): 1,  # critical
    (ASYNC_PF.number, Info.EV_ROUTING_MODE): Ret.INVALID_PARAMETERS,
    (ASYNC_PF.number, Info.EV_ROUTING_AFF): Ret.INVALID_PARAMETERS,
    (ASYNC_PF.number, 5): Ret.INVALID_PARAMETERS,
}


@pytest.mark.parametrize("state", [S.UNREGISTERED, S.REGISTERED, S.ENABLED_RUNNING],
                         ids=lambda s: s.mnemonic)
@pytest.mark.parametrize(("number", "info"), list(GET_INFO), ids=str)
def test_get_info(number: int, info: int, state: HandlerState) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, state)
    reach(vm, 0, ASYNC_PF, state if state != S.ENABLED_RUNNING else S.ENABLED)
    before = vm.state(0)
    assert vm.ret(0, Function.EVENT_GET_INFO, number, info) == GET_INFO[number, info]
    assert vm.state(0) == before


# -- ROUTING_SET, INTERRUPT_BIND, INTERRUPT_RELEASE -----------------------------------------------


@pytest.mark.parametrize("fn", [Function.EVENT_ROUTING_SET, Function.INTERRUPT_RELEASE],
                         ids=lambda f: f.name)
@pytest.mark.parametrize("state", list(HandlerState), ids=lambda s: s.mnemonic)
def test_routing_set_and_release_invalid_for_private_events(
    state: HandlerState, fn: Function
) -> None:
    for ev in EVENTS:
        vm = Vm()
        reach(vm, 0, ev, state)
        before = vm.state(0)
        for mode, aff in ((0, 0), (1, 0), (1, affinity_of(0)), (7, U64)):
            args = (ev.number, mode, aff) if fn == Function.EVENT_ROUTING_SET else (ev.number,)
            assert vm.ret(0, fn, *args) == Ret.INVALID_PARAMETERS
        assert vm.state(0) == before


def _bind_expected(intid: int) -> int:
    return Ret.OUT_OF_RESOURCE if 16 <= intid <= 1019 else Ret.INVALID_PARAMETERS


def test_interrupt_bind_every_intid_up_to_1100() -> None:
    vm = Vm()
    for intid in range(1100):
        assert vm.ret(0, Function.INTERRUPT_BIND, intid) == _bind_expected(intid), intid
    assert vm.state(0) == VcpuState()


@pytest.mark.parametrize(
    ("intid", "expected"),
    [(0, Ret.INVALID_PARAMETERS), (15, Ret.INVALID_PARAMETERS), (16, Ret.OUT_OF_RESOURCE),
     (29, Ret.OUT_OF_RESOURCE), (31, Ret.OUT_OF_RESOURCE), (32, Ret.OUT_OF_RESOURCE),
     (1019, Ret.OUT_OF_RESOURCE), (1020, Ret.INVALID_PARAMETERS),
     (1023, Ret.INVALID_PARAMETERS), (8192, Ret.INVALID_PARAMETERS),
     ((1 << 32) | 29, Ret.INVALID_PARAMETERS), ((1 << 32) | 40, Ret.INVALID_PARAMETERS),
     (U64, Ret.INVALID_PARAMETERS)],
    ids=str,
)
def test_interrupt_bind(intid: int, expected: int) -> None:
    assert Vm().ret(0, Function.INTERRUPT_BIND, intid) == expected


def test_release_invalid_for_any_argument() -> None:
    vm = Vm()
    for x in (0, ASYNC_PF.number, 29, 1000, 1 << 32, U64):
        assert vm.ret(0, Function.INTERRUPT_RELEASE, x) == Ret.INVALID_PARAMETERS


# -- PE_MASK / PE_UNMASK ---------------------------------------------------------------------------


def test_pe_mask_unmask_results() -> None:
    vm = Vm(2)
    assert vm.state(0).masked and vm.state(1).masked  # every vCPU starts masked
    assert vm.ret(0, Function.PE_MASK) == 0  # already masked
    assert vm.ret(0, Function.PE_UNMASK) == 0
    assert not vm.state(0).masked
    assert vm.ret(0, Function.PE_UNMASK) == 0
    assert vm.ret(0, Function.PE_MASK) == 1  # this call masked it
    assert vm.state(0).masked
    assert vm.ret(0, Function.PE_MASK) == 0
    assert vm.state(1).masked
    assert vm.state(1) == VcpuState()


def test_pe_mask_inside_a_handler_keeps_it_running() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    assert vm.ret(0, Function.PE_MASK) == 1
    assert vm.hs(0, SW_SIGNALED) == S.ENABLED_RUNNING
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.state(0).masked


# -- EVENT_SIGNAL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vcpu", "affinity"), [(0, 0x0), (15, 0xF), (16, 0x100), (17, 0x101), (300, 0x120C),
                           (4095, 0xFF0F), (4100, 0x10004)],
)
def test_affinity_of(vcpu: int, affinity: int) -> None:
    assert affinity_of(vcpu) == affinity


@pytest.mark.parametrize("target", [17, 300, 4100])
def test_signal_target_by_mpidr(target: int) -> None:
    vm = Vm(4101)
    reach(vm, target, SW_SIGNALED, S.REGISTERED)
    expected_affinity = {17: 0x000101, 300: 0x00120C, 4100: 0x010004}[target]
    assert vm.machine.vcpu_by_mpidr(expected_affinity) == target
    for mpidr in (
        expected_affinity,
        expected_affinity | 1 << 31,  # RES1
        expected_affinity | 1 << 30 | 1 << 24,  # U and MT
        expected_affinity | 0xFFFF_FF00_0000_0000,  # bits[63:40]
    ):
        vm.kicked.clear()
        assert vm.ret(5, Function.EVENT_SIGNAL, 0, mpidr) == Ret.SUCCESS
        assert vm.ev(target, SW_SIGNALED).pending
        pending = [v for v, st in enumerate(vm.machine.states()) if st.event(SW_SIGNALED).pending]
        assert pending == [target]
    assert vm.ev(5, SW_SIGNALED) == EventState()


@pytest.mark.parametrize(
    "mpidr",
    [affinity_of(4) | 1 << 31, 0x10, 0x1F, 0x200, 0x1_0000_0000, 0xFF_0000_0000 | 1, U64],
    ids=hex,
)
def test_signal_nonexistent_target_invalid(mpidr: int) -> None:
    vm = Vm(4)
    for v in range(4):
        reach(vm, v, SW_SIGNALED, S.ENABLED)
    before = vm.machine.states()
    assert vm.ret(0, Function.EVENT_SIGNAL, 0, mpidr) == Ret.INVALID_PARAMETERS
    assert vm.machine.states() == before
    assert vm.kicked == []


@pytest.mark.parametrize("state", [S.UNREGISTERED, S.UNREGISTER_PENDING], ids=lambda s: s.mnemonic)
def test_signal_target_without_event_0_registered_invalid(state: HandlerState) -> None:
    vm = Vm(2)
    reach(vm, 1, SW_SIGNALED, state)
    reach(vm, 0, SW_SIGNALED, S.ENABLED)  # the caller's own registration does not count
    before = vm.machine.states()
    assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(1)) == Ret.INVALID_PARAMETERS
    assert vm.machine.states() == before


@pytest.mark.parametrize("number", [ASYNC_PF.number, 1, 1 << 32, U64], ids=hex)
def test_signal_event_other_than_0_invalid(number: int) -> None:
    vm = Vm(2)
    reach(vm, 1, SW_SIGNALED, S.ENABLED)
    reach(vm, 1, ASYNC_PF, S.ENABLED)
    before = vm.machine.states()
    assert vm.ret(0, Function.EVENT_SIGNAL, number, vm.mpidr(1)) == Ret.INVALID_PARAMETERS
    assert vm.machine.states() == before


@pytest.mark.parametrize("state", [S.REGISTERED, S.ENABLED, S.REGISTERED_RUNNING,
                                   S.ENABLED_RUNNING], ids=lambda s: s.mnemonic)
def test_signal_sets_pending_whatever_the_registered_state_and_mask(state: HandlerState) -> None:
    """SUCCESS means "set as pending" (DEN0054C), also for a masked or disabled target;
    today's TF-A would refuse those with INVALID_PARAMETERS."""
    vm = Vm(2)
    reach(vm, 1, SW_SIGNALED, state)
    vm.ret(1, Function.PE_MASK)
    assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(1)) == Ret.SUCCESS
    assert vm.ev(1, SW_SIGNALED).pending
    assert vm.hs(1, SW_SIGNALED) == state


def test_signal_already_pending_success_with_one_pending() -> None:
    vm = Vm(2)
    reach(vm, 1, SW_SIGNALED, S.ENABLED)
    for _ in range(3):
        assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(1)) == Ret.SUCCESS
    assert vm.ret(1, Function.EVENT_SIGNAL, 0, vm.mpidr(1)) == Ret.SUCCESS
    assert vm.kicked == [1]  # only the signal that made it pending kicks the target
    vm.ret(1, Function.PE_UNMASK)
    assert vm.dispatch(1) == SW_SIGNALED
    assert vm.call(1, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.dispatch(1) is None  # four signals, one handler run


def test_signal_self_while_handler_runs_is_delivered_after_complete() -> None:
    vm = Vm(1)
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(0)) == Ret.SUCCESS
    assert vm.dispatch(0) is None
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.dispatch(0) == SW_SIGNALED


# -- PRIVATE_RESET / SHARED_RESET ------------------------------------------------------------------


def test_private_reset_unregisters_everything() -> None:
    vm = Vm(2)
    reach(vm, 0, SW_SIGNALED, S.ENABLED, flags=3)
    reach(vm, 0, ASYNC_PF, S.REGISTERED)
    make_pending(vm, 0, SW_SIGNALED)
    reach(vm, 1, SW_SIGNALED, S.ENABLED)
    vm.ret(0, Function.PE_UNMASK)
    other = vm.state(1)
    assert vm.ret(0, Function.PRIVATE_RESET) == Ret.SUCCESS
    assert vm.state(0) == VcpuState(masked=False)  # the mask is not touched
    assert vm.state(1) == other


@pytest.mark.parametrize("running", [S.ENABLED_RUNNING, S.REGISTERED_RUNNING,
                                     S.UNREGISTER_PENDING], ids=lambda s: s.mnemonic)
def test_private_reset_with_running_handler_denied_and_unregister_pending(
    running: HandlerState,
) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, running)
    reach(vm, 0, ASYNC_PF, S.ENABLED)
    if vm.ev(0, SW_SIGNALED).registered:
        make_pending(vm, 0, SW_SIGNALED)
    make_pending(vm, 0, ASYNC_PF)
    ctx = vm.state(0).contexts[SW_SIGNALED.priority]
    assert vm.ret(0, Function.PRIVATE_RESET) == Ret.DENIED
    assert vm.ev(0, SW_SIGNALED) == EventState(running=True)
    assert vm.ev(0, ASYNC_PF) == EventState()
    assert vm.state(0).contexts[SW_SIGNALED.priority] == ctx
    assert vm.ret(0, Function.PRIVATE_RESET) == Ret.DENIED  # still running
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.state(0) == VcpuState(masked=False)
    assert vm.ret(0, Function.PRIVATE_RESET) == Ret.SUCCESS


def test_private_reset_both_classes_running() -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, S.ENABLED_RUNNING)
    reach(vm, 0, ASYNC_PF, S.ENABLED_RUNNING)
    assert vm.ret(0, Function.PRIVATE_RESET) == Ret.DENIED
    assert vm.ev(0, SW_SIGNALED) == vm.ev(0, ASYNC_PF) == EventState(running=True)
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == ASYNC_PF
    assert vm.call(0, Function.EVENT_COMPLETE, 0).completed == SW_SIGNALED
    assert vm.state(0) == VcpuState(masked=False)


@pytest.mark.parametrize("state", list(HandlerState), ids=lambda s: s.mnemonic)
def test_shared_reset_success_changes_nothing(state: HandlerState) -> None:
    vm = Vm()
    reach(vm, 0, SW_SIGNALED, state)
    before = vm.state(0)
    assert vm.ret(0, Function.SHARED_RESET) == Ret.SUCCESS
    assert vm.state(0) == before


# -- injection and the kick callback ---------------------------------------------------------------


def test_inject_and_kick() -> None:
    vm = Vm(3)
    assert not vm.inject(2, ASYNC_PF.number)  # not registered
    assert not vm.inject(2, 0x12345)  # not an event
    assert vm.kicked == []
    reach(vm, 2, ASYNC_PF, S.REGISTERED)
    assert vm.inject(2, ASYNC_PF.number)
    assert vm.inject(2, ASYNC_PF.number)  # merges into the pending trigger
    assert vm.kicked == [2]
    assert vm.ev(2, ASYNC_PF).pending
    assert vm.state(0) == vm.state(1) == VcpuState()


def test_signal_kicks_the_target_only() -> None:
    vm = Vm(3)
    reach(vm, 2, SW_SIGNALED, S.REGISTERED)
    assert vm.ret(0, Function.EVENT_SIGNAL, 0, vm.mpidr(2)) == Ret.SUCCESS
    assert vm.kicked == [2]


def test_event_numbers_of_the_table() -> None:
    assert EVENT_NUMBERS == (0, 0x40400000)
    assert [e.index for e in EVENTS] == [0, 1]
