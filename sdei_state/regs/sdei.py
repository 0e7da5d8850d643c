"""The SDEI pseudo-register block (DESIGN section 4): declarations, codecs and validation.

Every register layout is declared once below as a ``construct`` ``BitStruct``: field widths,
names, documentation, the RES0 fields (``Const(0)``) and the value rules (``Rule``). That
declaration is the reference parser, builder and validator. The fast path used at run time
(plain masks and shifts, and a small precomputed table of the rule outcomes) is *derived* from
it when this module is imported, and tests prove both agree over the whole u64 input space.

The register table is data too: ``SDEI_REGS`` is generated from ``events.EVENTS`` and
``spec.Priority``, so the block grows with the static event table and nothing else.

Ids are ``KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW | regno`` with regno in the block
0x100-0x1FF (upstream KVM uses firmware regnos 0-3 and allocates upward from there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple

import construct as cs

from ..events import EVENTS, Event
from ..spec import CONTEXT_REGS, Priority, Status
from ..state import (
    CONTEXT_MODES,
    LEGAL_STATUS,
    PSTATE_MODE_MASK,
    U64_MAX,
    Context,
    EventState,
    Mode,
    VcpuState,
)

# --------------------------------------------------------------------------------------------
# Declaration vocabulary
# --------------------------------------------------------------------------------------------


class RuleError(cs.CheckError):  # type: ignore[misc]
    """A ``Rule`` failed while parsing or building; carries the field name and the reason."""

    def __init__(self, field: str, text: str, path: str | None = None) -> None:
        self.field = field
        self.text = text
        super().__init__(text, path=path)


class Rule(cs.Check):  # type: ignore[misc]
    """A value rule inside a ``BitStruct``: like ``construct.Check`` but it names the fields it
    reads (so the fast path can tabulate it over exactly those bits) and explains a failure."""

    def __init__(
        self,
        reads: tuple[str, ...],
        field: str,
        ok: Callable[[Any], bool],
        why: Callable[[Any], str],
    ) -> None:
        super().__init__(ok)
        self.reads = reads
        self.field = field
        self.why = why

    def _check(self, context: Any, path: str | None) -> None:
        if not self.func(context):
            raise RuleError(self.field, self.why(context), path=path)

    def _parse(self, stream: Any, context: Any, path: str | None) -> None:
        self._check(context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str | None) -> None:
        self._check(context, path)


def _res0(width: int, doc: str = "reserved") -> Any:
    """A RES0 field: the declaration refuses any set bit (parse and build)."""
    return "res0" / cs.Const(0, cs.BitsInteger(width)) * doc


FieldKind = Literal["flag", "uint", "res0"]


@dataclass(frozen=True, slots=True)
class BitField:
    """One field of a 64-bit register, as derived from its construct declaration."""

    attr: str
    """The name in the declaration (and in ``Layout.unpack`` results)."""
    lsb: int
    width: int
    kind: FieldKind
    doc: str

    @property
    def name(self) -> str:
        """The field name as the docs, the C header and error messages print it."""
        return self.attr.upper()

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    @property
    def bits(self) -> str:
        """Arm-style position: ``bit[0]`` or ``bits[63:5]``."""
        return f"bit[{self.lsb}]" if self.width == 1 else f"bits[{self.msb}:{self.lsb}]"

    def get(self, value: int) -> int:
        return (value >> self.lsb) & ((1 << self.width) - 1)


class Problem(NamedTuple):
    """Why a register value is refused: the field at fault and a sentence naming the value."""

    field: str
    text: str


def _unwrap(sc: Any) -> tuple[str | None, str, Any]:
    """(name, docs, innermost construct) of a possibly renamed/documented subcon."""
    name: str | None = None
    docs = ""
    while isinstance(sc, cs.Renamed):
        name = name or sc.name
        docs = docs or (sc.docs or "")
        sc = sc.subcon
    return name, docs, sc


def _u64_check(value: object) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return f"value {value!r} is not an integer"
    if not 0 <= value <= U64_MAX:
        return f"value {value} is outside the unsigned 64-bit range"
    return None


def _submasks(mask: int) -> Iterator[int]:
    """Every value whose set bits are a subset of ``mask`` (mask itself included)."""
    sub = mask
    while True:
        yield sub
        if sub == 0:
            return
        sub = (sub - 1) & mask


class Layout:
    """A register layout: its construct declaration and the fast path derived from it.

    ``parse``/``build`` run the declaration (the reference, slow); ``unpack``/``pack`` and
    ``problem`` are the masks, shifts and rule table computed from it here.
    """

    def __init__(self, title: str, summary: str, declaration: Any) -> None:
        self.title = title
        self.summary = summary
        self.declaration = declaration
        if declaration.sizeof() != 8:
            raise ValueError(f"{title}: a pseudo-register layout must be 64 bits")
        fields: list[BitField] = []
        rules: list[Rule] = []
        top = 64  # BitStruct fields run from the most significant bit down
        for sc in declaration.subcon.subcons:
            if isinstance(sc, Rule):
                rules.append(sc)
                continue
            if rules:
                raise ValueError(f"{title}: rules must follow every field")
            name, docs, inner = _unwrap(sc)
            if name is None:
                raise ValueError(f"{title}: unnamed field")
            width = inner.sizeof()
            kind: FieldKind
            if isinstance(inner, cs.Const):
                if inner.value != 0:
                    raise ValueError(f"{title}.{name}: only RES0 constants are supported")
                kind = "res0"
            elif isinstance(inner, type(cs.Flag)):
                kind = "flag"
            elif isinstance(inner, cs.BitsInteger) and not inner.signed:
                kind = "uint"
            else:
                raise ValueError(f"{title}.{name}: unsupported field construct {inner!r}")
            top -= width
            fields.append(BitField(name, top, width, kind, docs))
        if top != 0:
            raise ValueError(f"{title}: fields cover {64 - top} bits, not 64")
        self.fields: tuple[BitField, ...] = tuple(fields)
        self.by_attr: Mapping[str, BitField] = MappingProxyType({f.attr: f for f in fields})
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.res0: tuple[BitField, ...] = tuple(f for f in fields if f.kind == "res0")
        self.res0_mask = sum(f.mask for f in self.res0)
        self.rule_mask = 0
        for rule in rules:
            for attr in rule.reads:
                self.rule_mask |= self.by_attr[attr].mask
        # The rule table: outcome of the declaration for every combination of the bits the
        # rules read, all other bits 0. Rules read only those bits, so this is exact (and the
        # property tests prove it over the whole u64 range).
        table: dict[int, Problem | None] = {}
        for sub in _submasks(self.rule_mask):
            try:
                self.parse(sub)
                table[sub] = None
            except RuleError as e:
                table[sub] = Problem(e.field, e.text)
        self._rule_table: Mapping[int, Problem | None] = MappingProxyType(table)

    def __repr__(self) -> str:
        return f"<Layout {self.title}>"

    # -- the declaration (reference) ---------------------------------------------------------

    def parse(self, value: int) -> dict[str, int | bool]:
        """Run the construct declaration on a u64 value; raises ``construct.ConstructError``."""
        # BitStruct reads the most significant bit first, hence big-endian bytes here. (This is
        # about the integer only: KVM moves the u64 in host byte order.)
        parsed = self.declaration.parse(value.to_bytes(8, "big"))
        return {k: v for k, v in parsed.items() if not k.startswith("_")}

    def build(self, fields: Mapping[str, int | bool]) -> int:
        """Run the construct declaration as a builder; raises ``construct.ConstructError``."""
        return int.from_bytes(self.declaration.build(dict(fields)), "big")

    # -- the fast path ------------------------------------------------------------------------

    def unpack(self, value: int) -> dict[str, int | bool]:
        """Field values by masks and shifts (no validation), as ``parse`` returns them."""
        out: dict[str, int | bool] = {}
        for f in self.fields:
            v = (value >> f.lsb) & ((1 << f.width) - 1)
            out[f.attr] = bool(v) if f.kind == "flag" else v
        return out

    def pack(self, fields: Mapping[str, int | bool]) -> int:
        """Assemble a value from field values (missing ones are 0; no validation)."""
        value = 0
        for f in self.fields:
            value |= (int(fields.get(f.attr, 0)) & ((1 << f.width) - 1)) << f.lsb
        return value

    def problem(self, value: object) -> Problem | None:
        """Why the declaration would refuse ``value``, or None: u64 range, RES0, then rules."""
        bad = _u64_check(value)
        if bad is not None:
            return Problem("VALUE", bad)
        assert isinstance(value, int)
        if value & self.res0_mask:
            for f in self.res0:
                if value & f.mask:
                    return Problem(
                        f.name,
                        f"value {value:#x}: {f.name} {f.bits} has bits set "
                        f"({value & f.mask:#x}), must be 0: {f.doc}",
                    )
        hit = self._rule_table.get(value & self.rule_mask) if self.rule_mask else None
        if hit is not None:
            return Problem(hit.field, f"value {value:#x}: {hit.text}")
        return None


# --------------------------------------------------------------------------------------------
# The layouts, each declared once
# --------------------------------------------------------------------------------------------


def _rer(t: Any) -> str:
    return f"(REGISTERED,ENABLED,RUNNING) = ({int(t.registered)},{int(t.enabled)},{int(t.running)})"


VCPU_STATE_LAYOUT: Final = Layout(
    "SDEI_VCPU_STATE",
    "The vCPU's SDEI mask (PE_MASK / PE_UNMASK).",
    cs.BitStruct(
        _res0(63),
        "masked" / cs.Flag * "1: SDEI events are masked on this vCPU (every vCPU starts masked)",
    ),
)

EVENT_STATE_LAYOUT: Final = Layout(
    "SDEI_EVENT_STATE",
    "One event's handler state on this vCPU; bits[2:0] are the EVENT_STATUS result.",
    cs.BitStruct(
        _res0(59),
        "relative" / cs.Flag * "the entry point is an offset from VBAR_EL1 (REGISTER flags[1])",
        "pending" / cs.Flag * "a trigger is waiting for dispatch (edge-triggered: at most one)",
        "running" / cs.Flag * "the handler is running (EVENT_STATUS bit[2])",
        "enabled" / cs.Flag * "the event is enabled (EVENT_STATUS bit[1])",
        "registered" / cs.Flag * "a handler is registered (EVENT_STATUS bit[0])",
        Rule(
            ("registered", "enabled", "running"),
            "ENABLED",
            lambda t: (int(t.registered) | int(t.enabled) << 1 | int(t.running) << 2)
            in LEGAL_STATUS,
            lambda t: f"{_rer(t)} is not one of the six handler states of DEN0054C Table 13"
            " (ENABLED without REGISTERED)",
        ),
        Rule(
            ("registered", "pending"),
            "PENDING",
            lambda t: t.registered or not t.pending,
            lambda t: "PENDING set on an event that is not REGISTERED",
        ),
        Rule(
            ("registered", "relative"),
            "RELATIVE",
            lambda t: t.registered or not t.relative,
            lambda t: "RELATIVE set on an event that is not REGISTERED",
        ),
    ),
)

EP_ADDR_LAYOUT: Final = Layout(
    "SDEI_EVENT_EP_ADDR",
    "The registered entry point: absolute, or an offset from VBAR_EL1 when RELATIVE.",
    cs.BitStruct(
        "addr" / cs.BitsInteger(62) * "entry point bits[63:2]",
        _res0(2, "the entry point must be 4-byte aligned"),
    ),
)

EP_ARG_LAYOUT: Final = Layout(
    "SDEI_EVENT_EP_ARG",
    "The ep_argument given to EVENT_REGISTER, passed to the handler in x1.",
    cs.BitStruct("arg" / cs.BitsInteger(64) * "any value"),
)

CONTEXT_X_LAYOUT: Final = Layout(
    "SDEI_CONTEXT(c, 0..17)",
    "Interrupted x0..x17 of the running handler of class c (what EVENT_CONTEXT reads).",
    cs.BitStruct("value" / cs.BitsInteger(64) * "the interrupted general-purpose register"),
)

CONTEXT_PC_LAYOUT: Final = Layout(
    "SDEI_CONTEXT(c, 18)",
    "Interrupted PC of the running handler of class c.",
    cs.BitStruct("pc" / cs.BitsInteger(64) * "the interrupted PC, any value"),
)


MODE_NAMES: Final[Mapping[int, str]] = MappingProxyType({
    Mode.EL0T: "EL0t",
    Mode.EL1T: "EL1t",
    Mode.EL1H: "EL1h",
    Mode.EL2T: "EL2t",
    Mode.EL2H: "EL2h",
    Mode.EL3T: "EL3t",
    Mode.EL3H: "EL3h",
    Mode.AARCH32_USR: "AArch32 User",
    # The other AArch32 modes (Arm ARM, PSTATE.M encodings), named only for messages.
    0b10001: "AArch32 FIQ",
    0b10010: "AArch32 IRQ",
    0b10011: "AArch32 Supervisor",
    0b10110: "AArch32 Monitor",
    0b10111: "AArch32 Abort",
    0b11010: "AArch32 Hyp",
    0b11011: "AArch32 Undefined",
    0b11111: "AArch32 System",
})
"""Names of PSTATE.M[4:0] values; a value missing here is no mode at all."""


def _mode_name(m: int) -> str:
    return MODE_NAMES.get(m, "not a mode")


CONTEXT_PSTATE_LAYOUT: Final = Layout(
    "SDEI_CONTEXT(c, 19)",
    "Interrupted PSTATE (SPSR_EL1 format) of the running handler of class c.",
    cs.BitStruct(
        "other" / cs.BitsInteger(59) * "PSTATE bits[63:5] (NZCV, DAIF, ...), stored as given",
        "m"
        / cs.BitsInteger(5)
        * "M[4:0], the mode: AArch64 EL0t, EL1t, EL1h or AArch32 User only",
        Rule(
            ("m",),
            "M",
            lambda t: t.m in CONTEXT_MODES,
            lambda t: f"PSTATE M[4:0] = {t.m:#07b} ({_mode_name(t.m)}) is not AArch64 EL0t, "
            "EL1t, EL1h or AArch32 User: a restored context must not return to EL2 or EL3",
        ),
    ),
)

LAYOUTS: Final[tuple[Layout, ...]] = (
    VCPU_STATE_LAYOUT,
    EVENT_STATE_LAYOUT,
    EP_ADDR_LAYOUT,
    EP_ARG_LAYOUT,
    CONTEXT_X_LAYOUT,
    CONTEXT_PC_LAYOUT,
    CONTEXT_PSTATE_LAYOUT,
)
"""Every distinct layout of the block, in register order."""



# The fast codec below reads these bits; they come from the declarations, and the EVENT_STATE
# status bits must be exactly the EVENT_STATUS result (DESIGN section 4).
_MASKED: Final = VCPU_STATE_LAYOUT.by_attr["masked"].mask
_REG: Final = EVENT_STATE_LAYOUT.by_attr["registered"].mask
_ENA: Final = EVENT_STATE_LAYOUT.by_attr["enabled"].mask
_RUN: Final = EVENT_STATE_LAYOUT.by_attr["running"].mask
_PEND: Final = EVENT_STATE_LAYOUT.by_attr["pending"].mask
_REL: Final = EVENT_STATE_LAYOUT.by_attr["relative"].mask
_MODE: Final = CONTEXT_PSTATE_LAYOUT.by_attr["m"].mask
if (_REG, _ENA, _RUN) != (Status.REGISTERED, Status.ENABLED, Status.RUNNING):
    raise AssertionError("SDEI_EVENT_STATE bits[2:0] must be the EVENT_STATUS layout")
if _MODE != PSTATE_MODE_MASK:
    raise AssertionError("SDEI_CONTEXT PSTATE mode field must be PSTATE.M[4:0]")

# --------------------------------------------------------------------------------------------
# The register table
# --------------------------------------------------------------------------------------------

ID_BASE: Final = 0x6030_0000_0014_0000
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW: the id of firmware regno 0."""

