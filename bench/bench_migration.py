"""Migration benchmark (a script, not a test): run ``python bench/bench_migration.py``.

1. The SDEI codec: ``encode`` + ``decode`` of one vCPU's 47 registers, against ``struct``
   packing and unpacking of the same 47 values in the same run (the floor for moving 47 u64s
   in Python), as a ratio.
2. Save + restore of 64 and of 4,096 simulated vCPUs, each with both events registered and
   half of them inside a handler: save (GET of every listed register), the binary blob out and
   back in, restore (preflight, ascending writes, read-back). Time per vCPU at both sizes and
   blob bytes per vCPU.

Figures are best-of-``--repeat`` wall-clock times on this machine; ``--json`` prints them as one
JSON document as well.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdei_state.cpu import CpuReg
from sdei_state.migration import Blob, restore_vm, save_vm
from sdei_state.regs.sdei import SDEI_REG_IDS, decode, decode_values, encode
from sdei_state.state import VcpuState
from sdei_state.vcpu.sim import SimVm


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best wall-clock seconds of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def busy_vm(n: int) -> SimVm:
    """A VM whose vCPUs hold non-trivial SDEI state, reached with real calls."""
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


def bench_codec(repeat: int, loops: int) -> dict[str, float]:
    vm = busy_vm(2)
    state: VcpuState = vm.vcpus[1].state
    values = encode(state)
    as_map = dict(zip(SDEI_REG_IDS, values, strict=True))
    pack = struct.Struct(f"<{len(values)}Q")

    def codec() -> None:
        for _ in range(loops):
            vals = encode(state)
            decode(dict(zip(SDEI_REG_IDS, vals, strict=True)))

    def codec_values() -> None:  # the same shape as struct: a sequence of 47 values
        for _ in range(loops):
            decode_values(encode(state))

    def packing() -> None:
        for _ in range(loops):
            pack.unpack(pack.pack(*values))

    assert decode(as_map) == state
    t_codec = best(codec, repeat) / loops
    t_struct = best(packing, repeat) / loops
    t_values = best(codec_values, repeat) / loops
    return {"registers": len(values), "codec_us": t_codec * 1e6,
            "struct_us": t_struct * 1e6, "ratio": t_codec / t_struct,
            "codec_values_us": t_values * 1e6, "ratio_values": t_values / t_struct}


def bench_vm(n: int, repeat: int) -> dict[str, Any]:
    src = busy_vm(n)
    blob = save_vm(src.vcpus)
    data = blob.to_bytes()
    t_save = best(lambda: save_vm(src.vcpus), repeat)
    t_out = best(blob.to_bytes, repeat)
    t_in = best(lambda: Blob.from_bytes(data), repeat)
    dests = [SimVm(n) for _ in range(repeat)]
    it = iter(dests)
    t_restore = best(lambda: restore_vm(next(it).vcpus, blob), repeat)
    assert save_vm(dests[-1].vcpus) == blob  # the restore really happened
    total = t_save + t_out + t_in + t_restore
    return {
        "vcpus": n,
        "registers_per_vcpu": len(blob.reg_ids),
        "blob_bytes": len(data),
        "blob_bytes_per_vcpu": len(data) / n,
        "save_us_per_vcpu": t_save / n * 1e6,
        "to_bytes_us_per_vcpu": t_out / n * 1e6,
        "from_bytes_us_per_vcpu": t_in / n * 1e6,
        "restore_us_per_vcpu": t_restore / n * 1e6,
        "total_us_per_vcpu": total / n * 1e6,
        "total_s": total,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    p.add_argument("--loops", type=int, default=2000, help="codec iterations per run")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 4096], help="VM sizes")
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = p.parse_args(argv)

    codec = bench_codec(args.repeat, args.loops)
    print(f"SDEI codec, one vCPU ({codec['registers']} registers):")
    print(f"  encode+decode   {codec['codec_us']:8.2f} us")
    print(f"  struct pack+unpack of the same values {codec['struct_us']:8.2f} us")
    print(f"  ratio           {codec['ratio']:8.1f}x (decode from an id -> value dict)")
    print(f"  ratio           {codec['ratio_values']:8.1f}x (decode from the 47 values)")
    vms = [bench_vm(n, args.repeat) for n in args.sizes]
    print("save + blob + restore, simulated vCPUs (us per vCPU):")
    print(f"  {'vCPUs':>6} {'regs':>5} {'save':>8} {'to_bytes':>9} {'from_bytes':>11} "
          f"{'restore':>9} {'total':>9} {'bytes/vCPU':>11}")
    for r in vms:
        print(f"  {r['vcpus']:>6} {r['registers_per_vcpu']:>5} {r['save_us_per_vcpu']:>8.1f} "
              f"{r['to_bytes_us_per_vcpu']:>9.2f} {r['from_bytes_us_per_vcpu']:>11.2f} "
              f"{r['restore_us_per_vcpu']:>9.1f} {r['total_us_per_vcpu']:>9.1f} "
              f"{r['blob_bytes_per_vcpu']:>11.1f}")
    if args.json:
        print(json.dumps({"codec": codec, "vms": vms}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
