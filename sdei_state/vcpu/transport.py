"""The register-transport protocol: what save/restore need from a vCPU, real or simulated.

It mirrors the three ioctls a VMM uses on a vCPU fd: KVM_GET_REG_LIST, KVM_GET_ONE_REG and
KVM_SET_ONE_REG, plus batched forms so a real backend can make many accesses in one call into C.
Every failure raises ``sdei_state.errors.RegError`` carrying errno, the register id and name.
Values are unsigned integers of the register's width (``KVM_REG_SIZE(id)`` bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class RegTransport(Protocol):
    def reg_list(self) -> tuple[int, ...]:
        """KVM_GET_REG_LIST: every register id the vCPU has, in the order the kernel gives."""
        ...

    def get_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG."""
        ...

    def set_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG."""
        ...

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        """GET of each id in order; raises on the first failure."""
        ...

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """SET of each (id, value) in order; raises on the first failure (earlier writes stay)."""
        ...
