"""The declaration vocabulary of the SDEI registers: a construct ``BitStruct`` is the layout.

``RegLayout`` takes a register's construct declaration (field widths, names, documentation, the
RES0 fields as ``Const(0)``, the value rules as ``Rule``) and derives the fast path from it once:
field masks and shifts, the RES0 mask, and a table of the rules' outcome over exactly the bits
they read. The declaration stays the reference parser, builder and validator; the tests prove
the fast path equal to it over the whole u64 range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import construct as cs

from ..state import U64_MAX


class RuleError(cs.CheckError):  # type: ignore[misc]
    """A ``Rule`` failed while parsing or building; carries the field name and the reason."""

    def __init__(self, field: str, text: str, path: str | None = None) -> None:
        self.field = field
        self.text = text
        super().__init__(text, path=path)


class Rule(cs.Check):  # type: ignore[misc]
    """A value rule inside a ``BitStruct``: like ``construct.Check``, but it names the fields
    it reads (so the fast path can tabulate it over exactly those bits) and its check returns
    (field at fault, reason) or None, so the rule itself can live in the model."""

    def __init__(
        self, reads: tuple[str, ...], check: Callable[[Any], tuple[str, str] | None]
    ) -> None:
        super().__init__(lambda ctx: check(ctx) is None)
        self.reads = reads
        self.check = check

    def _check(self, context: Any, path: str | None) -> None:
        bad = self.check(context)
        if bad is not None:
            raise RuleError(bad[0], bad[1], path=path)

    def _parse(self, stream: Any, context: Any, path: str | None) -> None:
        self._check(context, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str | None) -> None:
        self._check(context, path)


def res0(width: int, doc: str = "reserved") -> Any:
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


class FieldProblem(NamedTuple):
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


class RegLayout:
    """A register layout: its construct declaration and the fast path derived from it.

    ``parse``/``build`` run the declaration (the reference, slow); ``unpack``/``pack`` and
    ``problem`` are the masks, shifts and rule table computed from it here. ``reset`` gives
    the fields of the register's reset value (all others 0).
    """

    def __init__(self, title: str, summary: str, declaration: Any,
                 reset: Mapping[str, int | bool] | None = None) -> None:
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
        table: dict[int, FieldProblem | None] = {}
        for sub in _submasks(self.rule_mask):
            try:
                self.parse(sub)
                table[sub] = None
            except RuleError as e:
                table[sub] = FieldProblem(e.field, e.text)
        self._rule_table: Mapping[int, FieldProblem | None] = MappingProxyType(table)
        self.reset = self.pack(reset or {})
        if self.problem(self.reset) is not None:
            raise ValueError(f"{title}: reset value refused by its own layout")
        # Every value of the bits the rules read that passes (the rules only): with the RES0
        # mask this is the whole per-register check, for code generated from the layout.
        self.rule_ok: frozenset[int] = frozenset(k for k, v in table.items() if v is None)

    def __repr__(self) -> str:
        return f"<RegLayout {self.title}>"

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

    def problem(self, value: object) -> FieldProblem | None:
        """Why the declaration would refuse ``value``, or None: u64 range, RES0, then rules."""
        bad = _u64_check(value)
        if bad is not None:
            return FieldProblem("VALUE", bad)
        assert isinstance(value, int)
        if value & self.res0_mask:
            for f in self.res0:
                if value & f.mask:
                    return FieldProblem(
                        f.name,
                        f"value {value:#x}: {f.name} {f.bits} has bits set "
                        f"({value & f.mask:#x}), must be 0: {f.doc}",
                    )
        hit = self._rule_table.get(value & self.rule_mask) if self.rule_mask else None
        if hit is not None:
            return FieldProblem(hit.field, f"value {value:#x}: {hit.text}")
        return None
