"""What KVM refuses in a core register write, so the simulated vCPU and preflight agree with it.

Linux 6.12, arch/arm64/kvm/guest.c, ``set_core_reg()``: a write of ``regs.pstate`` is judged by
its mode field M[4:0] (``PSR_AA32_MODE_MASK``) alone, for the vCPUs this library makes (AArch64
EL1, no nested virtualization):

- EL0t, EL1t, EL1h: accepted (refused only for a vCPU whose EL1 is AArch32);
- EL2t, EL2h: EINVAL unless the vCPU has nested virtualization (``vcpu_has_nv()``);
- AArch32 User: accepted where the host runs AArch32 at EL0 (``kvm_supports_32bit_el0()``), as
  the lab's ``-cpu max`` host and the simulated hosts do;
- AArch32 FIQ, IRQ, SVC, Abort, Undefined, System: EINVAL unless EL1 is AArch32
  (``vcpu_el1_is_32bit()``);
- EL3t, EL3h and every reserved encoding: EINVAL (the switch's ``default``).

The other bits of PSTATE are stored as given, and no other core register is checked by value.
``tests/arm64/test_arm64_core_pstate.py`` compares all 32 mode values with the lab's kernels.
"""

from __future__ import annotations

from typing import Final

from ..regs import ids
from ..state import PSTATE_MODE_MASK, Mode

PSTATE_ID: Final = ids.core_reg("pstate")
ACCEPTED_MODES: Final = frozenset({Mode.EL0T, Mode.EL1T, Mode.EL1H, Mode.AARCH32_USR})
"""PSTATE.M[4:0] values ``set_core_reg()`` accepts for an AArch64-EL1 vCPU without NV."""
_AARCH32_MODES: Final = {0b10001: "FIQ", 0b10010: "IRQ", 0b10011: "Supervisor",
                         0b10110: "Monitor", 0b10111: "Abort", 0b11010: "Hyp",
                         0b11011: "Undefined", 0b11111: "System"}
"""Names of the AArch32 modes (M[4] set), for messages."""


def core_value_problem(reg_id: int, value: int) -> str | None:
    """Why KVM's SET_ONE_REG would refuse ``value`` for core register ``reg_id`` (EINVAL), or
    None if it would store it."""
    if reg_id != PSTATE_ID:
        return None
    mode = value & PSTATE_MODE_MASK
    if mode in ACCEPTED_MODES:
        return None
    try:
        name = Mode(mode).name
    except ValueError:
        name = "AArch32 " + _AARCH32_MODES.get(mode, "reserved") if mode & 0x10 else "reserved"
    return (f"PSTATE {value:#x}: mode M[4:0] = {mode:#07b} ({name}) is refused by KVM's "
            "set_core_reg() for an AArch64 vCPU without nested virtualization (accepted: "
            "EL0t, EL1t, EL1h, AArch32 User)")
