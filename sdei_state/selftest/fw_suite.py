"""The ``firmware-registers`` suite: KVM's firmware pseudo-registers on real arm64 KVM.

In the style of the kernel's get-reg-list selftest: blessed registers are data, grouped in
sublists (core, firmware, system, PMU, pointer auth); a vCPU configuration is a list of
sublists; one checker lists, compares with the blessed set, and GETs then SETs back every
listed register. Then the firmware registers' own rules, each a case: values decode to known
values, an unknown regno is ENOENT, an invalid PSCI version EINVAL, a bitmap change after the
first KVM_RUN EBUSY, a guest's PSCI_VERSION call answers what the register says, and a
save/restore between two VMs through ``sdei_state.migration`` (refused, naming the register,
where the destination cannot take a value). Ids print the kernel way
(``KVM_REG_ARM_FW_REG(0)  /* PSCI_VERSION */``).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from ..errors import RegError, RestoreError
from ..guest.doorbell import BellKind
from ..kvm import Cap, Kvm, MmioExit, Vcpu, VcpuFeature
from ..migration import Blob, VcpuRegisters, restore_vm, save_vm
from ..regs import firmware as fw
from ..regs.ids import (
    CORE_REG_IDS,
    KVM_REG_SIZE_MASK,
    KVM_REG_SIZE_U64,
    KVM_REG_SIZE_U128,
    REG_PC,
    REG_X,
    describe,
    fw_feat_bmap_reg,
    fw_reg,
    sys_reg,
)
from ..regs.sdei import VCPU_STATE_ID
from ..vcpu.transport import RegTransport
from .core import Case, CheckFailed, Skip, Suite, expect_eq
from .programs.catalog import psci_version_call
from .programs.program import GuestProgram


def name(reg_id: int) -> str:
    """An id as the kernel's get-reg-list prints it, with the hex value."""
    return f"{describe(reg_id)} ({reg_id:#018x})"


@dataclass(frozen=True)
class Sublist:
    """Blessed registers that come with vCPU features (none for the base sublists)."""

    name: str
    regs: tuple[int, ...]
    features: tuple[int, ...] = ()
    caps: tuple[Cap, ...] = ()


CORE: Final = Sublist("core", CORE_REG_IDS)  # struct kvm_regs, member by member
FIRMWARE: Final = Sublist("firmware", (
    fw.PSCI_VERSION, *fw.WORKAROUNDS, fw.STD_BMAP, fw.STD_HYP_BMAP, fw.VENDOR_HYP_BMAP))
