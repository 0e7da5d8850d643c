"""The lab's host side without booting anything: options, archives, module order, errors.

Booting is exercised by `sdei-state lab test` (and .ci/lab), not here.
"""

from __future__ import annotations

import io
import lzma
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sdei_state import lab
from sdei_state.lab import cpio, kernel, rootfs
from sdei_state.lab.config import LabConfig
from sdei_state.lab.progress import LabError, Progress

LAB_DIR = Path(lab.__file__).parent


def read_newc(data: bytes) -> list[tuple[str, int, bytes]]:
    """(name, mode, body) of every entry up to the trailer; checks the padding rules."""
    out: list[tuple[str, int, bytes]] = []
    pos = 0
    while True:
        assert data[pos:pos + 6] == b"070701", f"bad magic at {pos}"
        f = [int(data[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = f[1], f[6], f[11]
        name = data[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos: pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            assert len(data) % 512 == 0
            return out
        out.append((name, mode, body))


def test_cpio_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_bytes(b"#!x\n")
    (root / "usr/bin/tool").chmod(0o755)
    (root / "bin").symlink_to("usr/bin")
    (root / "odd").write_bytes(b"12345")
    out = tmp_path / "a.cpio"
    cpio.write_tree(root, out)
    entries = read_newc(out.read_bytes())
    names = [e[0] for e in entries]
    assert names == ["bin", "odd", "usr", "usr/bin", "usr/bin/tool"]
    kinds = {n: stat.S_IFMT(m) for n, m, _ in entries}
    assert kinds == {"bin": stat.S_IFLNK, "odd": stat.S_IFREG, "usr": stat.S_IFDIR,
                     "usr/bin": stat.S_IFDIR, "usr/bin/tool": stat.S_IFREG}
    body = {n: b for n, _, b in entries}
    assert body["bin"] == b"usr/bin" and body["odd"] == b"12345"
    assert stat.S_IMODE(dict((n, m) for n, m, _ in entries)["usr/bin/tool"]) == 0o755
    cpio.write_tree(root, tmp_path / "b.cpio")
    assert (tmp_path / "b.cpio").read_bytes() == out.read_bytes(), "reproducible"


def test_cpio_readable_by_gnu_cpio(tmp_path: Path) -> None:
    if shutil.which("cpio") is None:
        pytest.skip("no cpio tool to cross-check with")
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    (root / "d/f").write_text("hello")
    cpio.write_tree(root, tmp_path / "x.cpio")
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=(tmp_path / "x.cpio").read_bytes(),
                             capture_output=True, check=True).stdout.decode().split()
    assert listing == ["d", "d/f"]


def test_module_closure_dependencies_first(tmp_path: Path) -> None:
    mods = tmp_path / "kernel"
    (mods / "fs/9p").mkdir(parents=True)
    (mods / "net/9p").mkdir(parents=True)
    (mods / "fs/netfs").mkdir(parents=True)

    def ko(path: Path, depends: str) -> None:
        path.write_bytes(lzma.compress(b"\x7fELF...\0name=x\0depends=" + depends.encode()
                                       + b"\0vermagic=6\0"))

    ko(mods / "fs/9p/9p.ko.xz", "9pnet,netfs")
    ko(mods / "net/9p/9pnet.ko.xz", "")
    ko(mods / "net/9p/9pnet_virtio.ko.xz", "9pnet")
    ko(mods / "fs/netfs/netfs.ko.xz", "")
    out = tmp_path / "mods.cpio"
    order = kernel._write_modules(mods, out)
    assert order == ["9pnet", "9pnet_virtio", "netfs", "9p"]  # virtio_pci: built in
    entries = {n: b for n, _, b in read_newc(out.read_bytes())}
    assert entries["lib/modules/lab/ORDER"] == b"9pnet.ko\n9pnet_virtio.ko\nnetfs.ko\n9p.ko\n"
    assert entries["lib/modules/lab/9p.ko"].startswith(b"\x7fELF"), "stored decompressed"


def test_config_validation_and_cmdline(tmp_path: Path) -> None:
    assert "kvm-arm.mode" not in LabConfig(tmp_path).kernel_cmdline
    assert LabConfig(tmp_path, kvm_mode="nvhe").kernel_cmdline.endswith("kvm-arm.mode=nvhe")
    with pytest.raises(ValueError, match=r"--kernel '5\.10'"):
        LabConfig(tmp_path, kernel="5.10")
    with pytest.raises(ValueError, match="--kvm-mode 'fast'"):
        LabConfig(tmp_path, kvm_mode="fast")


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--kernel", "5.4", "--", "true"], "invalid choice: '5.4'"),
    (["run", "--smp", "99", "--", "true"], "--smp 99"),
    (["run"], "no command given"),
    (["run", "--share", "/nonexistent/dir", "--", "true"], "not a directory"),
])
def test_cli_user_errors(argv: list[str], message: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    try:
        rc = lab.main([*argv[:1], "--cache", str(tmp_path), *argv[1:]])
    except SystemExit as e:  # argparse's own usage errors
        rc = int(e.code or 0)
    assert rc == 2
    assert message in capsys.readouterr().err


def test_cli_status_and_shorthand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.main(["status", "--cache", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "kernel 6.12: not fetched" in out and "kernel 6.1: not fetched" in out
    # `lab [opts] -- CMD` means `lab run [opts] -- CMD`
    p = lab._parser()
    a = p.parse_args(["run", "--kernel", "6.1", "--", "echo", "hi there"])
    assert (a.kernel, lab._strip_dashes(a.command)) == ("6.1", ["echo", "hi there"])


def test_pytest_command_imports_the_library_from_the_initramfs() -> None:
    cmd = lab._pytest_command([])
    assert cmd.startswith("python3 -P -m pytest") and cmd.endswith("tests/arm64")
    assert lab._pytest_command(["-k", "firmware and not save"]).endswith(
        "-k 'firmware and not save'")


def test_failing_step_is_named() -> None:
    stream = io.StringIO()
    p = Progress(stream=stream)
    with pytest.raises(LabError) as ei, p.step("fetch kernel 6.12: download"):
        subprocess.run(["sh", "-c", "echo 'E: 404 Not Found' >&2; exit 100"], check=True,
                       capture_output=True, text=True)
    e = ei.value
    assert e.step == "fetch kernel 6.12: download"
    assert "exited with status 100" in str(e) and "E: 404 Not Found" in str(e)
    with pytest.raises(LabError, match=r"step 'unpack' failed: .*nothing-here"), \
            p.step("unpack"):
        Path("/nothing-here").read_bytes()


def test_library_layer_carries_package_and_cdefs() -> None:
    files = dict(rootfs._project_files(lab.project_root()))
    site = rootfs.GUEST_SITE
    assert f"{site}/sdei_state/kvm/vcpu.py" in files
    assert f"{site}/sdei_state/cdefs/kvm.h" in files
    assert f"{site}/sdei_state/lab/init.sh" in files
    assert not any("__pycache__" in g for g in files)


@pytest.mark.parametrize("script", ["init.sh", "setup-host.sh"])
def test_shell_scripts_parse(script: str) -> None:
    shell = "sh" if script == "init.sh" else "bash"
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    subprocess.run([shell, "-n", str(LAB_DIR / script)], check=True)
