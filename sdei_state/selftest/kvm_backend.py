"""The arm64 KVM backend and its probe.

``probe_kvm`` needs an aarch64 host whose /dev/kvm opens and creates a VM; it then finds out
what the kernel offers, each missing feature with the exact reason a skipped suite prints:

- ``smccc-filter`` (and so ``sdei``, the userspace provider): ``KVM_HAS_DEVICE_ATTR`` for
  ``KVM_ARM_VM_SMCCC_CTRL``/``KVM_ARM_VM_SMCCC_FILTER`` on a fresh VM succeeds (Linux 6.4+);
- ``in-kernel-sdei``: a fresh vCPU's ``KVM_GET_REG_LIST`` holds ``SDEI_VCPU_STATE``
  (0x6030000000140100), i.e. the kernel implements DESIGN section 4 itself. Such a kernel
  also has ``sdei``: the end-to-end, migration and stress suites then run in their in-kernel
  form (the same guest programs, no SMCCC filter, SDEI served by KVM), since the provider
  must not serve SDEI beside the kernel.
"""

from __future__ import annotations

import errno
import os
import platform
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import KvmError, SdeiStateError
from .backends import SuiteBackend, first_missing
from .core import Suite

if TYPE_CHECKING:
    from ..kvm import Kvm
    from .host import Engine
    from .programs.program import GuestProgram

NO_FILTER = ("KVM_ARM_VM_SMCCC_FILTER not supported by this kernel (Linux 6.4+ needed): "
             "KVM_HAS_DEVICE_ATTR gave {err}")
IN_KERNEL_ONLY = ("the kernel implements SDEI itself (it lists the SDEI registers); the "
                  "userspace provider must not serve it too: see suite sdei-in-kernel")
NO_IN_KERNEL = ("the kernel lists no SDEI registers ({first:#x}...): no in-kernel SDEI, "
                "as upstream")


class KvmBackend:
    """Real arm64 KVM (``kvm`` is the open /dev/kvm, closed by ``close``)."""

    kind = "kvm"

    def __init__(self, kvm: Kvm, features: frozenset[str], reasons: Mapping[str, str],
                 release: str) -> None:
        self.kvm = kvm
        self.features = features
        self.reasons = dict(reasons)
        self.release = release
        self.memo: dict[str, Any] = {}
        have = ", ".join(sorted(features - {"kvm"})) or "no SDEI path"
        self.name = (f"arm64 KVM (Linux {release}, cffi {kvm.backend.mode} mode; {have})")

    def missing(self, needs: frozenset[str]) -> str | None:
        return first_missing(needs, self.features, self.reasons)

    def extra_suites(self) -> list[Suite]:
        return []

    @property
    def in_kernel(self) -> bool:
        """The kernel serves SDEI itself: every engine is the in-kernel one."""
        return "in-kernel-sdei" in self.features

    def engine(self, programs: Sequence[GuestProgram], *, in_kernel: bool = False) -> Engine:
        """The userspace provider's engine, or the in-kernel one when asked for or when the
        kernel implements SDEI (the provider refuses such a vCPU)."""
        from .runner_kvm import InKernelEngine, KvmEngine

        if in_kernel or self.in_kernel:
            return InKernelEngine(self.kvm, programs)
        return KvmEngine(self.kvm, programs)

    def close(self) -> None:
        self.kvm.close()


def probe_kvm() -> tuple[SuiteBackend | None, str]:
    """(backend, "") when arm64 KVM is usable, else (None, the reason)."""
    machine = platform.machine()
    if machine not in ("aarch64", "arm64"):
        return None, f"this host is {machine}, not arm64"
    if not os.path.exists("/dev/kvm"):
        return None, "/dev/kvm does not exist"
    from ..kvm import Kvm, VcpuFeature
    from ..kvm.arm64 import KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER
    from ..regs.sdei import VCPU_STATE_ID

    try:
        kvm = Kvm()
    except SdeiStateError as e:  # KvmError (open), FfiBackendError (cffi)
        return None, f"/dev/kvm: {e}"
    features = {"kvm"}
    reasons: dict[str, str] = {}
    try:
        with kvm.create_vm() as vm:
            try:
                vm.has_device_attr(KVM_ARM_VM_SMCCC_CTRL, KVM_ARM_VM_SMCCC_FILTER)
            except KvmError as e:
                reasons["sdei"] = reasons["smccc-filter"] = NO_FILTER.format(
                    err=errno.errorcode.get(e.errno or 0, str(e.errno)))
            else:
                features |= {"smccc-filter", "sdei"}
            vcpu = vm.create_vcpu(0)
            vcpu.init((VcpuFeature.PSCI_0_2,))
            if VCPU_STATE_ID in set(vcpu.reg_list()):
                # The kernel serves SDEI: the sdei suites run in their in-kernel form.
                features |= {"in-kernel-sdei", "sdei"}
                reasons.pop("sdei", None)
            else:
                reasons["in-kernel-sdei"] = NO_IN_KERNEL.format(first=VCPU_STATE_ID)
    except KvmError as e:
        kvm.close()
        return None, f"/dev/kvm opens but a VM cannot be used: {e}"
    return KvmBackend(kvm, frozenset(features), reasons, platform.release()), ""
