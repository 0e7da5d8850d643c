"""The VMM side: one run loop for every vCPU, the userspace SDEI provider, and the simulated
guest dressed as a KVM vCPU.

- ``loop``: ``VcpuLoop``, the one VMM loop (finish MMIO, entry check, ``KVM_RUN``, serve SDEI
  hypercalls, kicks, stop requests) over any vCPU whose ``run`` returns the bindings' typed
  exits (``sdei_state.kvm.exits``);
- ``provider``: ``SdeiProvider`` (SDEI served in userspace on stock KVM through the SMCCC
  filter), ``ProviderVcpu`` (its register view), ``ProviderError``, ``install_kick_handler``;
- ``guest_vcpu``: ``GuestVcpu``, the guest interpreter behind KVM's run interface.

See docs/vmm-guide.md.
"""

from __future__ import annotations

from .guest_vcpu import GuestRegs, GuestVcpu
from .loop import RunnableVcpu, SdeiServer, VcpuLoop, VmmError
from .provider import (
    KICK_SIGNAL,
    ModelServer,
    ProviderError,
    ProviderVcpu,
    SdeiProvider,
    install_kick_handler,
)

__all__ = [
    "KICK_SIGNAL",
    "GuestRegs",
    "GuestVcpu",
    "ModelServer",
    "ProviderError",
    "ProviderVcpu",
    "RunnableVcpu",
    "SdeiProvider",
    "SdeiServer",
    "VcpuLoop",
    "VmmError",
    "install_kick_handler",
]
