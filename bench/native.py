"""The C baseline: ``ioctl_trace.c`` (and the host probe, ``host_probe.c``) built with
``cc -O2 -shared``, loaded in-process with cffi.

A ``Trace`` is a list of vCPU ioctls prepared once (each ONE_REG call with its own
``struct kvm_one_reg`` and value word, as a C VMM would keep them); ``Trace.variant()`` replays
it ``n`` times in one call into C and returns the CPU time, so the baseline pays one cffi call
per round, not per ioctl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cffi
from harness import Variant

from sdei_state.kvm import ioctls

HERE = Path(__file__).resolve().parent
SOURCES = (HERE / "ioctl_trace.c", HERE / "host_probe.c")

_CDEF = """
struct kvm_one_reg { uint64_t id; uint64_t addr; };
long bench_trace(int fd, const unsigned long *requests, void *const *args, size_t n, long reps);
long bench_after(int call, int work, int fd, unsigned long request, void *arg, long n, long m);
"""

GET, SET, LIST = "GET", "SET", "LIST"
Op = tuple[str, int, int]
"""(GET | SET | LIST, register id, value): one ioctl of a trace (LIST: id and value unused)."""


def build(tmp: Path) -> tuple[Any, Any] | str:
    """(ffi, lib) of the compiled baseline, or why there is none."""
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc!r} not on PATH): no C baseline"
    so = tmp / "ioctl_trace.so"
    r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(so), *map(str, SOURCES)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        names = " ".join(s.name for s in SOURCES)
        return f"cc -O2 {names} failed: {r.stderr.strip().splitlines()[-1:]}"
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    return ffi, ffi.dlopen(str(so))


class Trace:
    """A fixed sequence of ioctls on one vCPU fd, replayed from C."""

    def __init__(self, native: tuple[Any, Any], fd: int, ops: Sequence[Op]) -> None:
        ffi, self._lib = native
        self.fd = fd
        self.ops = tuple(ops)
        n = len(self.ops)
        self._words = ffi.new("uint64_t[]", max(1, n + 1))
        self._regs = ffi.new("struct kvm_one_reg[]", max(1, n))
        self._reqs = ffi.new("unsigned long[]", max(1, n))
        self._args = ffi.new("void *[]", max(1, n))
        list_buf = ffi.new("uint64_t[]", 1)  # struct kvm_reg_list with n = 0: x86 lists none
        self._keep = list_buf
        for i, (kind, reg_id, value) in enumerate(self.ops):
            if kind == LIST:
                self._reqs[i] = ioctls.KVM_GET_REG_LIST
                self._args[i] = list_buf
                continue
            self._words[i] = value
            self._regs[i].id = reg_id
            self._regs[i].addr = int(ffi.cast("uintptr_t", self._words + i))
            self._reqs[i] = ioctls.KVM_GET_ONE_REG if kind == GET else ioctls.KVM_SET_ONE_REG
            self._args[i] = self._regs + i

    def run(self, reps: int) -> None:
        r = self._lib.bench_trace(self.fd, self._reqs, self._args, len(self.ops), reps)
        if r < 0:
            raise OSError(-r, f"C baseline: ioctl failed: {os.strerror(-r)}")

    def run_once(self) -> None:
        self.run(1)

    def variant(self) -> Variant:
        def run(n: int) -> float:
            t0 = time.thread_time()
            self.run(n)
            return time.thread_time() - t0

        return run


def segments(native: tuple[Any, Any], fd: int, parts: Sequence[Sequence[Op]]
             ) -> Callable[[], None]:
    """The ioctls of ``parts`` as one call into C per part, back to back from Python with
    nothing between them: the least any caller that returns to Python between those calls
    can spend on them."""
    traces = [Trace(native, fd, p) for p in parts]
    # Each row keeps its Trace: it owns the structs and value words that ``_args`` point to.
    calls = [(t, t._lib.bench_trace, t.fd, t._reqs, t._args, len(t.ops)) for t in traces]

    def op() -> None:
        for _trace, fn, tfd, reqs, args, k in calls:
            r = fn(tfd, reqs, args, k, 1)
            if r < 0:
                raise OSError(-r, f"C baseline: ioctl failed: {os.strerror(-r)}")

    return op
