"""Lab settings: where the cache lives, which kernels exist, how QEMU is configured."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

KERNELS: Final = {
    # series -> Debian meta package (resolved to the concrete linux-image package at fetch time)
    "6.12": "linux-image-6.12-arm64",  # bookworm-security: SMCCC filter, firmware bitmaps
    "6.1": "linux-image-arm64",  # bookworm's default: no SMCCC filter
}
BUILT_KERNELS: Final = ("sdei",)
"""Kernels the lab builds itself (``sdei-state lab kernel build``, lab/kbuild.py): ``sdei`` is
Debian's linux-source-6.12 with the KVM SDEI series of ``kernel/patches``."""
KVM_MODES: Final = ("vhe", "nvhe", "protected")
DEFAULT_CPU: Final = "max,pauth-impdef=on"  # pauth-impdef: cheaper pointer auth under TCG


def default_cache_dir() -> Path:
    """``$SDEI_STATE_LAB_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/sdei-state/lab``."""
    env = os.environ.get("SDEI_STATE_LAB_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdei-state" / "lab"


@dataclass(frozen=True)
class LabConfig:
    """Everything that decides what the lab boots."""

    cache: Path
    kernel: str = "6.12"
    kvm_mode: str = "vhe"
    cpu: str = DEFAULT_CPU
    smp: int = 2
    mem_mb: int = 2048
    timeout: float = 900.0
    qemu: str = "qemu-system-aarch64"
    with_qemu: bool = False
    """Append the stock-vmm layer (Debian's QEMU and its Linux guest; lab/qemu_layer.py)."""

    def __post_init__(self) -> None:
        if self.kernel not in (*KERNELS, *BUILT_KERNELS):
            raise ValueError(f"--kernel {self.kernel!r}: expected one of "
                             f"{', '.join((*KERNELS, *BUILT_KERNELS))}")
        if self.kvm_mode not in KVM_MODES:
            raise ValueError(f"--kvm-mode {self.kvm_mode!r}: expected one of "
                             f"{', '.join(KVM_MODES)}")
        if not 1 <= self.smp <= 8:
            raise ValueError(f"--smp {self.smp}: expected 1..8")
        if self.mem_mb < 512:
            raise ValueError(f"--mem {self.mem_mb}: at least 512 MiB")
        if self.timeout <= 0:
            raise ValueError(f"--timeout {self.timeout}: must be positive")

    @property
    def kernel_dir(self) -> Path:
        return self.cache / "kernels" / self.kernel

    @property
    def kernel_cmdline(self) -> str:
        args = "console=ttyAMA0 rdinit=/init quiet panic=-1"
        # VHE is the default with -cpu max; a CPU without FEAT_VHE falls back to nVHE.
        if self.kvm_mode != "vhe":
            args += f" kvm-arm.mode={self.kvm_mode}"
        return args
