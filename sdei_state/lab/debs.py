"""Debian packages for the arm64 guest: resolve, download with apt, unpack with dpkg-deb.

Nothing is installed: packages are fetched with ``apt-get download`` (the host must have the
arm64 architecture enabled, which ``setup-host.sh`` does) and only unpacked.

apt checks a download against its signed index; a cached ``.deb`` is checked again, against the
SHA256 that ``apt-cache show`` gives from the same index, before every reuse. A cached file that
does not match is deleted and downloaded again; a download that does not match is refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import host
from .progress import run


@dataclass(frozen=True)
class Pkg:
    """A resolved package: name, version, and the apt spec to download it with."""

    name: str
    version: str
    arch: str  # "arm64" or "all"
    depends: str = field(default="", repr=False, compare=False)
    sha256: str = field(default="", repr=False, compare=False)  # from apt's signed index

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.arch}" if self.arch != "all" else self.name

    @property
    def deb_glob(self) -> str:
        return f"{self.name}_*_{self.arch}.deb"

    @property
    def deb_name(self) -> str:
        """The file name ``apt-get download`` gives it (an epoch's ``:`` as ``%3a``)."""
        return f"{self.name}_{self.version.replace(':', '%3a')}_{self.arch}.deb"


def check_arm64_enabled() -> None:
    """Raise with the fix when apt cannot see arm64 packages."""
    if not host.arm64_enabled():
        raise RuntimeError("apt has no arm64 architecture: run `sdei-state lab setup` as root "
                           "(dpkg --add-architecture arm64; apt-get update)")


def _show(specs: list[str]) -> list[Pkg]:
    """Every package block ``apt-cache show --no-all-versions`` prints for ``specs`` (names
    it cannot find are left out silently when at least one is found)."""
    try:
        text = run(["apt-cache", "show", "--no-all-versions", *specs])
    except subprocess.CalledProcessError as e:
        why = [ln for ln in (e.stderr or "").splitlines() if ln.startswith(("E:", "N:"))]
        shown = " ".join(specs[:6]) + (" ..." if len(specs) > 6 else "")
        raise RuntimeError(f"apt-cache show {shown}: "
                           + ("; ".join(why) or (e.stderr or "").strip())
                           + " (is the arm64 architecture enabled and `apt-get update` done?)"
                           ) from None
    found = []
    for block in text.split("\n\n"):
        fields = dict(ln.split(": ", 1) for ln in block.splitlines()
                      if ": " in ln and not ln.startswith(" "))
        if "Package" in fields:
            found.append(Pkg(fields["Package"], fields["Version"], fields["Architecture"],
                             fields.get("Depends", ""), fields.get("SHA256", "").lower()))
    return found


def resolve(names: Sequence[str], arch: str = "arm64") -> list[Pkg]:
    """Resolve package names to their ``arch`` (or ``Architecture: all``) candidates with one
    ``apt-cache`` call (each call costs a second or two): every name is asked for both plain
    and ``:arch``, and the ``arch`` or arch-independent block wins. (``arch`` is the host's
    for build tools such as linux-kbuild.)"""
    found: dict[str, Pkg] = {}
    for p in _show([spec for n in names for spec in (n, f"{n}:{arch}")]):
        if p.arch in ("all", arch):
            found.setdefault(p.name, p)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"apt has no {arch} build of {', '.join(missing)} (is the {arch} "
                           "architecture enabled and `apt-get update` done?)")
    return [found[n] for n in names]


def resolve_meta(meta: str) -> Pkg:
    """The concrete ``linux-image-<version>-arm64`` package (and version) a meta package
    depends on, read from the meta package's ``Depends`` field, with its index entry."""
    for p in _show([f"{meta}:arm64"]):
        m = re.match(r"(linux-image-[^\s(,]+)\s*\(=\s*([^)\s]+)\)", p.depends)
        if p.arch == "arm64" and m:
            for q in _show([f"{m.group(1)}:arm64={m.group(2)}"]):
                if (q.name, q.version, q.arch) == (m.group(1), m.group(2), "arm64"):
                    return q
    raise RuntimeError(f"cannot resolve {meta}:arm64 to a versioned linux-image package")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _verified(p: Pkg, f: Path) -> bool:
    return bool(p.sha256) and f.is_file() and sha256_of(f) == p.sha256


def download(pkgs: list[Pkg], dest: Path) -> list[Path]:
    """The .deb of every package in ``dest``, in order: a cached file is reused only when its
    SHA256 is the index's (else deleted); the rest are fetched with ``apt-get download`` into a
    fresh temporary directory, checked, and renamed into ``dest``. RuntimeError names a
    package whose download does not match its index entry."""
    dest.mkdir(parents=True, exist_ok=True)
    todo = []
    for p in pkgs:
        f = dest / p.deb_name
        if f.exists() and not _verified(p, f):
            f.unlink()  # stale, corrupt or tampered with; apt fetches it again below
        if not f.exists():
            todo.append(p)
    if todo:
        with tempfile.TemporaryDirectory(prefix=".tmp-dl-", dir=dest) as td:
            run(["apt-get", "download", *[f"{p.spec}={p.version}" for p in todo]],
                cwd=Path(td))
            for p in todo:
                got = Path(td) / p.deb_name
                if not got.is_file():
                    raise RuntimeError(f"apt-get download left no {p.deb_name}")
                if p.sha256 and sha256_of(got) != p.sha256:
                    raise RuntimeError(f"{p.deb_name}: SHA256 {sha256_of(got)} is not the "
                                       f"{p.sha256} of apt's index; refusing it")
                os.replace(got, dest / p.deb_name)
    return [dest / p.deb_name for p in pkgs]


def unpack(deb: Path, root: Path) -> None:
    """``dpkg-deb -x``: the package's files only, no maintainer scripts."""
    run(["dpkg-deb", "-x", str(deb), str(root)])
