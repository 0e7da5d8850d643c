"""``Device`` (KVM_CREATE_DEVICE and the device attributes), the vGIC's uapi numbers and
``GicLayout``.

The generic device behaviour runs against this host's x86 /dev/kvm with the one device x86
KVM always offers, the KVM-VFIO pseudo device (``KVM_DEV_TYPE_VFIO``); the vGIC itself is
exercised in the lab (``tests/arm64/test_arm64_vgic.py``). The uapi numbers are compared with
the arm64 headers the lab cache holds.
"""

from __future__ import annotations

import errno
import gc
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_kvm_ioctls import _arm64_uapi_dirs, _compare, _compile_and_run

from sdei_state.errors import KvmError
from sdei_state.kvm import Device, DeviceAttrError, DeviceType, Kvm, ffi, ioctls
from sdei_state.kvm import vgic as uapi
from sdei_state.kvm.ffi import FfiBackend
from sdei_state.vmm.gic import GicLayout

KVM_DEV_TYPE_VFIO = 4
KVM_DEV_VFIO_FILE = 1  # group; attr KVM_DEV_VFIO_FILE_ADD = 1 takes an __s32 fd
KVM_DEV_VFIO_FILE_ADD = 1


def _why_no_x86_kvm() -> str | None:
    if platform.machine() != "x86_64":
        return f"x86 KVM device tests; this host is {platform.machine()}"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "no read/writable /dev/kvm"
    return None


@pytest.fixture(params=["abi", "api"])
def kvm(request: pytest.FixtureRequest) -> Iterator[Kvm]:
    why = _why_no_x86_kvm()
    if why:
        pytest.skip(why)
    if request.param == "api":
        why = ffi.api_unavailable_reason()
        if why:
            pytest.skip(f"cffi API mode: {why}")
    with Kvm(mode=request.param) as k:
        yield k


def _vfio(kvm: Kvm) -> tuple[Device, object]:
    vm = kvm.create_vm()
    try:
        vm.check_device(KVM_DEV_TYPE_VFIO)
    except KvmError as e:
        vm.close()
        pytest.skip(f"this host's KVM has no KVM-VFIO device: {e}")
    return vm.create_device(KVM_DEV_TYPE_VFIO), vm


def test_create_device_and_attributes(kvm: Kvm) -> None:
    dev, vm = _vfio(kvm)
    with vm:  # type: ignore[attr-defined]
        assert dev.fd >= 0 and not os.get_inheritable(dev.fd)
        assert dev.has_attr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD)
        assert not dev.has_attr(KVM_DEV_VFIO_FILE, 0x77)  # ENXIO: no such attribute
        assert not dev.has_attr(0x55, 0)
        # A u32 payload that is not a VFIO group fd: KVM refuses, the error names it all.
        with pytest.raises(DeviceAttrError) as ei:
            dev.set_attr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, 0xFFFF_FFFF, 32)
        e = ei.value
        assert (e.group, e.attr, e.op) == (KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD,
                                           "KVM_SET_DEVICE_ATTR")
        assert e.errno in (errno.EBADF, errno.EINVAL)
        assert "group 1 attr 0x0000000000000001" in str(e)
        with pytest.raises(DeviceAttrError) as ei:
            dev.get_attr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD)  # VFIO has no GET
        assert ei.value.op == "KVM_GET_DEVICE_ATTR"


def test_values_refused_before_the_ioctl(kvm: Kvm) -> None:
    dev, vm = _vfio(kvm)
    with vm:  # type: ignore[attr-defined]
        for value, width in ((1 << 32, 32), (-1, 64), (True, 64), (1 << 64, 64)):
            with pytest.raises(DeviceAttrError, match="not a u") as ei:
                dev.set_attr(KVM_DEV_VFIO_FILE, KVM_DEV_VFIO_FILE_ADD, value, width)  # type: ignore[arg-type]
            assert ei.value.errno == errno.ERANGE
        with pytest.raises(ValueError, match="32 or 64"):
            dev.get_attr(1, 1, 16)  # type: ignore[arg-type]
        with pytest.raises(DeviceAttrError, match="u32"):
            dev.has_attr(1 << 32, 0)


def test_device_closes_with_its_vm_and_is_not_kept_alive(kvm: Kvm) -> None:
    dev, vm = _vfio(kvm)
    vm.close()  # type: ignore[attr-defined]
    assert dev.closed
    with pytest.raises(KvmError) as ei:
        dev.has_attr(1, 1)
    assert ei.value.errno == errno.EBADF
    dev2, vm2 = _vfio(kvm)
    fd = dev2.fd
    del dev2
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)  # dropped: the fd is closed at once (the VM holds it only weakly)
    vm2.close()  # type: ignore[attr-defined]


