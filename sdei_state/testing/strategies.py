"""Hypothesis strategies for SDEI state, its register encoding, call sequences and blobs.

Values:

- ``u64s()``: unsigned 64-bit values biased towards the edges a codec gets wrong;
- ``reg_values(reg)`` / ``invalid_reg_values(reg)``: what one SDEI register accepts on
  ``KVM_SET_ONE_REG`` and what it refuses with EINVAL (per register; cross-register facts are
  ``vcpu_problems``'s);
- ``event_states()``, ``contexts()``: any value the constructors accept;
- ``cpu_values()``: CPU registers (``{CpuReg: value}``) any ``CpuRegs`` must write and read back;
- ``vcpu_states()``: any per-register-valid ``VcpuState``, canonical or not;
- ``canonical_vcpu_states()``: no context for an idle class, no entry point or argument for an
  unregistered event, a non-zero entry point for a registered one (what
  ``VcpuState.canonical_problems`` accepts).

Behaviour (everything the model itself produces):

- ``call_sequences(nr_vcpus)``: guest-like steps (``steps.Call``, ``Dispatch``, ``Inject``);
- ``sim_vms()``: a fresh ``SimVm`` after a call sequence;
- ``reachable_vcpu_states()``: the SDEI state of one vCPU of such a VM;
- ``blobs()``: ``save_vm`` of such a VM.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from hypothesis import strategies as st

from ..cpu import CpuReg
from ..events import ASYNC_PF, EVENTS, SW_SIGNALED
from ..machine import affinity_of
from ..migration import Blob, save_vm
from ..regs import firmware
from ..regs.sdei import CONTEXT_R_PSTATE, SDEI_REGS, SdeiReg, SdeiRegKind, check_value
from ..spec import CONTEXT_REGS, Function, Priority
from ..state import (
    CONTEXT_MODES,
    PSTATE_MODE_MASK,
    U64_MAX,
    Context,
    EventState,
    HandlerState,
    VcpuState,
)
from ..vcpu.sim import SimVm
from .steps import Call, Dispatch, Inject, Step, apply

_EDGES = sorted(
    {0, 1, 2, 3, 4, U64_MAX, U64_MAX - 1, U64_MAX - 3}
    | {1 << b for b in range(64)}
    | {(1 << b) - 1 for b in range(1, 65)}
    | {U64_MAX ^ (1 << b) for b in range(64)}
)
_MPIDR_RES1 = 1 << 31
T = TypeVar("T")

# -- register values ----------------------------------------------------------------------------


def u64s() -> st.SearchStrategy[int]:
    """Any unsigned 64-bit value; edges (single bits, all-ones, low masks) come up often."""
    return st.one_of(
        st.integers(0, U64_MAX),
        st.sampled_from(_EDGES),
        st.integers(0, 0xFF),
    )


def out_of_range_ints() -> st.SearchStrategy[int]:
    """Integers no 64-bit register holds: negative, or 2^64 and above."""
    return st.one_of(
        st.integers(max_value=-1),
        st.integers(min_value=U64_MAX + 1),
        st.sampled_from([-1, 1 << 64, (1 << 64) + 1, 1 << 128]),
    )


def aligned_addrs() -> st.SearchStrategy[int]:
    """4-byte aligned u64 values (entry points)."""
    return u64s().map(lambda v: v & ~3 & U64_MAX)


def pstates() -> st.SearchStrategy[int]:
    """PSTATE values a saved context may hold: any upper bits, an allowed mode."""
    return st.builds(
        lambda other, mode: (other & ~PSTATE_MODE_MASK) | mode,
        u64s(),
        st.sampled_from(sorted(int(m) for m in CONTEXT_MODES)),
    )


def contexts() -> st.SearchStrategy[Context]:
    """Any valid saved context."""
    return st.builds(
        Context,
        st.tuples(*[u64s() for _ in range(CONTEXT_REGS)]),
        u64s(),
        pstates(),
    )


@st.composite
def event_states(draw: st.DrawFn, *, canonical: bool = False) -> EventState:
    """Any valid EventState; ``canonical``: EP_ADDR and EP_ARG are 0 when not registered, and
    EP_ADDR is not 0 when registered (REGISTER refuses 0)."""
    hs = draw(st.sampled_from(list(HandlerState)))
    reg = hs.registered
    keep_ep = reg or not canonical
    return EventState(
        registered=reg,
        enabled=hs.enabled,
        running=hs.running,
        pending=reg and draw(st.booleans()),
        relative=reg and draw(st.booleans()),
        ep_addr=(draw(aligned_addrs().filter(bool) if canonical else aligned_addrs())
                 if keep_ep else 0),
        ep_arg=draw(u64s()) if keep_ep else 0,
    )


def _one_running_per_class(events: tuple[EventState, ...]) -> bool:
    for cls in Priority:
        if sum(1 for ev, es in zip(EVENTS, events, strict=True)
               if es.running and ev.priority == cls) > 1:
            return False
    return True


@st.composite
def vcpu_states(draw: st.DrawFn) -> VcpuState:
    """Any VcpuState: per-register valid, canonical or not."""
    events = draw(
        st.tuples(*[event_states() for _ in EVENTS]).filter(_one_running_per_class)
    )
    ctx = draw(st.tuples(*[st.one_of(st.just(Context()), contexts()) for _ in Priority]))
    return VcpuState(masked=draw(st.booleans()), events=events, contexts=(ctx[0], ctx[1]))


@st.composite
def canonical_vcpu_states(draw: st.DrawFn) -> VcpuState:
    """A VcpuState the model could produce: contexts only for classes with a running handler,
    entry points and arguments only for registered events, never an entry point of 0."""
    events = draw(
        st.tuples(*[event_states(canonical=True) for _ in EVENTS]).filter(_one_running_per_class)
    )
    ctx = []
    for cls in Priority:
        running = any(es.running and ev.priority == cls
                      for ev, es in zip(EVENTS, events, strict=True))
        ctx.append(draw(contexts()) if running else Context())
    return VcpuState(masked=draw(st.booleans()), events=events, contexts=(ctx[0], ctx[1]))


def sdei_regs() -> st.SearchStrategy[SdeiReg]:
    """Any of the 47 SDEI registers."""
    return st.sampled_from(SDEI_REGS)


def reg_values(reg: SdeiReg) -> st.SearchStrategy[int]:
    """Values ``reg`` accepts on SET_ONE_REG (per register; cross-register facts ignored)."""
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return st.sampled_from([0, 1])
    if reg.kind is SdeiRegKind.EVENT_STATE:
        return event_states().map(
            lambda es: es.status | es.pending << 3 | es.relative << 4
        )
    if reg.kind is SdeiRegKind.EP_ADDR:
        return aligned_addrs()
    if reg.kind is SdeiRegKind.CONTEXT and reg.r == CONTEXT_R_PSTATE:
        return pstates()
    return u64s()


def invalid_reg_values(reg: SdeiReg, *, out_of_range: bool = True) -> st.SearchStrategy[int]:
    """Values SET_ONE_REG refuses for ``reg`` with EINVAL: u64 values its check refuses
    (reserved bits, an illegal handler state, an unaligned entry point, a context PSTATE mode
    that would return to EL2/EL3) and, with ``out_of_range``, integers that are not u64 at all.
    A register that takes any u64 (an argument, a context GPR) has only the latter."""
    refused = [v for v in _EDGES if check_value(reg.id, v) is not None]
    options: list[st.SearchStrategy[int]] = []
    if refused:
        options.append(st.sampled_from(refused))
        options.append(st.integers(0, U64_MAX).filter(
            lambda v: check_value(reg.id, v) is not None))
    if out_of_range:
        options.append(out_of_range_ints())
    if not options:
        raise ValueError(f"{reg.name} accepts every u64: with out_of_range=False it has no "
                         "invalid value")
    return st.one_of(*options)


# -- call sequences -----------------------------------------------------------------------------

_EVENT_NUMBERS = [SW_SIGNALED.number, ASYNC_PF.number]


def _weighted(*options: tuple[int, st.SearchStrategy[T]]) -> st.SearchStrategy[T]:
    """A choice between strategies with integer weights."""
    strategies = [strategy for _, strategy in options]
    picks = [i for i, (weight, _) in enumerate(options) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda i: strategies[i])


def _event_numbers() -> st.SearchStrategy[int]:
    """Mostly the table's events; sometimes any number, to exercise the refusals."""
    return _weighted((6, st.sampled_from(_EVENT_NUMBERS)), (1, u64s()))


