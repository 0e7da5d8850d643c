"""The file-descriptor owner the three KVM objects share: close-on-exec, idempotent
``close()``, context manager, and parents that close their children first.

Ownership points one way: a child (``Vcpu``, ``Vm``) holds its parent strongly (it needs the
parent's fd and bindings), a parent knows its children only weakly (to close them first). So
dropping the last reference to a VM or vCPU frees its fd and mappings at once, through CPython's
reference counting, without waiting for the ``Kvm`` object or the cycle collector; nothing in
this package makes a reference cycle through a fd object.
"""

from __future__ import annotations

import errno
import os
import weakref
from types import TracebackType
from typing import Any

from ..errors import KvmError


def check(r: int, what: str) -> int:
    """An ioctl result from ``FfiBackend.ioctl``: the value, or KvmError(errno, what)."""
    if r < 0:
        raise KvmError(-r, what)
    return r


def uint_arg(what: str, name: str, value: object, bits: int) -> int:
    """``value`` if it is an int of ``bits`` unsigned bits, else KvmError(EINVAL) naming the
    ioctl, the argument and the value: cffi would raise OverflowError or TypeError, and an
    ioctl's ``unsigned long`` argument would silently take a larger value modulo 2^64."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise KvmError(errno.EINVAL, f"{what}: {name} {value!r:.40} is not a u{bits}; not sent "
                                     "to KVM")
    return value


class FdObject:
    """Owns one KVM file descriptor and the objects created from it."""

    def __init__(self, fd: int, what: str, parent: FdObject | None = None) -> None:
        # KVM creates its VM and vCPU fds O_CLOEXEC; make sure whatever the kernel did.
        os.set_inheritable(fd, False)
        self._fd = fd
        self._what = what
        self._parent = parent
        # Weak: a parent must not keep a dropped child (and its fd, its mappings) alive.
        self._children: weakref.WeakSet[FdObject] = weakref.WeakSet()
        if parent is not None:
            parent._children.add(self)

    @property
    def fd(self) -> int:
        """The file descriptor; KvmError(EBADF) after ``close()``."""
        if self._fd < 0:
            raise KvmError(errno.EBADF, f"{self._what}: used after close()")
        return self._fd

    def fileno(self) -> int:
        return self.fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        """Close the objects created from this one, then this fd. Safe to call twice."""
        if self._fd < 0:
            return
        for child in list(self._children):
            child.close()
        self._release()
        fd, self._fd = self._fd, -1
        if self._parent is not None:
            self._parent._children.discard(self)
        os.close(fd)

    def __del__(self) -> None:
        # Runs as soon as the last reference goes (see the module docstring); close() or a
        # with block says when explicitly. No contextlib here: module globals may already be
        # gone at interpreter exit.
        try:  # noqa: SIM105
            self.close()
        except Exception:
            pass

    def _release(self) -> None:
        """Free what this object holds besides its fd (mappings); called once, before close."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._fd < 0 else f"fd={self._fd}"
        return f"<{type(self).__name__} {state}>"
