"""The userspace SDEI provider against the minimum register transfers each job needs.

The provider serves a vCPU whose registers are ``MsrVcpu``: every register the provider reads
or writes costs one real ONE_REG ioctl through the bindings (on a stand-in MSR), and the
count of those ioctls is reported beside the minimum. The baseline is that minimum, issued
from C on the same stand-in MSRs:

- a simple exit, EVENT_STATUS of event 0: GET x1 (the event number), SET x0 (the result) and
  x2-x3 (zeroed the way KVM's ``smccc_set_retval`` does; x1 was just read as the 0 it would
  be set to): 4;
- a dispatch (absolute entry point): GET x0-x17, PC, PSTATE (the interrupted context) and
  SCTLR_EL1 (the entry PSTATE depends on its SPAN and DSSBS), SET x0-x3, PSTATE, PC (the
  handler's entry): 27; VBAR_EL1 only matters for a relative entry;
- COMPLETE: SET x0-x17, PSTATE, PC (the context back): 20; its status argument in x1 is not
  acted on, so it need not be read.

Each job has its own provider and register file. The registers hold distinct non-zero values
(x1 = 0 for EVENT_STATUS), so no write is spared by a value that happens to be there already;
dispatch's set-up puts that interrupted context back (no ioctl) before each call.
Dispatch and COMPLETE need a fresh state each time (an event pending, or running): that set-up
goes through the model with an in-memory CPU, untimed, and each call is timed on its own; the C
baseline is then timed call by call too, so both pay the same clock overhead.

Beside the provider, each mode has a *floor* (``MsrVcpu.direct``): the transport calls the
provider made for the job (read the arguments, then write the reply: each one batch), made
straight on the bindings after the same untimed set-up, with no SDEI work and no stand-in
bookkeeping. The provider makes exactly the minimum transfers, so no provider that decides in
Python between its reads and its writes can be faster: the floor's ratio is the lowest any such
provider can reach on this host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from harness import Variant, compare, per_op, timed, timed_each
from kvm_env import KvmEnv
from msr import REG_IDS, MsrVcpu
from native import GET, SET, Op, Trace, segments

from sdei_state.cpu import CONTEXT_GPRS, CpuReg, MemoryCpu
from sdei_state.kvm import Vcpu
from sdei_state.kvm.exits import ExitReason, HypercallExit
from sdei_state.spec import Function
from sdei_state.vmm.provider import SdeiProvider

EP: Final = 0x4010_0000
"""An absolute handler entry point."""
EL1H: Final = 0x5  # EL1h, interrupts unmasked: a mode SDEI can interrupt
JOBS: Final = ("EVENT_STATUS", "dispatch", "COMPLETE")


def _nothing() -> None:
    pass


def _ids(regs: tuple[CpuReg, ...]) -> list[int]:
    return [REG_IDS[r] for r in regs]


def _minimum(t: MsrVcpu) -> dict[str, list[Op]]:
    x0_3 = (CpuReg.X0, CpuReg.X1, CpuReg.X2, CpuReg.X3)
    ctx = (*CONTEXT_GPRS, CpuReg.PC, CpuReg.PSTATE)
    return {
        "EVENT_STATUS": t.ops(GET, _ids((CpuReg.X1,)))
        + t.ops(SET, _ids((CpuReg.X0, CpuReg.X2, CpuReg.X3))),
        "dispatch": t.ops(GET, _ids((*ctx, CpuReg.SCTLR_EL1)))
        + t.ops(SET, _ids((*x0_3, CpuReg.PSTATE, CpuReg.PC))),
        "COMPLETE": t.ops(SET, _ids((*CONTEXT_GPRS, CpuReg.PSTATE, CpuReg.PC))),
    }


class _Served:
    """A provider serving vCPU 0 over ``MsrVcpu``, with event 0 registered and enabled."""

    def __init__(self, env: KvmEnv, mode: str | None, *, record: bool = False) -> None:
        values = {rid: 0x1000 + 8 * i for i, rid in enumerate(REG_IDS.values())}
        values[REG_IDS[CpuReg.X1]] = 0  # EVENT_STATUS asks about event 0
        values[REG_IDS[CpuReg.PSTATE]] = EL1H
        values[REG_IDS[CpuReg.SCTLR_EL1]] = 0x00C50078
        values[REG_IDS[CpuReg.VBAR_EL1]] = 0x4000_0000
        self.values = values
        self.msrs = env.msrs
        self.t = MsrVcpu(env.vcpus[mode] if mode else None, values, env.msrs, record=record)
        self.p = SdeiProvider(1)
        self.p.attach(0, self.t)
        self.mem = MemoryCpu()  # set-up calls answer here, without ioctls
        m = self.p.machine
        for fn, args in ((Function.EVENT_REGISTER, [0, EP, 0xA5, 0, 0]),
                         (Function.EVENT_ENABLE, [0]), (Function.PE_UNMASK, [])):
            out = m.call(0, fn, args, self.mem)
            if out.ret != 0:
                raise RuntimeError(f"set-up {fn.name} returned {out.ret}")
        self.status = HypercallExit(reason=ExitReason.HYPERCALL, nr=Function.EVENT_STATUS,
                                    args=(0,) * 6, flags=0)
        self.complete = HypercallExit(reason=ExitReason.HYPERCALL, nr=Function.EVENT_COMPLETE,
                                      args=(0,) * 6, flags=0)

    # set-ups (untimed) and the timed jobs
    def make_pending(self) -> None:
        m = self.p.machine
        m.call(0, Function.EVENT_COMPLETE, [0], self.mem)  # DENIED if nothing runs: fine
        m.inject(0, 0)

    def interrupted(self) -> None:
        """An event pending, the registers as the interrupted code left them."""
        self.make_pending()
        self.t.load(self.values)

    def make_running(self) -> None:
        self.make_pending()
        if self.p.machine.dispatch(0, self.mem) is None:
            raise RuntimeError("set-up: event 0 was not dispatched")

    def do_status(self) -> None:
        self.p.handle_exit(0, self.status)

    def do_dispatch(self) -> None:
        if self.p.before_run(0) is None:
            raise RuntimeError("the provider did not dispatch the pending event")

    def do_complete(self) -> None:
        self.p.handle_exit(0, self.complete)

    def jobs(self) -> dict[str, Variant]:
        return {"EVENT_STATUS": timed(self.do_status),
                "dispatch": timed_each(self.interrupted, self.do_dispatch),
                "COMPLETE": timed_each(self.make_running, self.do_complete)}

    def floor(self, vcpu: Vcpu, job: str, calls: list[tuple[str, tuple[Any, ...]]]) -> Variant:
        """``job``'s floor: its transport ``calls`` straight on ``vcpu``, after this
        provider's own set-up for the job (so caches are as cold as the provider finds them)."""
        op = MsrVcpu(vcpu, self.values, self.msrs).direct(calls)
        setup = {"EVENT_STATUS": None, "dispatch": self.interrupted,
                 "COMPLETE": self.make_running}[job]
        return timed(op) if setup is None else timed_each(setup, op)

    def count(self, job: str) -> tuple[int, list[tuple[str, tuple[Any, ...]]]]:
        """The ioctls ``job`` makes, counted on one call, and its transport calls (the
        stand-in must have been made with ``record``)."""
        calls = self.t.calls
        assert calls is not None
        jobs: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {
            "EVENT_STATUS": (_nothing, self.do_status),
            "dispatch": (self.interrupted, self.do_dispatch),
            "COMPLETE": (self.make_running, self.do_complete)}
        setup, op = jobs[job]
        setup()
        before, first = self.t.ioctls, len(calls)
        op()
        return self.t.ioctls - before, calls[first:]


