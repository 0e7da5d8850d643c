"""Loading the cffi bindings: compiled (API) mode when available, ABI mode otherwise.

Both modes read the same declarations (``cdefs/kvm.h``) and present one interface,
``FfiBackend``, to the rest of ``sdei_state.kvm``:

- ``api``: the compiled module ``sdei_state.kvm._api`` (built by ``setup.py`` at install when a C
  compiler is present, or on demand into ``~/.cache/sdei-state/cffi/`` when ``api`` is asked
  for explicitly). It adds two small C helpers: an ioctl that returns ``-errno``, and a loop
  that issues many ONE_REG ioctls in one call into C.
- ``abi``: libc's ``ioctl``/``mmap`` through ``ffi.dlopen(None)``; needs no compiler (the arm64
  lab guest has none). Batches are a Python loop over ``fcntl.ioctl``.

``SDEI_STATE_CFFI=abi|api`` forces a mode; unset (or ``auto``) means the installed compiled
module if there is one, else ABI. ``backend(mode)`` returns a per-process cached instance, so
tests can use both in one process.
"""

from __future__ import annotations

import errno
import fcntl
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ..errors import SdeiStateError
from . import _build

Mode = Literal["abi", "api"]
ENV_VAR: Final = "SDEI_STATE_CFFI"
MODES: Final = ("abi", "api")


class FfiBackendError(SdeiStateError, RuntimeError):
    """The requested cffi mode cannot be loaded; the message says why."""


@dataclass(frozen=True, eq=False)
class FfiBackend:
    """One loaded set of bindings.

    ``ioctl(fd, request, ptr)`` returns the ioctl's result or ``-errno``; ``ptr`` is a cdata
    pointer. ``prepare_batch(regs, n)`` turns ``n`` filled ``struct kvm_one_reg`` (cdata) into
    the form this mode's batch takes, once per batch (their ids and value addresses never
    change). ``one_reg_batch(fd, request, prepared, n, done)`` issues ``request`` on each of
    the ``n`` structs in order, stores how many succeeded in ``done[0]`` (a ``size_t *``) and
    returns 0, or the errno of the one that failed. In API mode it is the C function itself,
    called with no Python in between: on a host whose ioctls disturb the CPU's caches (a nested
    hypervisor), each Python frame around a batch costs several times its usual time.
    """

    mode: Mode
    ffi: Any
    lib: Any
    ioctl: Callable[[int, int, Any], int]
    one_reg_batch: Callable[[int, int, Any, int, Any], int]
    origin: str
    prepare_batch: Callable[[Any, int], Any] = lambda regs, n: regs
    """API mode's batch takes the structs as they are (one call into C)."""

    def ioctl_val(self, fd: int, request: int, value: int) -> int:
        """An ioctl whose argument is an integer (KVM_CREATE_VCPU, KVM_CHECK_EXTENSION ...)."""
        return self.ioctl(fd, request, self.ffi.cast("void *", value))

    def mmap_shared(self, fd: int, length: int) -> Any:
        """``mmap(NULL, length, RW, MAP_SHARED, fd, 0)`` as ``char *``; raises OSError."""
        return self._mmap(length, _MAP_SHARED, fd)

    def mmap_anonymous(self, length: int) -> Any:
        """Private anonymous read/write memory (guest RAM); raises OSError."""
        return self._mmap(length, _MAP_PRIVATE | _MAP_ANONYMOUS, -1)

    def munmap(self, ptr: Any, length: int) -> None:
        if self.lib.munmap(ptr, length) != 0:
            err = self.ffi.errno
            raise OSError(err, f"munmap: {os.strerror(err)}")

    def _mmap(self, length: int, flags: int, fd: int) -> Any:
        ffi = self.ffi
        p = self.lib.mmap(ffi.NULL, length, _PROT_READ | _PROT_WRITE, flags, fd, 0)
        if p == ffi.cast("void *", -1):  # MAP_FAILED
            err = ffi.errno
            raise OSError(err, f"mmap: {os.strerror(err)}")
        return ffi.cast("char *", p)


# <sys/mman.h> values; identical on x86_64 and arm64 (asm-generic/mman-common.h).
_PROT_READ, _PROT_WRITE = 0x1, 0x2
_MAP_SHARED, _MAP_PRIVATE, _MAP_ANONYMOUS = 0x01, 0x02, 0x20
_ONE_REG_SIZE = 16  # struct kvm_one_reg: __u64 id, __u64 addr

_cache: dict[str, FfiBackend] = {}


def requested_mode() -> Mode | None:
    """The mode ``SDEI_STATE_CFFI`` forces, or None for automatic choice."""
    v = os.environ.get(ENV_VAR, "").strip().lower()
    if v in ("", "auto"):
        return None
    if v not in MODES:
        raise FfiBackendError(f"{ENV_VAR}={v!r}: expected 'abi', 'api' or 'auto'")
    return v  # type: ignore[return-value]


