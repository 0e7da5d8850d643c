"""``Vcpu``: a vCPU fd. Registers (ONE_REG, REG_LIST, batched), init, power state
(``KVM_{GET,SET}_MP_STATE``) and ``KVM_RUN``.

``Vcpu`` satisfies ``sdei_state.vcpu.transport.RegTransport``, so save/restore code runs on it
unchanged (``sdei_state.vcpu.kvm_cpu.KvmCpu`` is the model's ``CpuRegs`` view over it).
Register values are unsigned integers of the register's width, in host byte order (what KVM
copies). A ``Vcpu`` is not thread-safe: it reuses one scratch buffer per vCPU (KVM serialises
a vCPU's ioctls anyway); the one exception is ``immediate_exit``, which another thread may set
to kick it. No cdata appears in its public signatures.
"""

from __future__ import annotations

import errno
import sys
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import KvmError, RegError
from ..regs.ids import KVM_REG_SIZE_MASK, KVM_REG_SIZE_U64, reg_size
from ..state import U64_MAX
from . import ioctls
from ._fd import FdObject, check, uint_arg
from .arm64 import MpState
from .exits import Exit, decode_exit

if TYPE_CHECKING:
    from .vm import VcpuInit, Vm

_GET, _SET = ioctls.KVM_GET_ONE_REG, ioctls.KVM_SET_ONE_REG
_SCRATCH_WORDS = 32  # 256 bytes: the largest register KVM has today (U2048, SVE Z)
_BATCH_CACHE = 8  # prepared batches kept per vCPU (save/restore repeat a few id lists)


def _bad_id(reg_id: object, op: str) -> RegError:
    rid = reg_id if isinstance(reg_id, int) else 0
    return RegError(errno.EINVAL, rid, op,
                    f"register id {reg_id!r} is not an unsigned 64-bit integer; not sent to KVM")


def _check_value(reg_id: int, value: int, size: int) -> None:
    if not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
        raise RegError(errno.ERANGE, reg_id, "SET",
                       f"value {value!r} does not fit in the register's {8 * size} bits; "
                       "not sent to KVM")


