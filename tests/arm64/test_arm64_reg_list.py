"""get-reg-list, the kernel selftest's way: blessed registers as data (sublists), vCPU
configurations as lists of sublists, one generic checker.

Per configuration: the listed registers must include every blessed one (missing = failure;
extra ones are reported, since a newer kernel may add registers); every listed register must
read, and writing back the value read must succeed.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import pytest

from sdei_state.errors import KvmError, RegError
from sdei_state.kvm import Cap, Kvm, Vcpu, VcpuFeature
from sdei_state.kvm.arm64 import (
    KVM_REG_SIZE_U32,
    KVM_REG_SIZE_U128,
    REG_ELR_EL1,
    REG_PC,
    REG_PSTATE,
    REG_SP_EL0,
    REG_SP_EL1,
    REG_X,
    core_reg,
    sys_reg,
)

from .arm64_support import BMAP_REGS, FW_REGS, VcpuFactory, name


@dataclass(frozen=True)
class Sublist:
    """Blessed registers that come with a vCPU feature (none for the base)."""

    name: str
    regs: tuple[int, ...]
    features: tuple[int, ...] = ()
    caps: tuple[Cap, ...] = ()


_FP = 336  # offsetof(struct kvm_regs, fp_regs): 16-byte aligned after spsr[5]
CORE = Sublist("core", (
    *REG_X, REG_SP_EL0, REG_PC, REG_PSTATE, REG_SP_EL1, REG_ELR_EL1,
    *(core_reg(288 + 8 * i) for i in range(5)),  # spsr[KVM_NR_SPSR]
    *(core_reg(_FP + 16 * i, KVM_REG_SIZE_U128) for i in range(32)),  # fp_regs.vregs[]
    core_reg(_FP + 512, KVM_REG_SIZE_U32), core_reg(_FP + 516, KVM_REG_SIZE_U32),  # fpsr, fpcr
))
FIRMWARE = Sublist("firmware", (*FW_REGS, *BMAP_REGS))
SYSREGS = Sublist("sysregs", tuple(sys_reg(*e) for e in (
    (3, 0, 0, 0, 5),  # MPIDR_EL1
    (3, 0, 1, 0, 0),  # SCTLR_EL1
    (3, 0, 1, 0, 2),  # CPACR_EL1
    (3, 0, 2, 0, 0),  # TTBR0_EL1
    (3, 0, 2, 0, 1),  # TTBR1_EL1
    (3, 0, 2, 0, 2),  # TCR_EL1
    (3, 0, 5, 1, 0),  # AFSR0_EL1
    (3, 0, 5, 2, 0),  # ESR_EL1
    (3, 0, 6, 0, 0),  # FAR_EL1
    (3, 0, 7, 4, 0),  # PAR_EL1
    (3, 0, 10, 2, 0),  # MAIR_EL1
    (3, 0, 10, 3, 0),  # AMAIR_EL1
    (3, 0, 12, 0, 0),  # VBAR_EL1
    (3, 0, 13, 0, 1),  # CONTEXTIDR_EL1
    (3, 0, 13, 0, 4),  # TPIDR_EL1
    (3, 0, 14, 1, 0),  # CNTKCTL_EL1
    (3, 2, 0, 0, 0),  # CSSELR_EL1
    (3, 3, 13, 0, 2),  # TPIDR_EL0
    (3, 3, 13, 0, 3),  # TPIDRRO_EL0
)))
PMU = Sublist("pmu", tuple(sys_reg(*e) for e in (
    (3, 3, 9, 12, 0),  # PMCR_EL0
    (3, 3, 9, 12, 1),  # PMCNTENSET_EL0
    (3, 3, 9, 13, 0),  # PMCCNTR_EL0
    (3, 3, 14, 15, 7),  # PMCCFILTR_EL0
)), (VcpuFeature.PMU_V3,), (Cap.ARM_PMU_V3,))
PAUTH = Sublist("pauth", tuple(sys_reg(3, 0, 2, crm, op2) for crm, op2 in (
    (1, 0), (1, 1), (1, 2), (1, 3),  # APIAKEY{LO,HI}_EL1, APIBKEY{LO,HI}_EL1
    (2, 0), (2, 1), (2, 2), (2, 3),  # APDAKEY..., APDBKEY...
    (3, 0), (3, 1),  # APGAKEY{LO,HI}_EL1
)), (VcpuFeature.PTRAUTH_ADDRESS, VcpuFeature.PTRAUTH_GENERIC),
    (Cap.ARM_PTRAUTH_ADDRESS, Cap.ARM_PTRAUTH_GENERIC))

BASE = (CORE, FIRMWARE, SYSREGS)
CONFIGS = {
    "base": BASE,
    "pmu": (*BASE, PMU),
    "pauth": (*BASE, PAUTH),
    "pmu+pauth": (*BASE, PMU, PAUTH),
}


def _features(config: tuple[Sublist, ...]) -> tuple[int, ...]:
    return (VcpuFeature.PSCI_0_2, *(f for s in config for f in s.features))


def _require_caps(kvm: Kvm, config: tuple[Sublist, ...]) -> None:
    for s in config:
        for cap in s.caps:
            if kvm.check_extension(cap) <= 0:
                pytest.skip(f"sublist {s.name}: {cap.macro} is 0 on this host")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_blessed_registers_are_listed(kvm: Kvm, make_vcpu: VcpuFactory, config: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    subs = CONFIGS[config]
    _require_caps(kvm, subs)
    listed = make_vcpu(_features(subs)).reg_list()
    assert len(set(listed)) == len(listed), "KVM_GET_REG_LIST repeats an id"
    blessed = {r for s in subs for r in s.regs}
    missing = [name(r) for r in sorted(blessed - set(listed))]
    assert not missing, f"config {config}: blessed registers not listed:\n  " + \
        "\n  ".join(missing)
    extra = len(set(listed) - blessed)
    with capsys.disabled():
        print(f"\n  [{config}] {len(listed)} registers listed, {len(blessed)} blessed, "
              f"{extra} more (not blessed, still read and written back below)")


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_listed_register_reads_and_writes_back(kvm: Kvm, make_vcpu: VcpuFactory,
                                                     config: str) -> None:
    subs = CONFIGS[config]
    _require_caps(kvm, subs)
    vcpu = make_vcpu(_features(subs))
    failures = []
    for rid in vcpu.reg_list():
        try:
            value = vcpu.get_reg(rid)
        except RegError as e:
            failures.append(f"GET {name(rid)}: {e.errname}")
            continue
        try:
            vcpu.set_reg(rid, value)
        except RegError as e:
            failures.append(f"SET {name(rid)} = {value:#x} (the value read): {e.errname}")
    assert not failures, f"config {config}:\n  " + "\n  ".join(failures)


def test_batched_equals_single(vcpu: Vcpu) -> None:
    ids = [r for r in vcpu.reg_list() if (r >> 16) & 0xFFF in (0x10, 0x14, 0x16)]
    assert len(ids) > 80
    assert vcpu.get_regs(ids) == [vcpu.get_reg(r) for r in ids]
    vcpu.set_regs(list(zip(ids, vcpu.get_regs(ids), strict=True)))


def test_reg_list_before_init_is_enoexec(make_vcpu: VcpuFactory) -> None:
    vcpu = make_vcpu(init=False)
    with pytest.raises(KvmError) as ei:
        vcpu.reg_list()
    assert (ei.value.errno, ei.value.what) == (errno.ENOEXEC, "KVM_GET_REG_LIST")
    with pytest.raises(RegError) as er:
        vcpu.get_reg(REG_PC)
    assert er.value.errno == errno.ENOEXEC and er.value.reg_id == REG_PC