REGNO_FIRST: Final = 0x0100
REGNO_LAST: Final = 0x01FF
"""The regno block SDEI takes (upstream firmware registers are 0-3 and grow upward)."""

REGNO_VCPU_STATE: Final = 0x0100
REGNO_EVENT_STATE: Final = 0x0110
"""SDEI_EVENT_STATE(i) = 0x110 + i."""
REGNO_EVENT_EP: Final = 0x0120
"""SDEI_EVENT_EP_ADDR(i) = 0x120 + 2i, SDEI_EVENT_EP_ARG(i) = 0x121 + 2i."""
REGNO_CONTEXT: Final = 0x0140
CONTEXT_STRIDE: Final = 0x20
"""SDEI_CONTEXT(c, r) = 0x140 + 0x20*c + r."""
CONTEXT_R_PC: Final = CONTEXT_REGS  # 18
CONTEXT_R_PSTATE: Final = CONTEXT_REGS + 1  # 19
CONTEXT_NR: Final = CONTEXT_REGS + 2  # 20 registers per class

MAX_EVENTS_IN_BLOCK: Final = REGNO_EVENT_EP - REGNO_EVENT_STATE
"""How many events the regno layout has room for (16). A property of the ABI's numbering, not
an array size: the event table is static and far smaller."""

