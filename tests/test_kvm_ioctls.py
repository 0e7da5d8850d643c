"""The numbers and layouts of the kernel boundary, checked against the kernel's own headers.

- ioctl numbers (``sdei_state.kvm.ioctls``) against ``_IOC`` arithmetic and the struct sizes of
  ``cdefs/kvm.h`` as cffi lays them out, in both cffi modes;
- the same numbers, struct sizes/offsets and enum values against a C program compiled with the
  uapi headers: the host's ``<linux/kvm.h>`` for the generic part, and arm64 uapi headers (from
  ``linux-libc-dev:arm64``, which ``sdei-state lab build`` unpacks) for the arm64 part. Each
  skips with the reason when there is no compiler or no such headers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdei_state.kvm import arm64, ffi, ioctls
from sdei_state.kvm.caps import Cap
from sdei_state.kvm.exits import ExitReason, SystemEventType
from sdei_state.kvm.ffi import FfiBackend
from sdei_state.regs import firmware, ids


@pytest.fixture(params=["abi", "api"])
def be(request: pytest.FixtureRequest) -> FfiBackend:
    if request.param == "api":
        why = ffi.api_unavailable_reason()
        if why:
            pytest.skip(f"cffi API mode: {why}")
    return ffi.backend(request.param)


def test_ioc_arithmetic() -> None:
    # Values the uapi headers give (README of the shared lab; api.rst).
    assert ioctls.KVM_CREATE_VM == 0xAE01
    assert ioctls.KVM_GET_ONE_REG == 0x4010AEAB
    assert ioctls.KVM_SET_ONE_REG == 0x4010AEAC
    assert ioctls.KVM_GET_REG_LIST == 0xC008AEB0
    assert ioctls.KVM_ARM_PREFERRED_TARGET == 0x8020AEAF
    assert ioctls.KVM_GET_MP_STATE == 0x8004AE98
    assert ioctls.KVM_SET_MP_STATE == 0x4004AE99
    for i in ioctls.IOCTLS:
        assert i.number == (i.direction << 30 | i.size << 16 | ioctls.KVMIO << 8 | i.nr)
    with pytest.raises(ValueError, match="out of range"):
        ioctls.ioc(0, 0xAE, 0x100, 0)


def test_ioctl_sizes_match_cdefs(be: FfiBackend) -> None:
    for i in ioctls.IOCTLS:
        if i.struct is None:
            assert i.size == 0 and i.direction == ioctls.IOC_NONE, i.name
        else:
            assert be.ffi.sizeof(i.struct) == i.size, i.name


def test_core_reg_offsets_match_cdefs(be: FfiBackend) -> None:
    off = be.ffi.offsetof
    s = "struct kvm_regs_core"
    regs = off(s, "regs")
    by_member = {c.member: c for c in ids.CORE_MEMBERS}
    for member, offset in (("regs.regs[7]", regs + off("struct user_pt_regs", "regs") + 7 * 8),
                           ("regs.sp", regs + off("struct user_pt_regs", "sp")),
                           ("regs.pc", regs + off("struct user_pt_regs", "pc")),
                           ("regs.pstate", regs + off("struct user_pt_regs", "pstate")),
                           ("sp_el1", off(s, "sp_el1")), ("elr_el1", off(s, "elr_el1")),
                           (f"spsr[{ids.KVM_SPSR_EL1}]", off(s, "spsr") + 8 * ids.KVM_SPSR_EL1)):
        assert by_member[member].offset == offset // 4, member  # KVM_REG_ARM_CORE_REG()
    # Spelled out as the kernel's get-reg-list selftest prints them.
    assert ids.REG_X[0] == 0x6030000000100000
    assert ids.REG_PC == 0x6030000000100040
    assert ids.REG_PSTATE == 0x6030000000100042
    assert ids.REG_VBAR_EL1 == 0x603000000013C600


# -- against the C headers --------------------------------------------------------------------

def _generic_checks(be: FfiBackend) -> list[tuple[str, str, str, int]]:
    """(label, guard macro or "", C expression, expected value)."""
    f = be.ffi
    out: list[tuple[str, str, str, int]] = [(i.name, i.name, i.name, i.number)
                                            for i in ioctls.IOCTLS
                                            if i.struct is None or "vcpu_init" not in i.struct]
    for st in ("kvm_one_reg", "kvm_reg_list", "kvm_userspace_memory_region",
               "kvm_device_attr", "kvm_mp_state"):
        out.append((f"sizeof {st}", "", f"sizeof(struct {st})", f.sizeof(f"struct {st}")))
    run_fields = {  # ours -> the header's name (6.1 headers call hypercall.flags 'longmode')
        "exit_reason": "exit_reason", "immediate_exit": "immediate_exit",
        "mmio": "mmio", "hypercall": "hypercall", "system_event": "system_event",
        "fail_entry": "fail_entry", "internal": "internal", "arm_nisv": "arm_nisv",
        "padding": "padding",
    }
    for ours, theirs in run_fields.items():
        out.append((f"kvm_run.{ours}", "", f"offsetof(struct kvm_run, {theirs})",
                    f.offsetof("struct kvm_run", ours)))
    for st, fields, theirs_of in (
        ("kvm_run_mmio", ("phys_addr", "data", "len", "is_write"), "mmio"),
        ("kvm_run_hypercall", ("nr", "args", "ret"), "hypercall"),
        ("kvm_run_system_event", ("type", "ndata", "data"), "system_event"),
        ("kvm_run_internal", ("suberror", "ndata", "data"), "internal"),
        ("kvm_run_arm_nisv", ("esr_iss", "fault_ipa"), "arm_nisv"),
    ):
        for fld in fields:
            out.append((f"{theirs_of}.{fld}", "",
                        f"offsetof(struct kvm_run, {theirs_of}.{fld}) - "
                        f"offsetof(struct kvm_run, {theirs_of})",
                        f.offsetof(f"struct {st}", fld)))
    out.append(("hypercall.flags", "", "offsetof(struct kvm_run, hypercall.longmode) - "
                "offsetof(struct kvm_run, hypercall)",
                f.offsetof("struct kvm_run_hypercall", "flags")))
    out += [(f"KVM_EXIT_{r.name}", f"KVM_EXIT_{r.name}", f"KVM_EXIT_{r.name}", r.value)
            for r in ExitReason]
    out += [(c.macro, c.macro, c.macro, c.value) for c in Cap]
    out += [(f"KVM_SYSTEM_EVENT_{t.name}", f"KVM_SYSTEM_EVENT_{t.name}",
             f"KVM_SYSTEM_EVENT_{t.name}", t.value) for t in SystemEventType]
    out += [(f"KVM_MP_STATE_{m.name}", "", f"KVM_MP_STATE_{m.name}", m.value)
            for m in arm64.MpState]
    out.append(("KVM_REG_SIZE_U64", "KVM_REG_SIZE_U64", "KVM_REG_SIZE_U64",
                ids.KVM_REG_SIZE_U64))
    return out


def _arm64_checks(be: FfiBackend) -> list[tuple[str, str, str, int]]:
    f = be.ffi
    out = [(i.name, "", i.name, i.number) for i in ioctls.IOCTLS
           if i.struct is not None and "vcpu_init" in i.struct]
    out += [
        ("sizeof kvm_vcpu_init", "", "sizeof(struct kvm_vcpu_init)",
         f.sizeof("struct kvm_vcpu_init")),
        ("sizeof kvm_smccc_filter", "KVM_ARM_VM_SMCCC_FILTER", "sizeof(struct kvm_smccc_filter)",
         f.sizeof("struct kvm_smccc_filter")),
        ("kvm_smccc_filter.action", "KVM_ARM_VM_SMCCC_FILTER",
         "offsetof(struct kvm_smccc_filter, action)",
         f.offsetof("struct kvm_smccc_filter", "action")),
        ("KVM_ARM_VM_SMCCC_CTRL", "KVM_ARM_VM_SMCCC_CTRL", "KVM_ARM_VM_SMCCC_CTRL",
         arm64.KVM_ARM_VM_SMCCC_CTRL),
        ("KVM_ARM_VM_SMCCC_FILTER", "KVM_ARM_VM_SMCCC_FILTER", "KVM_ARM_VM_SMCCC_FILTER",
         arm64.KVM_ARM_VM_SMCCC_FILTER),
        ("KVM_SPSR_EL1", "", "KVM_SPSR_EL1", ids.KVM_SPSR_EL1),
    ]
    core = "KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG"
    for label, field, ours in (
        ("x0", "regs.regs[0]", ids.REG_X[0]), ("x30", "regs.regs[30]", ids.REG_X[30]),
        ("sp", "regs.sp", ids.REG_SP_EL0), ("pc", "regs.pc", ids.REG_PC),
        ("pstate", "regs.pstate", ids.REG_PSTATE), ("sp_el1", "sp_el1", ids.REG_SP_EL1),
        ("elr_el1", "elr_el1", ids.REG_ELR_EL1),
        ("spsr[EL1]", "spsr[KVM_SPSR_EL1]", ids.REG_SPSR_EL1),
    ):
        out.append((f"core {label}", "", f"{core}({field})", ours))
    out += [
        ("VBAR_EL1", "", "ARM64_SYS_REG(3, 0, 12, 0, 0)", ids.REG_VBAR_EL1),
        ("KVM_REG_ARM_PSCI_VERSION", "", "KVM_REG_ARM_PSCI_VERSION", firmware.PSCI_VERSION),
        ("KVM_REG_ARM_STD_BMAP", "KVM_REG_ARM_STD_BMAP", "KVM_REG_ARM_STD_BMAP",
         firmware.STD_BMAP),
    ]
    out += [(f"KVM_ARM_VCPU_{v.name}", f"KVM_ARM_VCPU_{v.name}", f"KVM_ARM_VCPU_{v.name}",
             v.value) for v in arm64.VcpuFeature]
    out += [(f"KVM_SMCCC_FILTER_{a.name}", "KVM_ARM_VM_SMCCC_FILTER",
             f"KVM_SMCCC_FILTER_{a.name}", a.value) for a in arm64.SmcccFilterAction]
    return out


def _compile_and_run(tmp: Path, checks: list[tuple[str, str, str, int]],
                     include_dirs: list[Path]) -> dict[str, int]:
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc!r} not on PATH) to read the uapi headers with")
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/kvm.h>",
             "int main(void) {"]
    for i, (_label, guard, expr, _ours) in enumerate(checks):
        stmt = f'  printf("{i} %llu\\n", (unsigned long long)({expr}));'
        lines += [f"#ifdef {guard}", stmt, "#endif"] if guard else [stmt]
    lines += ["  return 0;", "}"]
    src = tmp / "chk.c"
    src.write_text("\n".join(lines) + "\n")
    exe = tmp / "chk"
    args = [cc, "-o", str(exe), str(src)] + [f"-I{d}" for d in include_dirs]
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, f"compiling against the uapi headers failed:\n{r.stderr}"
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {checks[int(i)][0]: int(v) for i, v in (ln.split() for ln in out.splitlines())}


def _compare(checks: list[tuple[str, str, str, int]], got: dict[str, int],
             must_have: set[str]) -> None:
    bad = [f"{label}: header {got[label]:#x}, ours {ours:#x}"
           for label, _g, _e, ours in checks if label in got and got[label] != ours]
    assert not bad, "mismatches with the uapi headers:\n" + "\n".join(bad)
    missing = must_have - got.keys()
    assert not missing, f"the headers lack {sorted(missing)}"


def test_generic_against_host_headers(be: FfiBackend, tmp_path: Path) -> None:
    if not Path("/usr/include/linux/kvm.h").is_file():
        pytest.skip("no /usr/include/linux/kvm.h (Debian: apt-get install linux-libc-dev)")
    checks = _generic_checks(be)
    got = _compile_and_run(tmp_path, checks, [])
    _compare(checks, got, {c[0] for c in checks if not c[1]} | {"KVM_GET_ONE_REG", "KVM_RUN"})


def _arm64_uapi_dirs() -> Iterator[Path]:
    env = os.environ.get("SDEI_STATE_ARM64_UAPI")
    if env:
        yield Path(env)
    from sdei_state.lab.config import default_cache_dir

    yield default_cache_dir() / "uapi-arm64" / "usr" / "include"


def test_arm64_against_arm64_headers(be: FfiBackend, tmp_path: Path) -> None:
    root = next((d for d in _arm64_uapi_dirs()
                 if (d / "aarch64-linux-gnu" / "asm" / "kvm.h").is_file()), None)
    if root is None:
        pytest.skip("no arm64 uapi headers: `sdei-state lab build` unpacks linux-libc-dev:arm64 "
                    "into the lab cache, or point SDEI_STATE_ARM64_UAPI at a usr/include")
    checks = _arm64_checks(be)
    got = _compile_and_run(tmp_path, checks, [root / "aarch64-linux-gnu", root])
    _compare(checks, got, {c[0] for c in checks if not c[1]})
