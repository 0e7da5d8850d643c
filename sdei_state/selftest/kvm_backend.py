"""The arm64 KVM backend: found only on an aarch64 host whose /dev/kvm opens."""

from __future__ import annotations

import os
import platform

from .backends import Backend


def probe_kvm() -> tuple[Backend | None, str]:
    """(backend, "") when arm64 KVM is usable, else (None, the reason)."""
    machine = platform.machine()
    if machine not in ("aarch64", "arm64"):
        return None, f"this host is {machine}, not arm64"
    if not os.path.exists("/dev/kvm"):
        return None, "/dev/kvm does not exist"
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return None, f"/dev/kvm: {e.strerror}"
    os.close(fd)
    return None, "the arm64 KVM suites are not built yet"
