"""Live migration of the reference VMM's running Linux guest, for the linux-guest suite.

With every vCPU thread parked (``ReferenceVmm.pause``: out of ``KVM_RUN``, the last MMIO
access finished), ``save`` takes everything a VMM must carry: every register
``KVM_GET_REG_LIST`` lists plus the SDEI block (``migration.save_vm`` over the provider's
register view, which includes the architected timer's registers), written through the
project's blob format; the vGICv3 (``migration.vgic``: distributor, redistributors, CPU
interfaces); guest RAM; and the SDEI record so far. ``restore`` builds a fresh VMM (new VM,
vGIC, vCPUs), runs ``preflight`` against its vCPUs, restores RAM, registers (the timer
first, as ``restore_vm`` orders them) and the vGIC, and carries the record on with a
``migrate`` step. ``migrate`` does both in this process and closes the old VM; the new VMM is
returned unstarted (the caller points its doorbell at it, then starts it). A ``Snapshot`` can
also be written to a directory and restored by another process (``linux_guest_handoff``).

Limitation: KVM_{GET,SET}_MP_STATE has no binding here yet, so the destination's vCPUs are
all powered on; the suite migrates only at points where every CPU of the guest is online.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..kvm import Kvm
from ..migration import Blob, preflight, restore_vm, save_vm
from ..migration.vgic import VgicState, restore_vgic, save_vgic
from ..vmm.gic import GicLayout
from ..vmm.reference import Console, Doorbell
from ..vmm.reference.record import MigrateRecord, Record, from_json, to_json
from ..vmm.reference.vmm import ReferenceVmm, VmmConfig
from .linux_guest_run import MigrationCost

FILES: Final = ("registers.blob", "vgic.json", "ram.bin", "records.json", "machine.json")


@dataclass(frozen=True)
class Snapshot:
    cfg: VmmConfig
    registers: bytes
    """Every vCPU's registers, SDEI block included, in the blob format (``Blob.to_bytes``)."""
    vgic: VgicState
    ram: bytes
    records: tuple[Record, ...]

    @property
    def size(self) -> int:
        """Bytes saved: the blob, RAM, and 12 per vGIC attribute (group, attr, u32/u64)."""
        return len(self.registers) + len(self.ram) + 12 * len(self.vgic.values)

    def write(self, d: Path) -> None:
        d.mkdir(parents=True, exist_ok=True)
        lay = self.vgic.layout
        (d / "registers.blob").write_bytes(self.registers)
        (d / "ram.bin").write_bytes(self.ram)
        (d / "vgic.json").write_text(json.dumps({
            "layout": [lay.dist_base, lay.redist_base, lay.nr_vcpus, lay.nr_irqs],
            "mpidrs": list(self.vgic.mpidrs), "values": [list(v) for v in self.vgic.values]}))
        (d / "records.json").write_text(json.dumps(to_json(self.records)))
        (d / "machine.json").write_text(json.dumps({"vcpus": self.cfg.vcpus,
                                                    "ram_mb": self.cfg.ram_mb}))

    @classmethod
    def read(cls, d: Path) -> Snapshot:
        """ValueError (or the library's BlobError) naming what is wrong."""
        m = json.loads((d / "machine.json").read_text())
        g = json.loads((d / "vgic.json").read_text())
        vgic = VgicState(GicLayout(*g["layout"]), tuple(g["mpidrs"]),
                         tuple(tuple(v) for v in g["values"]))
        return cls(VmmConfig(m["vcpus"], m["ram_mb"]), (d / "registers.blob").read_bytes(),
                   vgic, (d / "ram.bin").read_bytes(),
                   tuple(from_json(json.loads((d / "records.json").read_text()))))


def save(vmm: ReferenceVmm) -> Snapshot:
    """Everything of a paused VMM."""
    return Snapshot(vmm.cfg, save_vm(vmm.regs).to_bytes(), save_vgic(vmm.gic.device, vmm.mpidrs),
                    vmm.ram.read(0, vmm.ram.size), tuple(vmm.provider.records))


def restore(snap: Snapshot, console: Console, *, kvm: Kvm | None = None,
            doorbell: Doorbell | None = None) -> ReferenceVmm | str:
    """A new, unstarted VMM holding ``snap``; or the preflight problem (nothing restored)."""
    blob = Blob.from_bytes(snap.registers)
    new = ReferenceVmm(snap.cfg, console, kvm=kvm, doorbell=doorbell, secondaries_off=False)
    report = preflight(blob, new.regs)
    if not report.ok:
        new.close()
        return f"preflight: {report.problems[0]}"
    new.ram.write(0, snap.ram)
    restore_vm(new.regs, blob)
    restore_vgic(new.gic.device, snap.vgic, new.mpidrs)
    new.provider.records = [*snap.records, MigrateRecord()]
    return new


def migrate(old: ReferenceVmm) -> tuple[ReferenceVmm, MigrationCost]:
    """Pause, save, restore into a new VMM in this process, close ``old``."""
    t0 = time.monotonic()
    if not old.pause(30):
        return old, MigrationCost(time.monotonic() - t0, 0, problem="the vCPUs did not park")
    snap = save(old)
    new = restore(snap, old.console, kvm=old.kvm, doorbell=old.doorbell)
    if isinstance(new, str):
        return old, MigrationCost(time.monotonic() - t0, snap.size, problem=new)
    old.shutdown("migrated")
    old.close()
    return new, MigrationCost(time.monotonic() - t0, snap.size)
