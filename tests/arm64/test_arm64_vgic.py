"""The in-kernel GICv3 (``sdei_state.vmm.gic``) on real arm64 KVM: created at the layout's
addresses, initialised after the vCPUs, and seen by the guest where the layout says."""

from __future__ import annotations

import errno
import struct

import pytest

from sdei_state.errors import RestoreError
from sdei_state.kvm import DeviceAttrError, Kvm, MmioExit, Vcpu, Vm
from sdei_state.kvm import vgic as uapi
from sdei_state.migration.vgic import restore_problems, restore_vgic, save_vgic
from sdei_state.regs.ids import REG_PC, sys_reg
from sdei_state.vmm.gic import GicLayout, VgicV3

from .arm64_support import B_SELF, GPA, MMIO, mov_imm32, str_x

MPIDR_EL1 = sys_reg(3, 0, 0, 0, 5)
GICD_TYPER = 0x0004
GICR_TYPER = 0x0008


def ldr_w(rt: int, rn: int) -> int:
    return 0xB9400000 | rn << 5 | rt


def _vm_with_gic(kvm: Kvm, layout: GicLayout,
                 code: list[int]) -> tuple[Vm, VgicV3, list[Vcpu]]:
    vm = kvm.create_vm()
    gic = VgicV3.create(vm, layout)
    mem = vm.add_memory(0, GPA, 0x10000)
    mem.write(0, struct.pack(f"<{len(code)}I", *code))
    vcpus = []
    for i in range(layout.nr_vcpus):
        v = vm.create_vcpu(i)
        v.init()
        v.set_reg(REG_PC, GPA)
        vcpus.append(v)
    gic.init()
    return vm, gic, vcpus


def test_vgic_at_the_layout_addresses(kvm: Kvm) -> None:
    layout = GicLayout.default(2, nr_irqs=96)
    # The guest reads GICD_TYPER at the distributor base and stores it to the MMIO doorbell.
    code = [*mov_imm32(1, layout.dist_base + GICD_TYPER), ldr_w(0, 1),
            *mov_imm32(2, MMIO), str_x(0, 2), B_SELF]
    vm, gic, vcpus = _vm_with_gic(kvm, layout, code)
    with vm:
        assert gic.read_layout() == layout
        typer = gic.device.get_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, GICD_TYPER), 32)
        assert typer & 0x1F == 96 // 32 - 1, f"ITLinesNumber of GICD_TYPER {typer:#x}"
        for i, v in enumerate(vcpus):
            mpidr = v.get_reg(MPIDR_EL1)
            lo = gic.device.get_attr(uapi.GRP_REDIST_REGS, uapi.regs_attr(mpidr, GICR_TYPER),
                                     32)
            hi = gic.device.get_attr(uapi.GRP_REDIST_REGS,
                                     uapi.regs_attr(mpidr, GICR_TYPER + 4), 32)
            assert hi == uapi.attr_mpidr(mpidr), f"GICR_TYPER affinity of vCPU {i}"
            assert (lo >> 8) & 0xFFFF == i, f"GICR_TYPER processor number of vCPU {i}"
            assert bool(lo & 1 << 4) == (i == len(vcpus) - 1), "GICR_TYPER.Last"
        ex = vcpus[0].run()
        assert isinstance(ex, MmioExit) and ex.phys_addr == MMIO
        assert ex.value & 0xFFFF_FFFF == typer, "the guest sees the distributor at dist_base"


def test_vgic_refusals_name_the_step(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        gic = VgicV3.create(vm, GicLayout.default(1))
        with pytest.raises(DeviceAttrError) as ei:  # the address is set once
            gic.device.set_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_DIST, 0x0900_0000)
        assert ei.value.errno == errno.EEXIST
        with pytest.raises(DeviceAttrError) as ei:  # misaligned
            gic.device.set_attr(uapi.GRP_ADDR, uapi.KVM_VGIC_V3_ADDR_TYPE_DIST, 0x1234)
        assert ei.value.errno in (errno.EINVAL, errno.EEXIST)
    with kvm.create_vm() as vm:
        VgicV3.create(vm, GicLayout.default(1))
        with pytest.raises(Exception, match="KVM_CREATE_DEVICE"):  # one vGIC per VM
            VgicV3.create(vm, GicLayout.default(1))
    with kvm.create_vm() as vm:
        gic = VgicV3.create(vm, GicLayout.default(1))
        vm.create_vcpu(0).init()
        gic.init()
        with pytest.raises(DeviceAttrError) as ei:  # fixed once initialised
            gic.device.set_attr(uapi.GRP_NR_IRQS, 0, 256, 32)
        assert ei.value.errno == errno.EBUSY
        assert "group 3" in str(ei.value)


def _mpidrs(vcpus: list[Vcpu]) -> tuple[int, ...]:
    return tuple(v.get_reg(MPIDR_EL1) for v in vcpus)


def test_vgic_state_round_trips_exactly(kvm: Kvm) -> None:
    """Save a vGIC whose state was changed through the attributes, restore it into a fresh
    VM of the same layout, save again: every attribute value is equal."""
    layout = GicLayout.default(2, nr_irqs=96)
    vm, gic, vcpus = _vm_with_gic(kvm, layout, [B_SELF])
    with vm:
        mp = _mpidrs(vcpus)
        dev = gic.device
        # Some SPIs enabled, pending, active, prioritised, routed to vCPU 1, level-triggered;
        # a PPI enabled on vCPU 1; the CPU interface's priority mask and group enable.
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x0104), 0x0000_F00F, 32)
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x0C08), 0xAAAA_0000, 32)
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x0204), 0x0000_0101, 32)
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x0304), 0x0000_0002, 32)
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x0424), 0xA0B0_C0D0, 32)
        dev.set_attr(uapi.GRP_DIST_REGS, uapi.regs_attr(0, 0x6000 + 8 * 40), mp[1] & 0xFFFFFF,
                     32)
        dev.set_attr(uapi.GRP_REDIST_REGS, uapi.regs_attr(mp[1], 0x1_0100), 1 << 27, 32)
        dev.set_attr(uapi.GRP_CPU_SYSREGS, uapi.sysreg_attr(mp[1], 3, 0, 4, 6, 0), 0xF0)
        dev.set_attr(uapi.GRP_CPU_SYSREGS, uapi.sysreg_attr(mp[1], 3, 0, 12, 12, 7), 1)
        state = save_vgic(dev, mp)
        named = dict(state.named())
        assert named["GICD_ISENABLER1 (INTID 32-63)"] == 0x0000_F00F
        assert named["ICC_PMR_EL1 of vCPU 1"] == 0xF0
    vm2, gic2, vcpus2 = _vm_with_gic(kvm, layout, [B_SELF])
    with vm2:
        assert restore_problems(gic2.device, state, _mpidrs(vcpus2)) == []
        restore_vgic(gic2.device, state, _mpidrs(vcpus2))
        again = save_vgic(gic2.device, _mpidrs(vcpus2))
        assert again.diff(state) == []
        assert again == state
    vm3, gic3, vcpus3 = _vm_with_gic(kvm, GicLayout.default(2, nr_irqs=128), [B_SELF])
    with vm3, pytest.raises(RestoreError, match=r"nothing written.*nr_irqs"):
        restore_vgic(gic3.device, state, _mpidrs(vcpus3))
