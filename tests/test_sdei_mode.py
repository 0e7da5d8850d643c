"""Who serves SDEI in the reference VMM (``vmm.reference.sdei_mode``, ``vmm.in_kernel``), the
``vmm --sdei`` option, and the stock-vmm suite's Linux cross-mode plan, without KVM: the
simulated VM stands in for a kernel with in-kernel SDEI (``HOST_SDEI``) and for stock 6.12."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sdei_state.cli import main
from sdei_state.linux_guest import results
from sdei_state.regs import firmware
from sdei_state.regs import sdei as sdei_regs
from sdei_state.selftest import linux_guest_run, stock_linux
from sdei_state.vcpu.sim import SimVm
from sdei_state.vmm.in_kernel import (
    KernelSdeiOff,
    inject_pending,
    kernel_serves_sdei,
    sdei_registers,
)
from sdei_state.vmm.reference import sdei_mode
from sdei_state.vmm.reference.vmm import ReferenceVmm, VmmConfig

SDEI_IDS = set(sdei_regs.SDEI_REG_IDS)


def _vcpus(host: firmware.HostFirmware = firmware.HOST_SDEI, n: int = 2) -> list[Any]:
    return list(SimVm(n, host=host).vcpus)


@pytest.mark.parametrize("mode", sdei_mode.MODES)
def test_parse_takes_each_mode(mode: str) -> None:
    assert sdei_mode.parse(mode) == mode


@pytest.mark.parametrize("bad", ["", "Kernel", "userspace", "provider "])
def test_parse_refuses_anything_else_in_one_line_naming_it(bad: str) -> None:
    with pytest.raises(sdei_mode.SdeiModeError) as e:
        sdei_mode.parse(bad)
    msg = str(e.value)
    assert repr(bad) in msg and "provider, kernel" in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)


def test_other_flips_the_mode() -> None:
    assert sdei_mode.other("provider") == "kernel"
    assert sdei_mode.other("kernel") == "provider"


def test_kernel_mode_on_a_kernel_with_sdei_runs_the_vcpus_as_they_are() -> None:
    vcpus = _vcpus()
    assert kernel_serves_sdei(vcpus[0])
    views = sdei_mode.vcpu_views("kernel", vcpus)
    assert views == vcpus
    assert vcpus[0].get_reg(firmware.STD_BMAP) & 2  # the kernel serves: its gate stays on


def test_kernel_mode_is_refused_where_the_kernel_has_no_sdei() -> None:
    vcpus = _vcpus(firmware.HOST_LINUX_6_12)
    assert not kernel_serves_sdei(vcpus[0])
    with pytest.raises(sdei_mode.SdeiModeError, match="does not serve SDEI"):
        sdei_mode.vcpu_views("kernel", vcpus)


def test_provider_mode_on_stock_kvm_takes_the_vcpus_as_they_are() -> None:
    vcpus = _vcpus(firmware.HOST_LINUX_6_12)
    assert sdei_mode.vcpu_views("provider", vcpus) == vcpus


def test_provider_mode_on_a_kernel_with_sdei_gates_it_off_and_hides_its_block() -> None:
    vcpus = _vcpus()
    views = sdei_mode.vcpu_views("provider", vcpus)
    assert all(isinstance(v, KernelSdeiOff) for v in views)
    assert not vcpus[0].get_reg(firmware.STD_BMAP) & 2  # VM-wide, cleared through vCPU 0
    assert vcpus[0].get_reg(firmware.STD_BMAP) & 1  # the other bits stay
    for v, raw in zip(views, vcpus, strict=True):
        assert set(v.reg_list()) == set(raw.reg_list()) - SDEI_IDS


def test_inject_pending_and_the_register_read_through_a_kernel_vcpu() -> None:
    v = _vcpus(n=1)[0]
    assert not inject_pending(v, 0)  # not registered: refused, as by the model
    regs = sdei_registers(v)
    assert list(regs) == list(sdei_regs.SDEI_REG_IDS)
    assert tuple(regs.values()) == sdei_regs.SDEI_RESET_VALUES


def test_a_bad_mode_is_refused_before_any_vm_is_made() -> None:
    class NoKvm:
        def create_vm(self) -> None:
            raise AssertionError("a VM was made for a bad mode")

    with pytest.raises(sdei_mode.SdeiModeError, match="'both'"):
        ReferenceVmm(VmmConfig(1, 64), None, kvm=NoKvm(), sdei="both")  # type: ignore[arg-type]


def test_vmm_sdei_option_takes_the_modes_and_refuses_others(
        capsys: pytest.CaptureFixture[str]) -> None:
    from sdei_state.cli import build_parser

    vmm = build_parser()._subparsers._group_actions[0].choices["vmm"]  # type: ignore[union-attr,index]
    (opt,) = [a for a in vmm._actions if a.dest == "sdei"]
    assert tuple(opt.choices) == sdei_mode.MODES and opt.default == "provider"
    assert main(["vmm", "--kernel", "/nonexistent", "--sdei", "firmware"]) == 2
    err = capsys.readouterr().err
    assert "--sdei: invalid choice: 'firmware'" in err and err.count("\n") == 1


def test_the_cross_plan_crosses_each_point_both_ways() -> None:
    side, seen = "provider", []
    for point in stock_linux.PLAN:
        to = sdei_mode.other(side)  # type: ignore[arg-type]
        seen.append(((side, to), point & 0xFF))
        side = to
    for sides in stock_linux.DIRECTIONS:
        assert {k for s, k in seen if s == sides} >= set(stock_linux.POINTS)
        assert sum(s == sides for s, _ in seen) == 5
    assert side == "provider"
    assert set(stock_linux.POINTS) == {k for k in linux_guest_run.KINDS if k}


def test_states_reach_the_module_and_its_new_rounds_parse() -> None:
    args = linux_guest_run.bootargs(2, True, states=True)
    assert "sdei_states=1" in args
    assert "sdei_states" not in linux_guest_run.bootargs(2, True)
    from sdei_state.lab.guest_assets import INIT

    assert "states=${sdei_states:-0}" in INIT.read_text()
    got = results.parse([
        "sdei-test: iteration=1 round=unreg_pending result=pass cpu=1 rc=0 unregister=-5 "
        "after_rc=-2 hotplug=0 again_rc=0",
        "sdei-test: iteration=1 round=masked_pending result=pass rc=0 held=0 unmask=0 "
        "delivered=1"])
    assert [(r.name, r.passed) for r in got.rounds] == [("unreg_pending", True),
                                                         ("masked_pending", True)]
    assert got.rounds[0].detail["unregister"] == "-5"


def test_a_cross_migration_is_labelled_by_its_kind_and_sides() -> None:
    m = linux_guest_run.Migration(1 << 16 | 8 << 8 | 3, 1, 0.1, 10,
                                  sides=("kernel", "provider"))
    assert m.in_handler and m.kind == 3 and "unregister-pending" in m.label
    assert not linux_guest_run.Migration(1 << 16 | 9 << 8 | 4, 0, 0.1, 10).in_handler


def test_the_qemu_layers_linux_guest_says_why_it_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sdei_state.lab import guest_module, qemu_layer
    from sdei_state.lab.config import LabConfig
    from sdei_state.lab.progress import Progress

    cfg = LabConfig(cache=tmp_path, kernel="sdei")
    status, module = qemu_layer._linux_guest(cfg, Progress(quiet=True))
    assert status.startswith("skip no Debian 6.12 kernel") and module == b""
    kdir = tmp_path / "kernels" / "6.12"
    kdir.mkdir(parents=True)
    (kdir / "Image").write_bytes(b"")
    (kdir / "KVER").write_text("6.12.118+deb12-arm64\n")

    def no_compiler(*_a: object, **_k: object) -> Path:
        raise guest_module.BuildUnavailable("no aarch64-linux-gnu-gcc-12 on the host")

    monkeypatch.setattr(guest_module, "build", no_compiler)
    status, module = qemu_layer._linux_guest(cfg, Progress(quiet=True))
    assert status == "skip no aarch64-linux-gnu-gcc-12 on the host" and module == b""
