"""Cross-build the guest test modules (``sdei_state/linux_guest/module``: ``sdei_test`` of the
linux-guest suite, ``sdei_hold`` of the stock-vmm suite, and the ``sdei_api.h`` both use) on
the host, against Debian's headers for exactly the kernel the lab boots, so their vermagic
matches.

What it takes (all Debian bookworm packages, downloaded with apt, only unpacked):

- ``linux-headers-<kver>`` (arm64) and ``linux-headers-<base>-common`` (all): the kernel's
  build tree (``.config``, ``Module.symvers``, headers, the arm64 Makefile);
- ``linux-kbuild-<series>`` for the host (amd64): fixdep, modpost and the other host tools
  the build tree links to;
- ``gcc-12`` for aarch64 (``gcc-aarch64-linux-gnu``, the compiler Debian built the kernel
  with: the tree's ``.kernelvariables`` names ``aarch64-linux-gnu-gcc-12``).

The packages' top Makefile includes the common tree by its absolute /usr/src path; the
unpacked tree gets a ``Makefile.staged`` including it where it was unpacked instead. BTF for
modules is switched off (it needs ``pahole`` and the guest does not need it). One build makes
every module; each ``.ko`` is cached under ``<cache>/linux-guest/`` by a key over the sources,
the package versions and the compiler's version.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import debs
from .cache import atomic_write, replace_dir
from .progress import Progress

MODULE_DIR: Final = Path(__file__).resolve().parent.parent / "linux_guest" / "module"
MODULE_NAME: Final = "sdei_test"
"""The linux-guest suite's module."""
HOLD_NAME: Final = "sdei_hold"
"""The stock-vmm suite's module (a handler that holds the CPU while QEMU migrates)."""
MODULES: Final = (MODULE_NAME, HOLD_NAME)
"""What the directory's Kbuild builds."""
CROSS_COMPILE: Final = "aarch64-linux-gnu-"
COMPILER: Final = f"{CROSS_COMPILE}gcc-12"
RECIPE: Final = "1"  # bump when the build below changes in a way the key cannot see


class BuildUnavailable(RuntimeError):
    """A piece the cross build needs is missing; the message is the skip reason."""


@dataclass(frozen=True)
class HeaderPkgs:
    """The three packages of kernel release ``kver`` (e.g. ``6.12.118+deb12-arm64``)."""

    kver: str

    @property
    def base(self) -> str:
        """``6.12.118+deb12``: the release without its flavour."""
        return self.kver.rsplit("-", 1)[0]

    @property
    def headers(self) -> str:
        return f"linux-headers-{self.kver}"

    @property
    def common(self) -> str:
        return f"linux-headers-{self.base}-common"

    @property
    def kbuild(self) -> str:
        return f"linux-kbuild-{self.base}"


def sources() -> list[Path]:
    """The module's source files, in a stable order."""
    return sorted(p for p in MODULE_DIR.iterdir() if p.is_file() and p.suffix in ("", ".c",
                                                                                   ".h"))


def cache_key(kver: str, versions: list[str], compiler_version: str) -> str:
    """The module's cache key: recipe, kernel release, package versions, compiler version,
    and every source file's name and bytes."""
    h = hashlib.sha256(f"{RECIPE}\0{kver}\0{';'.join(versions)}\0{compiler_version}".encode())
    for p in sources():
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_command(tree: Path, moddir: Path) -> list[str]:
    """The make command that builds the module in ``moddir`` against ``tree`` (the unpacked
    linux-headers-<kver> directory)."""
    return ["make", "-s", "-C", str(tree), "-f", "Makefile.staged", f"M={moddir}",
            "CONFIG_DEBUG_INFO_BTF_MODULES=", "modules"]