VCPU_STATE_RESET: Final = VCPU_STATE_LAYOUT.pack({"masked": True})
"""Reset value of SDEI_VCPU_STATE: masked (DEN0054C: every PE starts masked)."""


class SdeiRegKind(StrEnum):
    """The register families of the block."""

    VCPU_STATE = "SDEI_VCPU_STATE"
    EVENT_STATE = "SDEI_EVENT_STATE"
    EP_ADDR = "SDEI_EVENT_EP_ADDR"
    EP_ARG = "SDEI_EVENT_EP_ARG"
    CONTEXT = "SDEI_CONTEXT"


@dataclass(frozen=True, slots=True)
class SdeiReg:
    """One SDEI pseudo-register of a vCPU."""

    id: int
    regno: int
    name: str
    """``SDEI_VCPU_STATE``, ``SDEI_EVENT_STATE(0)``, ``SDEI_CONTEXT(1, 19)``, ..."""
    kind: SdeiRegKind
    layout: Layout
    reset: int
    event_index: int | None = None
    """For EVENT_STATE / EP_ADDR / EP_ARG: the event's index in ``events.EVENTS``."""
    cls: Priority | None = None
    """For CONTEXT: the priority class (0 normal, 1 critical)."""
    r: int | None = None
    """For CONTEXT: 0..17 = x0..x17, 18 = PC, 19 = PSTATE."""

    def fields(self) -> tuple[BitField, ...]:
        """The register's fields, most significant first (for docs and messages)."""
        return self.layout.fields

    @property
    def event(self) -> Event | None:
        return None if self.event_index is None else EVENTS[self.event_index]


