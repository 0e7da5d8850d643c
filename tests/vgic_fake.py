"""A fake vGICv3 device for host-side tests of ``sdei_state.migration.vgic``: an attribute
store with the userspace-access rules of Linux 6.12 that the restore order depends on
(``arch/arm64/kvm/vgic/vgic-mmio-v3.c``, ``vgic-sys-reg-v3.c``), and a log of every write."""

from __future__ import annotations

import errno
from typing import Literal

from sdei_state.kvm import DeviceAttrError
from sdei_state.kvm import vgic as uapi
from sdei_state.migration.vgic_table import Access, Role, accesses
from sdei_state.vmm.gic import GicLayout

ICC_SRE = "ICC_SRE_EL1"
ICC_CTLR = "ICC_CTLR_EL1"


class FakeVgic:
    """Holds one value per attribute of the table. Identification registers keep the values
    given at construction (writes ignored, or EINVAL unless equal for GICD_TYPER2); set-only
    registers OR bits in and their clear twins clear them; ISPENDR sets exactly; ICC_SRE_EL1
    without SRE is EINVAL; ICC_CTLR_EL1.PRIbits decides which ICC_AP*R<n> exist."""

    def __init__(self, layout: GicLayout, mpidrs: tuple[int, ...], *, pri_bits: int = 7,
                 ident: dict[str, int] | None = None, redist_region: bool = True) -> None:
        self.layout = layout
        self.redist_region = redist_region
        self.table = {(a.group, a.attr): a for a in accesses(layout.nr_irqs, mpidrs)}
        self.clear_of = {(a.group, a.clear_attr): a for a in self.table.values()
                         if a.clear_attr is not None}
        self.values: dict[tuple[int, int], int] = dict.fromkeys(self.table, 0)
        self.pri_bits: dict[int, int] = {}
        for key, a in self.table.items():
            if a.reg.name == ICC_CTLR:
                self.values[key] = (pri_bits - 1) << 8
                self.pri_bits[self._mpidr(a)] = pri_bits
            if a.reg.name == ICC_SRE:
                self.values[key] = 0x7
        for key, a in self.table.items():
            if ident and a.name in ident:
                self.values[key] = ident[a.name]
        self.log: list[tuple[str, int]] = []

    @staticmethod
    def _mpidr(a: Access) -> int:
        return a.attr >> 32

    def _err(self, err: int, op: str, group: int, attr: int) -> DeviceAttrError:
        return DeviceAttrError(err, op, "fake vGICv3", group, attr)

    def _apr_missing(self, a: Access) -> bool:
        # vgic_v3_max_apr_idx: 5 priority bits -> AP*R0, 6 -> 0-1, 7 -> 0-3.
        if not a.reg.name.startswith("ICC_AP"):
            return False
        n = int(a.reg.name[len("ICC_AP0R")])
        bits = self.pri_bits[self._mpidr(a)]
        return n > {5: 0, 6: 1, 7: 3}[bits]

    def has_attr(self, group: int, attr: int) -> bool:
        if group == uapi.GRP_ADDR:
            return attr in (uapi.KVM_VGIC_V3_ADDR_TYPE_DIST, uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST) \
                or (self.redist_region and attr == uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION)
        return group == uapi.GRP_NR_IRQS or (group, attr) in self.table

    def get_attr(self, group: int, attr: int, width: Literal[32, 64] = 64) -> int:
        if group == uapi.GRP_ADDR:
            if attr == uapi.KVM_VGIC_V3_ADDR_TYPE_DIST:
                return self.layout.dist_base
            if attr == uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST_REGION and self.redist_region:
                return uapi.redist_region(self.layout.redist_base, self.layout.nr_vcpus)
            if attr == uapi.KVM_VGIC_V3_ADDR_TYPE_REDIST:
                return self.layout.redist_base
        if group == uapi.GRP_NR_IRQS:
            return self.layout.nr_irqs
        a = self.table.get((group, attr))
        if a is None:
            raise self._err(errno.ENXIO, "KVM_GET_DEVICE_ATTR", group, attr)
        if self._apr_missing(a):
            raise self._err(errno.EINVAL, "KVM_GET_DEVICE_ATTR", group, attr)
        assert width == a.width, f"{a.name} read as u{width}"
        return self.values[(group, attr)]

    def set_attr(self, group: int, attr: int, value: int = 0,
                 width: Literal[0, 32, 64] = 64) -> None:
        twin = self.clear_of.get((group, attr))
        if twin is not None:
            self.log.append((f"clear {twin.name}", value))
            self.values[(group, twin.attr)] &= ~value & 0xFFFF_FFFF
            return
        a = self.table.get((group, attr))
        if a is None:
            raise self._err(errno.ENXIO, "KVM_SET_DEVICE_ATTR", group, attr)
        assert width == a.width, f"{a.name} written as u{width}"
        key = (group, attr)
        if a.reg.role is Role.IDENT:
            if a.reg.name == "GICD_TYPER2" and value != self.values[key]:
                raise self._err(errno.EINVAL, "KVM_SET_DEVICE_ATTR", group, attr)
            self.log.append((a.name, value))
            return  # write ignored
        if a.reg.name == ICC_SRE and not value & 1:
            raise self._err(errno.EINVAL, "KVM_SET_DEVICE_ATTR", group, attr)
        if self._apr_missing(a):
            raise self._err(errno.EINVAL, "KVM_SET_DEVICE_ATTR", group, attr)
        if a.reg.name == ICC_CTLR:
            bits = ((value >> 8) & 7) + 1
            if bits > self.pri_bits[self._mpidr(a)]:
                raise self._err(errno.EINVAL, "KVM_SET_DEVICE_ATTR", group, attr)
            self.pri_bits[self._mpidr(a)] = bits
        self.log.append((a.name, value))
        if a.clear_attr is not None:  # ISENABLER / ISACTIVER: set-only
            self.values[key] |= value
        else:
            self.values[key] = value
