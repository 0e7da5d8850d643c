"""The in-kernel GICv3 (``sdei_state.vmm.gic``) on real arm64 KVM: created at the layout's
addresses, initialised after the vCPUs, and seen by the guest where the layout says."""

from __future__ import annotations

import errno
import struct

import pytest

from sdei_state.kvm import DeviceAttrError, Kvm, MmioExit, Vcpu, Vm
from sdei_state.kvm import vgic as uapi
from sdei_state.kvm.arm64 import REG_PC, sys_reg
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
        assert gic.nr_irqs() == 96
        assert gic.addresses() == (layout.dist_base, layout.redist_base)
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
