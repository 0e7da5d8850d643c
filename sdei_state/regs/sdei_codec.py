"""The SDEI codec: one vCPU's ``VcpuState`` <-> its 47 register values, fast and proven.

Two implementations of one mapping:

- the *reference* (``reference_encode``, ``reference_decode``) runs the construct declaration
  of every register (``RegLayout.build`` / ``parse``) and the model's constructors, which check
  every rule; it is slow and obviously right;
- the *fast* codec (``encode``, ``decode``) is Python source generated once, at import, from
  the register table and the declarations: the order of the values, the bit of every flag, the
  RES0 masks and the rule tables all come from them. It reads and builds the state's fields
  directly and checks all 47 values with a handful of masks and set lookups.

The tests prove both equal over random states and random register sets (hypothesis). When the
fast decoder meets anything it does not accept (a missing id, a value that is not a u64 or that
a register refuses) it hands over to the reference path, which names the register, the field
and the value.

Values are ints; a bool is an int here (``True`` is 1): the type of a value is checked where
values enter the library (``check_value``, blobs, the bindings), not again on every decode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from struct import Struct
from struct import error as StructError
from typing import Any, Final

from ..events import EVENTS
from ..spec import Priority
from ..state import U64_MAX, ZERO_CONTEXT, Context, EventState, StateError, VcpuState
from .sdei_block import CONTEXT_R_PC, CONTEXT_R_PSTATE, SdeiRegKind
from .sdei_check import MISSING, SdeiRegisterError
from .sdei_decl import EVENT_STATE_LAYOUT
from .sdei_layout import RegLayout
from .sdei_table import SDEI_REG_IDS, SDEI_REGS, SdeiReg

# --------------------------------------------------------------------------------------------
# The reference: the construct declarations and the model's constructors
# --------------------------------------------------------------------------------------------


def _event_fields(es: EventState) -> dict[str, int | bool]:
    return {f.attr: getattr(es, f.attr) for f in EVENT_STATE_LAYOUT.fields if f.kind == "flag"}


def _reference_fields(reg: SdeiReg, state: VcpuState) -> Mapping[str, int | bool]:
    """The declaration's fields of one register, read from the state."""
    if reg.kind is SdeiRegKind.VCPU_STATE:
        return {"masked": state.masked}
    if reg.kind is SdeiRegKind.CONTEXT:
        assert reg.cls is not None and reg.r is not None
        ctx = state.contexts[reg.cls]
        value = (ctx.pc if reg.r == CONTEXT_R_PC
                 else ctx.pstate if reg.r == CONTEXT_R_PSTATE else ctx.x[reg.r])
        return reg.layout.unpack(value)
    assert reg.event_index is not None
    es = state.events[reg.event_index]
    if reg.kind is SdeiRegKind.EVENT_STATE:
        return _event_fields(es)
    return reg.layout.unpack(es.ep_addr if reg.kind is SdeiRegKind.EP_ADDR else es.ep_arg)


def reference_encode(state: VcpuState) -> tuple[int, ...]:
    """``encode`` through the construct builders (slow; the reference the tests compare to)."""
    return tuple(reg.layout.build(_reference_fields(reg, state)) for reg in SDEI_REGS)


def _problem(reg: SdeiReg, value: object) -> SdeiRegisterError | None:
    p = reg.layout.problem(value)
    return None if p is None else SdeiRegisterError(reg, p.field, value, p.text)


def _value(values: Mapping[int, int], reg: SdeiReg) -> int:
    try:
        value = values[reg.id]
    except KeyError:
        raise SdeiRegisterError(reg, None, None, MISSING) from None
    err = _problem(reg, value)
    if err is not None:
        raise err
    return value


def _event_reg(kind: SdeiRegKind, index: int) -> SdeiReg:
    return next(r for r in SDEI_REGS if r.kind is kind and r.event_index == index)


def _context_reg(cls: Priority, r: int) -> SdeiReg:
    return next(reg for reg in SDEI_REGS if reg.cls == cls and reg.r == r)


