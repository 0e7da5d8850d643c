"""A newc ("070701") cpio writer: the format the kernel unpacks as an initramfs.

Written here so the lab needs no cpio tool; entries are sorted and timestamps zeroed, so the
same tree gives the same archive. Archives can be concatenated: the kernel unpacks each in turn.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from .cache import atomic_write

_MAGIC = b"070701"


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 4)


class CpioWriter:
    """Append entries to an open binary file; ``close()`` writes the trailer."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._ino = 0

    def _header(self, name: str, mode: int, size: int, nlink: int = 1) -> None:
        self._ino += 1
        raw = name.encode() + b"\0"
        fields = (self._ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(raw), 0)
        hdr = _MAGIC + b"".join(b"%08X" % f for f in fields)
        self._out.write(hdr + raw + _pad(len(hdr) + len(raw)))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        self._header(name, stat.S_IFDIR | perm, 0, 2)

    def add_bytes(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._header(name, stat.S_IFREG | perm, len(data))
        self._out.write(data + _pad(len(data)))

    def add_symlink(self, name: str, target: str) -> None:
        t = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(t))
        self._out.write(t + _pad(len(t)))

    def add_file(self, name: str, path: Path) -> None:
        st = path.stat()
        self._header(name, stat.S_IFREG | stat.S_IMODE(st.st_mode), st.st_size)
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                self._out.write(chunk)
        self._out.write(_pad(st.st_size))

    def add_tree(self, root: Path, prefix: str = "") -> None:
        """Every entry under ``root`` (directories before their contents), named relative to
        it with ``prefix`` prepended."""
        for rel in _walk(root):
            p = root / rel
            name = f"{prefix}{rel}" if prefix else rel
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                self.add_symlink(name, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                self.add_dir(name, stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                self.add_file(name, p)
            # sockets, fifos and device nodes are not carried (devtmpfs provides /dev)

    def close(self) -> None:
        self._header("TRAILER!!!", 0, 0, 1)
        pos = self._out.tell()
        self._out.write(b"\0" * (-pos % 512))


def _walk(root: Path) -> Iterable[str]:
    stack = [""]
    while stack:
        d = stack.pop()
        names = sorted(os.listdir(root / d) if d else os.listdir(root))
        subdirs = []
        for n in names:
            rel = f"{d}/{n}" if d else n
            yield rel
            if (root / rel).is_dir() and not (root / rel).is_symlink():
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def write_tree(root: Path, out_path: Path, prefix: str = "") -> None:
    """Write ``root`` as a complete newc archive at ``out_path`` (atomically)."""
    with atomic_write(out_path) as f:
        w = CpioWriter(f)
        w.add_tree(root, prefix)
        w.close()