def test_vgic_is_not_an_x86_device(kvm: Kvm) -> None:
    with kvm.create_vm() as vm:
        with pytest.raises(KvmError) as ei:
            vm.check_device(DeviceType.ARM_VGIC_V3)
        assert ei.value.errno == errno.ENODEV
        assert "KVM_CREATE_DEVICE(type 7, TEST)" in str(ei.value)


# -- numbers ----------------------------------------------------------------------------------

def test_create_device_number() -> None:
    assert ioctls.KVM_CREATE_DEVICE == 0xC00CAEE0  # _IOWR(KVMIO, 0xe0, 12 bytes)


def test_attr_encodings() -> None:
    mpidr = 0x80000000 | 0x12 << 32 | 0x34 << 16 | 0x56 << 8 | 0x7  # Aff3..0, RES1 bit 31
    assert uapi.attr_mpidr(mpidr) == 0x12345607
    assert uapi.regs_attr(mpidr, 0x10100) == 0x12345607_00010100
    # ICC_SRE_EL1 = S3_0_C12_C12_5
    assert uapi.sysreg_attr(0, 3, 0, 12, 12, 5) == 0xC665
    assert uapi.level_attr(1, 32) == 0x1_0000_0020
    with pytest.raises(ValueError, match="multiple of 32"):
        uapi.level_attr(0, 33)
    assert uapi.redist_region(0x080A_0000, 4) == 4 << 52 | 0x080A_0000
    for base, count in ((0x080A_1000, 1), (0x080A_0000, 0), (1 << 52, 1)):
        with pytest.raises(ValueError):
            uapi.redist_region(base, count)


def test_gic_layout() -> None:
    g = GicLayout.default(4)
    assert g.reg == (0x0800_0000, 0x1_0000, 0x080A_0000, 4 * 0x2_0000)
    assert g.nr_spis == g.nr_irqs - 32
    assert g.redist_frame(3) == 0x080A_0000 + 3 * 0x2_0000
    base: dict[str, object] = dict(dist_base=0x0800_0000, redist_base=0x080A_0000,
                                   nr_vcpus=2, nr_irqs=128)
    bad: list[dict[str, object]] = [
        dict(dist_base=0x0800_1000), dict(nr_irqs=100), dict(nr_irqs=32), dict(nr_vcpus=0),
        dict(redist_base=0x0800_0000), dict(nr_irqs=True)]
    for kw in bad:
        with pytest.raises(ValueError, match=r"GIC|Layout"):
            GicLayout(**{**base, **kw})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vCPU 4 outside"):
        g.redist_frame(4)


def _vgic_checks(be: FfiBackend) -> list[tuple[str, str, str, int]]:
    out = [(d.macro, d.macro, d.macro, d.value) for d in DeviceType]
    out.append(("sizeof kvm_create_device", "", "sizeof(struct kvm_create_device)",
                be.ffi.sizeof("struct kvm_create_device")))
    out.append(("KVM_CREATE_DEVICE", "", "KVM_CREATE_DEVICE", ioctls.KVM_CREATE_DEVICE))
    out.append(("KVM_CREATE_DEVICE_TEST", "", "KVM_CREATE_DEVICE_TEST", 1))
    for name, value in vars(uapi).items():
        # The _SIZE macros expand to SZ_64K, which the uapi headers do not define.
        if name.startswith(("KVM_", "VGIC_LEVEL")) and not name.endswith("_SIZE") \
                and isinstance(value, int):
            out.append((name, "", name, value))
    for grp, macro in uapi.GROUP_NAMES.items():
        out.append((macro, "", macro, grp))
    return out


def test_vgic_numbers_against_arm64_headers(tmp_path: Path) -> None:
    root = next((d for d in _arm64_uapi_dirs()
                 if (d / "aarch64-linux-gnu" / "asm" / "kvm.h").is_file()), None)
    if root is None:
        pytest.skip("no arm64 uapi headers: `sdei-state lab build` unpacks linux-libc-dev:arm64 "
                    "into the lab cache, or point SDEI_STATE_ARM64_UAPI at a usr/include")
    checks = _vgic_checks(ffi.backend("abi"))
    got = _compile_and_run(tmp_path, checks, [root / "aarch64-linux-gnu", root])
    _compare(checks, got, {c[0] for c in checks})