def reg_id(regno: int) -> int:
    """The ONE_REG id of a firmware regno: ``KVM_REG_ARM_FW_REG(regno)``."""
    if not 0 <= regno <= 0xFFFF:
        raise ValueError(f"regno {regno:#x} does not fit 16 bits")
    return ID_BASE | regno


def _event_index(i: int) -> int:
    if not 0 <= i < len(EVENTS):
        raise IndexError(f"event index {i} out of range 0..{len(EVENTS) - 1}")
    return i


def event_state_id(i: int) -> int:
    """Id of SDEI_EVENT_STATE(i)."""
    return reg_id(REGNO_EVENT_STATE + _event_index(i))


def ep_addr_id(i: int) -> int:
    """Id of SDEI_EVENT_EP_ADDR(i)."""
    return reg_id(REGNO_EVENT_EP + 2 * _event_index(i))


def ep_arg_id(i: int) -> int:
    """Id of SDEI_EVENT_EP_ARG(i)."""
    return reg_id(REGNO_EVENT_EP + 2 * _event_index(i) + 1)


def context_id(c: int, r: int) -> int:
    """Id of SDEI_CONTEXT(c, r): class c (0 normal, 1 critical), r 0..17 xr, 18 PC, 19 PSTATE."""
    if c not in tuple(Priority):
        raise IndexError(f"priority class {c} out of range 0..{len(Priority) - 1}")
    if not 0 <= r < CONTEXT_NR:
        raise IndexError(f"context register {r} out of range 0..{CONTEXT_NR - 1}")
    return reg_id(REGNO_CONTEXT + CONTEXT_STRIDE * c + r)


