"""The provider makes the fewest register transfers each SDEI exit needs (issue 12 item 1).

A counting transport under the provider's ``KvmCpu`` view records every register GET and SET
(each one ``KVM_{GET,SET}_ONE_REG`` on a real vCPU). The expected counts are written out per
function: the arguments it takes (``spec.ARITY``, checked below against the machine itself),
x0 for the result and x1-x3 zeroed unless just read as 0; dispatch reads the interrupted
context and SCTLR_EL1 (VBAR_EL1 only for a relative entry point) and writes x0-x3, PSTATE, PC;
COMPLETE writes the context back and reads nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from sdei_state.cpu import CALL_ARGS, CpuReg, MemoryCpu
from sdei_state.events import ASYNC_PF
from sdei_state.kvm.exits import ExitReason, HypercallExit
from sdei_state.machine import Machine
from sdei_state.spec import ARITY, Function, RegisterFlags
from sdei_state.vcpu.kvm_cpu import REG_IDS, KvmCpu
from sdei_state.vmm.provider import ModelServer

EP = 0x4010_0000
AP = ASYNC_PF.number
F = Function


class CountingTransport:
    """A register file that counts each register read and written, and each batch."""

    def __init__(self) -> None:
        self.vals = {rid: 0x1000 + i for i, rid in enumerate(REG_IDS.values())}
        self.vals[REG_IDS[CpuReg.PSTATE]] = 0x5  # EL1h, interrupts unmasked
        self.vals[REG_IDS[CpuReg.SCTLR_EL1]] = 0x00C50078
        self.gets = 0
        self.sets = 0
        self.batches = 0

    def reg_list(self) -> tuple[int, ...]:
        return tuple(self.vals)

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        self.gets += len(reg_ids)
        self.batches += 1
        return [self.vals[r] for r in reg_ids]

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        self.sets += len(items)
        self.batches += 1
        self.vals.update(items)

    def load(self, regs: dict[CpuReg, int]) -> None:
        self.vals.update((REG_IDS[r], v) for r, v in regs.items())
        self.gets = self.sets = self.batches = 0


def _served(*, enabled: bool = True) -> tuple[ModelServer, CountingTransport]:
    t = CountingTransport()
    m = Machine(1, enabled=enabled)
    mem = MemoryCpu()
    if enabled:
        for fn, args in ((F.EVENT_REGISTER, (0, EP, 0xA5, 0)), (F.EVENT_ENABLE, (0,)),
                         (F.EVENT_REGISTER, (AP, EP, 0xA6, int(RegisterFlags.RELATIVE))),
                         (F.EVENT_ENABLE, (AP,)), (F.PE_UNMASK, ())):
            assert m.call(0, fn, args, mem).ret >= 0
    return ModelServer(m, [KvmCpu(t)]), t


def _exit(fid: int) -> HypercallExit:
    return HypercallExit(reason=ExitReason.HYPERCALL, nr=fid, args=(0,) * 6, flags=0)


# (function, x1..x5 as the guest loads them, GETs, SETs). x1-x5 are non-zero unless the call
# needs a zero there; a zero argument that was read spares its SET.
CALLS = [
    (F.VERSION, (7, 7, 7, 7, 7), 0, 4),
    (F.EVENT_REGISTER, (AP, EP, 1, 0, 7), 4, 4),  # DENIED: already registered
    (F.EVENT_ENABLE, (AP, 7, 7, 7, 7), 1, 4),
    (F.EVENT_DISABLE, (AP, 7, 7, 7, 7), 1, 4),
    (F.EVENT_CONTEXT, (3, 7, 7, 7, 7), 1, 4),  # DENIED: nothing running
    (F.EVENT_COMPLETE, (7, 7, 7, 7, 7), 0, 4),  # DENIED
    (F.EVENT_COMPLETE_AND_RESUME, (EP, 7, 7, 7, 7), 1, 4),  # DENIED
    (F.EVENT_UNREGISTER, (AP, 7, 7, 7, 7), 1, 4),
    (F.EVENT_STATUS, (AP, 7, 7, 7, 7), 1, 4),
    (F.EVENT_STATUS, (0, 7, 7, 7, 7), 1, 3),  # event 0: x1 already holds the 0 to write
    (F.EVENT_GET_INFO, (AP, 2, 7, 7, 7), 2, 4),
    (F.EVENT_ROUTING_SET, (AP, 7, 7, 7, 7), 0, 4),
    (F.PE_MASK, (7, 7, 7, 7, 7), 0, 4),
    (F.PE_UNMASK, (7, 7, 7, 7, 7), 0, 4),
    (F.INTERRUPT_BIND, (33, 7, 7, 7, 7), 1, 4),
    (F.INTERRUPT_RELEASE, (AP, 7, 7, 7, 7), 0, 4),
    (F.EVENT_SIGNAL, (0, 0, 7, 7, 7), 2, 2),  # event 0 to vCPU 0: x1, x2 already 0
    (F.FEATURES, (1, 7, 7, 7, 7), 1, 4),
    (F.PRIVATE_RESET, (7, 7, 7, 7, 7), 0, 4),
    (F.SHARED_RESET, (7, 7, 7, 7, 7), 0, 4),
    (0xC4000033, (7, 7, 7, 7, 7), 0, 4),  # unassigned: NOT_SUPPORTED
]


@pytest.mark.parametrize(("fid", "args", "gets", "sets"), CALLS,
                         ids=[f"{c[0]:#x}-{c[3]}" for c in CALLS])
def test_each_call_moves_the_minimum(fid: int, args: tuple[int, ...], gets: int,
                                     sets: int) -> None:
    server, t = _served()
    t.load(dict(zip(CALL_ARGS[1:], args, strict=True)))
    assert server.handle_exit(0, _exit(fid)) is not None
    assert (t.gets, t.sets) == (gets, sets)
    assert t.batches == (gets > 0) + 1  # one batch each way


def test_gate_off_reads_nothing() -> None:
    server, t = _served(enabled=False)
    t.load({CpuReg.X1: 7})
    out = server.handle_exit(0, _exit(F.EVENT_STATUS))
    assert out is not None and out.ret == -1
    assert (t.gets, t.sets) == (0, 4)


@pytest.mark.parametrize(("number", "gets"), [(0, 21), (AP, 22)], ids=["absolute", "relative"])
def test_dispatch_reads_vbar_only_for_a_relative_entry(number: int, gets: int) -> None:
    server, t = _served()
    assert server.machine.inject(0, number)
    t.load({})
    assert server.before_run(0) is not None
    assert (t.gets, t.sets, t.batches) == (gets, 6, 2)


@pytest.mark.parametrize(("fid", "gets", "sets"), [(F.EVENT_COMPLETE, 0, 20),
                                                   (F.EVENT_COMPLETE_AND_RESUME, 2, 22)])
def test_completion_writes_the_context_back(fid: int, gets: int, sets: int) -> None:
    server, t = _served()
    assert server.machine.inject(0, 0)
    assert server.before_run(0) is not None
    t.load({CpuReg.X1: EP + 0x100})
    out = server.handle_exit(0, _exit(fid))
    assert out is not None and out.completed is not None
    assert (t.gets, t.sets) == (gets, sets)


# -- spec.ARITY is what the machine acts on: no more, no less ----------------------------

GARBAGE = (0, 1, 2, 3, 33, EP, AP, 0xA5, 1 << 32, (1 << 64) - 4)


def _machines() -> list[Machine]:
    """A fresh VM, and one with both events registered and a handler running."""
    busy = Machine(1)
    mem = MemoryCpu()
    for fn, args in ((F.EVENT_REGISTER, (0, EP, 0xA5, 0)), (F.EVENT_ENABLE, (0,)),
                     (F.EVENT_REGISTER, (AP, EP, 0xA6, 0)), (F.PE_UNMASK, ())):
        busy.call(0, fn, args, mem)
    busy.inject(0, 0)
    busy.dispatch(0, mem)
    return [Machine(1), busy]


def _outcome(m: Machine, fid: int, args: tuple[int, ...]) -> object:
    mem = MemoryCpu()
    out = m.call(0, fid, args, mem)
    return out, m.state(0), mem.snapshot()


@pytest.mark.parametrize("fid", list(F), ids=lambda f: f.name)
def test_arity_is_what_the_machine_reads(fid: Function) -> None:
    """Past ``ARITY[fid]`` no argument changes the result, the state or the registers; the
    last argument within it changes them for some values (so none is read for nothing)."""
    n = ARITY[fid]
    last_matters = n == 0
    for template in _machines():
        for head in itertools.product(GARBAGE, repeat=max(n - 1, 0)):
            base = (*head, 0)[:n]
            want = _outcome(_copy(template), fid, (*base, 0, 0, 0, 0, 0)[:5])
            for junk in GARBAGE[1::3]:
                got = _outcome(_copy(template), fid, (*base, *(junk,) * (5 - n)))
                assert got == want, (fid.name, base, junk)
            for v in GARBAGE if n and not last_matters else ():
                last_matters = _outcome(_copy(template), fid, (*head, v)) != want
                if last_matters:
                    break
    assert last_matters, f"{fid.name}: x{n} never matters; ARITY is too large"


def _copy(m: Machine) -> Machine:
    c = Machine(m.nr_vcpus)
    for i, st in enumerate(m.states()):
        c.set_state(i, st)
    return c
