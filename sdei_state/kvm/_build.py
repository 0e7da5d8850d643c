"""Builds the compiled (API-mode) cffi module ``sdei_state.kvm._api`` from ``cdefs/``.

Used by ``setup.py`` at install time (when a C compiler is present) and by
``sdei_state.kvm.ffi`` when ``SDEI_STATE_CFFI=api`` is asked for and no installed module exists.
Imports nothing from ``sdei_state`` so the build works before the package is importable.
The module lives inside the package (no top-level name of ours in site-packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODULE_NAME = "sdei_state.kvm._api"
MODULE_BASENAME = MODULE_NAME.rpartition(".")[2]  # the file name stem: _api.<abi tag>.so

# The helpers declared in cdefs/kvm_api.h. Kept here rather than in a .c file so the on-demand
# build of an installed package needs nothing but this module and the headers.
C_HELPERS = r"""
long sdei_kvm_ioctl(int fd, unsigned long request, void *arg)
{
	int r = ioctl(fd, request, arg);
	return r < 0 ? -(long)errno : (long)r;
}

int sdei_kvm_one_reg_batch(int fd, unsigned long request, struct kvm_one_reg *regs, size_t n,
                           size_t *done)
{
	size_t i;
	for (i = 0; i < n; i++) {
		if (ioctl(fd, request, &regs[i]) < 0) {
			*done = i;
			return errno;
		}
	}
	*done = n;
	return 0;
}
"""

_C_PRELUDE = "#include <errno.h>\n#include <stddef.h>\n#include <stdint.h>\n" \
             "#include <sys/ioctl.h>\n#include <sys/mman.h>\n"


def cdefs_dir() -> Path:
    """Where the headers are: ``sdei_state/cdefs`` when installed, ``<repo>/cdefs`` in a tree."""
    here = Path(__file__).resolve().parent
    for d in (here.parent / "cdefs", here.parent.parent / "cdefs"):
        if (d / "kvm.h").is_file():
            return d
    raise FileNotFoundError(
        f"cdefs/kvm.h not found next to the package ({here.parent / 'cdefs'}) "
        f"or in the source tree ({here.parent.parent / 'cdefs'})")


def read_cdefs() -> tuple[str, str]:
    """(kvm.h, kvm_api.h) texts."""
    d = cdefs_dir()
    return (d / "kvm.h").read_text(), (d / "kvm_api.h").read_text()


def _declarations_only(kvm_h: str) -> str:
    """kvm.h without its libc prototypes: the C source takes those from the system headers."""
    return kvm_h.split("/* libc */", 1)[0]


def make_builder() -> Any:
    """A ``cffi.FFI`` set up for ``ffibuilder.compile()`` / ``emit_c_code()``."""
    import cffi

    kvm_h, api_h = read_cdefs()
    ffibuilder = cffi.FFI()
    ffibuilder.cdef(kvm_h)
    ffibuilder.cdef(api_h)
    ffibuilder.set_source(MODULE_NAME, _C_PRELUDE + _declarations_only(kvm_h) + C_HELPERS)
    return ffibuilder


def source_key() -> str:
    """A digest of everything that goes into the compiled module (for on-demand build caches)."""
    import hashlib
    import sys

    import cffi

    kvm_h, api_h = read_cdefs()
    h = hashlib.sha256()
    for part in (MODULE_NAME, kvm_h, api_h, C_HELPERS, _C_PRELUDE, cffi.__version__, sys.version,
                 sys.platform):
        h.update(part.encode())
    return h.hexdigest()[:16]


if __name__ == "__main__":
    # python -m sdei_state.kvm._build, from the source tree's root: an in-place build
    # (sdei_state/kvm/_api.*.so next to this file; the generated .c and .o are git-ignored).
    make_builder().compile(verbose=True)