VCPU_STATE_ID: Final = reg_id(REGNO_VCPU_STATE)


def _build_table() -> tuple[SdeiReg, ...]:
    """The block in the order ``encode`` produces values, which must be ascending by id."""
    regs = [
        SdeiReg(VCPU_STATE_ID, REGNO_VCPU_STATE, "SDEI_VCPU_STATE", SdeiRegKind.VCPU_STATE,
                VCPU_STATE_LAYOUT, VCPU_STATE_RESET)
    ]
    for ev in EVENTS:
        regs.append(SdeiReg(event_state_id(ev.index), REGNO_EVENT_STATE + ev.index,
                            f"SDEI_EVENT_STATE({ev.index})", SdeiRegKind.EVENT_STATE,
                            EVENT_STATE_LAYOUT, 0, event_index=ev.index))
    for ev in EVENTS:
        regs.append(SdeiReg(ep_addr_id(ev.index), REGNO_EVENT_EP + 2 * ev.index,
                            f"SDEI_EVENT_EP_ADDR({ev.index})", SdeiRegKind.EP_ADDR,
                            EP_ADDR_LAYOUT, 0, event_index=ev.index))
        regs.append(SdeiReg(ep_arg_id(ev.index), REGNO_EVENT_EP + 2 * ev.index + 1,
                            f"SDEI_EVENT_EP_ARG({ev.index})", SdeiRegKind.EP_ARG,
                            EP_ARG_LAYOUT, 0, event_index=ev.index))
    for cls in Priority:
        for r in range(CONTEXT_NR):
            layout = (CONTEXT_X_LAYOUT if r < CONTEXT_R_PC
                      else CONTEXT_PC_LAYOUT if r == CONTEXT_R_PC else CONTEXT_PSTATE_LAYOUT)
            regs.append(SdeiReg(context_id(cls, r), REGNO_CONTEXT + CONTEXT_STRIDE * cls + r,
                                f"SDEI_CONTEXT({int(cls)}, {r})", SdeiRegKind.CONTEXT,
                                layout, 0, cls=cls, r=r))
    # The numbering has fixed room per family; a table that outgrew it must fail loudly here.
    if len(EVENTS) > MAX_EVENTS_IN_BLOCK:
        raise AssertionError(f"{len(EVENTS)} events do not fit the SDEI regno block")
    regnos = [r.regno for r in regs]
    if regnos != sorted(set(regnos)) or not REGNO_FIRST <= regnos[0] <= regnos[-1] <= REGNO_LAST:
        raise AssertionError("SDEI regnos must be unique, ascending and inside 0x100-0x1FF")
    for reg in regs:
        if reg.layout.problem(reg.reset) is not None:
            raise AssertionError(f"{reg.name}: reset value refused by its own layout")
    return tuple(regs)


