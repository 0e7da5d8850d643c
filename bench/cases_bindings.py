"""GET and SET through the bindings, single and batched, in each cffi mode, against C.

One operation is one pass over the distinct stand-in MSRs (``KvmEnv.msrs``): ``get_reg`` /
``set_reg`` of each in a Python loop ("single"), or one prepared ``RegBatch`` call
("batched"). The baseline is the same ioctls from C in one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness import Variant, compare, per_op, timed
from kvm_env import KvmEnv, noop_vcpu
from native import GET, SET, Trace

from sdei_state.kvm import Vcpu


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
    trace = Trace(env.native, env.fd, [(kind, rid, v) for rid, v in items])
    out = compare(("C loop", trace.variant()), subjects, ops=ops, rounds=rounds)
    for name, v in out["variants"].items():
        v["library_ns"] = library[name]
    return {"registers_per_op": len(items), "ioctls_per_op": len(items),
            "register_ids": [f"{rid:#x}" for rid, _ in items], **out}


def get_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    return case(env, GET, ops=ops, rounds=rounds)


def set_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    return case(env, SET, ops=ops, rounds=rounds)
