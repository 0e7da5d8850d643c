"""GET and SET through the bindings, single and batched, in each cffi mode, against C.

One operation is one pass over the distinct stand-in MSRs (``KvmEnv.msrs``): ``get_reg`` /
``set_reg`` of each in a Python loop ("single"), or one prepared ``RegBatch`` call
("batched"). The baseline is the same ioctls from C in one loop.

Without a compiler (ABI mode) every ioctl is one call from Python. The "abi floor" is the least
such a loop can be: ``fcntl.ioctl`` on each register's prepared 16-byte ``struct kvm_one_reg``
in a bare ``for`` loop, the value words in one buffer, nothing checked or converted. ABI mode's
batch is that loop plus its own bookkeeping, so its ratio cannot fall below the floor's.
"""

from __future__ import annotations

import fcntl
import sys
from collections.abc import Callable
from typing import Any

import cffi
from harness import Variant, compare, per_op, timed
from kvm_env import KvmEnv, noop_vcpu
from native import GET, SET, Trace

from sdei_state.kvm import Vcpu, ioctls


def _single(vcpu: Vcpu, kind: str, items: tuple[tuple[int, int], ...]) -> Callable[[], None]:
    if kind == GET:
        get, ids = vcpu.get_reg, [rid for rid, _ in items]

        def op() -> None:
            for rid in ids:
                get(rid)
    else:
        set_ = vcpu.set_reg

        def op() -> None:
            for rid, v in items:
                set_(rid, v)

    return op


def _batched(vcpu: Vcpu, kind: str, items: tuple[tuple[int, int], ...]) -> Callable[[], object]:
    batch = vcpu.reg_batch([rid for rid, _ in items])
    if kind == GET:
        get: Callable[[], object] = batch.get
        return get
    values = [v for _, v in items]
    return lambda: batch.set(values)


def _abi_floor(fd: int, kind: str, items: tuple[tuple[int, int], ...]) -> Callable[[], None]:
    ffi = cffi.FFI()
    words = ffi.new("uint64_t[]", [v for _, v in items])
    base = int(ffi.cast("uintptr_t", words))
    structs = [bytearray(rid.to_bytes(8, sys.byteorder) + (base + 8 * i).to_bytes(8, sys.byteorder))
               for i, (rid, _) in enumerate(items)]
    request = ioctls.KVM_GET_ONE_REG if kind == GET else ioctls.KVM_SET_ONE_REG
    io = fcntl.ioctl

    def op() -> None:
        for s in structs:
            io(fd, request, s)

    op.keep = words  # type: ignore[attr-defined]  # the value words live as long as op
    return op


def case(env: KvmEnv, kind: str, *, ops: int, rounds: int) -> dict[str, Any]:
    items = env.msrs
    subjects: dict[str, Variant] = {}
    library: dict[str, dict[str, float]] = {}
    for mode, vcpu in env.vcpus.items():
        nv = noop_vcpu(vcpu)
        try:
            for shape, make in (("single", _single), ("batched", _batched)):
                name = f"{mode} {shape}"
                subjects[name] = timed(make(vcpu, kind, items))
                library[name] = per_op(timed(make(nv, kind, items)), ops=ops, rounds=rounds)
        finally:
            nv.close()
    if "abi" in env.vcpus:
        subjects["abi floor"] = timed(_abi_floor(env.vcpus["abi"].fd, kind, items))
    trace = Trace(env.native, env.fd, [(kind, rid, v) for rid, v in items])
    out = compare(("C loop", trace.variant()), subjects, ops=ops, rounds=rounds)
    for name, v in out["variants"].items():
        if name in library:
            v["library_ns"] = library[name]
    return {"registers_per_op": len(items), "ioctls_per_op": len(items),
            "register_ids": [f"{rid:#x}" for rid, _ in items], **out}


def get_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    return case(env, GET, ops=ops, rounds=rounds)


def set_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    return case(env, SET, ops=ops, rounds=rounds)
