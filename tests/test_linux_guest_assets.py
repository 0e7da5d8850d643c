"""The linux-guest pieces that run on the host: the module's cross-build command and cache
key, the nested initramfs, the asset check, the console parser, and the suite being opt-in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from sdei_state.lab import guest_assets, guest_module
from sdei_state.lab.progress import Progress
from sdei_state.linux_guest import missing_reason, results
from sdei_state.selftest import all_suites, select
from sdei_state.selftest.backends import SimBackend
from sdei_state.selftest.core import SelftestError

KVER = "6.12.118+deb12-arm64"


def test_header_packages_are_exactly_the_kernels() -> None:
    p = guest_module.HeaderPkgs(KVER)
    assert (p.headers, p.common, p.kbuild) == (
        "linux-headers-6.12.118+deb12-arm64", "linux-headers-6.12.118+deb12-common",
        "linux-kbuild-6.12.118+deb12")


def test_build_command_uses_the_staged_makefile_without_btf(tmp_path: Path) -> None:
    cmd = guest_module.build_command(tmp_path / "tree", tmp_path / "mod")
    assert cmd[:5] == ["make", "-s", "-C", str(tmp_path / "tree"), "-f"]
    assert "Makefile.staged" in cmd and f"M={tmp_path / 'mod'}" in cmd
    assert "CONFIG_DEBUG_INFO_BTF_MODULES=" in cmd and cmd[-1] == "modules"


def test_cache_key_follows_every_input() -> None:
    base = guest_module.cache_key(KVER, ["a=1"], "gcc 12")
    assert base == guest_module.cache_key(KVER, ["a=1"], "gcc 12")
    others = {guest_module.cache_key("6.12.119+deb12-arm64", ["a=1"], "gcc 12"),
              guest_module.cache_key(KVER, ["a=2"], "gcc 12"),
              guest_module.cache_key(KVER, ["a=1"], "gcc 13")}
    assert base not in others and len(others) == 3
    assert {p.name for p in guest_module.sources()} == {"Kbuild", "sdei_api.h", "sdei_test.c",
                                                        "sdei_hold.c"}
    kbuild = (guest_module.MODULE_DIR / "Kbuild").read_text()
    assert all(f"{n}.o" in kbuild for n in guest_module.MODULES)


def test_vermagic_is_read_from_modinfo() -> None:
    ko = b"\x7fELF...\0license=GPL\0vermagic=" + KVER.encode() + b" SMP mod_unload\0x"
    assert guest_module.vermagic(ko) == f"{KVER} SMP mod_unload"
    assert guest_module.vermagic(b"no modinfo") == ""


def test_both_modules_find_the_sdei_functions_through_the_one_header() -> None:
    api = (guest_module.MODULE_DIR / "sdei_api.h").read_text()
    assert "register_kprobe" in api and "kallsyms_lookup_name" in api
    for fn in ("sdei_event_register", "sdei_event_enable", "sdei_event_disable",
               "sdei_event_unregister"):
        assert f'sdei_api_lookup("{fn}")' in api
    for name in guest_module.MODULES:
        src = (guest_module.MODULE_DIR / f"{name}.c").read_text()
        assert '#include "sdei_api.h"' in src and "sdei_api_find(&api)" in src
        assert "kallsyms_lookup_name" not in src  # the lookup is written once, in the header


def test_build_refuses_an_unknown_module_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no guest module 'sdei_nope'"):
        guest_module.build(tmp_path, KVER, Progress(quiet=True), "sdei_nope")


def _cpio_names(data: bytes) -> list[str]:
    names: list[str] = []
    f = io.BytesIO(data)
    while True:
        hdr = f.read(110)
        assert hdr[:6] == b"070701"
        size, namesize = int(hdr[54:62], 16), int(hdr[94:102], 16)
        name = f.read(namesize)[:-1].decode()
        f.read(-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return names
        names.append(name)
        f.read(size + (-size % 4))


def test_nested_initramfs_holds_init_busybox_and_the_module() -> None:
    data = guest_assets.busybox_initramfs(b"#!/bin/busybox sh\n", b"BB",
                                          guest_module.MODULE_NAME, b"KO")
    names = _cpio_names(data)
    assert {"init", "bin/busybox", "bin/sh", "sdei_test.ko", "proc", "sys", "dev"} <= set(names)
    init = guest_assets.INIT.read_text()
    assert "insmod /sdei_test.ko" in init and "rmmod sdei_test" in init
    assert "pm_test" in init and "poweroff" in init


def test_missing_assets_give_the_reason(tmp_path: Path) -> None:
    assert "no linux-guest assets" in (missing_reason(tmp_path) or "")
    (tmp_path / "STATUS").write_text("skip no aarch64-linux-gnu-gcc-12 on the host\n")
    assert missing_reason(tmp_path) == "no aarch64-linux-gnu-gcc-12 on the host"
    (tmp_path / "STATUS").write_text(f"ok {KVER}\n")
    assert "Image is missing" in (missing_reason(tmp_path) or "")
    (tmp_path / "Image").write_bytes(b"x")
    (tmp_path / "initramfs.cpio").write_bytes(b"x")
    assert missing_reason(tmp_path) is None


def test_console_lines_are_parsed() -> None:
    r = results.parse([
        "guest-dmesg: [    0.1] sdei: SDEIv1.1 (0x564bcaa9) detected in firmware.",
        "sdei-test: iteration=2 round=cross_cpu result=pass cpus=2 bad=0",
        "sdei-test: iteration=0 round=hotplug result=fail cpu=1 offline_rc=0",
        "sdei-test: cpu=1 signalled=10 entered=9 critical=0",
        "sdei-test: done passed=15 failed=1",
        "sdei-test: unload disable=0,0 unregister=0,-16",
        "noise",
    ])
    assert r.detected == (1, 1, 0x564B_CAA9)
    assert [(x.label, x.passed) for x in r.rounds] == [("cross_cpu#2", True), ("hotplug", False)]
    assert r.rounds[0].detail == {"cpus": "2", "bad": "0"}
    assert r.cpus[0] == results.CpuCounters(1, 10, 9, 0)
    assert r.done == (15, 1) and r.unload == (0, 0, 0, -16)


def test_linux_guest_suite_is_opt_in() -> None:
    be = SimBackend("test")
    assert "linux-guest" not in [s.name for s in all_suites(be)]
    with pytest.raises(SelftestError, match="unknown suite 'linux-guest'"):
        select(all_suites(be), ["linux-guest"])
    chosen = select(all_suites(be, ["linux-guest"]), ["linux-guest"])
    names = [c.name for c in chosen[0].cases]
    assert names[:2] == ["boot", "sdei-detected"] and "critical-3" in names
    assert names[-15:-12] == ["model", "counters", "unload"]
    assert names[-12:] == [f"migration-{n:02d}" for n in range(1, 13)]


@pytest.mark.parametrize("works", [True, False])
def test_only_a_working_layer_is_reused_without_a_rebuild(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, works: bool) -> None:
    """A layer made without the cross compiler must not stick once the host has one (CI
    installs it after its first boot): only a layer whose guest works is taken by the quick
    key; a "skip" layer is made again on the next boot."""
    from sdei_state.lab.config import LabConfig
    cfg = LabConfig(cache=tmp_path)
    cfg.kernel_dir.mkdir(parents=True)
    (cfg.kernel_dir / "STAMP").write_text("kernel 6.12\n")
    layer = tmp_path / "linux-guest-6.12-0123456789abcdef.cpio"
    layer.write_bytes(b"layer")
    made: list[int] = []

    def fake_build(_cfg: LabConfig, _progress: Progress) -> tuple[Path, bool]:
        made.append(1)
        return layer, works

    monkeypatch.setattr(guest_assets, "_build", fake_build)
    progress = Progress(quiet=True)
    assert guest_assets.build(cfg, progress) == layer
    assert guest_assets.build(cfg, progress) == layer
    assert len(made) == (1 if works else 2)


def test_a_stamp_without_ok_is_not_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stamp written before the rule above (two fields) may name a skip layer: rebuilt."""
    from sdei_state.lab.config import LabConfig
    cfg = LabConfig(cache=tmp_path)
    cfg.kernel_dir.mkdir(parents=True)
    (cfg.kernel_dir / "STAMP").write_text("kernel 6.12\n")
    layer = tmp_path / "linux-guest-6.12-0123456789abcdef.cpio"
    layer.write_bytes(b"layer")
    (tmp_path / "linux-guest-6.12.key").write_text(
        f"{guest_assets._quick_key(cfg)} {layer.name}\n")
    made: list[int] = []

    def fake_build(_cfg: LabConfig, _progress: Progress) -> tuple[Path, bool]:
        made.append(1)
        return layer, True

    monkeypatch.setattr(guest_assets, "_build", fake_build)
    assert guest_assets.build(cfg, Progress(quiet=True)) == layer
    assert made == [1]
    assert (tmp_path / "linux-guest-6.12.key").read_text().split()[2:] == ["ok"]
