"""The host's one-time setup: what the lab needs from the host, and installing it.

``setup-host.sh`` (run as root) enables apt's arm64 architecture and installs QEMU and the
decompressors. The lab runs it by itself, once, when a subcommand that boots or builds finds
something missing and the user is root; otherwise it says in one line what to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Final

from .progress import LabError, Progress

SETUP_SCRIPT: Final = Path(__file__).with_name("setup-host.sh")
SETUP_HINT: Final = "run `sdei-state lab setup` once as root (e.g. with sudo)"
# host tool -> the Debian package setup-host.sh installs for it
TOOLS: Final = {"qemu-system-aarch64": "qemu-system-arm", "xz": "xz-utils", "zstd": "zstd"}
DEBIAN_TOOLS: Final = ("apt-get", "apt-cache", "dpkg", "dpkg-deb")


def is_root() -> bool:
    return os.geteuid() == 0


def arm64_enabled() -> bool:
    """Whether dpkg lists arm64 among its foreign architectures."""
    r = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                       text=True)
    return r.returncode == 0 and "arm64" in r.stdout.split()


def missing(qemu: str = "qemu-system-aarch64") -> list[str]:
    """What the host lacks for the lab, each as a short phrase; empty when ready. Raises
    LabError on a host that has no apt/dpkg (setup-host.sh is for Debian)."""
    absent = [t for t in DEBIAN_TOOLS if shutil.which(t) is None]
    if absent:
        raise LabError("host check", f"this host has no {', '.join(absent)}: the lab needs a "
                                     "Debian (12 or later) host")
    tools = dict(TOOLS)
    tools[qemu] = tools.pop("qemu-system-aarch64")
    out = [f"{tool} (package {pkg})" for tool, pkg in tools.items() if shutil.which(tool) is None]
    if not arm64_enabled():
        out.append("apt's arm64 architecture")
    return out


def setup(progress: Progress) -> None:
    """Run ``setup-host.sh`` (root only; LabError with the one-line fix otherwise)."""
    if not is_root():
        raise LabError("host setup", "needs root (dpkg --add-architecture, apt-get install): "
                                     "run `sdei-state lab setup` with sudo")
    with progress.step("host setup (apt)"):
        subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, capture_output=True,
                       text=True)


def ensure(progress: Progress, qemu: str = "qemu-system-aarch64") -> None:
    """Make the host ready for the lab: nothing when it is; the setup when root; else
    LabError saying in one line what is missing and what to run."""
    lacking = missing(qemu)
    if not lacking:
        return
    if not is_root():
        raise LabError("host check", f"this host lacks {', '.join(lacking)}: {SETUP_HINT}")
    progress.say(f"host lacks {', '.join(lacking)}: one-time host setup")
    setup(progress)
    still = missing(qemu)
    if still:
        raise LabError("host setup", f"still missing after setup-host.sh: {', '.join(still)}")
