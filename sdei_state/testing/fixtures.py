"""pytest fixtures for code built on sdei-state.

Load them in your top-level ``conftest.py``::

    pytest_plugins = ["sdei_state.testing.fixtures"]

- ``sdei_sim_vm``: a fresh two-vCPU ``SimVm`` on the SDEI host preset (``HOST_SDEI``);
- ``sdei_kvm_vcpu``: an initialized vCPU 0 in a fresh VM of this host's real KVM (arm64: with
  ``KVM_ARM_VCPU_PSCI_0_2``; x86: as created), closed afterwards;
- ``sdei_arm64_vcpu``: the same, but only on arm64 KVM (the SDEI registers' home).

A fixture that needs what the host lacks skips the test with the reason (no ``/dev/kvm``, not
readable and writable, another architecture, the kernel refused). The bindings (and cffi) are
imported only when a KVM fixture is used. Not an entry-point plugin on purpose: pip installs
entry points whether or not the ``testing`` extra is installed, and an auto-loaded plugin
that needs the extra would break every pytest run of a project that does not want it.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

from ..errors import KvmError
from ..vcpu.sim import SimVm

if TYPE_CHECKING:
    from ..kvm import Vcpu

KVM_ARCHES = ("aarch64", "x86_64")
"""The machines whose KVM the bindings drive."""


def why_no_kvm(arch: str | None = None) -> str | None:
    """Why this host has no usable real KVM (of ``arch``, a ``platform.machine()`` name, if
    given), or None."""
    machine = platform.machine()
    if arch is not None and machine != arch:
        return f"needs {arch} KVM; this host is {machine}"
    if machine not in KVM_ARCHES:
        return f"the bindings drive aarch64 and x86_64 KVM; this host is {machine}"
    if not os.path.exists("/dev/kvm"):
        return "no /dev/kvm on this host"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not readable and writable by this user"
    return None


def _kvm_vcpu(arch: str | None) -> Iterator[Vcpu]:
    why = why_no_kvm(arch)
    if why is not None:
        pytest.skip(why)
    from ..kvm import Kvm, VcpuFeature  # late: cffi only for tests that use real KVM

    with ExitStack() as stack:
        try:  # only the setup: a KvmError of the test itself must fail it, not skip it
            kvm = stack.enter_context(Kvm())
            vm = stack.enter_context(kvm.create_vm())
            vcpu = vm.create_vcpu(0)
            if platform.machine() == "aarch64":
                vcpu.init([VcpuFeature.PSCI_0_2])
        except KvmError as e:
            pytest.skip(f"this host's KVM refused a vCPU: {e}")
        yield vcpu


@pytest.fixture
def sdei_sim_vm() -> SimVm:
    """A fresh simulated VM: two vCPUs on the host preset with the SDEI ABI."""
    return SimVm(2)


@pytest.fixture
def sdei_kvm_vcpu() -> Iterator[Vcpu]:
    """vCPU 0 of a fresh VM on this host's KVM (aarch64 or x86_64); skips with the reason."""
    yield from _kvm_vcpu(None)


@pytest.fixture
def sdei_arm64_vcpu() -> Iterator[Vcpu]:
    """vCPU 0 of a fresh VM on arm64 KVM, initialized with PSCI 0.2; skips elsewhere."""
    yield from _kvm_vcpu("aarch64")
