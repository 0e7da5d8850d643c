"""A whole-VM snapshot: every vCPU's registers (every ``KVM_GET_REG_LIST`` register, the SDEI
block and the timer included), the in-kernel vGICv3, guest memory, and each vCPU's power state
(``KVM_GET_MP_STATE``); written as one blob (format version 2: the vCPU registers as in version
1, then a ``VGIC`` section, one ``MEMR`` section per memslot and an ``MPST`` section).

``save_vm_snapshot`` reads a stopped VM; ``preflight_snapshot`` says, reading only, whether a
destination can take it (the vCPU preflight, the vGIC's layout, MPIDRs and identification
registers, the memslots, somewhere to set each power state); ``restore_vm_snapshot`` checks all
of that first and writes nothing on a problem, then writes memory, the vCPUs' registers (the
timer first), their power states, and the vGIC last (its interrupt state is what the source's
was, whatever the timer writes did to the timer's interrupt line on the way).

The power states are saved when the vCPUs offer ``KVM_{GET,SET}_MP_STATE``
(``vcpu.transport.MpStateVcpu``: a ``kvm.Vcpu``, the simulated vCPU) or when ``mp_state=``
names the vCPUs that do (the ``kvm.Vcpu`` under each of the userspace provider's register
views). A snapshot without them (an older one, or one saved without) leaves every destination
vCPU in the power state it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import BlobError, KvmError, RegError, RestoreError
from ..kvm.arm64 import MpState
from ..regs.firmware import HostFirmware
from ..regs.ids import sys_reg
from ..vcpu.transport import MpStateVcpu, RegTransport, mp_state_vcpus
from . import blob_json, sections, vm_json, wire
from .blob import Blob
from .memory import GuestRam, MemoryRegion, memory_problems, restore_memory, save_memory
from .preflight import PreflightProblem, PreflightReport, preflight
from .save import RestoreResult, restore_vm, save_vm
from .vgic import AttrDevice, VgicState, restore_problems, restore_vgic, save_vgic

MPIDR_EL1 = sys_reg(3, 0, 0, 0, 5)


@dataclass(frozen=True, slots=True)
class VmSnapshot:
    """A VM's saved state: its vCPUs' registers, its vGIC (None without one), its memory, and
    each vCPU's power state in index order (None when not saved)."""

    vcpus: Blob
    vgic: VgicState | None = None
    memory: tuple[MemoryRegion, ...] = ()
    mp_states: tuple[MpState, ...] | None = None

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
        if self.mp_states is not None:
            object.__setattr__(self, "mp_states", sections.mp_states(
                "VmSnapshot.mp_states", self.mp_states, self.vcpus.nr_vcpus))

    @property
    def memory_bytes(self) -> int:
        """Bytes of guest memory carried (non-zero pages)."""
        return sum(m.stored for m in self.memory)

    def to_bytes(self) -> bytes:
        """The binary form: version 1 when there is neither vGIC nor memory nor power state
        (the same bytes as ``vcpus.to_bytes()``), else version 2 with the sections."""
        secs: list[wire.Section] = []
        if self.vgic is not None:
            secs.append((sections.TAG_VGIC, sections.encode_vgic(self.vgic)))
        secs += [(sections.TAG_MEMR, sections.encode_memory(m)) for m in self.memory]
        if self.mp_states is not None:
            secs.append((sections.TAG_MPST, sections.encode_mp_states(self.mp_states)))
        b = self.vcpus
        return wire.pack(b.reg_ids, b.rows, b.abi_version, secs)

    def to_json_obj(self) -> dict[str, Any]:
        """The JSON form as Python objects (``vm_json``): the blob's, as ``sdei-state/blob/2``
        with ``vgic``, ``memory`` and ``mp_states`` when there are sections."""
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
        states: tuple[MpState, ...] | None = None
        for i, (tag, payload) in enumerate(secs):
            if tag == sections.TAG_VGIC:
                if vgic is not None:
                    raise BlobError(f"section {i}: a second VGIC section")
                vgic = sections.decode_vgic(payload)
            elif tag == sections.TAG_MPST:
                if states is not None:
                    raise BlobError(f"section {i}: a second MPST section")
                states = sections.decode_mp_states(payload, len(rows))
            else:
                memory.append(sections.decode_memory(payload))
        return cls(Blob(reg_ids, rows, abi), vgic, tuple(memory), states)


def vcpu_mpidrs(vcpus: Sequence[RegTransport]) -> tuple[int, ...]:
    """Each vCPU's MPIDR_EL1 (which redistributor is whose)."""
    return tuple(t.get_reg(MPIDR_EL1) for t in vcpus)


