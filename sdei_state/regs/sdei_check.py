"""Per-register judgement of SDEI register values: the SET_ONE_REG check and how a value reads.

The checks are the layouts' (``sdei_decl``): the u64 range, the RES0 bits, then the model's
rules tabulated by ``RegLayout``. Errors name the register by name and id, the field and the
value.
"""

from __future__ import annotations

from ..state import mode_name
from .sdei_block import SdeiRegKind
from .sdei_decl import CONTEXT_PSTATE_LAYOUT, MASKED, MODE
from .sdei_table import SdeiReg, lookup

MISSING: str = "missing: every SDEI register of the vCPU is needed"


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


def check_value(reg_id: int, value: int) -> str | None:
    """The SET_ONE_REG check of one SDEI register (DESIGN section 4, EINVAL cases).

    Returns why ``value`` is refused (naming the field and value), or None if it may be stored.
    KeyError if ``reg_id`` is not an SDEI register (that is ENOENT, not EINVAL)."""
    p = lookup(reg_id).layout.problem(value)
    return None if p is None else p.text


def describe_value(reg_id: int, value: int) -> str:
    """A short human reading of a register value: ``REGISTERED|ENABLED|PENDING``, ``EL1h``,
    ``MASKED``, ``0x10000``; ``(invalid: ...)`` is appended to a value the register refuses."""
    reg = lookup(reg_id)
    p = reg.layout.problem(value)
    if p is not None and p.field == "VALUE":
        return f"{value!r} (invalid: {p.text})"
    if reg.kind is SdeiRegKind.VCPU_STATE:
        text = "MASKED" if value & MASKED else "UNMASKED"
    elif reg.kind is SdeiRegKind.EVENT_STATE:
        flags = [f.name for f in reversed(reg.layout.fields)
                 if f.kind == "flag" and value & f.mask]
        text = "|".join(flags) or "0"
    elif reg.layout is CONTEXT_PSTATE_LAYOUT:
        text = mode_name(value & MODE)
        if value & ~MODE:
            text += f" (other bits {value & ~MODE:#x})"
    else:
        text = f"{value:#x}"
    if p is not None:
        text += f" (invalid: {p.text})"
    return text