def _entry_points() -> st.SearchStrategy[int]:
    return _weighted((6, st.integers(0x400, 0x4_0000).map(lambda v: v * 4)), (1, u64s()))


def _mpidrs(nr_vcpus: int) -> st.SearchStrategy[int]:
    index = st.integers(0, nr_vcpus - 1)
    return _weighted((4, index.map(lambda i: affinity_of(i) | _MPIDR_RES1)),
                     (1, index.map(affinity_of)), (1, u64s()))


def _small(*values: int) -> st.SearchStrategy[int]:
    return _weighted((6, st.sampled_from(values)), (1, u64s()))


def _args(function: Function, nr_vcpus: int) -> st.SearchStrategy[tuple[int, ...]]:
    """Arguments shaped like a guest's for ``function`` (with some garbage mixed in)."""
    ev = _event_numbers()
    if function is Function.EVENT_REGISTER:
        flags = _weighted((6, st.just(0)), (2, st.sampled_from([1, 2, 3])), (1, u64s()))
        return st.tuples(ev, _entry_points(), u64s(), flags, _mpidrs(nr_vcpus))
    if function is Function.EVENT_SIGNAL:
        return st.tuples(ev, _mpidrs(nr_vcpus))
    if function is Function.EVENT_COMPLETE_AND_RESUME:
        return st.tuples(_entry_points())
    if function is Function.EVENT_COMPLETE:
        return st.tuples(_small(0, 1))
    if function is Function.EVENT_CONTEXT:
        return st.tuples(_small(*range(CONTEXT_REGS + 1)))
    if function is Function.EVENT_ROUTING_SET:
        return st.tuples(ev, _small(0, 1), _mpidrs(nr_vcpus))
    if function is Function.EVENT_GET_INFO:
        return st.tuples(ev, _small(0, 1, 2, 3, 4))
    if function is Function.FEATURES:
        return st.tuples(_small(0, 1, 2))
    return st.tuples(ev, u64s())


