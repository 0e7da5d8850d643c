"""Debian packages for the arm64 guest: resolve, download with apt, unpack with dpkg-deb.

Nothing is installed: packages are fetched with ``apt-get download`` (the host must have the
arm64 architecture enabled, which ``setup-host.sh`` does) and only unpacked.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .progress import run


@dataclass(frozen=True)
class Pkg:
    """A resolved package: name, version, and the apt spec to download it with."""

    name: str
    version: str
    arch: str  # "arm64" or "all"
    depends: str = field(default="", repr=False, compare=False)

    @property
    def spec(self) -> str:
        return f"{self.name}:arm64" if self.arch != "all" else self.name

    @property
    def deb_glob(self) -> str:
        return f"{self.name}_*_{self.arch}.deb"


def check_arm64_enabled() -> None:
    """Raise with the fix when apt cannot see arm64 packages."""
    archs = run(["dpkg", "--print-foreign-architectures"]).split()
    if "arm64" not in archs:
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
                             fields.get("Depends", "")))
    return found


def resolve(names: Sequence[str]) -> list[Pkg]:
    """Resolve package names to their arm64 (or ``Architecture: all``) candidates with one
    ``apt-cache`` call (each call costs a second or two): every name is asked for both plain
    and ``:arm64``, and the arm64 or arch-independent block wins."""
    found: dict[str, Pkg] = {}
    for p in _show([spec for n in names for spec in (n, f"{n}:arm64")]):
        if p.arch in ("all", "arm64"):
            found.setdefault(p.name, p)
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"apt has no arm64 build of {', '.join(missing)} (is the arm64 "
                           "architecture enabled and `apt-get update` done?)")
    return [found[n] for n in names]


def resolve_meta(meta: str) -> Pkg:
    """The concrete ``linux-image-<version>-arm64`` package (and version) a meta package
    depends on, read from the meta package's ``Depends`` field."""
    for p in _show([f"{meta}:arm64"]):
        m = re.match(r"(linux-image-[^\s(,]+)\s*\(=\s*([^)\s]+)\)", p.depends)
        if p.arch == "arm64" and m:
            return Pkg(m.group(1), m.group(2), "arm64")
    raise RuntimeError(f"cannot resolve {meta}:arm64 to a versioned linux-image package")


def download(pkgs: list[Pkg], dest: Path) -> list[Path]:
    """``apt-get download`` what is not in ``dest`` yet; returns the .deb paths in order."""
    dest.mkdir(parents=True, exist_ok=True)

    def have(p: Pkg) -> Path | None:
        want = f"{p.name}_{p.version.replace(':', '%3a')}_{p.arch}.deb"
        f = dest / want
        return f if f.is_file() else None

    todo = [p for p in pkgs if have(p) is None]
    if todo:
        run(["apt-get", "download", *[f"{p.spec}={p.version}" for p in todo]], cwd=dest)
    paths = []
    for p in pkgs:
        f = have(p)
        if f is None:
            raise RuntimeError(f"apt-get download left no {p.name} {p.version} in {dest}")
        paths.append(f)
    return paths


def unpack(deb: Path, root: Path) -> None:
    """``dpkg-deb -x``: the package's files only, no maintainer scripts."""
    run(["dpkg-deb", "-x", str(deb), str(root)])
