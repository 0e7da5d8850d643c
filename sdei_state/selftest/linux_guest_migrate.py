"""Live migration of the reference VMM's running Linux guest, for the linux-guest suite.

With every vCPU thread parked (``ReferenceVmm.pause``: out of ``KVM_RUN``, the last MMIO
access finished), everything a VMM must carry is saved: every register ``KVM_GET_REG_LIST``
lists plus the SDEI block (``migration.save_vm`` over the provider's register view, which
includes the architected timer's registers), written through the project's blob format and
read back; the vGICv3 (``migration.vgic``: distributor, redistributors, CPU interfaces);
guest RAM. A fresh VMM (new VM, vGIC, vCPUs) is built, ``preflight`` checks the blob against
its vCPUs, memory, registers (the timer first, as ``restore_vm`` orders them) and the vGIC
are restored, the SDEI record carries on with a ``migrate`` step, and the old VM is closed.
The new VMM is returned unstarted: the caller points its doorbell at it, then starts it.

Limitation: KVM_{GET,SET}_MP_STATE has no binding here yet, so the destination's vCPUs are
all powered on; the suite migrates only at points where every CPU of the guest is online.
"""

from __future__ import annotations

import time

from ..migration import Blob, preflight, restore_vm, save_vm
from ..migration.vgic import restore_vgic, save_vgic
from ..vmm.reference.record import MigrateRecord
from ..vmm.reference.vmm import ReferenceVmm
from .linux_guest_run import MigrationCost


def migrate(old: ReferenceVmm) -> tuple[ReferenceVmm, MigrationCost]:
    t0 = time.monotonic()
    if not old.pause(30):
        return old, MigrationCost(time.monotonic() - t0, 0, problem="the vCPUs did not park")
    wire = save_vm(old.regs).to_bytes()
    blob = Blob.from_bytes(wire)
    vgic = save_vgic(old.gic.device, old.mpidrs)
    ram = old.ram.read(0, old.ram.size)
    new = ReferenceVmm(old.cfg, old.console, kvm=old.kvm, doorbell=old.doorbell,
                       secondaries_off=False)
    report = preflight(blob, new.regs)
    if not report.ok:
        new.close()
        old.resume()
        return old, MigrationCost(time.monotonic() - t0, len(wire),
                                  problem=f"preflight: {report.problems[0]}")
    new.ram.write(0, ram)
    restore_vm(new.regs, blob)
    restore_vgic(new.gic.device, vgic, new.mpidrs)
    new.provider.records = [*old.provider.records, MigrateRecord()]
    old.shutdown("migrated")
    old.close()
    saved = len(wire) + len(ram) + 12 * len(vgic.values)
    return new, MigrationCost(time.monotonic() - t0, saved)
