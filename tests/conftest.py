"""What every test file shares: the hypothesis profiles and the simulated-VM fixtures.

Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE``:

- ``dev`` (the default): 100 examples per property, the quick run while working;
- ``ci``: 1,000 examples per property, for the CI job and before a release
  (``SDEI_HEAVY=1``, the older switch, selects it too).

Both turn the per-example deadline off (the 2-core machines this suite shares time out at
random otherwise) and print the reproduction blob of a failure. A property that wants fewer
examples than the profile (because each is slow) scales the profile's count,
``settings(max_examples=settings().max_examples * 4 // 10)``; everything else follows the
profile.

The testing kit's fixtures (``sdei_state.testing.fixtures``: ``sdei_sim_vm``,
``sdei_kvm_vcpu``, ``sdei_arm64_vcpu``) are loaded as a plugin, as a project built on the library
would load them. Local fixtures: ``sim_vm`` builds simulated VMs
(``sim_vm(2, host=..., initialized=False)``) and ``sim_vcpu`` is vCPU 0 of a fresh one-vCPU
simulated VM on the default host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from sdei_state.vcpu.sim import SimVcpu, SimVm

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # the arm64 lab's tests need no hypothesis; the others import it themselves
    pass
else:
    _COMMON: dict[str, Any] = {"deadline": None, "print_blob": True,
                               "suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("dev", max_examples=100, **_COMMON)
    settings.register_profile("ci", max_examples=1000, **_COMMON)
    _profile = os.environ.get("HYPOTHESIS_PROFILE",
                              "ci" if os.environ.get("SDEI_HEAVY") == "1" else "dev")
    if _profile not in ("dev", "ci"):
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={_profile!r} is not a profile (dev, ci)")
    settings.load_profile(_profile)

pytest_plugins = ["sdei_state.testing.fixtures"]

SimVmFactory = Callable[..., SimVm]


@pytest.fixture
def sim_vm() -> SimVmFactory:
    """``sim_vm(n=1, **kwargs)``: a fresh simulated VM of ``n`` vCPUs (``SimVm``'s keyword
    arguments: ``host``, ``initialized``, ...)."""

    def make(n: int = 1, **kwargs: Any) -> SimVm:
        return SimVm(n, **kwargs)

    return make


@pytest.fixture
def sim_vcpu() -> SimVcpu:
    """vCPU 0 of a fresh one-vCPU simulated VM on the default host."""
    return SimVm(1).vcpus[0]