def reference_decode(values: Mapping[int, int]) -> VcpuState:
    """``decode`` through the construct parsers and the model's constructors (slow; names the
    first register at fault with ``SdeiRegisterError``)."""
    vals = {reg: _value(values, reg) for reg in SDEI_REGS}
    parsed = {reg: reg.layout.parse(v) for reg, v in vals.items()}
    flags = [f.attr for f in EVENT_STATE_LAYOUT.fields if f.kind == "flag"]
    events = []
    for ev in EVENTS:
        word = parsed[_event_reg(SdeiRegKind.EVENT_STATE, ev.index)]
        events.append(EventState(**{f: bool(word[f]) for f in flags},
                                 ep_addr=vals[_event_reg(SdeiRegKind.EP_ADDR, ev.index)],
                                 ep_arg=vals[_event_reg(SdeiRegKind.EP_ARG, ev.index)]))
    contexts = []
    for cls in Priority:
        regs = [vals[_context_reg(cls, r)] for r in range(CONTEXT_R_PSTATE + 1)]
        contexts.append(Context(tuple(regs[:CONTEXT_R_PC]), regs[CONTEXT_R_PC],
                                regs[CONTEXT_R_PSTATE]))
    vcpu = next(r for r in SDEI_REGS if r.kind is SdeiRegKind.VCPU_STATE)
    try:
        return VcpuState(masked=bool(parsed[vcpu]["masked"]), events=tuple(events),
                         contexts=(contexts[0], contexts[1]))
    except StateError as e:  # more running handlers in a class than the model allows
        running = EVENT_STATE_LAYOUT.by_attr["running"].mask
        first = next(r for r, v in vals.items()
                     if r.kind is SdeiRegKind.EVENT_STATE and v & running)
        raise SdeiRegisterError(first, "RUNNING", vals[first], str(e)) from None


# --------------------------------------------------------------------------------------------
# The fast codec, generated from the table and the declarations
# --------------------------------------------------------------------------------------------


def _state_expr(reg: SdeiReg) -> str:
    """The expression of the generated encoder that yields ``reg``'s value."""
    if reg.kind is SdeiRegKind.VCPU_STATE:
        (f,) = [f for f in reg.layout.fields if f.kind == "flag"]
        return f"(s.{f.attr} << {f.lsb})"
    if reg.kind is SdeiRegKind.EVENT_STATE:
        return "(" + " | ".join(f"e{reg.event_index}.{f.attr} << {f.lsb}"
                                for f in reg.layout.fields if f.kind == "flag") + ")"
    if reg.kind is SdeiRegKind.EP_ADDR:
        return f"e{reg.event_index}.ep_addr"
    if reg.kind is SdeiRegKind.EP_ARG:
        return f"e{reg.event_index}.ep_arg"
    assert reg.cls is not None and reg.r is not None
    if reg.r == CONTEXT_R_PC:
        return f"c{int(reg.cls)}.pc"
    if reg.r == CONTEXT_R_PSTATE:
        return f"c{int(reg.cls)}.pstate"
    return f"c{int(reg.cls)}.x[{reg.r}]"


def _check_expr(var: str, layout: RegLayout, consts: dict[str, Any]) -> str | None:
    """A generated test that is true when ``var`` is refused by ``layout`` (range aside): its
    RES0 bits, then the rule table over the bits the rules read."""
    if layout.rule_mask == 0:
        return f"{var} & {layout.res0_mask:#x}" if layout.res0_mask else None
    key = "OK_" + "".join(ch if ch.isalnum() else "_" for ch in layout.title)
    consts[key] = layout.rule_ok
    if layout.res0_mask | layout.rule_mask == U64_MAX:
        return f"{var} not in {key}"  # the table holds every accepted value
    test = f"({var} & {layout.rule_mask:#x}) not in {key}"
    return f"{var} & {layout.res0_mask:#x} or {test}" if layout.res0_mask else test


