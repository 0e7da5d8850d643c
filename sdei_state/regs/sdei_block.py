"""The SDEI regno block (DESIGN section 4): each register family declared once.

A family is a base regno, a stride between its instances, what it is instantiated over (the
vCPU once, each event of the static table, each priority class) and how many registers one
instance holds. Everything that numbers or names an SDEI register derives from ``FAMILIES``: the
register table (``sdei_table``), the names the id printer and parser use (``id_codec``,
``id_names``), the id macros of the C header and the family table of docs/abi.md
(``cheader``), and the order of the codec (``sdei_codec``).

Firmware regnos: upstream KVM uses 0-3 and allocates upward, so SDEI takes 0x100-0x1FF. This
module depends on the model only (the event table and the priority classes).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from ..events import EVENTS
from ..spec import CONTEXT_REGS, Priority

SDEI_FIRST_REGNO: Final = 0x0100
SDEI_LAST_REGNO: Final = 0x01FF
"""The firmware regno block SDEI takes."""

CONTEXT_R_PC: Final = CONTEXT_REGS  # 18: after x0..x17
CONTEXT_R_PSTATE: Final = CONTEXT_REGS + 1  # 19
CONTEXT_NR: Final = CONTEXT_REGS + 2  # 20 registers per class


class SdeiRegKind(StrEnum):
    """The register families of the block."""

    VCPU_STATE = "SDEI_VCPU_STATE"
    EVENT_STATE = "SDEI_EVENT_STATE"
    EP_ADDR = "SDEI_EVENT_EP_ADDR"
    EP_ARG = "SDEI_EVENT_EP_ARG"
    CONTEXT = "SDEI_CONTEXT"


class Scope(StrEnum):
    """What a family has one instance of."""

    VCPU = "vcpu"
    EVENT = "event"
    CLASS = "class"


_COUNT: Final[Mapping[Scope, int]] = MappingProxyType(
    {Scope.VCPU: 1, Scope.EVENT: len(EVENTS), Scope.CLASS: len(Priority)}
)
_LETTER: Final[Mapping[Scope, str]] = MappingProxyType(
    {Scope.VCPU: "", Scope.EVENT: "i", Scope.CLASS: "c"}
)


@dataclass(frozen=True, slots=True)
class Family:
    """One register family: regno = base + stride * instance + member."""

    kind: SdeiRegKind
    base: int
    stride: int
    scope: Scope
    width: int = 1
    """Registers per instance (20 for a context: x0..x17, PC, PSTATE)."""

    @property
    def count(self) -> int:
        """Instances with the static event table: 1, one per event, or one per class."""
        return _COUNT[self.scope]

    def regno(self, instance: int = 0, member: int = 0) -> int:
        """The regno of one register; IndexError names an instance or member out of range."""
        if not 0 <= instance < self.count:
            what = "event index" if self.scope is Scope.EVENT else "priority class"
            raise IndexError(f"{what} {instance} out of range 0..{self.count - 1}")
        if not 0 <= member < self.width:
            raise IndexError(f"context register {member} out of range 0..{self.width - 1}")
        return self.base + self.stride * instance + member

    def name(self, instance: int = 0, member: int = 0) -> str:
        """``SDEI_VCPU_STATE``, ``SDEI_EVENT_STATE(0)``, ``SDEI_CONTEXT(1, 19)``."""
        if self.scope is Scope.VCPU:
            return str(self.kind)
        if self.width == 1:
            return f"{self.kind}({instance})"
        return f"{self.kind}({instance}, {member})"

    @property
    def formula(self) -> str:
        """The regno as DESIGN section 4 writes it: base, then stride times the instance
        (``i`` an event, ``c`` a class), then ``r`` for a multi-register family."""
        text = f"0x{self.base:04x}"
        letter = _LETTER[self.scope]
        if letter:
            step = "" if self.stride == 1 else (
                f"{self.stride}" if self.stride < 10 else f"{self.stride:#x}*")
            text += f" + {step}{letter}"
        if self.width > 1:
            text += " + r"
        return text

    @property
    def signature(self) -> str:
        """The family with its arguments: ``SDEI_EVENT_STATE(i)``, ``SDEI_CONTEXT(c, r)``."""
        letter = _LETTER[self.scope]
        if not letter:
            return str(self.kind)
        return f"{self.kind}({letter}, r)" if self.width > 1 else f"{self.kind}({letter})"

    def regnos(self, count: int | None = None) -> Iterator[int]:
        """Every regno of the family with ``count`` instances (default: the static table)."""
        for i in range(self.count if count is None else count):
            for r in range(self.width):
                yield self.base + self.stride * i + r


FAMILIES: Final[tuple[Family, ...]] = (
    Family(SdeiRegKind.VCPU_STATE, 0x0100, 0, Scope.VCPU),
    Family(SdeiRegKind.EVENT_STATE, 0x0110, 1, Scope.EVENT),
    Family(SdeiRegKind.EP_ADDR, 0x0120, 2, Scope.EVENT),
    Family(SdeiRegKind.EP_ARG, 0x0121, 2, Scope.EVENT),
    Family(SdeiRegKind.CONTEXT, 0x0140, 0x20, Scope.CLASS, CONTEXT_NR),
)
"""The block, in ascending base order."""

FAMILY: Final[Mapping[SdeiRegKind, Family]] = MappingProxyType({f.kind: f for f in FAMILIES})


def _fits(scope: Scope, n: int) -> bool:
    """True if every family of ``scope`` could have ``n`` instances without leaving the block
    or meeting another family's registers."""
    seen: set[int] = set()
    for f in FAMILIES:
        for regno in f.regnos(n if f.scope is scope else None):
            if regno in seen or not SDEI_FIRST_REGNO <= regno <= SDEI_LAST_REGNO:
                return False
            seen.add(regno)
    return True


def room(scope: Scope) -> int:
    """How many instances the numbering has room for (16 events, 8 classes). A property of the
    ABI's numbering, not an array size: the event table is static and far smaller."""
    n = _COUNT[scope]
    while _fits(scope, n + 1):
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Slot:
    """One register of the block: its family, instance and member."""

    family: Family
    instance: int
    member: int

    @property
    def regno(self) -> int:
        return self.family.regno(self.instance, self.member)

    @property
    def name(self) -> str:
        return self.family.name(self.instance, self.member)


def _slots() -> tuple[Slot, ...]:
    slots = [Slot(f, i, r) for f in FAMILIES for i in range(f.count) for r in range(f.width)]
    slots.sort(key=lambda s: s.regno)
    # Import-time proof that the declaration is a block: unique regnos inside 0x100-0x1FF.
    if any(_COUNT[s] > room(s) for s in Scope if s is not Scope.VCPU):
        raise AssertionError("the event table or the classes outgrew the SDEI regno block")
    return tuple(slots)


SLOTS: Final[tuple[Slot, ...]] = _slots()
"""Every register of a vCPU's block, ascending by regno (the order the codec uses)."""

_NAME_BY_REGNO: Final[Mapping[int, str]] = MappingProxyType({s.regno: s.name for s in SLOTS})


def regno_name(regno: int) -> str | None:
    """The register name of a firmware regno in the SDEI block, or None if it is not one."""
    return _NAME_BY_REGNO.get(regno)