SDEI_REGS: Final[tuple[SdeiReg, ...]] = _build_table()
"""Every SDEI register of a vCPU, ascending by id (47 with the two-event table)."""

SDEI_REG_IDS: Final[tuple[int, ...]] = tuple(r.id for r in SDEI_REGS)
SDEI_REG_BY_ID: Final[Mapping[int, SdeiReg]] = MappingProxyType({r.id: r for r in SDEI_REGS})
SDEI_REG_BY_NAME: Final[Mapping[str, SdeiReg]] = MappingProxyType({r.name: r for r in SDEI_REGS})
SDEI_REG_BY_REGNO: Final[Mapping[int, SdeiReg]] = MappingProxyType(
    {r.regno: r for r in SDEI_REGS}
)
SDEI_RESET_VALUES: Final[tuple[int, ...]] = tuple(r.reset for r in SDEI_REGS)
"""Reset values aligned with ``SDEI_REG_IDS`` (equal to ``encode(VcpuState())``)."""


def regno_name(regno: int) -> str | None:
    """The register name of a firmware regno in the SDEI block, or None if it is not one."""
    reg = SDEI_REG_BY_REGNO.get(regno)
    return None if reg is None else reg.name


def is_sdei_id(reg_id: int) -> bool:
    """True if ``reg_id`` is one of this vCPU's SDEI registers (exact id, size U64)."""
    return reg_id in SDEI_REG_BY_ID