def compiler_version() -> str:
    """``aarch64-linux-gnu-gcc-12 --version``'s first line; BuildUnavailable without it."""
    if shutil.which(COMPILER) is None:
        raise BuildUnavailable(f"no {COMPILER} on the host (apt-get install "
                               "gcc-aarch64-linux-gnu)")
    if shutil.which("make") is None:
        raise BuildUnavailable("no make on the host (apt-get install make)")
    out = subprocess.run([COMPILER, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else COMPILER


def _headers_tree(cache: Path, pkgs: HeaderPkgs, progress: Progress) -> tuple[Path, list[str]]:
    """The unpacked build tree of ``pkgs`` (cached), and the package versions."""
    try:
        target = debs.resolve([pkgs.headers, pkgs.common])
        host = debs.resolve([pkgs.kbuild], arch=_host_arch())
    except RuntimeError as e:
        raise BuildUnavailable(f"no Debian headers for {pkgs.kver}: {e}") from None
    all_pkgs = [*target, *host]
    versions = [f"{p.name}={p.version}" for p in all_pkgs]
    dest = cache / "linux-guest" / f"headers-{pkgs.kver}"
    stamp = dest / "STAMP"
    tree = dest / "usr" / "src" / pkgs.headers
    if stamp.is_file() and stamp.read_text() == "\n".join(versions):
        progress.cached("linux-guest headers", pkgs.kver)
        return tree, versions
    with progress.step(f"linux-guest: download headers for {pkgs.kver}"):
        paths = debs.download(all_pkgs, cache / "debs" / "linux-guest")
    with progress.step("linux-guest: unpack headers"), \
            tempfile.TemporaryDirectory(prefix=".tmp-hdr-", dir=cache) as td:
        stage = Path(td) / "out"
        for deb in paths:
            debs.unpack(deb, stage)
        staged_tree = stage / "usr" / "src" / pkgs.headers
        common = dest / "usr" / "src" / pkgs.common  # where it will be after the rename
        (staged_tree / "Makefile.staged").write_text(f"include {common}/Makefile\n")
        (stage / "STAMP").write_text("\n".join(versions))
        replace_dir(stage, dest)
    return tree, versions


def _host_arch() -> str:
    out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                         check=False)
    return out.stdout.strip() or "amd64"


def build(cache: Path, kver: str, progress: Progress, name: str = MODULE_NAME) -> Path:
    """``<cache>/linux-guest/<name>-<key>.ko`` for kernel release ``kver`` (``name`` one of
    ``MODULES``), built with the others if missing; BuildUnavailable (the reason) when a piece
    is missing or the build fails."""
    if name not in MODULES:
        raise ValueError(f"no guest module {name!r} (one of {', '.join(MODULES)})")
    cc = compiler_version()
    tree, versions = _headers_tree(cache, HeaderPkgs(kver), progress)
    key = cache_key(kver, versions, cc)
    outs = {n: cache / "linux-guest" / f"{n}-{key}.ko" for n in MODULES}
    if all(p.is_file() for p in outs.values()):
        progress.cached("guest module", outs[name].name)
        return outs[name]
    with progress.step(f"linux-guest: cross-build {', '.join(MODULES)} for {kver}"), \
            tempfile.TemporaryDirectory(prefix=".tmp-mod-", dir=cache) as td:
        moddir = Path(td)
        for p in sources():
            shutil.copy2(p, moddir / p.name)
        res = subprocess.run(build_command(tree, moddir), capture_output=True, text=True,
                             check=False)
        missing = [n for n in MODULES if not (moddir / f"{n}.ko").is_file()]
        if res.returncode != 0 or missing:
            tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-6:])
            raise BuildUnavailable(f"the cross build of {', '.join(missing or MODULES)} "
                                   f"failed: {tail}")
        for n, out in outs.items():
            for old in out.parent.glob(f"{n}-*.ko"):
                old.unlink()
            with atomic_write(out) as f:
                f.write((moddir / f"{n}.ko").read_bytes())
    return outs[name]


def vermagic(ko: bytes) -> str:
    """The ``vermagic=`` string of a module's .modinfo ('' if none)."""
    i = ko.find(b"vermagic=")
    if i < 0:
        return ""
    j = ko.find(b"\0", i)
    return ko[i + len("vermagic="):j].decode(errors="replace")
