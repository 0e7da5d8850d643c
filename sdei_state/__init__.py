"""sdei-state: arm64 SDEI for KVM guests.

A reference model of DEN0054C v1.1 as KVM offers it (static event table, per-vCPU state,
hypercall state machine with dispatch and completion), its encoding as KVM firmware
pseudo-registers for migration, and bindings to real KVM. See docs/ for the ABI and guides.
"""

from __future__ import annotations

from .cpu import CpuReg, CpuRegs, MemoryCpu
from .errors import (
    BlobError,
    KvmError,
    RegError,
    RestoreError,
    ScenarioError,
    SdeiStateError,
)
from .events import ASYNC_PF, EVENTS, SW_SIGNALED, Event
from .machine import TRANSITIONS, Action, CallOutcome, Machine, affinity_of, transition
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
from .vcpu.transport import RegTransport

__version__ = "0.1.0"

__all__ = [
    "ASYNC_PF",
    "EVENTS",
    "SW_SIGNALED",
    "TRANSITIONS",
    "Action",
    "BlobError",
    "CallOutcome",
    "CompleteStatus",
    "Context",
    "CpuReg",
    "CpuRegs",
    "Event",
    "EventState",
    "EventType",
    "Feature",
    "Function",
    "HandlerState",
    "Info",
    "KvmError",
    "Machine",
    "MemoryCpu",
    "Priority",
    "RegError",
    "RegTransport",
    "RegisterFlags",
    "RestoreError",
    "Ret",
    "RoutingMode",
    "ScenarioError",
    "SdeiStateError",
    "StateError",
    "Status",
    "VcpuState",
    "__version__",
    "affinity_of",
    "transition",
]