def case(env: KvmEnv, *, ops: int, rounds: int) -> dict[str, Any]:
    modes = list(env.vcpus)
    served = {(m, job): _Served(env, m) for m in modes for job in JOBS}
    noops = {job: _Served(env, None, record=True) for job in JOBS}
    counts = {job: noops[job].count(job) for job in JOBS}
    minimum = _minimum(noops["EVENT_STATUS"].t)
    floor_setups = {(m, job): _Served(env, None) for m in modes for job in JOBS}
    library = {}
    for job, noop in noops.items():
        noop.t.calls = None
        library[job] = per_op(noop.jobs()[job], ops=ops, rounds=rounds)
    idle = MsrVcpu(None, noops["EVENT_STATUS"].values, env.msrs)
    stand_in = {name: per_op(timed(lambda c=c: idle.replay_calls(c)),  # type: ignore[misc]
                             ops=ops, rounds=rounds) for name, (_, c) in counts.items()}
    comparisons = {}
    for job, trace_ops in minimum.items():
        trace = Trace(env.native, env.fd, trace_ops)
        base = trace.variant() if job == "EVENT_STATUS" else timed_each(_nothing, trace.run_once)
        subjects = {f"provider ({m})": served[m, job].jobs()[job] for m in modes}
        subjects.update({f"floor ({m})": floor_setups[m, job].floor(env.vcpus[m], job,
                                                                      counts[job][1])
                         for m in modes})
        split = segments(env.native, env.fd, noops[job].t.parts(counts[job][1]))
        subjects["C, a call per transfer"] = (timed(split) if job == "EVENT_STATUS"
                                               else timed_each(_nothing, split))
        out = compare((f"C, minimum {len(trace_ops)} ioctls", base), subjects, ops=ops,
                      rounds=rounds)
        for name, v in out["variants"].items():
            if name.startswith("provider"):
                v.update(library_ns=library[job], ioctls=counts[job][0],
                         minimum_ioctls=len(trace_ops))
            else:
                v.update(ioctls=counts[job][0], minimum_ioctls=len(trace_ops))
        comparisons[job] = {**out, "stand_in_ns": stand_in[job],
                            "transport_calls": len(counts[job][1])}
    return {"comparisons": comparisons}