def backend(mode: Mode | None = None) -> FfiBackend:
    """The bindings in ``mode`` (default: ``SDEI_STATE_CFFI``, else automatic)."""
    if mode is None:
        mode = requested_mode()
    if mode is None:
        key = "auto"
        if key not in _cache:
            mod = _installed_module()
            _cache[key] = _api(mod, "installed module") if mod is not None else _abi()
        return _cache[key]
    if mode not in MODES:
        raise FfiBackendError(f"cffi mode {mode!r}: expected 'abi' or 'api'")
    if mode not in _cache:
        _cache[mode] = _abi() if mode == "abi" else _load_api()
    return _cache[mode]


def api_unavailable_reason() -> str | None:
    """Why ``backend('api')`` would fail, or None if it can load (used by tests to skip)."""
    if _installed_module() is not None or "api" in _cache:
        return None
    try:
        import cffi  # noqa: F401
    except ImportError:
        return "cffi is not installed"
    cc = os.environ.get("CC", "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no compiled module installed and no C compiler ({cc!r} not on PATH)"
    return None


# -- ABI mode --------------------------------------------------------------------------------

def _abi() -> FfiBackend:
    try:
        import cffi
    except ImportError as e:  # pragma: no cover - cffi is a runtime dependency
        raise FfiBackendError(f"cffi is not installed: {e}") from None
    kvm_h, _ = _build.read_cdefs()
    ffi = cffi.FFI()
    ffi.cdef(kvm_h)
    lib = ffi.dlopen(None)  # the C library already loaded into the process
    c_ioctl = lib.ioctl

    def ioctl(fd: int, request: int, arg: Any) -> int:
        r: int = c_ioctl(fd, request, arg)
        return -ffi.errno if r < 0 else r

    def prepare_batch(regs: Any, n: int) -> list[bytearray]:
        # One 16-byte copy of each struct, made once: the batch hands each to fcntl.ioctl as
        # it is, where a memoryview slice per call cost about 0.4 us more per register on the
        # benchmark host (docs/performance.md). The kernel still reads or writes the value
        # through the struct's addr, which points into the batch's value buffer.
        raw = ffi.buffer(regs, n * _ONE_REG_SIZE)
        return [bytearray(raw[i * _ONE_REG_SIZE:(i + 1) * _ONE_REG_SIZE]) for i in range(n)]

    def one_reg_batch(fd: int, request: int, structs: list[bytearray], n: int,
                      done: Any) -> int:
        # fcntl.ioctl, not libc's through cffi: CPython calls ioctl() directly (copying the
        # 16-byte struct in and out), where cffi goes through libffi with per-call handling
        # of ioctl's variadic argument: about 0.5 us less per register on the benchmark host
        # (docs/performance.md). The ONE_REG request numbers fit its unsigned int.
        done[0] = 0
        if fd < 0:
            return errno.EBADF
        io = fcntl.ioctl
        for i in range(n):
            try:
                io(fd, request, structs[i])
            except OSError as e:
                done[0] = i
                return e.errno or errno.EIO
        done[0] = n
        return 0

    return FfiBackend("abi", ffi, lib, ioctl, one_reg_batch, "libc via ffi.dlopen(None)",
                      prepare_batch)


# -- API mode --------------------------------------------------------------------------------

def _api(mod: Any, origin: str) -> FfiBackend:
    ffi, lib = mod.ffi, mod.lib
    return FfiBackend("api", ffi, lib, lib.sdei_kvm_ioctl, lib.sdei_kvm_one_reg_batch, origin)


def _installed_module() -> Any | None:
    try:
        mod = importlib.import_module(_build.MODULE_NAME)
    except ImportError:
        return None
    # A module from an older build without the helpers is not ours to use.
    return mod if hasattr(mod.lib, "sdei_kvm_one_reg_batch") else None


def _load_api() -> FfiBackend:
    mod = _installed_module()
    if mod is not None:
        return _api(mod, f"installed module {mod.__file__}")
    why = api_unavailable_reason()
    if why is not None:
        raise FfiBackendError(f"cffi API mode unavailable: {why}")
    path = _build_in_cache()
    spec = importlib.util.spec_from_file_location(_build.MODULE_NAME, path)
    if spec is None or spec.loader is None:
        raise FfiBackendError(f"cannot load the compiled module {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return _api(mod, f"built on demand: {path}")


def cache_dir() -> Path:
    """Where on-demand API-mode builds go."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sdei-state" / "cffi"


def _build_in_cache() -> Path:
    """Compile ``sdei_state.kvm._api`` into a cache directory keyed by its sources; reuse it."""
    final = cache_dir() / _build.source_key()
    found = sorted(final.glob(f"{_build.MODULE_BASENAME}.*.so")) if final.is_dir() else []
    if found:
        return found[0]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=final.parent))
    try:
        try:
            so = Path(_build.make_builder().compile(tmpdir=str(tmp), verbose=False))
        except Exception as e:  # cffi raises VerificationError / distutils CompileError
            raise FfiBackendError(f"building the cffi API-mode module failed: {e}") from None
        stage = tmp / "out"
        stage.mkdir()
        shutil.copy2(so, stage / so.name)
        try:
            os.rename(stage, final)  # atomic; a concurrent builder may have won
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(final.glob(f"{_build.MODULE_BASENAME}.*.so"))[0]


def describe() -> str:
    """One line naming the automatic choice (for diagnostics and the benchmark report)."""
    b = backend()
    return f"cffi {b.mode} mode ({b.origin}), Python {sys.version.split()[0]}"
