"""The KVM SDEI series (kernel/) and the lab's kernel build (lab/kbuild.py), without building:
the series itself, the cache key, the config assembly and check, the make command line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdei_state import lab
from sdei_state.lab import kbuild
from sdei_state.lab.config import LabConfig
from sdei_state.lab.progress import LabError, Progress
from sdei_state.regs import sdei as sdei_regs

ROOT = Path(__file__).resolve().parent.parent
PATCHES = ROOT / "kernel" / "patches"


def test_series_is_ordered_without_the_cover_letter() -> None:
    names = [p.name for p in kbuild.series(ROOT)]
    assert names == sorted(names)
    assert kbuild.COVER_LETTER not in names
    assert [n[:4] for n in names] == [f"{i:04d}" for i in range(1, len(names) + 1)]
    assert (PATCHES / kbuild.COVER_LETTER).is_file()
    assert "*** SUBJECT HERE ***" not in (PATCHES / kbuild.COVER_LETTER).read_text()


def test_every_patch_is_signed_off_and_a_kvm_arm64_patch() -> None:
    for p in kbuild.series(ROOT):
        text = p.read_text()
        assert re.search(r"^Subject: \[PATCH \d+/\d+\] KVM: arm64: ", text, re.M), p.name
        assert "\nSigned-off-by: " in text, p.name


def test_uapi_register_ids_agree_with_the_library() -> None:
    """The ids the series' uapi macros give, in the order sdei.c lists them, are the 47 ids
    of regs/sdei.py (DESIGN section 4), ascending."""
    uapi = next(p for p in kbuild.series(ROOT) if "uAPI" in p.name).read_text()
    base = {name: int(regno, 16) for name, regno in re.findall(
        r"#define (KVM_REG_ARM_SDEI_\w+?)(?:\([ic, r]*\))?\s+KVM_REG_ARM_FW_REG\((0x[0-9a-f]+)",
        uapi)}
    m = re.search(r"KVM_REG_ARM_SDEI_NR_EVENTS\s+(\d+)", uapi)
    assert m is not None
    n_events = int(m.group(1))
    fw = 0x6030000000140000
    listed = [fw | base["KVM_REG_ARM_SDEI_VCPU_STATE"]]
    listed += [fw | base["KVM_REG_ARM_SDEI_EVENT_STATE"] + i for i in range(n_events)]
    for i in range(n_events):
        listed += [fw | base["KVM_REG_ARM_SDEI_EVENT_EP_ADDR"] + 2 * i,
                   fw | base["KVM_REG_ARM_SDEI_EVENT_EP_ARG"] + 2 * i]
    listed += [fw | base["KVM_REG_ARM_SDEI_CONTEXT"] + 0x20 * c + r
               for c in range(2) for r in range(20)]
    assert listed == sorted(listed) == list(sdei_regs.SDEI_REG_IDS)
    assert len(listed) == 47


def test_fragment_options_parse_and_refuse() -> None:
    text = "# comment\nCONFIG_A=y\n# CONFIG_B is not set\n\nCONFIG_C=\"x\"\n"
    assert kbuild.fragment_options(text) == {"CONFIG_A": "y", "CONFIG_B": "n",
                                             "CONFIG_C": '"x"'}
    with pytest.raises(ValueError, match=r"line 2: 'bogus'"):
        kbuild.fragment_options("CONFIG_A=y\nbogus\n")


def test_missing_options_names_what_did_not_stick() -> None:
    wanted = {"CONFIG_KVM": "y", "CONFIG_NOPE": "y", "CONFIG_OFF": "n"}
    dotconfig = "CONFIG_KVM=y\n# CONFIG_NOPE is not set\n"
    assert kbuild.missing_options(wanted, dotconfig) == ["CONFIG_NOPE=y (got n)"]


def test_fragments_are_assembled_in_order_and_need_kvm_and_the_lab() -> None:
    text = kbuild.fragment_text(ROOT)
    assert text.index("kernel/config/lab.config") < text.index("kernel/config/sdei.config")
    opts = kbuild.fragment_options(text)
    for need in ("CONFIG_KVM", "CONFIG_9P_FS", "CONFIG_NET_9P_VIRTIO", "CONFIG_VIRTIO_PCI",
                 "CONFIG_SERIAL_AMBA_PL011_CONSOLE", "CONFIG_BLK_DEV_INITRD"):
        assert opts[need] == "y", need
    assert "=m" not in text  # everything built in: the lab loads no modules


def test_build_key_depends_on_version_patches_and_config() -> None:
    base = kbuild.build_key("6.12.118-1", [b"a", b"b"], "CONFIG_KVM=y\n")
    assert len(base) == 16
    assert base == kbuild.build_key("6.12.118-1", [b"a", b"b"], "CONFIG_KVM=y\n")
    assert base != kbuild.build_key("6.12.119-1", [b"a", b"b"], "CONFIG_KVM=y\n")
    assert base != kbuild.build_key("6.12.118-1", [b"b", b"a"], "CONFIG_KVM=y\n")
    assert base != kbuild.build_key("6.12.118-1", [b"ab"], "CONFIG_KVM=y\n")
    assert base != kbuild.build_key("6.12.118-1", [b"a", b"b"], "CONFIG_KVM=n\n")


def test_make_is_niced_and_runs_two_jobs() -> None:
    argv = kbuild.make_argv(Path("/src"), Path("/obj"), "Image")
    assert argv[:3] == ["nice", "-n", "19"]
    assert "-j2" in argv and "ARCH=arm64" in argv and "O=/obj" in argv
    assert f"CROSS_COMPILE={kbuild.CROSS_COMPILE}" in argv
    assert argv[-1] == "Image" and argv[argv.index("-C") + 1] == "/src"


def test_patched_files_come_from_the_diff_headers() -> None:
    diff = b"--- a/x/y.c\n+++ b/x/y.c\n@@\n+++ b/not/a/header\n"
    assert kbuild._patched_files(diff) == ["x/y.c", "not/a/header"]
    files = {f for p in kbuild.series(ROOT) for f in kbuild._patched_files(p.read_bytes())}
    assert "arch/arm64/kvm/sdei.c" in files and "arch/arm64/kvm/hypercalls.c" in files


def test_sdei_is_a_lab_kernel_and_a_subcommand(tmp_path: Path) -> None:
    cfg = LabConfig(cache=tmp_path, kernel="sdei")
    assert cfg.kernel_dir == kbuild.kernel_dir(cfg)
    with pytest.raises(ValueError, match=r"expected one of 6\.12, 6\.1, sdei"):
        LabConfig(cache=tmp_path, kernel="7.0")
    assert "kernel" in lab.SUBCOMMANDS
    a = lab._parser().parse_args(["kernel", "build", "--cache", str(tmp_path)])
    assert (a.cmd, a.action) == ("kernel", "build")


def test_build_without_patches_is_a_one_line_error(tmp_path: Path) -> None:
    cfg = LabConfig(cache=tmp_path / "cache", kernel="sdei")
    with pytest.raises(LabError, match="no patches in"):
        kbuild.build(cfg, Progress(quiet=True), tmp_path)


def test_cached_image_is_used_without_building(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kbuild, "source_version", lambda: "6.12.118-1~deb12u1")
    cfg = LabConfig(cache=tmp_path, kernel="sdei")
    key = kbuild.build_key("6.12.118-1~deb12u1",
                           [p.read_bytes() for p in kbuild.series(ROOT)],
                           kbuild.fragment_text(ROOT))
    kdir = kbuild.kernel_dir(cfg)
    kdir.mkdir(parents=True)
    (kdir / "Image").write_bytes(b"img")
    (kdir / "STAMP").write_text(f"linux-source-6.12 6.12.118-1~deb12u1, key {key}\n")

    def no_tools() -> None:
        raise AssertionError("a cached kernel must not be rebuilt")

    monkeypatch.setattr(kbuild, "_check_tools", no_tools)
    assert kbuild.build(cfg, Progress(quiet=True), ROOT) == kdir


def test_kernel_build_refuses_a_foreign_cache_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    assert lab.main(["kernel", "build", "--cache", str(not_a_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a directory" in err
