"""Save/restore of one vCPU against C, the SDEI codec against ioctls and ``struct``, and the
per-vCPU cost of a 4,096-vCPU VM against a 64-vCPU one.

Save/restore: x86 KVM has no arm64 or SDEI registers, so ``save_vcpu`` + ``restore_vcpu`` run
on ``MsrVcpu`` holding a busy simulated vCPU's registers (core, firmware, 47 SDEI, VBAR_EL1):
the library does all its real work (preflight, ascending writes, read-back) and each register
access is one real ioctl on a stand-in MSR. The first run records those ioctls; the baseline
replays exactly them from C.
"""

from __future__ import annotations

import struct
import time
from typing import Any

from harness import Variant, compare, per_op, timed
from kvm_env import KvmEnv
from msr import MsrVcpu
from native import GET, Trace, segments

from sdei_state.cpu import CpuReg
from sdei_state.migration import Blob, restore_vcpu, restore_vm, save_vcpu, save_vm
from sdei_state.regs.sdei import SDEI_REG_IDS, decode, decode_values, encode
from sdei_state.vcpu.sim import SimVm


def busy_vm(n: int) -> SimVm:
    """A VM whose vCPUs hold non-trivial SDEI state, reached with real calls: both events
    registered and enabled, every other vCPU inside a handler."""
    vm = SimVm(n)
    for i, v in enumerate(vm.vcpus):
        v.call("EVENT_REGISTER", [0, 0x10_0000 + 4 * i, i, 0, 0])
        v.call("EVENT_REGISTER", [0x4040_0000, 0x20_0000, ~i & 0xFFFF, 0b10, 0])
        v.call("EVENT_ENABLE", [0])
        v.call("PE_UNMASK")
        if i % 2:
            v.call("EVENT_SIGNAL", [0, v.mpidr])
            v.cpu.write({CpuReg.PC: 0x40_0000 + i, CpuReg.X5: i})
            v.dispatch()
    return vm


def _busy_values() -> dict[int, int]:
    v = busy_vm(2).vcpus[1]  # the one inside a handler
    ids = v.reg_list()
    return dict(zip(ids, v.get_regs(ids), strict=True))


def save_restore_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    values = _busy_values()
    first = next(iter(env.vcpus.values()))
    rec = MsrVcpu(first, values, env.msrs, record=True)
    restore_vcpu(rec, save_vcpu(rec))
    assert rec.trace is not None
    trace = Trace(env.native, env.fd, rec.trace)

    def job(t: MsrVcpu) -> Variant:
        return timed(lambda: restore_vcpu(t, save_vcpu(t)))

    subjects = {mode: job(MsrVcpu(v, values, env.msrs)) for mode, v in env.vcpus.items()}
    library = per_op(job(MsrVcpu(None, values, env.msrs)), ops=ops, rounds=rounds)
    assert rec.calls is not None
    calls, idle = rec.calls, MsrVcpu(None, values, env.msrs)
    # The floor: the same transport calls straight on the bindings, no library work.
    subjects.update({f"floor ({mode})": timed(MsrVcpu(v, values, env.msrs).direct(calls))
                     for mode, v in env.vcpus.items()})
    subjects["C, a call per transport call"] = timed(segments(env.native, env.fd,
                                                              idle.parts(calls)))
    stand_in = per_op(timed(lambda: idle.replay_calls(calls)), ops=ops, rounds=rounds)
    out = compare(("C, the same ioctls", trace.variant()), subjects, ops=ops, rounds=rounds)
    for name, v in out["variants"].items():
        if name in env.vcpus:  # the library's own runs, one per cffi mode
            v["library_ns"] = library
    return {"registers": len(values), "ioctls_per_op": len(trace.ops),
            "transport_calls_per_op": len(calls), "stand_in_ns": stand_in,
            "ioctls_by_kind": {k: sum(1 for o in trace.ops if o[0] == k)
                               for k in ("LIST", "GET", "SET")}, **out}


def _codec_ops() -> tuple[dict[str, Variant], int]:
    """The codec's round trip of one busy vCPU's SDEI state, in its two forms: values aligned
    with ``SDEI_REG_IDS`` (what a batched GET returns and what ``struct`` takes), and an
    id -> value mapping (what a saved vCPU is)."""
    state = busy_vm(2).vcpus[1].state
    ids = SDEI_REG_IDS

    def aligned() -> None:
        decode_values(encode(state))

    def mapping() -> None:
        decode(dict(zip(ids, encode(state), strict=True)))

    if (decode_values(encode(state)) != state
            or decode(dict(zip(ids, encode(state), strict=True))) != state):
        raise RuntimeError("the codec does not round-trip the benchmark's state")
    return {"encode+decode_values": timed(aligned), "encode+decode (id map)": timed(mapping)}, \
        len(ids)


def codec_vs_ioctls_case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    subjects, n = _codec_ops()
    msrs = env.msrs
    trace = Trace(env.native, env.fd, [(GET, *msrs[i % len(msrs)]) for i in range(n)])
    out = compare((f"C, {n} GET ioctls", trace.variant()), subjects, ops=ops, rounds=rounds)
    return {"registers": n, **out}


def codec_vs_struct_case(ops: int, *, rounds: int) -> dict[str, Any]:
    subjects, n = _codec_ops()
    values = encode(busy_vm(2).vcpus[1].state)
    pack = struct.Struct(f"<{n}Q")

    def packing() -> None:
        pack.unpack(pack.pack(*values))

    out = compare((f"struct pack+unpack of {n} u64", timed(packing)), subjects, ops=ops,
                  rounds=rounds)
    return {"registers": n, **out}


def _vm_cycle(n_vcpus: int) -> Variant:
    """One op = one vCPU's share of save_vm + blob out and in + restore_vm of a whole VM."""
    src = busy_vm(n_vcpus)
    dest = SimVm(n_vcpus)

    def run(n: int) -> float:
        reps = max(1, n // n_vcpus)
        t0 = time.thread_time()
        for _ in range(reps):
            blob = Blob.from_bytes(save_vm(src.vcpus).to_bytes())
            restore_vm(dest.vcpus, blob)
        return (time.thread_time() - t0) * n / (reps * n_vcpus)

    return run


def scale_case(large: int, *, rounds: int) -> dict[str, Any]:
    small = 64 if large >= 256 else max(1, large // 4)
    out = compare((f"{small} vCPUs", _vm_cycle(small)), {f"{large} vCPUs": _vm_cycle(large)},
                  ops=large, rounds=rounds, warmup=0)
    return {"small_vcpus": small, "large_vcpus": large, "unit": "one vCPU's save + restore",
            **out}
