"""Who serves SDEI to the reference VMM's guest: ``provider`` or ``kernel``.

- ``provider`` (the default): the library's ``SdeiProvider`` in userspace, through the SMCCC
  filter. On a kernel that serves SDEI itself (``in_kernel.kernel_serves_sdei``) the kernel's
  SDEI is first gated off (STD_BMAP bit 1 cleared before the first run, so it neither serves
  nor dispatches) and the provider sees each vCPU through ``KernelSdeiOff``: its register
  view is then the same 47 SDEI registers the kernel lists, and a blob saved in one mode
  restores in the other.
- ``kernel``: KVM serves and dispatches SDEI (the in-kernel series); no filter is installed
  for the SDEI range and each vCPU runs a ``VcpuLoop`` without a server. The VMM sees no SDEI
  call or dispatch, so its record of them stays empty; an injection sets PENDING in the
  event's ``SDEI_EVENT_STATE`` (``in_kernel.inject_pending``). Needs a kernel with the
  series: on any other the choice is refused with the reason.
"""

from __future__ import annotations

from typing import Final, Literal

from ...errors import SdeiStateError
from ...kvm import Vcpu
from ..in_kernel import KernelSdeiOff, kernel_serves_sdei
from ..provider import KernelVcpu

SdeiMode = Literal["provider", "kernel"]
MODES: Final[tuple[SdeiMode, ...]] = ("provider", "kernel")


class SdeiModeError(SdeiStateError, ValueError):
    """The SDEI mode asked for is unknown, or this kernel cannot serve it."""


def parse(mode: str) -> SdeiMode:
    """``mode`` checked: one of ``MODES`` (SdeiModeError naming it otherwise)."""
    for m in MODES:
        if mode == m:
            return m
    raise SdeiModeError(f"SDEI mode {mode!r}: choose one of {', '.join(MODES)}")


def other(mode: SdeiMode) -> SdeiMode:
    """The mode a cross-mode migration goes to from ``mode``."""
    return "kernel" if mode == "provider" else "provider"


def vcpu_views(mode: SdeiMode, vcpus: list[Vcpu], *, gate: bool = True) -> list[KernelVcpu]:
    """What each vCPU of one VM is shown as to its loop (and, in provider mode, to the
    provider). In provider mode on a kernel with in-kernel SDEI, the kernel's SDEI is gated
    off first (when ``gate``: before the first run; a restore writes the saved bitmap, whose
    bit 1 the provider keeps for itself). SdeiModeError when ``kernel`` is asked of a kernel
    without in-kernel SDEI."""
    in_kernel = kernel_serves_sdei(vcpus[0])
    if mode == "kernel":
        if not in_kernel:
            raise SdeiModeError("SDEI mode 'kernel': this kernel does not serve SDEI (no SDEI "
                                "registers in KVM_GET_REG_LIST; the lab's `sdei` kernel does)")
        return list(vcpus)
    if not in_kernel:
        return list(vcpus)
    views = [KernelSdeiOff(v) for v in vcpus]
    if gate:
        views[0].gate_off()
    return list(views)