def _generate() -> tuple[str, dict[str, Any]]:
    """Source of the fast ``_encode_values`` and ``_decode_values`` and their constants."""
    n_ev = len(EVENTS)
    regs = list(SDEI_REGS)
    var = [f"v{i}" for i in range(len(regs))]
    pos = {reg.id: i for i, reg in enumerate(regs)}
    consts: dict[str, Any] = {}
    lines = ["def _encode_values(s):"]
    if n_ev:
        lines.append(f"    {', '.join(f'e{i}' for i in range(n_ev))}, = s.events")
    lines.append(f"    {', '.join(f'c{c}' for c in range(len(Priority)))}, = s.contexts")
    exprs = [_state_expr(r) for r in regs]
    for cls in Priority:  # x0..x17 of a context are consecutive: one starred tuple
        c = int(cls)
        first = exprs.index(f"c{c}.x[0]")
        if exprs[first:first + CONTEXT_R_PC] != [f"c{c}.x[{r}]" for r in range(CONTEXT_R_PC)]:
            raise AssertionError("a context's x0..x17 must be consecutive registers")
        exprs[first:first + CONTEXT_R_PC] = [f"*c{c}.x"]
    lines.append("    return (" + ", ".join(exprs) + ",)")
    # decode: unpack, range check, per-register checks, then build the state
    # The u64 range (and that every value is an integer) is struct's "Q" check, in C.
    consts["pack"] = Struct(f"<{len(regs)}Q").pack
    consts["RangeError"] = StructError
    lines += ["", "def _decode_values(v):", f"    {', '.join(var)}, = v", "    try:",
              "        pack(*v)", "    except RangeError:", "        return None"]
    tests = [t for reg, x in zip(regs, var, strict=True)
             if (t := _check_expr(x, reg.layout, consts)) is not None]
    lines += ["    if " + " or ".join(f"({t})" for t in tests) + ":", "        return None"]
    flags = [f for f in EVENT_STATE_LAYOUT.fields if f.kind == "flag"]
    consts["FLAGS"] = {w: tuple(bool(w & f.mask) for f in flags)
                       for w in EVENT_STATE_LAYOUT.rule_ok}
    for f in flags:
        consts[f"set_{f.attr}"] = getattr(EventState, f.attr).__set__
    for name in ("ep_addr", "ep_arg"):
        consts[f"set_{name}"] = getattr(EventState, name).__set__
    for name in ("x", "pc", "pstate"):
        consts[f"setc_{name}"] = getattr(Context, name).__set__
    for name in ("masked", "events", "contexts"):
        consts[f"setv_{name}"] = getattr(VcpuState, name).__set__
    consts.update(new=object.__new__, EventState=EventState, Context=Context,
                  VcpuState=VcpuState, ZERO_EVENT=EventState(), ZERO_CONTEXT=ZERO_CONTEXT)
    for ev in EVENTS:
        w = var[pos[_event_reg(SdeiRegKind.EVENT_STATE, ev.index).id]]
        a = var[pos[_event_reg(SdeiRegKind.EP_ADDR, ev.index).id]]
        g = var[pos[_event_reg(SdeiRegKind.EP_ARG, ev.index).id]]
        i = ev.index
        lines += [f"    if {w} | {a} | {g}:", f"        e{i} = new(EventState)",
                  f"        f = FLAGS[{w}]"]
        lines += [f"        set_{f.attr}(e{i}, f[{k}])" for k, f in enumerate(flags)]
        lines += [f"        set_ep_addr(e{i}, {a})", f"        set_ep_arg(e{i}, {g})",
                  "    else:", f"        e{i} = ZERO_EVENT"]
    for cls in Priority:
        c = int(cls)
        first = pos[_context_reg(cls, 0).id]
        members = [var[pos[_context_reg(cls, r).id]] for r in range(CONTEXT_R_PSTATE + 1)]
        if [pos[_context_reg(cls, r).id] for r in range(CONTEXT_R_PSTATE + 1)] != list(
                range(first, first + CONTEXT_R_PSTATE + 1)):
            raise AssertionError("a context's 20 registers must be consecutive")
        consts["ZEROS"] = (0,) * (CONTEXT_R_PSTATE + 1)
        lines += [f"    if v[{first}:{first + CONTEXT_R_PSTATE + 1}] != ZEROS:",
                  f"        c{c} = new(Context)",
                  f"        setc_x(c{c}, v[{first}:{first + CONTEXT_R_PC}])",
                  f"        setc_pc(c{c}, {members[CONTEXT_R_PC]})",
                  f"        setc_pstate(c{c}, {members[CONTEXT_R_PSTATE]})",
                  "    else:", f"        c{c} = ZERO_CONTEXT"]
    events = "(" + "".join(f"e{i}, " for i in range(n_ev)) + ")"
    contexts = "(" + "".join(f"c{int(c)}, " for c in Priority) + ")"
    masked = var[pos[next(r.id for r in SDEI_REGS if r.kind is SdeiRegKind.VCPU_STATE)]]
    if _one_event_per_class():
        # VcpuState's only cross-field rule (one running handler per class) cannot fail.
        lines += ["    s = new(VcpuState)", f"    setv_masked(s, {masked} == 1)",
                  f"    setv_events(s, {events})", f"    setv_contexts(s, {contexts})",
                  "    return s"]
    else:
        lines += ["    try:",
                  f"        return VcpuState({masked} == 1, {events}, {contexts})",
                  "    except ValueError:", "        return None"]
    return "\n".join(lines) + "\n", consts


