"""The JSON form of a whole-VM snapshot: the blob's JSON form (``blob_json``) with format
``sdei-state/blob/2`` and up to three more keys, the same content as the binary sections.

```json
{"format": "sdei-state/blob/2", "abi_version": 1, "registers": [...], "vcpus": [[...]],
 "vgic": {"dist_base": 134217728, "redist_base": 134873088, "nr_irqs": 128,
          "mpidrs": [2147483648], "values": [[1, 8, 1124139068], ...]},
 "memory": [{"slot": 0, "guest_phys_addr": 1073741824, "size": 65536,
             "runs": [[0, "<base64 of whole 4 KiB pages>"], ...]}],
 "mp_states": [0, 5]}
```

``mp_states`` (each vCPU's ``KVM_MP_STATE_*``, in index order) is there only when saved. A
snapshot with neither vGIC nor memory nor power states is written as ``sdei-state/blob/1``
(exactly the blob's JSON form), as its binary form is version 1. ``schemas/blob.schema.json``
states both shapes; the loader checks what the schema cannot (the values through ``VgicState`` and
``MemoryRegion``).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any, Final

from ..errors import BlobError
from ..kvm.arm64 import MpState
from ..kvm.gic_layout import GicLayout
from . import blob_json, sections
from .blob import Blob
from .blob_json import JSON_FORMAT, shown
from .memory import MemoryRegion
from .vgic import VgicState

if TYPE_CHECKING:
    from .vm import VmSnapshot

JSON_FORMAT_VM: Final = blob_json.SNAPSHOT_JSON_FORMAT
VGIC_KEYS: Final = ("dist_base", "redist_base", "nr_irqs", "mpidrs", "values")
MEMORY_KEYS: Final = ("slot", "guest_phys_addr", "size", "runs")


def to_obj(snap: VmSnapshot) -> dict[str, Any]:
    obj = snap.vcpus.to_json_obj()
    if snap.vgic is None and not snap.memory and snap.mp_states is None:
        return obj
    obj["format"] = JSON_FORMAT_VM
    if snap.vgic is not None:
        lay = snap.vgic.layout
        obj["vgic"] = {"dist_base": lay.dist_base, "redist_base": lay.redist_base,
                       "nr_irqs": lay.nr_irqs, "mpidrs": list(snap.vgic.mpidrs),
                       "values": [list(v) for v in snap.vgic.values]}
    obj["memory"] = [{"slot": m.slot, "guest_phys_addr": m.guest_phys_addr, "size": m.size,
                      "runs": [[off, base64.b64encode(d).decode("ascii")]
                               for off, d in m.runs]} for m in snap.memory]
    if snap.mp_states is not None:
        obj["mp_states"] = [int(s) for s in snap.mp_states]
    return obj


def from_obj(obj: object) -> tuple[Blob, VgicState | None, tuple[MemoryRegion, ...],
                                   tuple[MpState, ...] | None]:
    """The parts of a decoded JSON snapshot of either format; ``BlobError`` names the key."""
    if not isinstance(obj, dict) or obj.get("format") != JSON_FORMAT_VM:
        return Blob.from_json_obj(obj), None, (), None
    rest = {k: v for k, v in obj.items() if k not in ("vgic", "memory", "mp_states")}
    rest["format"] = JSON_FORMAT
    blob = Blob.from_json_obj(rest)
    vgic = None if "vgic" not in obj else _vgic(obj["vgic"])
    mem = obj.get("memory", [])
    if not isinstance(mem, list):
        raise BlobError(f"'memory' is not a list but {type(mem).__name__}")
    states = (None if "mp_states" not in obj
              else sections.mp_states("'mp_states'", obj["mp_states"], blob.nr_vcpus))
    return blob, vgic, tuple(_region(i, m) for i, m in enumerate(mem)), states


def _object(where: str, value: object, keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BlobError(f"{where} is not an object but {type(value).__name__}")
    unknown = sorted(set(value) - set(keys))
    missing = [k for k in keys if k not in value]
    if unknown or missing:
        raise BlobError(f"{where}: " + (f"unknown key {shown(unknown[0])}" if unknown
                                        else f"lacks key {missing[0]!r}")
                        + f" (keys: {', '.join(keys)})")
    return value


def _int(where: str, value: object) -> int:
    if type(value) is not int:
        raise BlobError(f"{where} = {shown(value)} is not an integer")
    return value


def _ints(where: str, value: object, length: int | None = None) -> list[int]:
    if not isinstance(value, list) or (length is not None and len(value) != length):
        what = "a list" if length is None else f"a list of {length} integers"
        raise BlobError(f"{where} = {shown(value)} is not {what}")
    return [_int(f"{where}[{i}]", v) for i, v in enumerate(value)]


def _vgic(value: object) -> VgicState:
    v = _object("'vgic'", value, VGIC_KEYS)
    mpidrs = _ints("vgic.mpidrs", v["mpidrs"])
    values = v["values"]
    if not isinstance(values, list):
        raise BlobError(f"vgic.values = {shown(values)} is not a list")
    try:
        layout = GicLayout(_int("vgic.dist_base", v["dist_base"]),
                           _int("vgic.redist_base", v["redist_base"]), len(mpidrs),
                           _int("vgic.nr_irqs", v["nr_irqs"]))
    except ValueError as e:
        raise BlobError(f"vgic: {e}") from None
    triples: list[tuple[int, int, int]] = []
    for i, t in enumerate(values):
        group, attr, val = _ints(f"vgic.values[{i}]", t, 3)
        triples.append((group, attr, val))
    return VgicState(layout, tuple(mpidrs), tuple(triples))


def _region(i: int, value: object) -> MemoryRegion:
    where = f"memory[{i}]"
    m = _object(where, value, MEMORY_KEYS)
    runs = m["runs"]
    if not isinstance(runs, list):
        raise BlobError(f"{where}.runs = {shown(runs)} is not a list")
    out: list[tuple[int, bytes]] = []
    for j, run in enumerate(runs):
        if not (isinstance(run, list) and len(run) == 2 and isinstance(run[1], str)):
            raise BlobError(f"{where}.runs[{j}] = {shown(run)} is not [offset, base64 text]")
        try:
            data = base64.b64decode(run[1].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise BlobError(f"{where}.runs[{j}]: the data is not base64 text") from None
        out.append((_int(f"{where}.runs[{j}][0]", run[0]), data))
    return MemoryRegion(_int(f"{where}.slot", m["slot"]),
                        _int(f"{where}.guest_phys_addr", m["guest_phys_addr"]),
                        _int(f"{where}.size", m["size"]), tuple(out))