_GUEST_FLOW = [Function.EVENT_REGISTER, Function.EVENT_ENABLE, Function.PE_UNMASK,
               Function.EVENT_SIGNAL, Function.EVENT_COMPLETE, Function.EVENT_COMPLETE_AND_RESUME]
"""The calls on the way to a running handler and back: drawn far more often than the rest."""


@st.composite
def _call(draw: st.DrawFn, nr_vcpus: int) -> Call:
    function = draw(_weighted((8, st.sampled_from(_GUEST_FLOW)),
                              (1, st.sampled_from(list(Function)))))
    return Call(draw(st.integers(0, nr_vcpus - 1)), function, draw(_args(function, nr_vcpus)))


def call_steps(nr_vcpus: int = 1) -> st.SearchStrategy[Step]:
    """One step on one of ``nr_vcpus`` vCPUs: mostly SDEI calls, often the dispatch check,
    sometimes an injection."""
    vcpu = st.integers(0, nr_vcpus - 1)
    return _weighted((6, _call(nr_vcpus)), (2, st.builds(Dispatch, vcpu)),
                     (1, st.builds(Inject, vcpu, _event_numbers())))


def _flow_step(draw: st.DrawFn, vm: SimVm) -> Step:
    """The step a guest (or its VMM) would take next for one event on one vCPU: register,
    enable, unmask, trigger (signal or inject), dispatch, complete. Driven by the vCPU's
    current state, so sequences reach running and nested handlers, not only refusals."""
    index = draw(st.integers(0, vm.nr_vcpus - 1))
    event = draw(st.sampled_from(EVENTS))
    state = vm.vcpus[index].state
    es = state.event(event)
    mpidr = _mpidrs(vm.nr_vcpus)
    if es.running:
        # The handler finishes, or first disables or unregisters its own event; a handler
        # whose event is already disabled or unregistered can only finish.
        live = es.enabled and es.registered
        finishes = [Function.EVENT_COMPLETE, Function.EVENT_COMPLETE,
                    Function.EVENT_COMPLETE_AND_RESUME]
        finishes += [Function.EVENT_DISABLE, Function.EVENT_UNREGISTER] if live else []
        if draw(st.booleans()):
            finish = draw(st.sampled_from(finishes))
            if finish is Function.EVENT_COMPLETE:
                return Call(index, finish, (draw(_small(0, 1)),))
            if finish is Function.EVENT_COMPLETE_AND_RESUME:
                return Call(index, finish, (draw(_entry_points()),))
            return Call(index, finish, (event.number,))
        if not live:
            return Dispatch(index)
    if not es.registered:
        flags = draw(_weighted((6, st.just(0)), (2, st.sampled_from([1, 2, 3]))))
        return Call(index, Function.EVENT_REGISTER,
                    (event.number, draw(_entry_points()), draw(u64s()), flags, draw(mpidr)))
    if not es.enabled:
        return Call(index, Function.EVENT_ENABLE, (event.number,))
    if state.masked:
        return Call(index, Function.PE_UNMASK)
    if not es.pending and draw(st.booleans()):
        if event.signalable and draw(st.booleans()):
            return Call(index, Function.EVENT_SIGNAL, (event.number, draw(mpidr)))
        return Inject(index, event.number)
    return Dispatch(index)


