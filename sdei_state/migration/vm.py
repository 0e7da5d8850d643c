"""A whole-VM snapshot: every vCPU's registers (every ``KVM_GET_REG_LIST`` register, the SDEI
block and the timer included), the in-kernel vGICv3, and guest memory; written as one blob
(format version 2: the vCPU registers as in version 1, then a ``VGIC`` section and one ``MEMR``
section per memslot).

``save_vm_snapshot`` reads a stopped VM; ``preflight_snapshot`` says, reading only, whether a
destination can take it (the vCPU preflight, the vGIC's layout, MPIDRs and identification
registers, the memslots); ``restore_vm_snapshot`` checks all of that first and writes nothing
on a problem, then writes memory, the vCPUs' registers (the timer first), and the vGIC last
(its interrupt state is what the source's was, whatever the timer writes did to the timer's
interrupt line on the way).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BlobError, KvmError, RegError, RestoreError
from ..regs.firmware import HostFirmware
from ..regs.ids import sys_reg
from ..vcpu.transport import RegTransport
from . import blob_json, sections, vm_json, wire
from .blob import Blob
from .memory import GuestRam, MemoryRegion, memory_problems, restore_memory, save_memory
from .preflight import PreflightProblem, PreflightReport, preflight
from .save import RestoreResult, restore_vm, save_vm
from .vgic import AttrDevice, VgicState, restore_problems, restore_vgic, save_vgic

MPIDR_EL1 = sys_reg(3, 0, 0, 0, 5)


@dataclass(frozen=True, slots=True)
class VmSnapshot:
    """A VM's saved state: its vCPUs' registers, its vGIC (None without one), its memory."""

    vcpus: Blob
    vgic: VgicState | None = None
    memory: tuple[MemoryRegion, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.vcpus, Blob):
            raise BlobError("VmSnapshot.vcpus is not a Blob")
        if self.vgic is not None and self.vgic.layout.nr_vcpus != self.vcpus.nr_vcpus:
            raise BlobError(f"the vGIC state is for {self.vgic.layout.nr_vcpus} vCPU(s), the "
                            f"registers for {self.vcpus.nr_vcpus}")
        if not isinstance(self.memory, tuple):
            raise BlobError("VmSnapshot.memory is a tuple of MemoryRegion")
        slots = [m.slot for m in self.memory]
        if len(set(slots)) != len(slots):
            raise BlobError(f"memory: a memslot appears twice in {slots}")

    @property
    def memory_bytes(self) -> int:
        """Bytes of guest memory carried (non-zero pages)."""
        return sum(m.stored for m in self.memory)

    def to_bytes(self) -> bytes:
        """The binary form: version 1 when there is neither vGIC nor memory (the same bytes
        as ``vcpus.to_bytes()``), else version 2 with the sections."""
        secs: list[wire.Section] = []
        if self.vgic is not None:
            secs.append((sections.TAG_VGIC, sections.encode_vgic(self.vgic)))
        secs += [(sections.TAG_MEMR, sections.encode_memory(m)) for m in self.memory]
        b = self.vcpus
        return wire.pack(b.reg_ids, b.rows, b.abi_version, secs)

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON form as Python objects (``vm_json``): the blob's, as ``sdei-state/blob/2``
        with ``vgic`` and ``memory`` when there are sections."""
        return vm_json.to_obj(self)

    def to_json(self, *, indent: int | None = None) -> str:
        return blob_json.dumps(self.to_json_obj(), indent=indent)

    @classmethod
    def from_json_obj(cls, obj: object) -> VmSnapshot:
        return cls(*vm_json.from_obj(obj))

    @classmethod
    def from_json(cls, text: str | bytes) -> VmSnapshot:
        """Parse the JSON text of either format, within ``blob_json.loads``'s limits."""
        return cls.from_json_obj(blob_json.loads(text))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> VmSnapshot:
        """Parse either version; ``BlobError`` names what is wrong."""
        reg_ids, rows, abi, secs = wire.unpack_sections(bytes(data))
        vgic: VgicState | None = None
        memory: list[MemoryRegion] = []
        for i, (tag, payload) in enumerate(secs):
            if tag == sections.TAG_VGIC:
                if vgic is not None:
                    raise BlobError(f"section {i}: a second VGIC section")
                vgic = sections.decode_vgic(payload)
            else:
                memory.append(sections.decode_memory(payload))
        return cls(Blob(reg_ids, rows, abi), vgic, tuple(memory))