SYSREGS: Final = Sublist("sysregs", tuple(sys_reg(*e) for e in (
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
PMU: Final = Sublist("pmu", tuple(sys_reg(*e) for e in (
    (3, 3, 9, 12, 0),  # PMCR_EL0
    (3, 3, 9, 12, 1),  # PMCNTENSET_EL0
    (3, 3, 9, 13, 0),  # PMCCNTR_EL0
    (3, 3, 14, 15, 7),  # PMCCFILTR_EL0
)), (VcpuFeature.PMU_V3,), (Cap.ARM_PMU_V3,))
PAUTH: Final = Sublist("pauth", tuple(sys_reg(3, 0, 2, crm, op2) for crm, op2 in (
    (1, 0), (1, 1), (1, 2), (1, 3),  # APIAKEY{LO,HI}_EL1, APIBKEY{LO,HI}_EL1
    (2, 0), (2, 1), (2, 2), (2, 3),  # APDAKEY..., APDBKEY...
    (3, 0), (3, 1),  # APGAKEY{LO,HI}_EL1
)), (VcpuFeature.PTRAUTH_ADDRESS, VcpuFeature.PTRAUTH_GENERIC),
    (Cap.ARM_PTRAUTH_ADDRESS, Cap.ARM_PTRAUTH_GENERIC))

BASE: Final = (CORE, FIRMWARE, SYSREGS)
CONFIGS: Final = {"base": BASE, "pmu": (*BASE, PMU), "pauth": (*BASE, PAUTH),
                  "pmu+pauth": (*BASE, PMU, PAUTH)}

INVALID_PSCI: Final = (0x0, 0x30000, 0xDEADBEEF, 0x10004)
UNKNOWN_IDS: Final = (fw_reg(0x77), fw_feat_bmap_reg(0x77),
                      (fw.PSCI_VERSION & ~KVM_REG_SIZE_MASK) | KVM_REG_SIZE_U128)


# -- helpers -------------------------------------------------------------------------------

@contextmanager
def fresh_vcpu(kvm: Kvm, features: Sequence[int] = (VcpuFeature.PSCI_0_2,),
               program: GuestProgram | None = None) -> Iterator[Vcpu]:
    """vCPU 0 of a new VM (closed afterwards); with ``program`` loaded at its layout."""
    with kvm.create_vm() as vm:
        if program is not None:
            mem = vm.add_memory(0, program.layout.base, program.layout.mem_size)
            mem.write(program.image.base - program.layout.base, program.image.data)
        vcpu = vm.create_vcpu(0)
        vcpu.init(features)
        if program is not None:
            vcpu.set_reg(REG_PC, program.entry)
        yield vcpu


def expect_errno(what: str, call: Callable[[], object], want: int,
                 reg_id: int | None = None) -> RegError:
    """``call`` must raise RegError(``want``) naming ``reg_id``."""
    try:
        call()
    except RegError as e:
        if e.errno != want:
            raise CheckFailed(f"{what}: {e.errname}, want {errno.errorcode[want]}") from None
        if reg_id is not None and e.reg_id != reg_id:
            raise CheckFailed(f"{what}: the error names {name(e.reg_id)}, want "
                              f"{name(reg_id)}") from None
        return e
    raise CheckFailed(f"{what}: succeeded, want {errno.errorcode[want]}")


def _features(config: Sequence[Sublist]) -> tuple[int, ...]:
    return (VcpuFeature.PSCI_0_2, *(f for s in config for f in s.features))


def _require_caps(kvm: Kvm, config: Sequence[Sublist]) -> None:
    for s in config:
        for cap in s.caps:
            if kvm.check_extension(cap) <= 0:
                raise Skip(f"sublist {s.name}: {cap.macro} is 0 on this host")


def _first(failures: Sequence[str], what: str) -> None:
    if failures:
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        raise CheckFailed(f"{what}: {failures[0]}{more}")


def _run_to_first_doorbell(vcpu: Vcpu, program: GuestProgram) -> int:
    """KVM_RUN until the program's first doorbell; its data (x0 of main's first call)."""
    ex = vcpu.run()
    if not isinstance(ex, MmioExit):
        raise CheckFailed(f"{program.name}: first exit {ex!r}, want the call's doorbell")
    bell = program.bell(ex.phys_addr, ex.data, len(ex.data), ex.is_write)
    expect_eq(f"{program.name}: first doorbell", bell.kind, BellKind.MAIN_CALL)
    return bell.data


# -- cases ---------------------------------------------------------------------------------

def _reg_list(config: str) -> Callable[[Any], None]:
    def run(backend: Any) -> None:
        subs = CONFIGS[config]
        _require_caps(backend.kvm, subs)
        with fresh_vcpu(backend.kvm, _features(subs)) as vcpu:
            listed = vcpu.reg_list()
        expect_eq("ids KVM_GET_REG_LIST repeats", len(listed) - len(set(listed)), 0)
        blessed = {r for s in subs for r in s.regs}
        _first([name(r) for r in sorted(blessed - set(listed))],
               f"config {config}: blessed registers not listed")

    return run


def read_write_back(vcpu: RegTransport) -> list[str]:
    """GET every listed register and SET the value read (get-reg-list's round trip); one
    message per register that failed either way."""
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
    return failures


def _get_set(config: str) -> Callable[[Any], None]:
    def run(backend: Any) -> None:
        subs = CONFIGS[config]
        _require_caps(backend.kvm, subs)
        with fresh_vcpu(backend.kvm, _features(subs)) as vcpu:
            failures = read_write_back(vcpu)
        _first(failures, f"config {config}")

    return run


def _values_decode(backend: Any) -> None:
    in_kernel = "in-kernel-sdei" in backend.features
    with fresh_vcpu(backend.kvm) as vcpu:
        listed = [r for r in vcpu.reg_list() if fw.is_firmware_reg(r)]
        missing = [name(r) for r in FIRMWARE.regs if r not in listed]
        _first(missing, "firmware registers not listed")
        values = dict(zip(listed, vcpu.get_regs(listed), strict=True))
    for rid, v in values.items():
        decl = fw.declaration(rid)
        expect_eq(f"{name(rid)} size", rid & KVM_REG_SIZE_MASK, KVM_REG_SIZE_U64)
        text = fw.decode_value(rid, v)
        if "undefined" in text or "not a PSCI" in text or "bit" in text:
            raise CheckFailed(f"{name(rid)} = {v:#x} does not decode to a known value: {text}")
        if decl.kind is fw.FwKind.PSCI_VERSION and v < fw.PsciVersion.V1_0:
            raise CheckFailed(f"{name(rid)} = {text}: a PSCI_0_2 vCPU resets to the newest "
                              "version the kernel has (1.0 or later)")
        if decl.kind is fw.FwKind.BITMAP:
            allowed = decl.upstream_mask | (1 << fw.STD_BIT_SDEI if in_kernel
                                            and rid == fw.STD_BMAP else 0)
            if v & ~allowed:
                raise CheckFailed(f"{name(rid)} = {text}: bits {v & ~allowed:#x} are not "
                                  "upstream's")
            if decl.reset_known and v == 0:
                raise CheckFailed(f"{name(rid)} = 0: a bitmap resets to every bit the host "
                                  "knows")


def _unknown_enoent(backend: Any) -> None:
    ids = list(UNKNOWN_IDS)
    if "in-kernel-sdei" not in backend.features:
        ids.append(VCPU_STATE_ID)  # the SDEI block: upstream KVM has no in-kernel SDEI
    with fresh_vcpu(backend.kvm) as vcpu:
        for rid in ids:
            expect_errno(f"GET {name(rid)}", partial(vcpu.get_reg, rid), errno.ENOENT, rid)
            expect_errno(f"SET {name(rid)}", partial(vcpu.set_reg, rid, 0), errno.ENOENT,
                         rid)


def _invalid_psci(backend: Any) -> None:
    with fresh_vcpu(backend.kvm) as vcpu:
        before = vcpu.get_reg(fw.PSCI_VERSION)
        for bad in INVALID_PSCI:
            e = expect_errno(f"SET {name(fw.PSCI_VERSION)} = {bad:#x}",
                             partial(vcpu.set_reg, fw.PSCI_VERSION, bad), errno.EINVAL,
                             fw.PSCI_VERSION)
            if "PSCI_VERSION" not in str(e):
                raise CheckFailed(f"the error does not name the register: {e}")
            expect_eq(f"PSCI_VERSION after the refused {bad:#x}",
                      vcpu.get_reg(fw.PSCI_VERSION), before)


def _legal_psci(backend: Any) -> None:
    with fresh_vcpu(backend.kvm) as vcpu:
        latest = vcpu.get_reg(fw.PSCI_VERSION)
        for v in fw.PsciVersion:
            if fw.PsciVersion.V0_2 <= v <= latest:
                vcpu.set_reg(fw.PSCI_VERSION, int(v))
                expect_eq(f"PSCI_VERSION after SET {v.label}", vcpu.get_reg(fw.PSCI_VERSION),
                          int(v))


def _bitmap_unknown_bit(backend: Any) -> None:
    with fresh_vcpu(backend.kvm) as vcpu:
        for rid in (fw.STD_BMAP, fw.STD_HYP_BMAP, fw.VENDOR_HYP_BMAP):
            v = vcpu.get_reg(rid)
            expect_errno(f"SET {name(rid)} = {v | 1 << 63:#x}",
                         partial(vcpu.set_reg, rid, v | 1 << 63), errno.EINVAL, rid)
            expect_eq(f"{name(rid)} after the refused SET", vcpu.get_reg(rid), v)


def _workaround_above_host(backend: Any) -> None:
    with fresh_vcpu(backend.kvm) as vcpu:
        for rid in (fw.SMCCC_ARCH_WORKAROUND_1, fw.SMCCC_ARCH_WORKAROUND_3):
            host = vcpu.get_reg(rid)
            vcpu.set_reg(rid, host)  # the host's own level is always accepted
            for v in range(host + 1, 4):
                expect_errno(f"SET {name(rid)} = {v} (host level {host})",
                             partial(vcpu.set_reg, rid, v), errno.EINVAL, rid)


def _bitmaps_locked_after_run(backend: Any) -> None:
    prog = psci_version_call()
    with fresh_vcpu(backend.kvm, program=prog) as vcpu:
        vcpu.set_reg(fw.STD_HYP_BMAP, 0)  # before the first run: any known bits
        vcpu.set_reg(fw.STD_HYP_BMAP, 1)
        _run_to_first_doorbell(vcpu, prog)
        for rid in (fw.STD_BMAP, fw.STD_HYP_BMAP, fw.VENDOR_HYP_BMAP):
            v = vcpu.get_reg(rid)
            expect_errno(f"SET {name(rid)} = {v ^ 1:#x} after KVM_RUN",
                         partial(vcpu.set_reg, rid, v ^ 1), errno.EBUSY, rid)
            vcpu.set_reg(rid, v)  # the same value is still accepted
        vcpu.set_reg(fw.PSCI_VERSION, int(fw.PsciVersion.V1_0))  # not locked by a run
        expect_eq("PSCI_VERSION set after KVM_RUN", vcpu.get_reg(fw.PSCI_VERSION),
                  int(fw.PsciVersion.V1_0))


def _psci_reaches_guest(backend: Any) -> None:
    prog = psci_version_call()
    for version in (None, int(fw.PsciVersion.V1_0)):
        with fresh_vcpu(backend.kvm, program=prog) as vcpu:
            if version is not None:
                vcpu.set_reg(fw.PSCI_VERSION, version)
            want = vcpu.get_reg(fw.PSCI_VERSION)
            got = _run_to_first_doorbell(vcpu, prog)
            expect_eq(f"guest's PSCI_VERSION call (register {want:#x})", got, want)


def _save_restore(backend: Any) -> None:
    kvm = backend.kvm
    changed = ((fw.PSCI_VERSION, int(fw.PsciVersion.V1_0)), (fw.STD_BMAP, 0),
               (fw.VENDOR_HYP_BMAP, 0b01))
    with fresh_vcpu(kvm) as src, fresh_vcpu(kvm) as dst:
        src.set_regs(changed)
        blob = save_vm([src])
        regs = blob.vcpu(0)
        for rid, v in changed:
            expect_eq(f"saved {name(rid)}", regs[rid], v)
        before = dict(zip([r for r, _ in changed], dst.get_regs([r for r, _ in changed]),
                          strict=True))
        if all(before[r] == v for r, v in changed):
            raise CheckFailed("the destination already holds the saved values: nothing shown")
        restore_vm([dst], blob)
        fw_ids = [r for r in blob.reg_ids if fw.is_firmware_reg(r)]
        expect_eq("firmware registers of the destination after restore",
                  {name(r): hex(v) for r, v in zip(fw_ids, dst.get_regs(fw_ids), strict=True)},
                  {name(r): hex(regs[r]) for r in fw_ids})


def _restore_refused(backend: Any) -> None:
    kvm = backend.kvm
    bit = 63 if "in-kernel-sdei" in backend.features else fw.STD_BIT_SDEI
    x0 = REG_X[0]
    with fresh_vcpu(kvm) as src, fresh_vcpu(kvm) as dst:
        src.set_regs([(x0, 0x5E1F_7E57), (fw.PSCI_VERSION, int(fw.PsciVersion.V1_0))])
        saved = save_vm([src]).vcpu(0)
        bad = VcpuRegisters.from_pairs([(r, v | 1 << bit if r == fw.STD_BMAP else v)
                                        for r, v in saved.items()])
        before = dst.get_regs([x0, fw.PSCI_VERSION, fw.STD_BMAP])
        try:
            restore_vm([dst], Blob.from_vcpus([bad]))
        except RestoreError as e:
            expect_eq("the refusal names", name(e.reg_id or 0), name(fw.STD_BMAP))
            if "STD_BMAP" not in str(e) or "nothing written" not in str(e):
                raise CheckFailed(f"the refusal does not say what and that nothing was "
                                  f"written: {e}") from None
        else:
            raise CheckFailed(f"restore of STD_BMAP bit {bit} (unknown to this kernel) was "
                              "not refused")
        expect_eq("destination x0, PSCI_VERSION, STD_BMAP after the refusal (unchanged)",
                  dst.get_regs([x0, fw.PSCI_VERSION, fw.STD_BMAP]), before)


def cases() -> tuple[Case, ...]:
    out: list[Case] = []
    for config in CONFIGS:
        out.append(Case(f"reg-list-{config}", _reg_list(config),
                        "every blessed register of the configuration is listed"))
    for config in CONFIGS:
        out.append(Case(f"get-set-{config}", _get_set(config),
                        "every listed register reads, and writes back the value read"))
    out += [
        Case("values-decode", _values_decode,
             "firmware registers are U64 and decode to known values"),
        Case("unknown-regno-enoent", _unknown_enoent,
             "unknown firmware regnos (and a non-U64 size) are ENOENT for GET and SET"),
        Case("invalid-psci-einval", _invalid_psci,
             "invalid PSCI versions are EINVAL and change nothing"),
        Case("legal-psci-accepted", _legal_psci,
             "every PSCI version up to the kernel's latest is accepted"),
        Case("bitmap-unknown-bit-einval", _bitmap_unknown_bit,
             "a bitmap bit the kernel does not know is EINVAL"),
        Case("workaround-above-host-einval", _workaround_above_host,
             "a WORKAROUND level above the host's is EINVAL"),
        Case("bitmap-change-after-run-ebusy", _bitmaps_locked_after_run,
             "bitmaps cannot change after the first KVM_RUN (EBUSY); PSCI_VERSION can"),
        Case("psci-version-reaches-guest", _psci_reaches_guest,
             "a guest's PSCI_VERSION call returns the register's value"),
        Case("save-restore-between-vms", _save_restore,
             "save_vm/restore_vm carry the firmware registers to a second VM"),
        Case("restore-refused-names-register", _restore_refused,
             "a value the destination refuses stops the restore before any write, named"),
    ]
    return tuple(out)


def suite() -> Suite:
    return Suite("firmware-registers", "KVM's firmware pseudo-registers (get-reg-list style "
                 "sublists, values, errors, run-once lock, save/restore)", cases(),
                 frozenset({"kvm"}))
