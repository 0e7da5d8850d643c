"""The MPIDR affinity KVM gives each vCPU, and the bits EVENT_SIGNAL compares.

Linux ``arch/arm64/kvm/sys_regs.c``, ``reset_mpidr()``: Aff0 takes the low 4 bits of the vCPU
index (a GICv3 SGI names at most 16 CPUs of one cluster, ICC_SGI1R_EL1), Aff1 and Aff2 the next
8 bits each.
"""

from __future__ import annotations

from typing import Final


def affinity_of(index: int) -> int:
    """MPIDR affinity KVM gives vCPU ``index``: Aff0 = n[3:0], Aff1 = n[11:4], Aff2 = n[19:12]."""
    return (index & 0xF) | ((index >> 4) & 0xFF) << 8 | ((index >> 12) & 0xFF) << 16


MPIDR_AFFINITY_MASK: Final = 0xFF00FFFFFF
"""Aff3 [39:32] and Aff2..Aff0 [23:0]: the MPIDR bits EVENT_SIGNAL compares (RES1 bit 31, MT,
U and the reserved bits are ignored)."""