def vcpu_mpidrs(vcpus: Sequence[RegTransport]) -> tuple[int, ...]:
    """Each vCPU's MPIDR_EL1 (which redistributor is whose)."""
    return tuple(t.get_reg(MPIDR_EL1) for t in vcpus)


def save_vm_snapshot(vcpus: Sequence[RegTransport], *, gic: AttrDevice | None = None,
                     memory: Sequence[GuestRam] = ()) -> VmSnapshot:
    """Save a stopped VM: every vCPU (``save_vm``), its vGIC (``save_vgic``) and each memslot
    (``save_memory``). With the userspace SDEI provider, pass its vCPU views, as for
    ``save_vm``, so the SDEI block comes from the provider."""
    blob = save_vm(vcpus)
    state = None if gic is None else save_vgic(gic, vcpu_mpidrs(vcpus))
    return VmSnapshot(blob, state, tuple(save_memory(m) for m in memory))


def preflight_snapshot(snap: VmSnapshot, vcpus: Sequence[RegTransport], *,
                       gic: AttrDevice | None = None, memory: Sequence[GuestRam] = (),
                       host: HostFirmware | None = None) -> PreflightReport:
    """Every reason ``snap`` cannot be restored on the destination VM (its vCPUs, vGIC and
    memslots), reading only. The vCPU part is ``preflight``'s report, the vGIC and memory
    problems are added to it (without a register)."""
    report = preflight(snap.vcpus, vcpus, host=host)
    extra: list[PreflightProblem] = []
    if (snap.vgic is None) != (gic is None):
        extra.append(PreflightProblem("vGIC: the saved VM " + ("has none, the destination has one"
                                                      if gic is not None else
                                                      "has one, the destination has none")))
    elif snap.vgic is not None and gic is not None:
        try:
            mpidrs = vcpu_mpidrs(vcpus)
        except (RegError, KvmError) as e:
            extra.append(PreflightProblem(f"vGIC: cannot read the destination's MPIDRs: {e}"))
        else:
            extra += [PreflightProblem(p) for p in restore_problems(gic, snap.vgic, mpidrs)]
    extra += [PreflightProblem(p) for p in memory_problems(snap.memory, memory)]
    return PreflightReport((*report.problems, *extra), report.dropped, report.added)


def restore_vm_snapshot(vcpus: Sequence[RegTransport], snap: VmSnapshot, *,
                        gic: AttrDevice | None = None, memory: Sequence[GuestRam] = (),
                        host: HostFirmware | None = None) -> tuple[RestoreResult, ...]:
    """Restore ``snap`` into a destination VM that has not run: created the same way (its
    vCPUs initialised, its vGIC created at the same layout and initialised, its memslots
    registered). ``preflight_snapshot`` first; nothing is written unless it finds nothing.
    Then memory, the vCPUs (``restore_vm``), the vGIC (``restore_vgic``)."""
    report = preflight_snapshot(snap, vcpus, gic=gic, memory=memory, host=host)
    if not report.ok:
        first = report.problems[0]
        more = (f" (and {len(report.problems) - 1} more problem(s))"
                if len(report.problems) > 1 else "")
        raise RestoreError(f"restore refused, nothing written: {first}{more}",
                           reg_id=first.reg_id)
    restore_memory(snap.memory, memory)
    results = restore_vm(vcpus, snap.vcpus, host=host)
    if snap.vgic is not None and gic is not None:
        restore_vgic(gic, snap.vgic, vcpu_mpidrs(vcpus))
    return results
