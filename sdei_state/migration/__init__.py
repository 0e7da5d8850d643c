"""Migration: save and restore vCPUs over a register transport, blobs, and preflight checks.

``save_vm`` reads every register each vCPU lists into a ``Blob``; ``save_vm_snapshot`` adds
the vGICv3 and guest memory into a ``VmSnapshot``; ``Blob.to_bytes`` /
``Blob.to_json`` carry it; ``preflight`` says whether (and why not) a blob can be restored on a
destination; ``restore_vm`` checks first and writes nothing unless everything passes. See
docs/migration.md.
"""

from __future__ import annotations

from .blob import Blob, VcpuRegisters
from .blob_json import JSON_FORMAT
from .memory import MemoryRegion, restore_memory, save_memory
from .preflight import (
    Destination,
    PreflightProblem,
    PreflightReport,
    droppable_value,
    infer_host,
    preflight,
)
from .save import RestoreResult, restore_order, restore_vcpu, restore_vm, save_vcpu, save_vm
from .vgic import VgicState, restore_vgic, save_vgic
from .vm import VmSnapshot, preflight_snapshot, restore_vm_snapshot, save_vm_snapshot
from .wire import ABI_VERSION, BLOB, FORMAT_VERSION, MAGIC, blob_size, format_table

__all__ = [
    "ABI_VERSION",
    "BLOB",
    "FORMAT_VERSION",
    "JSON_FORMAT",
    "MAGIC",
    "Blob",
    "Destination",
    "MemoryRegion",
    "PreflightProblem",
    "PreflightReport",
    "RestoreResult",
    "VcpuRegisters",
    "VgicState",
    "VmSnapshot",
    "blob_size",
    "droppable_value",
    "format_table",
    "infer_host",
    "preflight",
    "preflight_snapshot",
    "restore_memory",
    "restore_order",
    "restore_vcpu",
    "restore_vgic",
    "restore_vm",
    "restore_vm_snapshot",
    "save_memory",
    "save_vcpu",
    "save_vgic",
    "save_vm",
    "save_vm_snapshot",
]
