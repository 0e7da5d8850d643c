"""Migration: save and restore vCPUs over a register transport, blobs, and preflight checks.

``save_vm`` reads every register each vCPU lists into a ``Blob``; ``Blob.to_bytes`` /
``Blob.to_json`` carry it; ``preflight`` says whether (and why not) a blob can be restored on a
destination; ``restore_vm`` checks first and writes nothing unless everything passes. See
docs/migration.md.
"""

from __future__ import annotations

from .blob import Blob, VcpuRegisters
from .blob_json import JSON_FORMAT
from .preflight import (
    Destination,
    PreflightProblem,
    PreflightReport,
    droppable_value,
    infer_host,
    preflight,
)
from .save import RestoreResult, restore_vcpu, restore_vm, save_vcpu, save_vm
from .wire import ABI_VERSION, BLOB, FORMAT_VERSION, MAGIC, blob_size, format_table

__all__ = [
    "ABI_VERSION",
    "BLOB",
    "FORMAT_VERSION",
    "JSON_FORMAT",
    "MAGIC",
    "Blob",
    "Destination",
    "PreflightProblem",
    "PreflightReport",
    "RestoreResult",
    "VcpuRegisters",
    "blob_size",
    "droppable_value",
    "format_table",
    "infer_host",
    "preflight",
    "restore_vcpu",
    "restore_vm",
    "save_vcpu",
    "save_vm",
]