def _power(vcpus: Sequence[RegTransport],
           mp_state: Sequence[MpStateVcpu] | None) -> Sequence[MpStateVcpu] | None:
    """Where the power states are read or written: ``mp_state`` if given (``()``: nowhere),
    else the vCPUs themselves when they all offer it."""
    if mp_state is not None:
        return mp_state or None
    return mp_state_vcpus(vcpus)


def save_vm_snapshot(vcpus: Sequence[RegTransport], *, gic: AttrDevice | None = None,
                     memory: Sequence[GuestRam] = (),
                     mp_state: Sequence[MpStateVcpu] | None = None) -> VmSnapshot:
    """Save a stopped VM: every vCPU (``save_vm``), its vGIC (``save_vgic``), each memslot
    (``save_memory``) and each vCPU's power state (``KVM_GET_MP_STATE`` of ``mp_state``, one
    per vCPU in the same order; by default of ``vcpus`` when they offer it, ``()`` for none).
    With the userspace SDEI provider, pass its vCPU views, as for ``save_vm``, so the SDEI
    block comes from the provider, and the ``kvm.Vcpu`` objects as ``mp_state``."""
    power = _power(vcpus, mp_state)
    if power is not None and len(power) != len(vcpus):
        raise ValueError(f"mp_state: {len(power)} vCPU(s) for {len(vcpus)}")
    blob = save_vm(vcpus)
    state = None if gic is None else save_vgic(gic, vcpu_mpidrs(vcpus))
    states = None if power is None else tuple(v.get_mp_state() for v in power)
    return VmSnapshot(blob, state, tuple(save_memory(m) for m in memory), states)


def _mp_state_problems(snap: VmSnapshot,
                       power: Sequence[MpStateVcpu] | None) -> list[PreflightProblem]:
    if snap.mp_states is None:
        return []
    if power is None:
        return [PreflightProblem(f"vCPU {i}: power state {s.name} saved, but the destination "
                                 "vCPU has no KVM_SET_MP_STATE (pass its kvm.Vcpu as mp_state=)")
                for i, s in enumerate(snap.mp_states)]
    if len(power) != len(snap.mp_states):
        return [PreflightProblem(f"power state: {len(snap.mp_states)} saved, mp_state= has "
                                 f"{len(power)} vCPU(s)")]
    return []


def preflight_snapshot(snap: VmSnapshot, vcpus: Sequence[RegTransport], *,
                       gic: AttrDevice | None = None, memory: Sequence[GuestRam] = (),
                       host: HostFirmware | None = None,
                       mp_state: Sequence[MpStateVcpu] | None = None) -> PreflightReport:
    """Every reason ``snap`` cannot be restored on the destination VM (its vCPUs, vGIC,
    memslots and power states), reading only. The vCPU part is ``preflight``'s report, the
    other problems are added to it (without a register). ``mp_state`` as for
    ``save_vm_snapshot``: where the saved power states would be set."""
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
    extra += _mp_state_problems(snap, _power(vcpus, mp_state))
    return PreflightReport((*report.problems, *extra), report.dropped, report.added)


def restore_vm_snapshot(vcpus: Sequence[RegTransport], snap: VmSnapshot, *,
                        gic: AttrDevice | None = None, memory: Sequence[GuestRam] = (),
                        host: HostFirmware | None = None,
                        mp_state: Sequence[MpStateVcpu] | None = None,
                        ) -> tuple[RestoreResult, ...]:
    """Restore ``snap`` into a destination VM that has not run: created the same way (its
    vCPUs initialised, its vGIC created at the same layout and initialised, its memslots
    registered). ``preflight_snapshot`` first; nothing is written unless it finds nothing.
    Then memory, the vCPUs (``restore_vm``), their power states (``KVM_SET_MP_STATE`` of
    ``mp_state``, as for ``save_vm_snapshot``; a snapshot without them leaves each vCPU's
    as it is), the vGIC (``restore_vgic``)."""
    power = _power(vcpus, mp_state)
    report = preflight_snapshot(snap, vcpus, gic=gic, memory=memory, host=host,
                                mp_state=() if power is None else power)
    if not report.ok:
        first = report.problems[0]
        more = (f" (and {len(report.problems) - 1} more problem(s))"
                if len(report.problems) > 1 else "")
        raise RestoreError(f"restore refused, nothing written: {first}{more}",
                           reg_id=first.reg_id)
    restore_memory(snap.memory, memory)
    results = restore_vm(vcpus, snap.vcpus, host=host)
    if snap.mp_states is not None and power is not None:
        # After the registers, as QEMU orders it: the power state is what the vCPU resumes
        # into, so it is set on a vCPU whose context is already complete.
        for v, s in zip(power, snap.mp_states, strict=True):
            v.set_mp_state(s)
    if snap.vgic is not None and gic is not None:
        restore_vgic(gic, snap.vgic, vcpu_mpidrs(vcpus))
    return results
