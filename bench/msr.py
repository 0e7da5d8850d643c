"""x86 stand-ins for arm64 registers: real ONE_REG ioctls on MSRs, arm64 values kept aside.

This host's /dev/kvm is x86, where neither the arm64 core registers nor the SDEI registers
exist. ``MsrVcpu`` is a ``RegTransport`` (and the provider's ``KernelVcpu``) that lists the
arm64 registers of a given vCPU and, for every access, makes the real ``KVM_GET_ONE_REG`` /
``KVM_SET_ONE_REG`` through the bindings on an MSR standing in for that register (a SET writes
the MSR's own value back, so the host vCPU never changes), while the arm64 values live in a
dict. So the library above it does its real work and pays for real ioctls, one per register
access, through the real bindings; ``trace`` records those ioctls so the C baseline can replay
exactly them. With ``vcpu=None`` it makes no ioctl at all: the no-op transport whose cost is
the library's own Python time (plus this class's small dict bookkeeping).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

from native import GET, LIST, SET, Op

from sdei_state.errors import KvmError, RegError
from sdei_state.kvm import Vcpu
from sdei_state.kvm.exits import Exit
from sdei_state.vcpu.kvm_cpu import REG_IDS, KvmCpu

__all__ = ["CANDIDATES", "MSR_REG", "REG_IDS", "MsrVcpu", "probe"]

MSR_REG: Final = 0x2030_0002_0000_0000
"""KVM_REG_X86 | KVM_REG_SIZE_U64 | KVM_X86_REG_TYPE_MSR (Linux 6.18): OR in the MSR number."""

CANDIDATES: Final = (
    0x174,  # IA32_SYSENTER_CS
    0x175,  # IA32_SYSENTER_ESP
    0x176,  # IA32_SYSENTER_EIP
    0xC000_0081,  # STAR
    0xC000_0082,  # LSTAR
    0xC000_0083,  # CSTAR
    0xC000_0084,  # SFMASK
    0xC000_0102,  # KERNEL_GS_BASE
    *range(0x400, 0x400 + 4 * 14),  # IA32_MCi_CTL/STATUS/ADDR/MISC of banks 0-13
)
"""MSRs that hold what is written and do not tick (unlike the TSC): plain storage in KVM's
vCPU (KVM gives a vCPU 32 machine-check banks by default). ``probe`` keeps those this host's
KVM accepts for GET and SET; 64 distinct ids, so a batch is as long as a real save's."""


def probe(vcpu: Vcpu) -> tuple[tuple[int, int], ...]:
    """(register id, current value) of each candidate MSR that GET, SET of its own value and
    a second GET all accept with the value unchanged."""
    ok = []
    for msr in CANDIDATES:
        rid = MSR_REG | msr
        try:
            v = vcpu.get_reg(rid)
            vcpu.set_reg(rid, v)
            if vcpu.get_reg(rid) == v:
                ok.append((rid, v))
        except RegError:
            continue
    return tuple(ok)


_first: Final = itemgetter(0)


