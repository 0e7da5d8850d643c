"""The QEMU-in-lab layer of the initramfs (``lab ... --with-qemu``): Debian's unmodified
``qemu-system-arm`` (arm64 build) and ``device-tree-compiler`` inside the lab, with a Linux
guest for it, for the ``stock-vmm`` selftest suite.

``<cache>/stock-vmm-<key>.cpio`` holds:

- the packages ``qemu-system-arm`` and ``device-tree-compiler`` and every library they depend
  on that the lab's userspace lacks, resolved from their ``Depends`` fields (first
  alternative) and fetched and verified like every lab package (``debs``). The helpers'
  package ``qemu-system-common`` and the firmware images of ``qemu-system-data`` are not
  needed by ``qemu-system-aarch64 -M virt -kernel ... -nodefaults`` and are left out, with
  their dependencies;
- under ``/usr/share/sdei-state/stock-vmm``: ``Image`` (the lab's Debian 6.12 kernel, the
  guest), ``initramfs.cpio`` (static busybox, the linux-guest SDEI test module built for that
  kernel when it can be, and ``stock_vmm_init.sh`` as /init) and ``STATUS`` (``ok ...`` or
  ``skip <reason>``: the suite's QEMU cases then skip with it);
- under ``.../stock-vmm/linux-guest``: the linux-guest suite's nested guest for that same
  kernel (``Image``, a link to the one above; ``initramfs.cpio`` with ``sdei_test.ko`` and
  ``linux_guest/init.sh``; its own ``STATUS``), for the suite's ``linux-*`` cases, which boot
  it in the reference VMM on the lab's ``sdei`` kernel (whose own linux-guest layer has no
  module: that kernel is built without module support).

Everything is cached by the resolved package versions, the kernel's STAMP and the init
script.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Final

from . import debs, guest_assets, guest_module, rootfs
from .cache import atomic_write, write_text
from .config import LabConfig
from .cpio import CpioWriter
from .progress import Progress

GUEST_DIR: Final = "usr/share/sdei-state/stock-vmm"
ROOTS: Final = ("qemu-system-arm", "device-tree-compiler")
NOT_FOLLOWED: Final = frozenset({
    "qemu-system-common", "qemu-system-data",  # bridge/PR helpers, firmware images
    "adduser", "passwd", "debconf",  # maintainer-script tools; nothing here runs them
})
GUEST_KERNEL: Final = "6.12"
INIT: Final = Path(__file__).resolve().parent.parent / "selftest" / "stock_vmm_init.sh"
HOLD_NAME: Final = guest_module.HOLD_NAME
RECIPE: Final = "1"
_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*")


def dependency_names(depends: str) -> list[str]:
    """Package names of a ``Depends`` field: the first alternative of each clause, without
    version constraints or ``:any``."""
    out = []
    for clause in depends.split(","):
        words = clause.split("|")[0].split()
        if words:
            name = words[0].split(":")[0]
            if _NAME.fullmatch(name):
                out.append(name)
    return out


def closure(roots: tuple[str, ...], have: frozenset[str]) -> list[debs.Pkg]:
    """``roots`` and everything they depend on, transitively, except packages in ``have``
    (the lab's userspace) and those in ``NOT_FOLLOWED``; one ``apt-cache`` call per level."""
    found: dict[str, debs.Pkg] = {}
    todo = list(roots)
    while todo:
        for p in debs.resolve(todo):
            found[p.name] = p
        todo = sorted({n for p in found.values() for n in dependency_names(p.depends)
                       if n not in found and n not in have and n not in NOT_FOLLOWED})
    return [found[n] for n in sorted(found)]


def _guest(cfg: LabConfig, progress: Progress) -> tuple[str, Path | None, bytes]:
    """(STATUS, the guest kernel Image, the module or b"") for the QEMU guest."""
    kdir = replace(cfg, kernel=GUEST_KERNEL).kernel_dir
    if not (kdir / "Image").is_file():
        return (f"skip no Debian {GUEST_KERNEL} kernel in the lab cache for the QEMU guest "
                f"(`sdei-state lab build --kernel {GUEST_KERNEL}`)", None, b"")
    kver = (kdir / "KVER").read_text().strip()
    try:
        module = guest_module.build(cfg.cache, kver, progress, HOLD_NAME).read_bytes()
        return f"ok {kver} with {HOLD_NAME}", kdir / "Image", module
    except guest_module.BuildUnavailable as e:
        return f"ok {kver} without {HOLD_NAME} ({e})", kdir / "Image", b""


def _linux_guest(cfg: LabConfig, progress: Progress) -> tuple[str, bytes]:
    """(STATUS, sdei_test.ko or b"") of the nested Linux guest for the ``linux-*`` cases."""
    kdir = replace(cfg, kernel=GUEST_KERNEL).kernel_dir
    if not (kdir / "Image").is_file():
        return (f"skip no Debian {GUEST_KERNEL} kernel in the lab cache (`sdei-state lab "
                f"build --kernel {GUEST_KERNEL}`)", b"")
    kver = (kdir / "KVER").read_text().strip()
    try:
        module = guest_module.build(cfg.cache, kver, progress).read_bytes()
    except guest_module.BuildUnavailable as e:
        return f"skip {e}", b""
    magic = guest_module.vermagic(module)
    if magic.split()[:1] != [kver]:
        return f"skip the module's vermagic {magic!r} is not for {kver}", b""
    return f"ok {kver}", module


def build(cfg: LabConfig, progress: Progress, refresh: bool = True) -> Path:
    """The layer (cached); a missing guest piece only changes its STATUS. Without
    ``refresh`` apt is not asked for newer packages (resolving the closure costs several
    ``apt-cache`` calls): the layer built last for the same guest is used."""
    status, image, module = _guest(cfg, progress)
    lg_status, lg_module = _linux_guest(cfg, progress)
    h = hashlib.sha256(f"{RECIPE}\0{status}\0".encode() + INIT.read_bytes() + module)
    h.update(f"\0{lg_status}\0".encode() + guest_assets.INIT.read_bytes() + lg_module)
    if image is not None:
        h.update((image.parent / "STAMP").read_bytes())
    guest_key = h.hexdigest()[:16]
    stamp = cfg.cache / "stock-vmm.stamp"
    if not refresh and stamp.is_file():
        key, _, name = stamp.read_text().strip().partition(" ")
        if key == guest_key and (cfg.cache / name).is_file():
            progress.cached("stock-vmm layer", name)
            return cfg.cache / name
    with progress.step("stock-vmm: resolve qemu-system-arm and its dependencies"):
        pkgs = closure(ROOTS, frozenset(rootfs.PACKAGES))
        (busybox_pkg,) = debs.resolve(["busybox-static"])
    for p in (*pkgs, busybox_pkg):
        h.update(f"{p.name}={p.version};".encode())
    out = cfg.cache / f"stock-vmm-{h.hexdigest()[:16]}.cpio"
    if out.is_file():
        write_text(stamp, f"{guest_key} {out.name}\n")
        progress.cached("stock-vmm layer", out.name)
        return out
    with progress.step(f"stock-vmm: download {len(pkgs) + 1} arm64 packages"):
        paths = debs.download([*pkgs, busybox_pkg], cfg.cache / "debs" / "stock-vmm")
    with progress.step("stock-vmm: write the layer"), \
            tempfile.TemporaryDirectory(prefix=".tmp-sv-", dir=cfg.cache) as td:
        root = Path(td)
        for deb in paths[:-1]:
            debs.unpack(deb, root / "tree")
        debs.unpack(paths[-1], root / "busybox")
        busybox = (root / "busybox" / "bin" / "busybox").read_bytes()
        for old in cfg.cache.glob("stock-vmm-*.cpio"):
            old.unlink()
        with atomic_write(out) as f:
            w = CpioWriter(f)
            parts = GUEST_DIR.split("/")
            for i in range(1, len(parts) + 1):
                w.add_dir("/".join(parts[:i]))
            w.add_bytes(f"{GUEST_DIR}/STATUS", (status + "\n").encode())
            if image is not None:
                w.add_file(f"{GUEST_DIR}/Image", image)
                w.add_bytes(f"{GUEST_DIR}/initramfs.cpio", guest_assets.busybox_initramfs(
                    INIT.read_bytes(), busybox, HOLD_NAME, module))
            w.add_dir(f"{GUEST_DIR}/linux-guest")
            w.add_bytes(f"{GUEST_DIR}/linux-guest/STATUS", (lg_status + "\n").encode())
            if image is not None and lg_module:
                w.add_symlink(f"{GUEST_DIR}/linux-guest/Image", "../Image")
                w.add_bytes(f"{GUEST_DIR}/linux-guest/initramfs.cpio",
                            guest_assets.busybox_initramfs(
                                guest_assets.INIT.read_bytes(), busybox,
                                guest_module.MODULE_NAME, lg_module))
            for rel in rootfs.PRUNE:
                _rmtree(root / "tree" / rel)
            w.add_tree(root / "tree")
            w.close()
    write_text(stamp, f"{guest_key} {out.name}\n")
    progress.say(f"stock-vmm layer: {out.name} ({out.stat().st_size >> 20} MiB): {status}")
    return out


def _rmtree(p: Path) -> None:
    shutil.rmtree(p, ignore_errors=True)