def _one_event_per_class() -> bool:
    classes = [ev.priority for ev in EVENTS]
    return len(classes) == len(set(classes))


def _compile() -> tuple[Callable[[VcpuState], tuple[int, ...]],
                        Callable[[Sequence[int]], VcpuState | None]]:
    # The generated state fields must be the declaration's: every flag of a layout is a field
    # of the model's value of the same name.
    for f in EVENT_STATE_LAYOUT.fields:
        if f.kind == "flag" and f.attr not in EventState.__slots__:
            raise AssertionError(f"SDEI_EVENT_STATE.{f.name} is not an EventState field")
    if "masked" not in VcpuState.__slots__:
        raise AssertionError("SDEI_VCPU_STATE.MASKED is not a VcpuState field")
    source, namespace = _generate()
    exec(compile(source, "<sdei_codec generated>", "exec"), namespace)
    return namespace["_encode_values"], namespace["_decode_values"]


GENERATED_SOURCE: Final = _generate()[0]
"""The generated code, for reading (``print(sdei_codec.GENERATED_SOURCE)``)."""

_encode_values, _decode_values = _compile()
values_in_order: Final = itemgetter(*SDEI_REG_IDS)
"""The SDEI values of an id -> value mapping, aligned with ``SDEI_REG_IDS`` (KeyError if one
is missing)."""


def encode(state: VcpuState) -> tuple[int, ...]:
    """The register values of one vCPU's SDEI state, aligned with ``SDEI_REG_IDS``."""
    return _encode_values(state)


def encode_map(state: VcpuState) -> dict[int, int]:
    """``encode`` as {register id: value}."""
    return dict(zip(SDEI_REG_IDS, _encode_values(state), strict=True))


def decode_values(values: Sequence[int]) -> VcpuState:
    """``decode`` of values aligned with ``SDEI_REG_IDS``."""
    values = tuple(values)
    state = _decode_values(values) if len(values) == len(SDEI_REG_IDS) else None
    if state is None:
        return reference_decode(dict(zip(SDEI_REG_IDS, values, strict=False)))
    return state


def decode(values: Mapping[int, int]) -> VcpuState:
    """The vCPU state of a complete set of SDEI register values (other ids are ignored).

    Every per-register-valid set decodes, canonical or not (see ``vcpu_problems`` for the
    whole-vCPU checks). Raises ``SdeiRegisterError`` for a missing id or a refused value."""
    try:
        state = _decode_values(values_in_order(values))
    except (KeyError, TypeError):
        state = None
    return reference_decode(values) if state is None else state
