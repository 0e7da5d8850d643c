"""What the ioctl cases share: a vCPU per cffi mode, the stand-in MSRs, the C baseline.

Also ``noop_vcpu``: a ``Vcpu`` whose bindings make no ioctl (every call "succeeds" at once),
for the library's own Python time per operation, which is what a host with cheap ioctls
(bare metal) sees on top of the kernel's work.
"""

from __future__ import annotations

import dataclasses
import os
import types
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import msr
import native

from sdei_state.kvm import Cap, Kvm, Vcpu, ffi
from sdei_state.kvm.ffi import Mode


@dataclass
class KvmEnv:
    native: tuple[Any, Any]
    """(ffi, lib) of the compiled C baseline."""
    vcpus: dict[str, Vcpu]
    """cffi mode -> a vCPU of its own VM."""
    msrs: tuple[tuple[int, int], ...]
    """(ONE_REG id, value) of the stand-in MSRs, distinct, all accepted by GET and SET."""
    kvms: list[Kvm]

    @property
    def fd(self) -> int:
        """The vCPU fd the C baseline uses (the first mode's: the same kind of fresh vCPU)."""
        fd: int = next(iter(self.vcpus.values())).fd
        return fd

    def close(self) -> None:
        for k in self.kvms:
            k.close()


def open_env(tmp: Path) -> KvmEnv | str:
    """The environment, or why the ioctl cases cannot run here."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no read/writable /dev/kvm"
    built = native.build(tmp)
    if isinstance(built, str):
        return built
    modes: list[Mode] = ["api", "abi"] if ffi.api_unavailable_reason() is None else ["abi"]
    kvms = [Kvm(mode=m) for m in modes]
    if kvms[0].check_extension(Cap.ONE_REG) <= 0:
        for k in kvms:
            k.close()
        return "this KVM has no KVM_CAP_ONE_REG (x86 ONE_REG for MSRs needs Linux 6.18)"
    vcpus: dict[str, Vcpu] = {m: k.create_vm().create_vcpu(0)
                              for m, k in zip(modes, kvms, strict=True)}
    msrs = msr.probe(vcpus[modes[0]])
    if len(msrs) < 2:
        for k in kvms:
            k.close()
        return f"fewer than 2 of the candidate MSRs accept GET and SET here ({len(msrs)})"
    return KvmEnv(built, vcpus, msrs, kvms)


def noop_vcpu(real: Vcpu) -> Vcpu:
    """A ``Vcpu`` with ``real``'s bindings except that no ioctl reaches the kernel."""

    def ioctl(fd: int, request: int, arg: Any) -> int:
        return 0

    def one_reg_batch(fd: int, request: int, regs: Any, n: int, done: Any) -> int:
        done[0] = n
        return 0

    backend = dataclasses.replace(real.backend, ioctl=ioctl, one_reg_batch=one_reg_batch)
    # Vcpu wants its VM only for the bindings and to register as a child; a stand-in does.
    vm = types.SimpleNamespace(backend=backend, _children=weakref.WeakSet())
    return Vcpu(cast(Any, vm), os.dup(real.fd), real.index)
