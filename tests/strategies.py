"""Hypothesis strategies for the SDEI state model and its register encoding.

Shared by every test that needs SDEI states or register values:

- ``event_states()``, ``contexts()``: any value the constructors accept;
- ``vcpu_states()``: any ``VcpuState`` (every per-register-valid state, canonical or not);
- ``canonical_vcpu_states()``: the states the model itself can produce (no context for an idle
  class, no entry point or argument for an unregistered event, a non-zero entry point for a
  registered one);
- ``u64s()``: unsigned 64-bit values biased towards the edges a codec gets wrong;
- ``reg_values(reg)``: values one SDEI register accepts on SET_ONE_REG.
"""

from __future__ import annotations

from hypothesis import strategies as st

from sdei_state.events import EVENTS
from sdei_state.regs.sdei import CONTEXT_R_PSTATE, SdeiReg, SdeiRegKind
from sdei_state.spec import CONTEXT_REGS, Priority
from sdei_state.state import (
    CONTEXT_MODES,
    PSTATE_MODE_MASK,
    U64_MAX,
    Context,
    EventState,
    HandlerState,
    VcpuState,
)

_EDGES = sorted(
    {0, 1, 2, 3, 4, U64_MAX, U64_MAX - 1, U64_MAX - 3}
    | {1 << b for b in range(64)}
    | {(1 << b) - 1 for b in range(1, 65)}
    | {U64_MAX ^ (1 << b) for b in range(64)}
)


def u64s() -> st.SearchStrategy[int]:
    """Any unsigned 64-bit value; edges (single bits, all-ones, low masks) come up often."""
    return st.one_of(
        st.integers(0, U64_MAX),
        st.sampled_from(_EDGES),
        st.integers(0, 0xFF),
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

