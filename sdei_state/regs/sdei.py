"""The SDEI pseudo-register block (DESIGN section 4): the public face of its modules.

- ``sdei_block``: each register family declared once (base regno, stride, scope);
- ``sdei_layout`` and ``sdei_decl``: the construct declaration of every register layout and the
  fast path derived from it;
- ``sdei_table``: the register table of a vCPU (ids, names, layouts, reset values);
- ``sdei_check``: the per-register SET check and how a value reads;
- ``sdei_codec``: ``VcpuState`` <-> register values, generated from the declarations;
- ``sdei_vcpu``: the whole-vCPU validation ``restore()`` runs.

Import the names from here (``sdei_state.regs.sdei``).
"""

from __future__ import annotations

from .sdei_block import (
    CONTEXT_NR,
    CONTEXT_R_PC,
    CONTEXT_R_PSTATE,
    FAMILIES,
    FAMILY,
    SDEI_FIRST_REGNO,
    SDEI_LAST_REGNO,
    Family,
    Scope,
    SdeiRegKind,
    regno_name,
    room,
)
from .sdei_check import SdeiRegisterError, check_value, describe_value
from .sdei_codec import (
    decode,
    decode_values,
    encode,
    encode_map,
    reference_decode,
    reference_encode,
)
from .sdei_decl import (
    CONTEXT_PC_LAYOUT,
    CONTEXT_PSTATE_LAYOUT,
    CONTEXT_X_LAYOUT,
    EP_ADDR_LAYOUT,
    EP_ARG_LAYOUT,
    EVENT_STATE_LAYOUT,
    LAYOUTS,
    VCPU_STATE_LAYOUT,
)
from .sdei_layout import BitField, FieldProblem, RegLayout, Rule, RuleError
from .sdei_table import (
    ID_BASE,
    SDEI_REG_BY_ID,
    SDEI_REG_BY_NAME,
    SDEI_REG_BY_REGNO,
    SDEI_REG_IDS,
    SDEI_REGS,
    SDEI_RESET_VALUES,
    VCPU_STATE_ID,
    VCPU_STATE_RESET,
    SdeiReg,
    context_id,
    ep_addr_id,
    ep_arg_id,
    event_state_id,
    is_sdei_id,
    layout_of,
    reg_id,
)
from .sdei_vcpu import state_problems, vcpu_problems

__all__ = [
    "CONTEXT_NR",
    "CONTEXT_PC_LAYOUT",
    "CONTEXT_PSTATE_LAYOUT",
    "CONTEXT_R_PC",
    "CONTEXT_R_PSTATE",
    "CONTEXT_X_LAYOUT",
    "EP_ADDR_LAYOUT",
    "EP_ARG_LAYOUT",
    "EVENT_STATE_LAYOUT",
    "FAMILIES",
    "FAMILY",
    "ID_BASE",
    "LAYOUTS",
    "SDEI_FIRST_REGNO",
    "SDEI_LAST_REGNO",
    "SDEI_REGS",
    "SDEI_REG_BY_ID",
    "SDEI_REG_BY_NAME",
    "SDEI_REG_BY_REGNO",
    "SDEI_REG_IDS",
    "SDEI_RESET_VALUES",
    "VCPU_STATE_ID",
    "VCPU_STATE_LAYOUT",
    "VCPU_STATE_RESET",
    "BitField",
    "Family",
    "FieldProblem",
    "RegLayout",
    "Rule",
    "RuleError",
    "Scope",
    "SdeiReg",
    "SdeiRegKind",
    "SdeiRegisterError",
    "check_value",
    "context_id",
    "decode",
    "decode_values",
    "describe_value",
    "encode",
    "encode_map",
    "ep_addr_id",
    "ep_arg_id",
    "event_state_id",
    "is_sdei_id",
    "layout_of",
    "reference_decode",
    "reference_encode",
    "reg_id",
    "regno_name",
    "room",
    "state_problems",
    "vcpu_problems",
]
