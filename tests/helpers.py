"""Shared helpers for the state-machine tests.

``Vm`` is one ``Machine`` with an in-memory CPU per vCPU, so a test reads like the guest code
it stands for: ``vm.call(0, Function.EVENT_ENABLE, 0)``. ``reach`` drives one event on one
vCPU into any of the six handler states with real guest calls, a signal or an injection, and
a dispatch, asserting every intermediate result, so no test has to poke state to get there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from sdei_state.cpu import CONTEXT_GPRS, CpuReg, MemoryCpu
from sdei_state.events import ASYNC_PF, SW_SIGNALED, Event
from sdei_state.machine import CallOutcome, Machine, affinity_of
from sdei_state.spec import Function, Ret
from sdei_state.state import EventState, HandlerState, VcpuState

U64: Final = (1 << 64) - 1
MPIDR_RES1: Final = 1 << 31

EP: Final = 0x0000_0000_8040_1000
"""A plausible absolute handler entry point (4-byte aligned)."""
ARG: Final = 0xFFFF_0000_DEAD_BEE0
"""A plausible ep_argument (a kernel pointer, as Linux passes)."""

INTERRUPTED_PC: Final = 0xFFFF_8000_0812_3454
INTERRUPTED_PSTATE: Final = 0x6000_0005  # EL1h with Z and C set
INTERRUPTED: Final[Mapping[CpuReg, int]] = {
    **{r: 0x1100 + r.value for r in CONTEXT_GPRS},
    CpuReg.PC: INTERRUPTED_PC,
    CpuReg.PSTATE: INTERRUPTED_PSTATE,
}
"""The register values ``reach`` loads just before it dispatches: a recognisable context."""


def signed(value: int) -> int:
    """An unsigned 64-bit register value read as the signed x0 of an SDEI result."""
    return value - (1 << 64) if value >> 63 else value


class Vm:
    """A ``Machine`` plus one ``MemoryCpu`` per vCPU, with guest-flavoured shorthands."""

    def __init__(self, nr_vcpus: int = 1, *, enabled: bool = True) -> None:
        self.kicked: list[int] = []
        self.machine = Machine(nr_vcpus, enabled=enabled, on_pending=self.kicked.append)
        self.cpus = [MemoryCpu() for _ in range(nr_vcpus)]

    def call(self, vcpu: int, function_id: int, *args: int) -> CallOutcome:
        """Make an SDEI call the way a guest does: load x0..x5, then serve the HVC."""
        regs = {CpuReg.X0: function_id & U64}
        regs.update({CpuReg(i + 1): a & U64 for i, a in enumerate(args)})
        regs.update({CpuReg(i + 1): 0 for i in range(len(args), 5)})
        self.cpus[vcpu].write(regs)
        return self.machine.hvc(vcpu, self.cpus[vcpu])

    def ret(self, vcpu: int, function_id: int, *args: int) -> int:
        """The signed x0 result of a call (for calls that do not complete a handler)."""
        out = self.call(vcpu, function_id, *args)
        assert out.completed is None, f"call {function_id:#x} completed a handler"
        assert signed(self.cpus[vcpu][CpuReg.X0]) == out.ret
        return out.ret

    def dispatch(self, vcpu: int) -> Event | None:
        return self.machine.dispatch(vcpu, self.cpus[vcpu])

    def inject(self, vcpu: int, number: int) -> bool:
        return self.machine.inject(vcpu, number)

    def state(self, vcpu: int) -> VcpuState:
        return self.machine.state(vcpu)

    def ev(self, vcpu: int, event: Event) -> EventState:
        return self.machine.state(vcpu).event(event)

    def hs(self, vcpu: int, event: Event) -> HandlerState:
        return self.ev(vcpu, event).handler_state

    @staticmethod
    def mpidr(vcpu: int) -> int:
        """The MPIDR_EL1 value a guest reads on ``vcpu`` (affinity plus RES1 bit 31)."""
        return affinity_of(vcpu) | MPIDR_RES1

    def snapshot(self, vcpu: int) -> dict[CpuReg, int]:
        return self.cpus[vcpu].snapshot()


def make_pending(vm: Vm, vcpu: int, event: Event) -> None:
    """Trigger ``event`` on ``vcpu``: EVENT_SIGNAL from the vCPU itself for event 0, a
    hypervisor injection for ASYNC_PF. The event must be registered."""
    if event.signalable:
        assert vm.ret(vcpu, Function.EVENT_SIGNAL, event.number, vm.mpidr(vcpu)) == Ret.SUCCESS
    else:
        assert vm.inject(vcpu, event.number)
    assert vm.ev(vcpu, event).pending


def reach(
    vm: Vm,
    vcpu: int,
    event: Event,
    target: HandlerState,
    *,
    ep: int = EP,
    arg: int = ARG,
    flags: int = 0,
    interrupted: Mapping[CpuReg, int] = INTERRUPTED,
) -> None:
    """Drive ``event`` on ``vcpu`` from handler-unregistered to ``target`` through real calls.

    Running states go through PE_UNMASK, a trigger and a dispatch (the vCPU is left
    unmasked); ``interrupted`` is loaded into the CPU just before that dispatch, so it is the
    context the handler interrupted. Every step's result is asserted.
    """
    assert vm.hs(vcpu, event) == HandlerState.UNREGISTERED, "reach starts from unregistered"
    if target == HandlerState.UNREGISTERED:
        return
    assert vm.ret(vcpu, Function.EVENT_REGISTER, event.number, ep, arg, flags, 0) == Ret.SUCCESS
    if target == HandlerState.REGISTERED:
        return
    assert vm.ret(vcpu, Function.EVENT_ENABLE, event.number) == Ret.SUCCESS
    if target == HandlerState.ENABLED:
        return
    assert vm.ret(vcpu, Function.PE_UNMASK) == Ret.SUCCESS
    make_pending(vm, vcpu, event)
    vm.cpus[vcpu].write(interrupted)
    assert vm.dispatch(vcpu) == event
    assert vm.hs(vcpu, event) == HandlerState.ENABLED_RUNNING
    if target == HandlerState.REGISTERED_RUNNING:
        assert vm.ret(vcpu, Function.EVENT_DISABLE, event.number) == Ret.SUCCESS
    elif target == HandlerState.UNREGISTER_PENDING:
        assert vm.ret(vcpu, Function.EVENT_UNREGISTER, event.number) == Ret.PENDING
    assert vm.hs(vcpu, event) == target


ALL_EVENTS: Final = (SW_SIGNALED, ASYNC_PF)
RUNNING_STATES: Final = frozenset(
    {HandlerState.UNREGISTER_PENDING, HandlerState.REGISTERED_RUNNING,
     HandlerState.ENABLED_RUNNING}
)