class RegBatch:
    """A prepared GET/SET of a fixed list of registers: each ``get()``/``set()`` is one call
    into C in API mode (a Python loop over libc ``ioctl`` in ABI mode). Built once, reused."""

    def __init__(self, vcpu: Vcpu, reg_ids: Sequence[int]) -> None:
        ffi = vcpu.backend.ffi
        # Weak: the vCPU caches its batches, a strong back reference would be a cycle keeping
        # a dropped vCPU's fd and kvm_run mapping alive until the cycle collector runs.
        self._vcpu_ref = weakref.ref(vcpu)
        self.ids = tuple(reg_ids)
        n = len(self.ids)
        for rid in self.ids:
            if not isinstance(rid, int) or not 0 <= rid <= U64_MAX:
                raise _bad_id(rid, "GET/SET")
        self.sizes = tuple(reg_size(rid) for rid in self.ids)
        self._all_u64 = all(s == 8 for s in self.sizes)
        words = [max(1, (s + 7) // 8) for s in self.sizes]
        self._vals = ffi.new("uint64_t[]", max(1, sum(words)))
        self._regs = ffi.new("struct kvm_one_reg[]", max(1, n))
        base = int(ffi.cast("uintptr_t", self._vals))
        self._offsets: list[int] = []
        off = 0
        for i, rid in enumerate(self.ids):
            self._regs[i].id = rid
            self._regs[i].addr = base + 8 * off
            self._offsets.append(off)
            off += words[i]
        backend = vcpu.backend
        self._n = n
        self._ffi = ffi
        self._unpack = ffi.unpack
        self._done = ffi.new("size_t *")
        self._run = backend.one_reg_batch
        self._batch = backend.prepare_batch(self._regs, n)

    def _fd(self) -> int:
        """The vCPU's fd; KvmError(EBADF) if the vCPU was dropped or closed. ``get`` and
        ``set`` read ``Vcpu._fd`` themselves (one attribute, no frame) and come here only
        when that says the vCPU is gone, for the error."""
        v = self._vcpu_ref()
        if v is None:
            raise KvmError(errno.EBADF, "RegBatch: its vCPU was dropped (closed)")
        return v.fd  # the property raises after close(), naming the vCPU

    def get(self) -> list[int]:
        """``KVM_GET_ONE_REG`` of every id, in order; RegError at the first failure."""
        n = self._n
        v = self._vcpu_ref()
        fd = -1 if v is None else v._fd  # inline: this runs at every batch (see _fd)
        # API mode: straight into C, no Python frame between the call and the ioctls.
        err = self._run(fd if fd >= 0 else self._fd(), _GET, self._batch, n, self._done)
        if err:
            raise RegError(err, self.ids[self._done[0]], "GET")
        if self._all_u64:
            out: list[int] = self._unpack(self._vals, n)
            return out
        ffi = self._ffi
        return [int.from_bytes(ffi.buffer(self._vals + off, size), sys.byteorder)
                for off, size in zip(self._offsets, self.sizes, strict=True)]

    def set(self, values: Sequence[int]) -> None:
        """``KVM_SET_ONE_REG`` of every id with ``values[i]``, in order. Values are checked
        before the first write; a kernel failure raises RegError and earlier writes stay."""
        n = self._n
        if len(values) != n:
            raise ValueError(f"{len(values)} values for {n} registers")
        v = self._vcpu_ref()
        fd = -1 if v is None else v._fd
        if fd < 0:
            fd = self._fd()  # raises
        if self._all_u64:
            # cffi converts every value in C and refuses a non-integer or one outside u64
            # before any ioctl; only then is the Python check run, to name the register.
            try:
                self._vals[0:n] = values
            except (TypeError, OverflowError):
                self._check(values)
                raise
        else:
            self._check(values)
            ffi = self._ffi
            for off, size, value in zip(self._offsets, self.sizes, values, strict=True):
                ffi.memmove(self._vals + off, value.to_bytes(size, sys.byteorder), size)
        err = self._run(fd, _SET, self._batch, n, self._done)
        if err:
            raise RegError(err, self.ids[self._done[0]], "SET")

    def _check(self, values: Sequence[int]) -> None:
        for rid, value, size in zip(self.ids, values, self.sizes, strict=True):
            _check_value(rid, value, size)


class Vcpu(FdObject):
    """A vCPU fd (from ``Vm.create_vcpu``)."""

    def __init__(self, vm: Vm, fd: int, index: int) -> None:
        super().__init__(fd, f"Vcpu {index}", vm)
        self.vm = vm
        self.index = index
        self.backend = vm.backend
        ffi = self.backend.ffi
        self._scratch = ffi.new("uint64_t[]", _SCRATCH_WORDS)
        self._one = ffi.new("struct kvm_one_reg *")
        self._one.addr = int(ffi.cast("uintptr_t", self._scratch))
        self._ioctl = self.backend.ioctl
        self._batches: dict[tuple[int, ...], RegBatch] = {}
        self._run: Any = None
        self._run_size = 0

    def __enter__(self) -> Vcpu:
        return self

    # -- init ------------------------------------------------------------------------------

    def init(self, features: Iterable[int] = (), *, target: int | None = None) -> VcpuInit:
        """``KVM_ARM_VCPU_INIT`` (arm64) with ``features`` (``VcpuFeature`` bits) on
        ``target``, by default ``Vm.preferred_target()``. Returns what was passed."""
        from .vm import VcpuInit

        t = self.vm.preferred_target().target if target is None else target
        init = VcpuInit(t).with_features(*features)
        c = self.backend.ffi.new("struct kvm_vcpu_init *",
                                 {"target": init.target, "features": list(init.features)})
        check(self._ioctl(self.fd, ioctls.KVM_ARM_VCPU_INIT, c), "KVM_ARM_VCPU_INIT")
        return init

    def finalize(self, feature: int) -> None:
        """``KVM_ARM_VCPU_FINALIZE`` of ``feature`` (``VcpuFeature.SVE``): after an init with
        SVE, before the register list or any register access (KVM answers those EPERM)."""
        c = self.backend.ffi.new("int *", feature)
        check(self._ioctl(self.fd, ioctls.KVM_ARM_VCPU_FINALIZE, c), "KVM_ARM_VCPU_FINALIZE")

    # -- registers (RegTransport) ----------------------------------------------------------

    def get_reg(self, reg_id: int) -> int:
        """``KVM_GET_ONE_REG``; RegError(errno, reg_id, "GET") on failure."""
        one = self._one
        try:
            one.id = reg_id
        except (OverflowError, TypeError):
            raise _bad_id(reg_id, "GET") from None
        size = reg_size(reg_id)
        if size > 8 * _SCRATCH_WORDS:
            return self._get_large(reg_id, size)
        r = self._ioctl(self.fd, _GET, one)
        if r < 0:
            raise RegError(-r, reg_id, "GET")
        if reg_id & KVM_REG_SIZE_MASK == KVM_REG_SIZE_U64:
            return int(self._scratch[0])
        return int.from_bytes(self.backend.ffi.buffer(self._scratch, size), sys.byteorder)

    def set_reg(self, reg_id: int, value: int) -> None:
        """``KVM_SET_ONE_REG``; RegError(errno, reg_id, "SET") on failure. A value that does
        not fit the register's width is refused before the ioctl (``ERANGE``)."""
        one = self._one
        try:
            one.id = reg_id
        except (OverflowError, TypeError):
            raise _bad_id(reg_id, "SET") from None
        size = reg_size(reg_id)
        _check_value(reg_id, value, size)
        if size > 8 * _SCRATCH_WORDS:
            RegBatch(self, [reg_id]).set([value])
            return
        if size == 8:
            self._scratch[0] = value
        else:
            self.backend.ffi.memmove(self._scratch, value.to_bytes(size, sys.byteorder), size)
        r = self._ioctl(self.fd, _SET, one)
        if r < 0:
            raise RegError(-r, reg_id, "SET")

    def _get_large(self, reg_id: int, size: int) -> int:
        return RegBatch(self, [reg_id]).get()[0]

    def reg_list(self) -> tuple[int, ...]:
        """``KVM_GET_REG_LIST``: asks with n = 0, and on ``E2BIG`` again with the count the
        kernel wrote back (repeated if the list grew meanwhile)."""
        ffi = self.backend.ffi
        n = 0
        for _ in range(8):
            buf = ffi.new("uint64_t[]", n + 1)
            buf[0] = n
            r = self._ioctl(self.fd, ioctls.KVM_GET_REG_LIST,
                            ffi.cast("struct kvm_reg_list *", buf))
            if r >= 0:
                return tuple(ffi.unpack(buf + 1, int(buf[0])))
            if -r != errno.E2BIG:
                raise KvmError(-r, "KVM_GET_REG_LIST")
            n = int(buf[0])
        raise KvmError(errno.E2BIG, "KVM_GET_REG_LIST (the list kept growing)")

    # rust-vmm kvm-ioctls spells these ``get_one_reg``/``set_one_reg``/``get_reg_list``; the
    # same methods answer to those names so code ported from a Rust VMM reads the same.
    get_one_reg = get_reg
    set_one_reg = set_reg
    get_reg_list = reg_list

    def reg_batch(self, reg_ids: Sequence[int]) -> RegBatch:
        """A prepared batch for ``reg_ids`` (reuse it for repeated save/restore)."""
        return RegBatch(self, reg_ids)

    def _batch_for(self, reg_ids: Sequence[int]) -> RegBatch:
        ids = tuple(reg_ids)
        b = self._batches.get(ids)
        if b is None:
            if len(self._batches) >= _BATCH_CACHE:
                del self._batches[next(iter(self._batches))]  # oldest first
            b = self._batches[ids] = RegBatch(self, ids)
        return b

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        """GET of every id in order, in one call into C (API mode); raises at the first
        failure. The last few id lists are kept prepared, so repeating one costs no setup."""
        return self._batch_for(reg_ids).get()

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """SET of every (id, value) in order; values are checked first; raises at the first
        kernel failure (earlier writes stay)."""
        self._batch_for([rid for rid, _ in items]).set([v for _, v in items])

    # -- power state -----------------------------------------------------------------------

    def get_mp_state(self) -> MpState:
        """``KVM_GET_MP_STATE``: RUNNABLE, STOPPED (powered off) or SUSPENDED. A value arm64
        does not use (only a future kernel could answer one) is KvmError(EPROTO) naming it."""
        c = self.backend.ffi.new("struct kvm_mp_state *")
        check(self._ioctl(self.fd, ioctls.KVM_GET_MP_STATE, c), "KVM_GET_MP_STATE")
        try:
            return MpState(c.mp_state)
        except ValueError:
            raise KvmError(errno.EPROTO, f"KVM_GET_MP_STATE: mp_state {c.mp_state} is none of "
                                         f"{', '.join(s.name for s in MpState)}") from None

    def set_mp_state(self, state: int) -> None:
        """``KVM_SET_MP_STATE`` with ``state`` (an ``MpState``): STOPPED powers the vCPU off
        as PSCI CPU_OFF does, RUNNABLE powers it on where it is. A value that is not a u32 is
        refused before the ioctl; KVM itself answers EINVAL to one arm64 does not use."""
        value = uint_arg("KVM_SET_MP_STATE", "mp_state", state, 32)
        c = self.backend.ffi.new("struct kvm_mp_state *", {"mp_state": value})
        check(self._ioctl(self.fd, ioctls.KVM_SET_MP_STATE, c), "KVM_SET_MP_STATE")

    # -- KVM_RUN -----------------------------------------------------------------------------

    def map_run(self) -> None:
        """Map ``struct kvm_run`` from the vCPU fd if not yet done (unmapped at close).
        ``run`` does it on first use; calling it early only moves the mmap."""
        self._kvm_run()

    def _kvm_run(self) -> Any:
        """The mapped ``struct kvm_run *``: cdata that never leaves this class."""
        if self._run is None:
            size = self.vm.kvm.vcpu_mmap_size()
            try:
                p = self.backend.mmap_shared(self.fd, size)
            except OSError as e:
                raise KvmError(e.errno or 0, "mmap of the vCPU fd (struct kvm_run)") from None
            self._run = self.backend.ffi.cast("struct kvm_run *", p)
            self._run_size = size
        return self._run

    @property
    def immediate_exit(self) -> bool:
        """``kvm_run.immediate_exit``: while set, ``KVM_RUN`` completes a pending MMIO/PIO
        access and returns ``EINTR`` without entering the guest."""
        return bool(self._kvm_run().immediate_exit)

    @immediate_exit.setter
    def immediate_exit(self, on: bool) -> None:
        # One byte store into the shared page: another thread may set it to kick this vCPU
        # out of its next KVM_RUN (what QEMU's kvm_cpu_kick does), the vCPU thread clears it.
        self._kvm_run().immediate_exit = 1 if on else 0

    def run(self, immediate_exit: bool = False) -> Exit:
        """``KVM_RUN`` until the next exit to userspace; returns it typed (``exits``).

        ``immediate_exit=True`` sets ``kvm_run.immediate_exit`` for this call only: KVM
        finishes the access of the last MMIO exit (a load's register, PC past the
        instruction) and fails with ``EINTR`` (``KvmError``) without entering the guest.
        With False the flag is left as ``immediate_exit`` last set it, so a kick set by
        another thread still takes effect."""
        run = self._kvm_run()
        if immediate_exit:
            run.immediate_exit = 1
        try:
            check(self.backend.ioctl_val(self.fd, ioctls.KVM_RUN, 0), "KVM_RUN")
        finally:
            if immediate_exit:
                run.immediate_exit = 0
        return decode_exit(run)

    def set_mmio_data(self, data: bytes) -> None:
        """Answer an MMIO read exit: the bytes the guest's load returns, given before the
        next ``run()``."""
        if not isinstance(data, bytes | bytearray) or len(data) > 8:
            raise ValueError(f"MMIO data is at most 8 bytes, got {data!r}")
        self.backend.ffi.memmove(self._kvm_run().mmio.data, bytes(data), len(data))

    def _release(self) -> None:
        if self._run is not None:
            self.backend.munmap(self._run, self._run_size)
            self._run = None
