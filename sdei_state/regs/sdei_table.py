"""The SDEI register table of one vCPU, derived from the family declarations.

``SDEI_REGS`` is ``sdei_block.SLOTS`` (every register, ascending by regno) with each register's
id (``id_codec.fw_reg``: the one id vocabulary), its layout and its reset value. It grows with
the static event table and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ..events import EVENTS, Event
from ..spec import Priority
from .id_codec import fw_reg
from .sdei_block import (
    CONTEXT_R_PC,
    CONTEXT_R_PSTATE,
    FAMILY,
    SLOTS,
    Scope,
    SdeiRegKind,
    Slot,
)
from .sdei_decl import (
    CONTEXT_PC_LAYOUT,
    CONTEXT_PSTATE_LAYOUT,
    CONTEXT_X_LAYOUT,
    EP_ADDR_LAYOUT,
    EP_ARG_LAYOUT,
    EVENT_STATE_LAYOUT,
    VCPU_STATE_LAYOUT,
)
from .sdei_layout import BitField, RegLayout

ID_BASE: Final = fw_reg(0)
"""KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_FW: the id of firmware regno 0."""

_LAYOUT: Final[Mapping[SdeiRegKind, RegLayout]] = MappingProxyType({
    SdeiRegKind.VCPU_STATE: VCPU_STATE_LAYOUT,
    SdeiRegKind.EVENT_STATE: EVENT_STATE_LAYOUT,
    SdeiRegKind.EP_ADDR: EP_ADDR_LAYOUT,
    SdeiRegKind.EP_ARG: EP_ARG_LAYOUT,
})


def layout_of(kind: SdeiRegKind, member: int = 0) -> RegLayout:
    """The layout of a family's register (a context member: x, PC or PSTATE)."""
    if kind is not SdeiRegKind.CONTEXT:
        return _LAYOUT[kind]
    if member == CONTEXT_R_PSTATE:
        return CONTEXT_PSTATE_LAYOUT
    return CONTEXT_PC_LAYOUT if member == CONTEXT_R_PC else CONTEXT_X_LAYOUT


@dataclass(frozen=True, slots=True)
class SdeiReg:
    """One SDEI pseudo-register of a vCPU."""

    id: int
    regno: int
    name: str
    """``SDEI_VCPU_STATE``, ``SDEI_EVENT_STATE(0)``, ``SDEI_CONTEXT(1, 19)``, ..."""
    kind: SdeiRegKind
    layout: RegLayout
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


def _reg(slot: Slot) -> SdeiReg:
    fam = slot.family
    layout = layout_of(fam.kind, slot.member)
    per_class = fam.scope is Scope.CLASS
    return SdeiReg(fw_reg(slot.regno), slot.regno, slot.name, fam.kind, layout, layout.reset,
                   event_index=slot.instance if fam.scope is Scope.EVENT else None,
                   cls=Priority(slot.instance) if per_class else None,
                   r=slot.member if per_class else None)


SDEI_REGS: Final[tuple[SdeiReg, ...]] = tuple(_reg(s) for s in SLOTS)
"""Every SDEI register of a vCPU, ascending by id (47 with the two-event table)."""

SDEI_REG_IDS: Final[tuple[int, ...]] = tuple(r.id for r in SDEI_REGS)
SDEI_REG_BY_ID: Final[Mapping[int, SdeiReg]] = MappingProxyType({r.id: r for r in SDEI_REGS})
SDEI_REG_BY_NAME: Final[Mapping[str, SdeiReg]] = MappingProxyType({r.name: r for r in SDEI_REGS})
SDEI_REG_BY_REGNO: Final[Mapping[int, SdeiReg]] = MappingProxyType(
    {r.regno: r for r in SDEI_REGS}
)
SDEI_RESET_VALUES: Final[tuple[int, ...]] = tuple(r.reset for r in SDEI_REGS)
"""Reset values aligned with ``SDEI_REG_IDS`` (equal to ``encode(VcpuState())``)."""


def reg_id(regno: int) -> int:
    """The ONE_REG id of a firmware regno: ``KVM_REG_ARM_FW_REG(regno)``."""
    return fw_reg(regno)


def event_state_id(i: int) -> int:
    """Id of SDEI_EVENT_STATE(i)."""
    return fw_reg(FAMILY[SdeiRegKind.EVENT_STATE].regno(i))


def ep_addr_id(i: int) -> int:
    """Id of SDEI_EVENT_EP_ADDR(i)."""
    return fw_reg(FAMILY[SdeiRegKind.EP_ADDR].regno(i))


def ep_arg_id(i: int) -> int:
    """Id of SDEI_EVENT_EP_ARG(i)."""
    return fw_reg(FAMILY[SdeiRegKind.EP_ARG].regno(i))


def context_id(c: int, r: int) -> int:
    """Id of SDEI_CONTEXT(c, r): class c (0 normal, 1 critical), r 0..17 xr, 18 PC, 19 PSTATE."""
    return fw_reg(FAMILY[SdeiRegKind.CONTEXT].regno(c, r))


VCPU_STATE_ID: Final = fw_reg(FAMILY[SdeiRegKind.VCPU_STATE].regno())
VCPU_STATE_RESET: Final = VCPU_STATE_LAYOUT.reset
"""Reset value of SDEI_VCPU_STATE: masked (DEN0054C: every PE starts masked)."""


def is_sdei_id(reg_id: int) -> bool:
    """True if ``reg_id`` is one of this vCPU's SDEI registers (exact id, size U64)."""
    return reg_id in SDEI_REG_BY_ID


def lookup(reg_id: int) -> SdeiReg:
    """The SDEI register of an id; KeyError if it is not one (ENOENT, not EINVAL)."""
    reg = SDEI_REG_BY_ID.get(reg_id)
    if reg is None:
        raise KeyError(f"{reg_id:#x} is not an SDEI register id")
    return reg
