"""sdei-state: arm64 SDEI for KVM guests.

A reference model of DEN0054C v1.1 as KVM offers it (static event table, per-vCPU state,
hypercall state machine with dispatch and completion), its encoding as KVM firmware
pseudo-registers for migration, and bindings to real KVM. See docs/ for the ABI and guides.

What a VMM needs is importable from here: the simulated VM (``SimVm``), save/restore
(``save_vm``, ``restore_vm``, ``preflight``, ``Blob``), the host presets (``HOST_*``,
``PRESETS``, ``HostFirmware``) and every error. The migration and simulated-vCPU names load on
first use (module ``__getattr__``), so ``import sdei_state`` stays cheap and never loads cffi.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .cpu import CpuReg, CpuRegs, MemoryCpu
from .errors import (
    BlobError,
    KvmError,
    RegError,
    RegListTooSmall,
    RestoreError,
    ScenarioError,
    SdeiStateError,
)
from .events import ASYNC_PF, EVENTS, SW_SIGNALED, Event
from .machine import CallOutcome, Machine, affinity_of
from .spec import (
    CompleteStatus,
    EventType,
    Feature,
    Function,
    Info,
    Priority,
    RegisterFlags,
    Ret,
    RoutingMode,
    Status,
)
from .state import Context, EventState, HandlerState, StateError, VcpuState
from .transitions import TRANSITIONS, Action, transition
from .vcpu.transport import HostFacts, RegTransport

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers
    from .migration import (
        Blob,
        Destination,
        PreflightProblem,
        PreflightReport,
        RestoreResult,
        VcpuRegisters,
        preflight,
        restore_vcpu,
        restore_vm,
        save_vcpu,
        save_vm,
    )
    from .regs.firmware import (
        HOST_LINUX_6_1,
        HOST_LINUX_6_12,
        HOST_LINUX_6_18_NEOVERSE,
        HOST_SDEI,
        PRESETS,
        HostFirmware,
    )
    from .vcpu.sim import SimVcpu, SimVm

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    **dict.fromkeys(
        ("Blob", "Destination", "PreflightProblem", "PreflightReport", "RestoreResult",
         "VcpuRegisters", "preflight", "restore_vcpu", "restore_vm", "save_vcpu", "save_vm"),
        "sdei_state.migration"),
    **dict.fromkeys(
        ("HOST_LINUX_6_1", "HOST_LINUX_6_12", "HOST_LINUX_6_18_NEOVERSE", "HOST_SDEI",
         "PRESETS", "HostFirmware"),
        "sdei_state.regs.firmware"),
    **dict.fromkeys(("SimVcpu", "SimVm"), "sdei_state.vcpu.sim"),
}
"""Exported names loaded on first access: the module that defines each one."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sdei_state' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ASYNC_PF",
    "EVENTS",
    "HOST_LINUX_6_1",
    "HOST_LINUX_6_12",
    "HOST_LINUX_6_18_NEOVERSE",
    "HOST_SDEI",
    "PRESETS",
    "SW_SIGNALED",
    "TRANSITIONS",
    "Action",
    "Blob",
    "BlobError",
    "CallOutcome",
    "CompleteStatus",
    "Context",
    "CpuReg",
    "CpuRegs",
    "Destination",
    "Event",
    "EventState",
    "EventType",
    "Feature",
    "Function",
    "HandlerState",
    "HostFacts",
    "HostFirmware",
    "Info",
    "KvmError",
    "Machine",
    "MemoryCpu",
    "PreflightProblem",
    "PreflightReport",
    "Priority",
    "RegError",
    "RegListTooSmall",
    "RegTransport",
    "RegisterFlags",
    "RestoreError",
    "RestoreResult",
    "Ret",
    "RoutingMode",
    "ScenarioError",
    "SdeiStateError",
    "SimVcpu",
    "SimVm",
    "StateError",
    "Status",
    "VcpuRegisters",
    "VcpuState",
    "__version__",
    "affinity_of",
    "preflight",
    "restore_vcpu",
    "restore_vm",
    "save_vcpu",
    "save_vm",
    "transition",
]
