"""The lab's cache directory: created with a marker file, refused when it holds someone else's
files, deleted only when marked; and the one way files are written into it (a temporary file
with an unpredictable name beside the target, renamed over it when complete).

The marker is what lets ``lab clean`` run ``rm -rf`` safely: a mistyped ``--cache ~`` finds no
marker and nothing is deleted. A cache made before the marker existed is adopted when every
entry in it is a name the lab writes.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Final

MARKER: Final = ".sdei-state-lab"
MARKER_TEXT: Final = "sdei-state lab cache: `sdei-state lab clean` may delete this directory\n"

# Every top-level name build/run write (and their temporary directories), for adoption.
_LAB_NAMES: Final = ("kernels", "debs", "boot", "runs", "uapi-arm64", "userspace.cpio",
                     "userspace.stamp", "last-console.log", "app-*",  # app-<digest>.cpio too
                     "kpkg-*", "rootfs-*", "uapi-*", ".tmp-*", MARKER,
                     "linux-guest", "linux-guest-*",  # lab/guest_assets.py
                     "stock-vmm", "stock-vmm-*", "stock-vmm.stamp")  # lab/qemu_layer.py


class CacheError(RuntimeError):
    """The directory cannot be used or deleted as the lab's cache; the message says why."""


def is_marked(cache: Path) -> bool:
    m = cache / MARKER
    return m.is_file() and not m.is_symlink() and m.read_text(errors="replace") == MARKER_TEXT


def _looks_like_lab_cache(cache: Path) -> bool:
    return all(any(fnmatch.fnmatchcase(p.name, pat) for pat in _LAB_NAMES)
               for p in cache.iterdir())


def prepare(cache: Path) -> Path:
    """Create ``cache`` (mode 0700) with its marker, or check that an existing one is the
    lab's; CacheError for a directory holding other files."""
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise CacheError(f"--cache {cache}: not a directory")
    if cache.is_dir() and not is_marked(cache) and not _looks_like_lab_cache(cache):
        raise CacheError(f"--cache {cache}: holds files that are not the lab's and no "
                         f"{MARKER} marker; give an empty or new directory")
    cache.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not is_marked(cache):
        write_text(cache / MARKER, MARKER_TEXT)
    return cache


def clean(cache: Path) -> str:
    """Delete ``cache`` if it is the lab's (marked); returns what was done. CacheError, and
    nothing deleted, for any other path."""
    if not cache.exists() and not cache.is_symlink():
        return f"{cache}: no cache there, nothing to delete"
    if cache.is_symlink() or not cache.is_dir():
        raise CacheError(f"--cache {cache}: not a directory; not deleting it")
    if not is_marked(cache):
        raise CacheError(f"--cache {cache}: not a lab cache (no {MARKER} marker written by "
                         "the lab); not deleting it")
    shutil.rmtree(cache)
    return f"removed {cache}"


@contextmanager
def atomic_write(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary file that becomes ``path`` only when the block completes (same directory,
    unpredictable temporary name, ``os.replace``); on error the target is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix="-" + path.name, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """``path.write_text(text)``, atomically."""
    with atomic_write(path) as f:
        f.write(text.encode())


def replace_dir(stage: Path, dest: Path) -> None:
    """Put the complete directory ``stage`` at ``dest`` (same file system): the old one is
    renamed aside first and deleted after, so ``dest`` is never half written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=".tmp-old-", dir=dest.parent))
        os.rename(dest, old / dest.name)
    os.rename(stage, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
