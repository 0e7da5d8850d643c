"""The payloads of a version-2 blob's sections, declared once with construct (parser, builder
and the tables of docs/migration.md), and their codecs to ``VgicState`` and ``MemoryRegion``.

- ``VGIC`` (at most one): the vGICv3's layout, each vCPU's MPIDR, and every saved attribute as
  (group, attr, value), in restore order (``vgic_table``).
- ``MEMR`` (one per memslot, in the VM's order): slot, guest-physical address and size, then
  the non-zero runs of whole 4 KiB pages, each an offset, a length and its bytes.
- ``MPST`` (at most one): each vCPU's power state (``KVM_GET_MP_STATE``), in vCPU index order.

All little-endian; every count and length is checked against the bytes that hold it, and a
payload with bytes left over is refused.
"""

from __future__ import annotations

from construct import (
    Array,
    Bytes,
    Const,
    ConstructError,
    Int32ul,
    Int64ul,
    PrefixedArray,
    Struct,
    Terminated,
    this,
)

from ..errors import BlobError
from ..kvm.arm64 import MpState
from ..kvm.gic_layout import GicLayout
from .memory import MemoryRegion
from .vgic import VgicState

TAG_VGIC = b"VGIC"
TAG_MEMR = b"MEMR"
TAG_MPST = b"MPST"

VGIC_PAYLOAD = Struct(
    "dist_base" / Int64ul * "guest-physical base of the distributor",
    "redist_base" / Int64ul * "guest-physical base of the redistributor region",
    "nr_irqs" / Int32ul * "interrupts (SGIs, PPIs and SPIs), KVM_DEV_ARM_VGIC_GRP_NR_IRQS",
    "nr_vcpus" / Int32ul * "c: vCPUs, one redistributor each",
    "mpidrs" / Array(this.nr_vcpus, Int64ul) * "MPIDR_EL1 of each vCPU, in vCPU index order",
    "values" / PrefixedArray(Int32ul, Struct(
        "group" / Int32ul, "reserved" / Const(0, Int32ul), "attr" / Int64ul,
        "value" / Int64ul)) * "u32 count, then (u32 group, u32 0, u64 attr, u64 value) per "
                             "attribute, in restore order",
    Terminated,
)
"""The ``VGIC`` section's payload."""

MEMR_PAYLOAD = Struct(
    "slot" / Int32ul * "memslot number",
    "reserved" / Const(0, Int32ul),
    "guest_phys_addr" / Int64ul * "guest-physical base",
    "size" / Int64ul * "bytes (a multiple of 4 KiB)",
    "runs" / PrefixedArray(Int32ul, Struct(
        "offset" / Int64ul, "length" / Int64ul, "data" / Bytes(this.length)))
    * "u32 count, then (u64 offset, u64 length, the bytes) per run of non-zero pages, "
      "ascending",
    Terminated,
)
"""A ``MEMR`` section's payload."""


_MP_VALUES = ", ".join(f"{m.value} {m.name}" for m in MpState)
MPST_PAYLOAD = Struct(
    "nr_vcpus" / Int32ul * "vCPUs (the blob's row count)",
    "mp_states" / Array(this.nr_vcpus, Int32ul)
    * f"KVM_MP_STATE_* of each vCPU, in vCPU index order: {_MP_VALUES}",
    Terminated,
)
"""The ``MPST`` section's payload."""


def encode_vgic(state: VgicState) -> bytes:
    lay = state.layout
    return bytes(VGIC_PAYLOAD.build({
        "dist_base": lay.dist_base, "redist_base": lay.redist_base, "nr_irqs": lay.nr_irqs,
        "nr_vcpus": lay.nr_vcpus, "mpidrs": list(state.mpidrs),
        "values": [{"group": g, "attr": a, "value": v} for g, a, v in state.values]}))


def decode_vgic(payload: bytes) -> VgicState:
    try:
        p = VGIC_PAYLOAD.parse(payload)
    except ConstructError as e:
        raise BlobError(f"VGIC section refused by its declaration: {e}") from None
    try:
        layout = GicLayout(p.dist_base, p.redist_base, p.nr_vcpus, p.nr_irqs)
    except ValueError as e:
        raise BlobError(f"VGIC section: {e}") from None
    return VgicState(layout, tuple(p.mpidrs),
                     tuple((v.group, v.attr, v.value) for v in p["values"]))


def encode_memory(region: MemoryRegion) -> bytes:
    return bytes(MEMR_PAYLOAD.build({
        "slot": region.slot, "guest_phys_addr": region.guest_phys_addr, "size": region.size,
        "runs": [{"offset": o, "length": len(d), "data": d} for o, d in region.runs]}))


def decode_memory(payload: bytes) -> MemoryRegion:
    try:
        p = MEMR_PAYLOAD.parse(payload)
    except ConstructError as e:
        raise BlobError(f"MEMR section refused by its declaration: {e}") from None
    return MemoryRegion(p.slot, p.guest_phys_addr, p.size,
                        tuple((r.offset, bytes(r.data)) for r in p.runs))


def mp_states(where: str, values: object, nr_vcpus: int) -> tuple[MpState, ...]:
    """``values`` as one ``MpState`` per vCPU, or BlobError naming ``where``, the vCPU and the
    value (the binary section, the JSON key and ``VmSnapshot`` all check with this)."""
    if not isinstance(values, list | tuple):
        raise BlobError(f"{where}: {values!r:.40} is not a list of power states")
    if len(values) != nr_vcpus:
        raise BlobError(f"{where}: {len(values)} power state(s) for {nr_vcpus} vCPU(s)")
    out: list[MpState] = []
    for i, v in enumerate(values):
        is_int = type(v) is int or isinstance(v, MpState)  # not bool, not float
        if not is_int or v not in MpState._value2member_map_:
            raise BlobError(f"{where}: vCPU {i}: mp_state {v!r:.40} is none of {_MP_VALUES}")
        out.append(MpState(v))
    return tuple(out)


def encode_mp_states(states: tuple[MpState, ...]) -> bytes:
    return bytes(MPST_PAYLOAD.build({"nr_vcpus": len(states),
                                     "mp_states": [int(s) for s in states]}))


def decode_mp_states(payload: bytes, nr_vcpus: int) -> tuple[MpState, ...]:
    try:
        p = MPST_PAYLOAD.parse(payload)
    except ConstructError as e:
        raise BlobError(f"MPST section refused by its declaration: {e}") from None
    return mp_states("MPST section", list(p.mp_states), nr_vcpus)


def format_tables() -> str:
    """The payload layouts as Markdown tables (docs/migration.md carries them)."""
    out: list[str] = []
    for tag, decl in ((TAG_VGIC, VGIC_PAYLOAD), (TAG_MEMR, MEMR_PAYLOAD),
                      (TAG_MPST, MPST_PAYLOAD)):
        out += [f"`{tag.decode()}` payload:", "", "| field | content |", "|---|---|"]
        out += [f"| `{sub.name}` | {sub.docs or 'must be 0'} |" for sub in decl.subcons
                if sub.name is not None]
        out.append("")
    return "\n".join(out).rstrip("\n")
