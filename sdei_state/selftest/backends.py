"""Backends the selftest runs on: real arm64 KVM when usable, else the simulated vCPU."""

from __future__ import annotations

from typing import Protocol

from .core import Suite


class Backend(Protocol):
    name: str
    features: frozenset[str]

    def missing(self, needs: frozenset[str]) -> str | None:
        """Why this backend cannot serve ``needs``, or None if it can."""
        ...

    def extra_suites(self) -> list[Suite]:
        """The backend's own suites beyond the model's conformance suite."""
        ...


class SimBackend:
    """The reference model with simulated vCPUs (always available)."""

    features = frozenset({"sim"})

    def __init__(self, why_not_kvm: str = "") -> None:
        self.name = "simulated vCPU (reference model)"
        if why_not_kvm:
            self.name += f"; arm64 KVM not used: {why_not_kvm}"

    def missing(self, needs: frozenset[str]) -> str | None:
        lacking = sorted(needs - self.features)
        if lacking:
            return f"needs {', '.join(lacking)}: not available on the simulated vCPU"
        return None

    def extra_suites(self) -> list[Suite]:
        return []


def pick_backend(choice: str) -> Backend:
    """``auto``: arm64 KVM if it can be used here, else the simulated vCPU."""
    from ..cli import UserError

    if choice == "sim":
        return SimBackend("--backend sim was asked for")
    from .kvm_backend import probe_kvm

    kvm, why = probe_kvm()
    if kvm is not None:
        return kvm
    if choice == "kvm":
        raise UserError(f"--backend kvm: {why}")
    return SimBackend(why)
