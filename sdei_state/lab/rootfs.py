"""The guest userspace (kernel-independent) and the library layer, as initramfs archives.

- ``userspace.cpio``: Debian bookworm arm64 packages unpacked (no debootstrap, no chroot, no
  maintainer scripts): Python 3.11, cffi 1.15 (ABI mode only: the guest has no compiler),
  construct, pytest and hypothesis, busybox, and ``init.sh`` as /init. The stdlib is
  byte-compiled on the host (same 3.11 bytecode) so the emulated guest does not compile it
  at every boot.
- ``app-<digest>.cpio``: this library (``sdei_state`` with ``cdefs/`` inside it), byte-compiled,
  in the guest's dist-packages, and the ``sdei-state`` command in /usr/bin. Rebuilt whenever
  the sources change; it is appended last.
- ``uapi-arm64/``: linux-libc-dev:arm64 unpacked, for tests/test_kvm_ioctls.py on the host.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from . import cpio, debs
from .cache import replace_dir, write_text
from .config import LabConfig
from .progress import Progress

RECIPE_VERSION: Final = "1"  # bump when the build below changes in a way the key cannot see

PACKAGES: Final = (
    "libc6", "libgcc-s1", "libffi8", "zlib1g", "libexpat1", "libssl3", "libbz2-1.0", "libcrypt1",
    "libdb5.3", "liblzma5", "libncursesw6", "libtinfo6", "libnsl2", "libreadline8", "libsqlite3-0",
    "libtirpc3", "libtirpc-common", "libuuid1", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3",
    "libkrb5support0", "libcom-err2", "libkeyutils1", "python3.11-minimal",
    "libpython3.11-minimal", "libpython3.11-stdlib", "python3.11", "python3-minimal", "python3",
    "libpython3-stdlib", "media-types", "python3-cffi", "python3-cffi-backend",
    "python3-pycparser", "python3-ply", "python3-construct", "python3-pytest", "python3-iniconfig",
    "python3-packaging", "python3-pluggy", "python3-attr", "python3-hypothesis",
    "python3-sortedcontainers", "python3-dateutil", "python3-six", "busybox-static",
)

APPLETS: Final = (
    "sh", "ash", "mount", "umount", "mkdir", "ls", "cat", "echo", "dmesg", "grep", "sed", "awk",
    "insmod", "modprobe", "poweroff", "reboot", "sleep", "date", "uname", "ps", "kill", "env",
    "ln", "cp", "mv", "rm", "chmod", "head", "tail", "tr", "wc", "find", "stat", "hexdump", "od",
    "time", "tee", "setsid", "cttyhack", "sync", "free", "df", "du", "vi", "less", "which", "true",
    "false", "test", "printf", "seq", "xargs", "dd", "cut",
)

PRUNE: Final = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                "usr/share/lintian", "usr/lib/python3.11/test", "usr/lib/python3.11/idlelib",
                "usr/lib/python3.11/tkinter", "usr/lib/python3.11/turtledemo",
                "usr/lib/python3.11/ensurepip", "usr/lib/aarch64-linux-gnu/gconv")
GUEST_SITE: Final = "usr/lib/python3/dist-packages"


def _init_script() -> bytes:
    return (Path(__file__).with_name("init.sh")).read_bytes()


def host_python311() -> str:
    """A Python 3.11 on the host for byte-compiling guest code (same .pyc magic)."""
    if sys.version_info[:2] == (3, 11):
        return sys.executable
    for cand in ("/usr/bin/python3.11", shutil.which("python3.11")):
        if cand and Path(cand).exists():
            return cand
    raise RuntimeError(f"need a Python 3.11 on the host to byte-compile the guest's 3.11 code "
                       f"(this is {sys.version.split()[0]}; Debian 12: apt-get install python3)")


def _compileall(py: str, root: Path, dirs: list[str]) -> None:
    for d in dirs:
        if (root / d).is_dir():
            # -s/-p: record the guest path (/usr/...) in the .pyc, not the staging path.
            subprocess.run([py, "-m", "compileall", "-q", "-j0", "--invalidation-mode",
                            "unchecked-hash", "-s", str(root), "-p", "/", str(root / d)],
                           check=True, capture_output=True, text=True)


def build_userspace(cfg: LabConfig, progress: Progress, refresh: bool = True) -> Path:
    """``<cache>/userspace.cpio``, rebuilt when the resolved package versions or init change
    (without ``refresh``, only when init changed: apt is not asked for newer packages)."""
    out = cfg.cache / "userspace.cpio"
    stamp = cfg.cache / "userspace.stamp"
    init_key = hashlib.sha256(_init_script()).hexdigest()[:16]
    if not refresh and out.is_file() and stamp.is_file() \
            and stamp.read_text().split()[1:] == [init_key]:
        progress.cached("userspace", f"{out.stat().st_size >> 20} MiB")
        return out
    with progress.step("userspace: resolve packages"):
        debs.check_arm64_enabled()
        pkgs = debs.resolve(PACKAGES)
        h = hashlib.sha256(RECIPE_VERSION.encode() + _init_script())
        for p in pkgs:
            h.update(f"{p.name}={p.version};".encode())
        key = f"{h.hexdigest()[:16]} {init_key}"
    if out.is_file() and stamp.is_file() and stamp.read_text().strip() == key:
        progress.cached("userspace", f"{len(pkgs)} packages, {out.stat().st_size >> 20} MiB")
        return out
    with progress.step(f"userspace: download {len(pkgs)} arm64 packages"):
        debdir = cfg.cache / "debs" / "userspace"
        if debdir.is_dir():  # drop superseded versions
            keep = {p.deb_name for p in pkgs}
            for f in debdir.glob("*.deb"):
                if f.name not in keep:
                    f.unlink()
        paths = debs.download(pkgs, debdir)
    with tempfile.TemporaryDirectory(prefix="rootfs-", dir=cfg.cache) as td:
        root = Path(td)
        with progress.step("userspace: unpack"):
            for deb in paths:
                debs.unpack(deb, root)
            _skeleton(root)
        with progress.step("userspace: byte-compile the stdlib on the host"):
            _compileall(host_python311(), root, ["usr/lib/python3.11", GUEST_SITE])
        with progress.step("userspace: write cpio"):
            cpio.write_tree(root, out)
    write_text(stamp, key + "\n")
    progress.say(f"userspace: {out} ({out.stat().st_size >> 20} MiB)")
    return out


def _skeleton(root: Path) -> None:
    for d in ("proc", "sys", "dev", "tmp", "run", "mnt/host", "mnt/lab", "root", "etc",
              "lib/modules/lab"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")
    for a in APPLETS:  # busybox-static ships /bin/busybox only
        if not (root / "bin" / a).exists() and not (root / "usr/bin" / a).exists():
            (root / "bin" / a).symlink_to("busybox")
    py = root / "usr/bin/python"
    if not py.exists():
        py.symlink_to("python3.11")
    init = root / "init"
    init.write_bytes(_init_script())
    init.chmod(0o755)
    for rel in PRUNE:
        shutil.rmtree(root / rel, ignore_errors=True)


# -- the library layer -----------------------------------------------------------------------

def _project_files(project: Path) -> list[tuple[str, Path]]:
    """(guest path, host path) of every file of the library, cdefs inside the package."""
    pkg = project / "sdei_state"
    files = [(f"{GUEST_SITE}/sdei_state/{p.relative_to(pkg)}", p)
             for p in sorted(pkg.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts
             and p.suffix not in (".pyc", ".so", ".o")]
    files += [(f"{GUEST_SITE}/sdei_state/cdefs/{h.name}", h)
              for h in sorted((project / "cdefs").glob("*.h"))]
    return files


# The `sdei-state` command in the guest: the library from the initramfs (-P keeps the 9p
# share, the working directory, off sys.path), as `lab test` runs pytest.
COMMANDS: Final = {
    "usr/bin/sdei-state": b'#!/bin/sh\nexec python3 -P -m sdei_state.cli "$@"\n',
}


def build_app(cfg: LabConfig, project: Path, progress: Progress) -> Path:
    """``<cache>/app-<digest>.cpio`` with this library and its command, rebuilt when any
    source changes."""
    files = _project_files(project)
    if not files:
        raise RuntimeError(f"no sdei_state package under {project}")
    h = hashlib.sha256(RECIPE_VERSION.encode())
    for guest, host in files:
        h.update(guest.encode() + b"\0" + host.read_bytes())
    for guest, body in COMMANDS.items():
        h.update(guest.encode() + b"\0" + body)
    out = cfg.cache / f"app-{h.hexdigest()[:16]}.cpio"
    if out.is_file():
        progress.cached("library layer", out.name)
        return out
    with progress.step("library layer: copy, byte-compile, write cpio"), \
            tempfile.TemporaryDirectory(prefix="app-", dir=cfg.cache) as td:
        root = Path(td)
        for guest, host in files:
            dst = root / guest
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(host, dst)
        for guest, body in COMMANDS.items():
            dst = root / guest
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(body)
            dst.chmod(0o755)
        _compileall(host_python311(), root, [f"{GUEST_SITE}/sdei_state"])
        for old in cfg.cache.glob("app-*.cpio"):
            old.unlink()
        cpio.write_tree(root, out)
    return out


def fetch_uapi_headers(cfg: LabConfig, progress: Progress) -> Path:
    """linux-libc-dev:arm64 unpacked in ``<cache>/uapi-arm64`` (arm64 uapi headers)."""
    with progress.step("arm64 uapi headers: resolve"):
        (pkg,) = debs.resolve(["linux-libc-dev"])
    dest = cfg.cache / "uapi-arm64"
    stamp = dest / "STAMP"
    if stamp.is_file() and stamp.read_text() == pkg.version:
        progress.cached("arm64 uapi headers", f"linux-libc-dev {pkg.version}")
        return dest
    with progress.step(f"arm64 uapi headers: linux-libc-dev {pkg.version}"):
        (deb,) = debs.download([pkg], cfg.cache / "debs" / "uapi")
        with tempfile.TemporaryDirectory(prefix="uapi-", dir=cfg.cache) as td:
            stage = Path(td) / "out"
            debs.unpack(deb, stage)
            (stage / "STAMP").write_text(pkg.version)
            replace_dir(stage, dest)
    return dest