# --------------------------------------------------------------------------------------------
# Errors and validation
# --------------------------------------------------------------------------------------------


class SdeiRegisterError(ValueError):
    """An SDEI register value (or its absence) that cannot be decoded.

    Names the register by name and id, the field and the value."""

    def __init__(self, reg: SdeiReg, field: str | None, value: object, reason: str) -> None:
        self.reg_id = reg.id
        self.reg_name = reg.name
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{reg.name} ({reg.id:#018x}): {reason}")


def _lookup(reg_id: int) -> SdeiReg:
    reg = SDEI_REG_BY_ID.get(reg_id)
    if reg is None:
        raise KeyError(f"{reg_id:#x} is not an SDEI register id")
    return reg


def check_value(reg_id: int, value: int) -> str | None:
    """The SET_ONE_REG check of one SDEI register (DESIGN section 4, EINVAL cases).

    Returns why ``value`` is refused (naming the field and value), or None if it may be stored.
    KeyError if ``reg_id`` is not an SDEI register (that is ENOENT, not EINVAL)."""
    p = _lookup(reg_id).layout.problem(value)
    return None if p is None else p.text


_MISSING: Final = "missing: every SDEI register of the vCPU is needed"


def _running_conflicts(words: Mapping[int, int]) -> list[tuple[int, str]]:
    """A second running handler in one priority class, from EVENT_STATE words by event index.
    (Impossible with one event per class, as the table has now; VcpuState refuses it.)"""
    out: list[tuple[int, str]] = []
    for cls in Priority:
        runs = [ev for ev in EVENTS if ev.priority == cls and words.get(ev.index, 0) & _RUN]
        for extra in runs[1:]:
            out.append((event_state_id(extra.index),
                        f"a second running {cls.name.lower()} handler "
                        f"(event {runs[0].index} is running too)"))
    return out


def vcpu_problems(values: Mapping[int, int]) -> list[tuple[int, str]]:
    """Everything that stops ``values`` from being restored as one vCPU, as (reg_id, reason),
    ascending by id; empty means acceptable.

    Per register: the ``check_value`` rules and a missing id. Across registers (DESIGN section
    4, what the model could never produce): a non-zero context register for a class with no
    running handler, a non-zero entry point or argument for an unregistered event, more than
    one running handler in a class. Ids that are not SDEI registers are not looked at."""
    out: list[tuple[int, str]] = []
    good: dict[int, int] = {}
    for reg in SDEI_REGS:
        if reg.id not in values:
            out.append((reg.id, _MISSING))
            continue
        v = values[reg.id]
        p = reg.layout.problem(v)
        if p is None:
            good[reg.id] = v
        else:
            out.append((reg.id, p.text))
    # Cross-register facts, judged only from registers that are present and valid.
    words: dict[int, int] = {}
    for ev in EVENTS:
        w = good.get(event_state_id(ev.index))
        if w is None:
            continue
        words[ev.index] = w
        if not w & _REG:
            for rid, what in ((ep_addr_id(ev.index), "entry point"),
                              (ep_arg_id(ev.index), "argument")):
                ep = good.get(rid)
                if ep:
                    out.append((rid, f"value {ep:#x}: a non-zero {what} for event {ev.index} "
                                     f"({ev.name}), which is not REGISTERED"))
    out.extend(_running_conflicts(words))
    for cls in Priority:
        of_class = [ev.index for ev in EVENTS if ev.priority == cls]
        if any(i not in words for i in of_class) or any(words[i] & _RUN for i in of_class):
            continue  # a handler runs (or we cannot tell): its context may be anything
        for r in range(CONTEXT_NR):
            rid = context_id(cls, r)
            cv = good.get(rid)
            if cv:
                out.append((rid, f"value {cv:#x}: a non-zero {cls.name.lower()} context, "
                                 f"but no {cls.name.lower()} handler is running"))
    out.sort(key=lambda p: p[0])
    return out


# --------------------------------------------------------------------------------------------
# The fast codec: VcpuState <-> register values
# --------------------------------------------------------------------------------------------


def _event_word(es: EventState) -> int:
    return ((_REG if es.registered else 0) | (_ENA if es.enabled else 0)
            | (_RUN if es.running else 0) | (_PEND if es.pending else 0)
            | (_REL if es.relative else 0))


def encode(state: VcpuState) -> tuple[int, ...]:
    """The register values of one vCPU's SDEI state, aligned with ``SDEI_REG_IDS``."""
    out = [_MASKED if state.masked else 0]
    out.extend(_event_word(es) for es in state.events)
    for es in state.events:
        out.append(es.ep_addr)
        out.append(es.ep_arg)
    for ctx in state.contexts:
        out.extend(ctx.x)
        out.append(ctx.pc)
        out.append(ctx.pstate)
    return tuple(out)


def encode_map(state: VcpuState) -> dict[int, int]:
    """``encode`` as {register id: value}."""
    return dict(zip(SDEI_REG_IDS, encode(state), strict=True))


def _decode_values(vals: Sequence[int]) -> VcpuState:
    n = len(EVENTS)
    words = vals[1:1 + n]
    eps = vals[1 + n:1 + 3 * n]
    events = tuple(
        EventState(
            registered=bool(w & _REG), enabled=bool(w & _ENA), running=bool(w & _RUN),
            pending=bool(w & _PEND), relative=bool(w & _REL),
            ep_addr=eps[2 * i], ep_arg=eps[2 * i + 1],
        )
        for i, w in enumerate(words)
    )
    base = 1 + 3 * n
    contexts = []
    for cls in Priority:
        c = vals[base + CONTEXT_NR * cls:base + CONTEXT_NR * (cls + 1)]
        contexts.append(Context(tuple(c[:CONTEXT_R_PC]), c[CONTEXT_R_PC], c[CONTEXT_R_PSTATE]))
    return VcpuState(masked=bool(vals[0] & _MASKED), events=events,
                     contexts=(contexts[0], contexts[1]))


def decode(values: Mapping[int, int]) -> VcpuState:
    """The vCPU state of a complete set of SDEI register values (other ids are ignored).

    Every per-register-valid set decodes, canonical or not (see ``vcpu_problems`` for the
    whole-vCPU checks). Raises ``SdeiRegisterError`` for a missing id or a refused value."""
    vals: list[int] = []
    for reg in SDEI_REGS:
        try:
            v = values[reg.id]
        except KeyError:
            raise SdeiRegisterError(reg, None, None, _MISSING) from None
        p = reg.layout.problem(v)
        if p is not None:
            raise SdeiRegisterError(reg, p.field, v, p.text)
        vals.append(v)
    conflicts = _running_conflicts({i: vals[1 + i] for i in range(len(EVENTS))})
    if conflicts:
        rid, text = conflicts[0]
        raise SdeiRegisterError(SDEI_REG_BY_ID[rid], "RUNNING", values[rid], text)
    return _decode_values(vals)


# --------------------------------------------------------------------------------------------
# Presentation
# --------------------------------------------------------------------------------------------


def describe_value(reg_id: int, value: int) -> str:
    """A short human reading of a register value: ``REGISTERED|ENABLED|PENDING``, ``EL1h``,
    ``MASKED``, ``0x10000``; ``(invalid: ...)`` is appended to a value the register refuses."""
    reg = _lookup(reg_id)
    p = reg.layout.problem(value)
    if p is not None and p.field == "VALUE":
        return f"{value!r} (invalid: {p.text})"
    assert isinstance(value, int)
    if reg.kind is SdeiRegKind.VCPU_STATE:
        text = "MASKED" if value & _MASKED else "UNMASKED"
    elif reg.kind is SdeiRegKind.EVENT_STATE:
        flags = [f.name for f in reversed(reg.layout.fields)
                 if f.kind == "flag" and value & f.mask]
        text = "|".join(flags) or "0"
    elif reg.layout is CONTEXT_PSTATE_LAYOUT:
        text = _mode_name(value & _MODE)
        if value & ~_MODE:
            text += f" (other bits {value & ~_MODE:#x})"
    else:
        text = f"{value:#x}"
    if p is not None:
        text += f" (invalid: {p.text})"
    return text