class MsrVcpu:
    """A ``RegTransport`` over ``ids``/``values`` whose every access is a real ioctl on the
    stand-in MSR of that id (``vcpu`` given) or no ioctl (``vcpu=None``)."""

    def __init__(self, vcpu: Vcpu | None, values: Mapping[int, int],
                 msrs: Sequence[tuple[int, int]], *, record: bool = False) -> None:
        self._vcpu = vcpu
        self.ids = tuple(values)
        self._vals = dict(values)
        self._msr = {rid: msrs[i % len(msrs)] for i, rid in enumerate(self.ids)}
        self._plans: dict[tuple[int, ...], Any] = {}
        self.trace: list[Op] | None = [] if record else None
        """With ``record``: the ioctls made, for the C baseline to replay."""
        self.calls: list[tuple[str, tuple[Any, ...]]] | None = [] if record else None
        """With ``record``: the transport calls made, for ``replay_calls``."""
        self.ioctls = 0

    # -- RegTransport -------------------------------------------------------------------------

    def reg_list(self) -> tuple[int, ...]:
        if self._vcpu is not None:
            self._vcpu.reg_list()  # the real KVM_GET_REG_LIST (x86 lists nothing here)
        if self.calls is not None:
            self.calls.append(("reg_list", ()))
        self._count(LIST, ((0, 0),))
        return self.ids

    def get_reg(self, reg_id: int) -> int:
        return self.get_regs((reg_id,))[0]

    def set_reg(self, reg_id: int, value: int) -> None:
        self.set_regs(((reg_id, value),))

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        key = tuple(reg_ids)
        if self.calls is not None:
            self.calls.append(("get_regs", (key,)))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(key)
        msr_ids, msr_items = plan
        if self._vcpu is not None:
            self._vcpu.get_regs(msr_ids)
        self._count(GET, msr_items)
        return list(map(self._vals.__getitem__, key))

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        key = tuple(map(_first, items))
        if self.calls is not None:
            self.calls.append(("set_regs", (tuple(items),)))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(key)
        _, msr_items = plan
        if self._vcpu is not None:
            self._vcpu.set_regs(msr_items)
        self._count(SET, msr_items)
        self._vals.update(items)

    # -- the provider's KernelVcpu (the benchmark makes its exits up: no guest is entered) ----

    immediate_exit: bool = False

    def run(self, immediate_exit: bool = False) -> Exit:
        raise KvmError(errno.ENOSYS, "MsrVcpu.run: the benchmark's stand-in has no guest to run")

    @property
    def cpu(self) -> KvmCpu:
        return KvmCpu(self)

    def load(self, values: Mapping[int, int]) -> None:
        """Put ``values`` in the arm64 register file without an ioctl (a benchmark's untimed
        set-up: the registers as a guest left them)."""
        self._vals.update(values)

    def replay_calls(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
        """Make ``calls`` (recorded on another instance) on this one: with ``vcpu=None``,
        what this stand-in's own bookkeeping costs, to set beside the library's time."""
        for name, args in calls:
            getattr(self, name)(*args)

    def direct(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> Callable[[], None]:
        """``calls`` (recorded on another instance) as one function that makes them straight
        on this stand-in's real vCPU, the MSRs worked out beforehand: the same ioctls in the
        same calls into the bindings, without the library's work or this class's bookkeeping.
        That is the *floor*: no caller that makes those transport calls from Python is faster."""
        vcpu = self._vcpu
        if vcpu is None:
            raise ValueError("direct() needs a stand-in over a real vCPU")
        steps: list[tuple[Callable[..., object], tuple[Any, ...]]] = []
        for name, args in calls:
            if name == "reg_list":
                steps.append((vcpu.reg_list, ()))
            elif name == "get_regs":
                steps.append((vcpu.get_regs, (self._plan(tuple(args[0]))[0],)))
            elif name == "set_regs":
                steps.append((vcpu.set_regs, (self._plan(tuple(r for r, _ in args[0]))[1],)))
            else:
                raise ValueError(f"not a recorded transport call: {name!r}")

        def run() -> None:
            for fn, fn_args in steps:
                fn(*fn_args)

        return run

    def parts(self, calls: Sequence[tuple[str, tuple[Any, ...]]]) -> list[list[Op]]:
        """The ioctls of each recorded transport call, one list per call (for
        ``native.segments``: the same ioctls, one call into C per transport call)."""
        out: list[list[Op]] = []
        for name, args in calls:
            if name == "reg_list":
                out.append([(LIST, 0, 0)])
            elif name == "get_regs":
                out.append(self.ops(GET, args[0]))
            elif name == "set_regs":
                out.append(self.ops(SET, [rid for rid, _ in args[0]]))
            else:
                raise ValueError(f"not a recorded transport call: {name!r}")
        return out

    def ops(self, kind: str, reg_ids: Sequence[int]) -> list[Op]:
        """The ioctls a minimal implementation makes for ``kind`` of ``reg_ids`` here."""
        return [(kind, *self._msr[r]) for r in reg_ids]

    # -- helpers --------------------------------------------------------------------------------

    def _plan(self, key: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
        try:
            items = tuple(self._msr[r] for r in key)
        except KeyError as e:
            raise RegError(errno.ENOENT, e.args[0], "GET/SET",
                           "not a register of this stand-in vCPU") from None
        return tuple(rid for rid, _ in items), items

    def _count(self, kind: str, items: Sequence[tuple[int, int]]) -> None:
        self.ioctls += len(items)
        if self.trace is not None:
            self.trace.extend((kind, rid, v) for rid, v in items)