@st.composite
def _run_sequence(draw: st.DrawFn, vm: SimVm, max_size: int) -> list[Step]:
    """Draw up to ``max_size`` steps, applying each to ``vm`` as it is drawn: three in four
    follow the guest's flow (``_flow_step``), the rest are any step (``call_steps``)."""
    steps: list[Step] = []
    for _ in range(draw(st.integers(0, max_size))):
        flow = draw(st.sampled_from([True, True, True, False]))
        step = _flow_step(draw, vm) if flow else draw(call_steps(vm.nr_vcpus))
        apply(vm, [step])
        steps.append(step)
    return steps


def call_sequences(nr_vcpus: int = 1, *, max_size: int = 40) -> st.SearchStrategy[list[Step]]:
    """A guest-like sequence of steps for a VM of ``nr_vcpus`` vCPUs (``steps.apply`` runs
    it): mostly the calls that lead to running handlers and back, with any call mixed in."""
    return st.builds(SimVm, st.just(nr_vcpus)).flatmap(
        lambda vm: _run_sequence(vm, max_size))


def _sp_agrees(values: dict[CpuReg, int]) -> dict[CpuReg, int]:
    """SP is x13 in AArch32 User, so when both are drawn SP takes x13's value, in every mode
    (a write giving them different values in that mode is refused)."""
    if CpuReg.SP in values and CpuReg.X13 in values:
        values[CpuReg.SP] = values[CpuReg.X13]
    return values


def cpu_values(regs: Iterable[CpuReg] | None = None, *,
               max_size: int = 8) -> st.SearchStrategy[dict[CpuReg, int]]:
    """``{CpuReg: value}`` for up to ``max_size`` of ``regs`` (any ``CpuReg`` unless told), in
    any order, with values a guest may hold when its VMM stops it: any u64, PSTATE in a mode
    KVM accepts (``pstates()``), SP equal to x13 when both are drawn. What every ``CpuRegs``
    must take in ``write`` and give back from ``read``."""
    pool = sorted(set(CpuReg) if regs is None else set(regs))
    return st.lists(st.sampled_from(pool), unique=True, max_size=max_size).flatmap(
        lambda keys: st.fixed_dictionaries(
            {k: pstates() if k is CpuReg.PSTATE else u64s() for k in keys})).map(_sp_agrees)


def _cpu_values() -> st.SearchStrategy[dict[CpuReg, int]]:
    """CPU registers a guest may hold when the VMM stops it, PSTATE always among them."""
    regs = [CpuReg(n) for n in range(31)] + [CpuReg.SP, CpuReg.PC]
    return st.dictionaries(st.sampled_from(regs), u64s(), max_size=6).flatmap(
        lambda d: pstates().map(lambda p: _sp_agrees({**d, CpuReg.PSTATE: p})))


@st.composite
def sim_vms(
    draw: st.DrawFn,
    nr_vcpus: st.SearchStrategy[int] | None = None,
    hosts: st.SearchStrategy[firmware.HostFirmware] | None = None,
    *,
    max_steps: int = 40,
) -> SimVm:
    """A fresh ``SimVm`` (1 to 4 vCPUs on the SDEI host unless told) after a call sequence; the
    vCPUs' CPU registers are set to guest-like values first, so saved contexts are not all 0."""
    n = draw(nr_vcpus if nr_vcpus is not None
             else _weighted((3, st.just(1)), (1, st.integers(2, 4))))
    host = draw(hosts if hosts is not None else st.just(firmware.HOST_SDEI))
    vm = SimVm(n, host=host)
    for vcpu in vm.vcpus:
        vcpu.cpu.write(draw(_cpu_values()))
    draw(_run_sequence(vm, max_steps))
    return vm


def reachable_vcpu_states(*, max_steps: int = 40) -> st.SearchStrategy[VcpuState]:
    """The SDEI state of one vCPU after a call sequence: only states the model reaches."""
    return sim_vms(max_steps=max_steps).flatmap(
        lambda vm: st.sampled_from([v.state for v in vm.vcpus]))


def blobs(
    nr_vcpus: st.SearchStrategy[int] | None = None,
    hosts: st.SearchStrategy[firmware.HostFirmware] | None = None,
    *,
    max_steps: int = 40,
) -> st.SearchStrategy[Blob]:
    """The migration blob of a ``sim_vms()`` VM: every register every vCPU lists."""
    return sim_vms(nr_vcpus, hosts, max_steps=max_steps).map(lambda vm: save_vm(vm.vcpus))


def hosts() -> st.SearchStrategy[firmware.HostFirmware]:
    """Any host preset (``regs.firmware.PRESETS``)."""
    return st.sampled_from(list(firmware.PRESETS.values()))
