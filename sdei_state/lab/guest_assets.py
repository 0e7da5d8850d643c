"""The nested-guest layer of the lab initramfs: what the linux-guest selftest needs inside
the lab to boot a Linux guest in the reference VMM.

``<cache>/linux-guest-<key>.cpio`` holds, under ``/usr/share/sdei-state/linux-guest``:

- ``Image``: the lab's own Debian kernel (the nested guest runs the same kernel);
- ``initramfs.cpio``: the nested guest's userspace: Debian's static busybox, the test module
  cross-built for that kernel (``guest_module``), and ``linux_guest/init.sh`` as /init;
- ``STATUS``: ``ok <kernel release>``, or ``skip <reason>`` when a piece could not be made
  (no cross compiler, no headers for this kernel): the suite then skips with that reason;

and Debian's ``python3-libfdt`` (with ``libfdt1``) unpacked, for the VMM's device tree. It
is appended to the lab's initramfs on every ``lab build``/``lab run``; everything is cached
(``linux-guest-<series>.key`` names the layer made for the current kernel, module and init).
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from . import debs, guest_module
from .cache import atomic_write, write_text
from .config import LabConfig
from .cpio import CpioWriter
from .progress import Progress

GUEST_DIR: Final = "usr/share/sdei-state/linux-guest"
INIT: Final = Path(__file__).resolve().parent.parent / "linux_guest" / "init.sh"
FDT_PACKAGES: Final = ("python3-libfdt", "libfdt1")
NESTED_PACKAGES: Final = ("busybox-static",)
RECIPE: Final = "1"


def busybox_initramfs(init: bytes, busybox: bytes, module_name: str, module: bytes) -> bytes:
    """A test guest's initramfs (newc cpio): /init, /bin/busybox (with /bin/sh) and
    /<module_name>.ko. The nested Linux guest of linux-guest and the QEMU guest of stock-vmm
    are both this, with their own init script and module."""
    with tempfile.TemporaryFile() as f:
        w = CpioWriter(f)
        for d in ("bin", "dev", "proc", "sys", "tmp"):
            w.add_dir(d)
        w.add_bytes("init", init, 0o755)
        w.add_bytes("bin/busybox", busybox, 0o755)
        w.add_symlink("bin/sh", "busybox")
        w.add_bytes(f"{module_name}.ko", module)
        w.close()
        f.seek(0)
        return f.read()


def _quick_key(cfg: LabConfig) -> str:
    """What decides the layer without asking apt: the kernel, the module's sources, init."""
    h = hashlib.sha256(RECIPE.encode() + (cfg.kernel_dir / "STAMP").read_bytes()
                       + INIT.read_bytes())
    for p in guest_module.sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def build(cfg: LabConfig, progress: Progress, refresh: bool = False) -> Path | None:
    """The layer for the kernel ``cfg`` boots; None (said on ``progress``) when it cannot be
    made at all (apt unreachable, say): the lab still boots, the suite skips. A layer made
    before for the same kernel, module sources and init is reused without asking apt. A
    missing piece (compiler, headers) gives a layer whose STATUS says why the suite skips.
    ``refresh`` (``lab build``) asks apt anyway, for newer busybox or libfdt packages."""
    stamp = cfg.cache / f"linux-guest-{cfg.kernel}.key"
    quick = _quick_key(cfg)
    if stamp.is_file() and not refresh:
        fields = stamp.read_text().split()  # "<quick key> <layer> ok"
        old = cfg.cache / fields[1] if fields[2:] == ["ok"] else None
        if fields[:1] == [quick] and old is not None and old.is_file():
            progress.cached("linux-guest layer", old.name)
            return old
    try:
        out, ok = _build(cfg, progress)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        progress.say(f"note: no linux-guest layer ({e}); the linux-guest suite will skip")
        return None
    # Only a working layer is reused by the quick key: a layer that says "skip" was made
    # without a piece the host may have gained since (the cross compiler, installed after a
    # first boot), so the next boot tries the module build again. A stamp without "ok"
    # (a skip, or one written before this rule) is not trusted.
    if ok:
        write_text(stamp, f"{quick} {out.name} ok\n")
    else:
        stamp.unlink(missing_ok=True)
    return out


def _build(cfg: LabConfig, progress: Progress) -> tuple[Path, bool]:
    """The layer and whether it holds the guest (False: its STATUS says why not)."""
    kdir = cfg.kernel_dir
    kver = (kdir / "KVER").read_text().strip()
    status, module = "", b""
    try:
        module = guest_module.build(cfg.cache, kver, progress).read_bytes()
        magic = guest_module.vermagic(module)
        if magic.split()[:1] != [kver]:
            raise guest_module.BuildUnavailable(f"the module's vermagic {magic!r} is not "
                                                f"for {kver}")
        status = f"ok {kver}"
    except guest_module.BuildUnavailable as e:
        status = f"skip {e}"
        progress.say(f"note: linux-guest suite will skip: {e}")
    with progress.step("linux-guest: resolve busybox-static and python3-libfdt"):
        pkgs = debs.resolve([*NESTED_PACKAGES, *FDT_PACKAGES])
    h = hashlib.sha256(f"{RECIPE}\0{status}\0".encode())
    h.update((kdir / "STAMP").read_bytes() + INIT.read_bytes() + module)
    for p in pkgs:
        h.update(f"{p.name}={p.version};".encode())
    out = cfg.cache / f"linux-guest-{cfg.kernel}-{h.hexdigest()[:16]}.cpio"
    if out.is_file():
        progress.cached("linux-guest layer", out.name)
        return out, status.startswith("ok")
    paths = debs.download(pkgs, cfg.cache / "debs" / "linux-guest")
    with progress.step("linux-guest: write the layer"), \
            tempfile.TemporaryDirectory(prefix=".tmp-lg-", dir=cfg.cache) as td:
        root = Path(td)
        for deb in paths[len(NESTED_PACKAGES):]:
            debs.unpack(deb, root / "fdt")
        debs.unpack(paths[0], root / "busybox")
        busybox = (root / "busybox" / "bin" / "busybox").read_bytes()
        for old in cfg.cache.glob(f"linux-guest-{cfg.kernel}-*.cpio"):
            old.unlink()
        with atomic_write(out) as f:
            w = CpioWriter(f)
            parts = GUEST_DIR.split("/")
            for i in range(1, len(parts) + 1):
                w.add_dir("/".join(parts[:i]))
            w.add_bytes(f"{GUEST_DIR}/STATUS", (status + "\n").encode())
            if status.startswith("ok"):
                w.add_file(f"{GUEST_DIR}/Image", kdir / "Image")
                w.add_bytes(f"{GUEST_DIR}/initramfs.cpio",
                            busybox_initramfs(INIT.read_bytes(), busybox, guest_module.MODULE_NAME,
                                              module))
            w.add_tree(root / "fdt")
            w.close()
    progress.say(f"linux-guest layer: {out.name} ({out.stat().st_size >> 20} MiB): {status}")
    return out, status.startswith("ok")
