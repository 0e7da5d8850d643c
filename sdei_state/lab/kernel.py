"""Fetch a Debian arm64 kernel and keep what the lab boots: the Image, its config, and a small
cpio with the 9p/virtio modules (decompressed, dependency-ordered) that ``init.sh`` loads.

``CONFIG_KVM=y`` on Debian arm64 (KVM cannot be a module there), so no KVM module is needed.
"""

from __future__ import annotations

import gzip
import lzma
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import debs
from .cache import replace_dir
from .config import KERNELS, LabConfig
from .cpio import CpioWriter
from .progress import Progress

WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p")  # virtio_pci is built in on 6.12


def kernel_ready(kdir: Path) -> bool:
    return all((kdir / f).is_file() for f in ("Image", "KVER", "mods.cpio", "STAMP"))


def fetch(cfg: LabConfig, progress: Progress, refresh: bool = True) -> Path:
    """Make ``cfg.kernel_dir`` hold the current Debian kernel of series ``cfg.kernel``. With
    ``refresh`` false a kernel already fetched is used without asking apt for a newer one."""
    name = f"fetch kernel {cfg.kernel}"
    kdir = cfg.kernel_dir
    if not refresh and kernel_ready(kdir):
        progress.cached(name, (kdir / "STAMP").read_text().strip())
        return kdir
    with progress.step(f"{name}: resolve"):
        debs.check_arm64_enabled()
        pkg = debs.resolve_meta(KERNELS[cfg.kernel])
    stamp = f"{pkg.name} {pkg.version}\n"
    if kernel_ready(kdir) and (kdir / "STAMP").read_text() == stamp:
        progress.cached(name, f"{pkg.name} {pkg.version}")
        return kdir
    with progress.step(f"{name}: download {pkg.name} {pkg.version}"):
        (deb,) = debs.download([pkg], cfg.cache / "debs" / "kernel")
    with progress.step(f"{name}: unpack Image and 9p modules"):
        with tempfile.TemporaryDirectory(prefix="kpkg-", dir=cfg.cache) as td:
            x = Path(td)
            debs.unpack(deb, x)
            kvers = sorted(p.name for p in (x / "lib" / "modules").iterdir())
            if len(kvers) != 1:
                raise RuntimeError(f"{deb.name}: expected one /lib/modules/<version>, "
                                   f"found {kvers}")
            kver = kvers[0]
            stage = Path(td) / "out"
            stage.mkdir()
            shutil.copy2(x / "boot" / f"vmlinuz-{kver}", stage / "Image")
            shutil.copy2(x / "boot" / f"config-{kver}", stage / "config")
            (stage / "KVER").write_text(kver + "\n")
            order = _write_modules(x / "lib" / "modules" / kver / "kernel", stage / "mods.cpio")
            (stage / "MODULES").write_text("".join(m + "\n" for m in order))
            (stage / "STAMP").write_text(stamp)
            replace_dir(stage, kdir)
        deb.unlink()  # 60-100 MB; the STAMP says what was unpacked, a new version re-downloads
    progress.say(f"kernel {cfg.kernel}: {kver}; modules loaded at boot: "
                 f"{' '.join(order) or '(none: all built in)'}")
    return kdir


def _read_module(path: Path) -> bytes:
    if path.suffix == ".xz":
        return lzma.decompress(path.read_bytes())
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-qdc", str(path)], capture_output=True,
                              check=True).stdout
    return path.read_bytes()


def _depends(ko: bytes) -> list[str]:
    """The ``depends=`` field of a module's .modinfo section."""
    m = re.search(rb"(?:^|\0)depends=([^\0]*)", ko)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def _write_modules(moddir: Path, out: Path) -> list[str]:
    """Write the wanted modules and their dependency closure, dependencies first, with an ORDER
    file, as a cpio rooted at /lib/modules/lab. Returns the load order."""
    index = {}
    for p in moddir.rglob("*.ko*"):
        base = p.name.split(".ko")[0].replace("-", "_")
        index[base] = p
    order: list[str] = []
    blobs: dict[str, bytes] = {}

    def add(name: str, chain: tuple[str, ...]) -> None:
        name = name.replace("-", "_")
        if name in blobs or name in chain:
            return
        path = index.get(name)
        if path is None:
            return  # built in
        data = _read_module(path)
        for dep in _depends(data):
            add(dep, (*chain, name))
        blobs[name] = data
        order.append(name)

    for m in WANTED_MODULES:
        add(m, ())
    with out.open("wb") as f:
        w = CpioWriter(f)
        for d in ("lib", "lib/modules", "lib/modules/lab"):
            w.add_dir(d)
        for name in order:
            w.add_bytes(f"lib/modules/lab/{name}.ko", blobs[name])
        w.add_bytes("lib/modules/lab/ORDER", "".join(f"{n}.ko\n" for n in order).encode())
        w.close()
    return order
