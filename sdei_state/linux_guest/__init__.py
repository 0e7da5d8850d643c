"""The Linux guest of the linux-guest selftest: the SDEI test module's source (``module/``,
cross-built by ``sdei_state.lab.guest_module``), the nested guest's ``init.sh``, and
``results``: the console lines the module prints, parsed.

The assets a run needs (the kernel Image, the nested initramfs) are made on the host by the
lab and found in the lab guest under ``ASSETS`` (``$SDEI_STATE_LINUX_GUEST`` elsewhere).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

ASSETS: Final = Path("/usr/share/sdei-state/linux-guest")


def assets_dir() -> Path:
    """Where the Image, initramfs.cpio and STATUS are: ``$SDEI_STATE_LINUX_GUEST`` if set,
    else the lab's ``ASSETS``."""
    env = os.environ.get("SDEI_STATE_LINUX_GUEST")
    return Path(env) if env else ASSETS


def missing_reason(d: Path) -> str | None:
    """Why the assets in ``d`` cannot be used (None when they can)."""
    status = d / "STATUS"
    if not status.is_file():
        return (f"no linux-guest assets in {d} (`sdei-state lab run` builds them; elsewhere "
                "set SDEI_STATE_LINUX_GUEST)")
    text = status.read_text().strip()
    if not text.startswith("ok"):
        return text.removeprefix("skip ").strip() or "linux-guest assets marked unusable"
    for name in ("Image", "initramfs.cpio"):
        if not (d / name).is_file():
            return f"{d / name} is missing"
    return None
