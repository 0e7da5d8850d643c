"""Backends the selftest runs on: real arm64 KVM when usable, else the simulated vCPU.

A backend names itself, says which features it has and why it lacks the others (that reason is
what a skipped suite prints), builds the engine a guest program runs on, and keeps a memo so
several cases can check one run. Features:

- ``kvm``: real arm64 KVM (the firmware register suite);
- ``sdei``: SDEI end to end with guest code (simulated: always; KVM: through the userspace
  provider, so the kernel needs the SMCCC filter, or served by a kernel that implements SDEI
  itself, with the same guest programs and no filter);
- ``in-kernel-sdei``: the kernel lists the DESIGN section 4 registers itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

from .core import Suite

if TYPE_CHECKING:
    from .host import Engine
    from .programs.program import GuestProgram

FEATURES: Final = MappingProxyType({
    "kvm": "real arm64 KVM",
    "sdei": "SDEI end to end with guest code",
    "in-kernel-sdei": "a kernel that lists the SDEI registers itself",
})


class SuiteBackend(Protocol):
    name: str
    kind: str
    """``sim`` or ``kvm``."""
    features: frozenset[str]
    memo: dict[str, Any]
    """Results shared by the cases of one selftest run (a guest run several cases check)."""

    def missing(self, needs: frozenset[str]) -> str | None:
        """Why this backend cannot serve ``needs``, or None if it can."""
        ...

    def extra_suites(self) -> list[Suite]:
        """The backend's own suites beyond the common ones (none today: every suite is common
        and skips, with its reason, where a feature is missing)."""
        ...

    def engine(self, programs: Sequence[GuestProgram], *, in_kernel: bool = False) -> Engine:
        """A fresh VM running ``programs[i]`` on vCPU ``i``."""
        ...

    def close(self) -> None: ...


def first_missing(needs: frozenset[str], features: frozenset[str],
                  reasons: Mapping[str, str]) -> str | None:
    """The reason for the first (by name) feature of ``needs`` not in ``features``."""
    for f in sorted(needs - features):
        return reasons.get(f, f"needs {FEATURES.get(f, f)}")
    return None


class SimBackend:
    """The reference model with simulated vCPUs (always available)."""

    kind = "sim"
    features = frozenset({"sim", "sdei"})

    def __init__(self, why_not_kvm: str = "") -> None:
        self.name = "simulated vCPU (reference model)"
        if why_not_kvm:
            self.name += f"; arm64 KVM not used: {why_not_kvm}"
        self.why_not_kvm = why_not_kvm or "not asked for"
        self.memo: dict[str, Any] = {}
        self._reasons = {
            "kvm": f"needs real arm64 KVM (the simulated vCPU is the model itself): "
                   f"{self.why_not_kvm}",
            "in-kernel-sdei": f"needs a kernel that lists the SDEI registers itself: "
                              f"{self.why_not_kvm}",
        }

    def missing(self, needs: frozenset[str]) -> str | None:
        return first_missing(needs, self.features, self._reasons)

    def extra_suites(self) -> list[Suite]:
        return []

    def engine(self, programs: Sequence[GuestProgram], *, in_kernel: bool = False) -> Engine:
        from ..vcpu.sim import SimVm
        from .sim_engine import SimEngine

        return SimEngine(programs, vm=SimVm(len(programs)))

    def close(self) -> None:
        pass
