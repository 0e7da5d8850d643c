"""The kernel boundary: cffi bindings for ``/dev/kvm``, VM and vCPU fds.

One module per fd kind, in the style of rust-vmm's kvm-ioctls: ``system.Kvm``, ``vm.Vm``,
``vcpu.Vcpu``, ``device.Device``; ioctl numbers in ``ioctls``, capabilities in ``caps``, typed
``KVM_RUN`` exits in ``exits``, the vGIC's uapi numbers in ``vgic``, the cffi loading in
``ffi``. Each wrapper builds the struct, makes the ioctl and turns
a failure into ``KvmError`` (or ``RegError`` for a register). No policy lives here.
"""

from __future__ import annotations

from .arm64 import MpState, SmcccFilterAction, VcpuFeature
from .caps import Cap
from .device import Device, DeviceAttrError, DeviceType
from .exits import (
    ArmNisvExit,
    Exit,
    ExitReason,
    FailEntryExit,
    HypercallExit,
    InternalErrorExit,
    MmioExit,
    OtherExit,
    SystemEventExit,
)
from .ffi import FfiBackend, FfiBackendError, backend
from .system import Kvm
from .vcpu import RegBatch, Vcpu
from .vm import GuestMemory, VcpuInit, Vm

__all__ = [
    "ArmNisvExit",
    "Cap",
    "Device",
    "DeviceAttrError",
    "DeviceType",
    "Exit",
    "ExitReason",
    "FailEntryExit",
    "FfiBackend",
    "FfiBackendError",
    "GuestMemory",
    "HypercallExit",
    "InternalErrorExit",
    "Kvm",
    "MmioExit",
    "MpState",
    "OtherExit",
    "RegBatch",
    "SmcccFilterAction",
    "SystemEventExit",
    "Vcpu",
    "VcpuFeature",
    "VcpuInit",
    "Vm",
    "backend",
]
