"""Live migration of the reference VMM's running Linux guest, for the linux-guest suite.

With every vCPU thread parked (``ReferenceVmm.pause``: out of ``KVM_RUN``, the last MMIO
access finished), ``save`` takes the whole-VM snapshot of ``sdei_state.migration``
(``save_vm_snapshot``: every register ``KVM_GET_REG_LIST`` lists plus the SDEI block from the
provider's register view, the timer included; the vGICv3 through its device attributes;
guest RAM; each vCPU's power state, ``KVM_GET_MP_STATE``, from the ``kvm.Vcpu`` under each
view) and carries it through the project's blob format (``VmSnapshot.to_bytes``), with
the SDEI record so far. ``restore`` builds a fresh VMM (new VM, vGIC, vCPUs) and restores
into it with ``restore_vm_snapshot`` (``preflight_snapshot`` first, nothing written on a
problem; then memory, registers with the timer first, power states, the vGIC), and carries
the record on with a ``migrate`` step. ``migrate`` does both in this process and closes the
old VM; the new VMM is returned unstarted (the caller points its doorbell at it, then starts
it). A ``Snapshot`` can also be written to a directory and restored by another process
(``linux_guest_handoff``).

A guest CPU that is off when the VM is saved (PSCI CPU_OFF, hot-unplugged) is restored off
(``STOPPED``), so the guest's next CPU_ON for it starts it as on the source.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RestoreError, SdeiStateError
from ..kvm import Kvm
from ..migration.vm import VmSnapshot, restore_vm_snapshot, save_vm_snapshot
from ..regs import firmware
from ..vmm.in_kernel import kernel_serves_sdei
from ..vmm.reference import Console, Doorbell
from ..vmm.reference.record import MigrateRecord, Record, from_json, to_json
from ..vmm.reference.sdei_mode import other
from ..vmm.reference.vmm import ReferenceVmm, VmmConfig
from .linux_guest_run import MigrationCost


@dataclass(frozen=True)
class Snapshot:
    cfg: VmmConfig
    blob: bytes
    """The whole VM in the blob format (``VmSnapshot.to_bytes``)."""
    records: tuple[Record, ...]

    @property
    def size(self) -> int:
        return len(self.blob)

    def write(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        (d / "vm.blob").write_bytes(self.blob)
        (d / "records.json").write_text(json.dumps(to_json(self.records)))
        (d / "machine.json").write_text(json.dumps({"vcpus": self.cfg.vcpus,
                                                    "ram_mb": self.cfg.ram_mb}))

    @classmethod
    def read(cls, d: Path) -> Snapshot:
        """ValueError naming what is wrong (the blob itself is checked when restored)."""
        m = json.loads((d / "machine.json").read_text())
        return cls(VmmConfig(m["vcpus"], m["ram_mb"]), (d / "vm.blob").read_bytes(),
                   tuple(from_json(json.loads((d / "records.json").read_text()))))


def save(vmm: ReferenceVmm) -> Snapshot:
    """Everything of a paused VMM."""
    snap = save_vm_snapshot(vmm.regs, gic=vmm.gic.device, memory=[vmm.ram], mp_state=vmm.vcpus)
    return Snapshot(vmm.cfg, snap.to_bytes(), tuple(vmm.records))


def restore(snap: Snapshot, console: Console, *, kvm: Kvm | None = None,
            doorbell: Doorbell | None = None, sdei: str = "provider") -> ReferenceVmm | str:
    """A new, unstarted VMM holding ``snap``, SDEI served as ``sdei`` says (the blob is the
    same in both modes); or why it was refused (nothing restored)."""
    vm_snap = VmSnapshot.from_bytes(snap.blob)
    new = ReferenceVmm(snap.cfg, console, kvm=kvm, doorbell=doorbell, secondaries_off=False,
                       sdei=sdei)
    try:
        restore_vm_snapshot(new.regs, vm_snap, gic=new.gic.device, memory=[new.ram],
                            mp_state=new.vcpus)
    except RestoreError as e:
        new.close()
        return str(e)
    if new.sdei == "provider":
        new.provider.records = [*snap.records, MigrateRecord()]
    return new


def migrate(old: ReferenceVmm, sdei: str | None = None) -> tuple[ReferenceVmm, MigrationCost]:
    """Pause, save, restore into a new VMM in this process (SDEI served as ``sdei`` says,
    by default as in ``old``), close ``old``."""
    t0 = time.monotonic()
    to = old.sdei if sdei is None else sdei
    sides = (old.sdei, to)
    if not old.pause(30):
        return old, MigrationCost(time.monotonic() - t0, 0, problem="the vCPUs did not park",
                                  sides=sides)
    snap = save(old)
    try:
        new = restore(snap, old.console, kvm=old.kvm, doorbell=old.doorbell, sdei=to)
    except (ValueError, SdeiStateError) as e:  # the destination mode cannot be set up
        new = f"{type(e).__name__}: {e}"
    if isinstance(new, str):
        return old, MigrationCost(time.monotonic() - t0, snap.size, problem=new, sides=sides)
    old.shutdown("migrated")
    old.close()
    gate = (new.vcpus[0].get_reg(firmware.STD_BMAP) >> firmware.STD_BIT_SDEI & 1
            if kernel_serves_sdei(new.vcpus[0]) else None)
    return new, MigrationCost(time.monotonic() - t0, snap.size, sides=sides, kernel_gate=gate)


def cross_migrate(old: ReferenceVmm) -> tuple[ReferenceVmm, MigrationCost]:
    """``migrate`` into the other SDEI mode (provider -> kernel, kernel -> provider)."""
    return migrate(old, other(old.sdei))
