"""The lab's host side without booting anything: options, archives, module order, errors.

Booting is exercised by `sdei-state lab test` (and .ci/lab), not here.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from sdei_state import lab
from sdei_state.lab import cache, cpio, debs, host, kernel, rootfs
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


# -- the host's one-time setup ---------------------------------------------------------------

def _host(monkeypatch: pytest.MonkeyPatch, *, root: bool, lacking: list[list[str]]) -> list[str]:
    """Fake host: ``lacking`` is what each successive ``host.missing()`` call returns; the
    returned list records the setup-host.sh runs."""
    runs: list[str] = []
    answers = iter(lacking)
    monkeypatch.setattr(host, "missing", lambda qemu="": next(answers))
    monkeypatch.setattr(host, "is_root", lambda: root)

    def fake_run(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        runs.append(" ".join(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    return runs


def test_root_host_sets_itself_up(monkeypatch: pytest.MonkeyPatch) -> None:
    runs = _host(monkeypatch, root=True, lacking=[["apt's arm64 architecture"], []])
    stream = io.StringIO()
    host.ensure(Progress(stream=stream))
    assert runs == [f"bash {host.SETUP_SCRIPT}"]
    assert "lacks apt's arm64 architecture: one-time host setup" in stream.getvalue()
    runs.clear()
    _host(monkeypatch, root=True, lacking=[[]])
    host.ensure(Progress(quiet=True))  # ready: nothing runs
    assert runs == []


def test_root_setup_that_does_not_help_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _host(monkeypatch, root=True, lacking=[["zstd (package zstd)"]] * 2)
    with pytest.raises(LabError, match=r"still missing after setup-host.sh: zstd"):
        host.ensure(Progress(quiet=True))


@pytest.mark.parametrize("cmd", [["build"], ["run", "--", "true"], ["test"], ["shell"]])
def test_not_root_says_in_one_line_what_to_run(cmd: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    runs = _host(monkeypatch, root=False,
                 lacking=[["qemu-system-aarch64 (package qemu-system-arm)"]])
    rc = lab.main([cmd[0], "--cache", str(tmp_path / "c"), *cmd[1:]])
    err = capsys.readouterr().err
    assert rc == 2 and runs == [] and not (tmp_path / "c").exists()
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "lacks qemu-system-aarch64 (package qemu-system-arm)" in err
    assert "run `sdei-state lab setup` once as root" in err


def test_setup_not_root_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    runs = _host(monkeypatch, root=False, lacking=[])
    assert lab.main(["setup"]) == 2
    err = capsys.readouterr().err
    assert runs == [] and err.count("\n") == 1 and "needs root" in err and "sudo" in err


def test_non_debian_host_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "dpkg-deb" else "/bin/x")
    with pytest.raises(LabError, match="no dpkg-deb: the lab needs a Debian"):
        host.missing()


# -- cached .deb files against apt's signed index --------------------------------------------

def _fake_apt(monkeypatch: pytest.MonkeyPatch, served: dict[str, bytes]) -> list[list[str]]:
    """``apt-get download`` writes ``served[file name]`` into its cwd; records its argv."""
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: Path | None = None) -> str:
        calls.append([str(c) for c in cmd])
        assert cmd[:2] == ["apt-get", "download"] and cwd is not None
        for name, body in served.items():
            (cwd / name).write_bytes(body)
        return ""

    monkeypatch.setattr(debs, "run", fake_run)
    return calls


def _pkg(body: bytes) -> debs.Pkg:
    return debs.Pkg("busybox-static", "1:1.35.0-4+b3", "arm64",
                    sha256=hashlib.sha256(body).hexdigest())


def test_sha256_is_read_from_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    index = ("Package: busybox-static\nVersion: 1:1.35.0-4+b3\nArchitecture: arm64\n"
             "Depends: libc6\nSHA256: " + "AB" * 32 + "\nDescription: x\n two\n\n")
    monkeypatch.setattr(debs, "run", lambda cmd, cwd=None: index)
    (p,) = debs.resolve(["busybox-static"])
    assert p.sha256 == "ab" * 32 and p.deb_name == "busybox-static_1%3a1.35.0-4+b3_arm64.deb"


def test_good_cached_deb_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"!<arch>\ngood"
    p = _pkg(body)
    (tmp_path / p.deb_name).write_bytes(body)
    calls = _fake_apt(monkeypatch, {})
    assert debs.download([p], tmp_path) == [tmp_path / p.deb_name]
    assert calls == []


def test_corrupt_cached_deb_is_downloaded_again(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"!<arch>\ngood"
    p = _pkg(body)
    (tmp_path / p.deb_name).write_bytes(b"!<arch>\ntampered")
    calls = _fake_apt(monkeypatch, {p.deb_name: body})
    (path,) = debs.download([p], tmp_path)
    assert path.read_bytes() == body
    assert calls == [["apt-get", "download", "busybox-static:arm64=1:1.35.0-4+b3"]]
    assert sorted(f.name for f in tmp_path.iterdir()) == [p.deb_name], "no temporary left"


def test_download_not_matching_the_index_is_refused(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    p = _pkg(b"!<arch>\ngood")
    _fake_apt(monkeypatch, {p.deb_name: b"!<arch>\nevil"})
    with pytest.raises(RuntimeError, match=r"busybox-static_1%3a1.35.0-4\+b3_arm64.deb: SHA256 "
                                            r"[0-9a-f]{64} is not the [0-9a-f]{64} of apt's "
                                            r"index; refusing it"):
        debs.download([p], tmp_path)
    assert list(tmp_path.iterdir()) == [], "the refused file is not kept"


# -- the cache directory: marker, clean, atomic writes ---------------------------------------

def test_clean_refuses_a_directory_that_is_not_the_labs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    assert lab.main(["clean", "--cache", str(precious)]) == 2
    err = capsys.readouterr().err
    assert f"--cache {precious}: not a lab cache (no {cache.MARKER} marker" in err
    assert err.count("\n") == 1 and (precious / "thesis.tex").read_text() == "years of work"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(cache.CacheError, match="not a lab cache"):
        cache.clean(empty)  # even an empty directory: only the lab's own
    assert empty.is_dir()
    link = tmp_path / "link"
    link.symlink_to(precious)
    with pytest.raises(cache.CacheError, match="not a directory; not deleting"):
        cache.clean(link)


def test_clean_deletes_the_labs_own_cache(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    c = cache.prepare(tmp_path / "new" / "lab")
    assert cache.is_marked(c) and stat.S_IMODE(c.stat().st_mode) == 0o700
    (c / "kernels").mkdir()
    assert lab.main(["clean", "--cache", str(c)]) == 0
    assert not c.exists() and (tmp_path / "new").is_dir()
    assert lab.main(["clean", "--cache", str(c)]) == 0  # nothing there: nothing to do
    assert "nothing to delete" in capsys.readouterr().err


def test_prepare_adopts_an_old_lab_cache_and_refuses_others(tmp_path: Path) -> None:
    old = tmp_path / "old"
    (old / "kernels" / "6.12").mkdir(parents=True)
    (old / "userspace.cpio").write_bytes(b"")
    (old / "app-0123456789abcdef.cpio").write_bytes(b"")
    cache.prepare(old)  # made before the marker existed: only lab names in it
    assert cache.is_marked(old)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(cache.CacheError, match="holds files that are not the lab's"):
        cache.prepare(other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_atomic_write_leaves_the_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "userspace.cpio"
    target.write_bytes(b"old")
    with pytest.raises(OSError), cache.atomic_write(target) as f:
        f.write(b"half")
        raise OSError("disk full")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["userspace.cpio"]
    with cache.atomic_write(target, 0o600) as f:
        f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["userspace.cpio"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_replace_dir_swaps_whole_directories(tmp_path: Path) -> None:
    dest = tmp_path / "kernels" / "6.12"
    for text in ("first", "second"):
        stage = tmp_path / f"stage-{text}"
        stage.mkdir()
        (stage / "STAMP").write_text(text)
        cache.replace_dir(stage, dest)
        assert (dest / "STAMP").read_text() == text and not stage.exists()
    assert os.listdir(tmp_path / "kernels") == ["6.12"], "the old copy is gone"


# -- `sdei-state` inside the guest -----------------------------------------------------------

def test_sdei_state_is_a_command_in_the_guest(tmp_path: Path) -> None:
    try:
        rootfs.host_python311()
    except RuntimeError as e:
        pytest.skip(str(e))
    cfg = LabConfig(cache.prepare(tmp_path / "c"))
    out = rootfs.build_app(cfg, lab.project_root(), Progress(quiet=True))
    entries = {n: (m, b) for n, m, b in read_newc(out.read_bytes())}
    mode, body = entries["usr/bin/sdei-state"]
    assert stat.S_IMODE(mode) == 0o755
    assert body == b'#!/bin/sh\nexec python3 -P -m sdei_state.cli "$@"\n'
    assert any(n.startswith(f"{rootfs.GUEST_SITE}/sdei_state/cli") for n in entries)
    # the guest's PATH (init.sh) has /usr/bin
    assert "PATH=/usr/sbin:/usr/bin:" in (LAB_DIR / "init.sh").read_text()
