"""The simulated vCPU: KVM's ONE_REG semantics over the reference model, no kernel needed.

A ``SimVm`` is one VM: a ``machine.Machine`` (the SDEI state of every vCPU), the VM-wide
firmware registers of a ``HostFirmware`` preset, and one ``SimVcpu`` per vCPU. Each SimVcpu
has a ``BankedCpu`` and implements ``RegTransport`` the way an arm64 KVM that carries the SDEI
ABI of DESIGN section 4 would, errnos included (as ``errors.RegError``):

- ENOENT: an id the vCPU does not list (also a listed firmware/SDEI regno with a non-U64 size,
  as upstream ``kvm_arm_set_fw_reg()`` answers);
- EINVAL: a value the register refuses (SDEI per-register checks, firmware SET rules, a core
  PSTATE whose mode KVM's ``set_core_reg()`` refuses: ``vcpu.core_rules``); a core register id
  with the wrong size (``validate_core_offset`` in guest.c); a malformed id;
- EBUSY: a feature-bitmap change after the VM has run (any vCPU made a call or was dispatched);
- ENOEXEC: any register access, list or run before ``init()`` (KVM_ARM_VCPU_INIT);
- E2BIG: ``reg_list_into(n)`` with room for fewer than the vCPU lists
  (``errors.RegListTooSmall``).

The register list, in KVM's order: core registers (x0-x30, sp, pc, pstate, sp_el1, elr_el1,
spsr_el1),
the upstream firmware registers of the host, the 47 SDEI registers (when the host knows STD_BMAP
bit 1), then the system registers the model reads (SCTLR_EL1, VBAR_EL1, ascending as KVM lists
them). PSCI_VERSION and the bitmaps are VM-wide (a write
through any vCPU is seen by all), STD_BMAP bit 1 is the SDEI gate (``machine.enabled``), and a
WORKAROUND write is a check that stores nothing, as upstream. The SDEI block is served by
``vcpu.sdei_block``, as the userspace provider serves it on a real vCPU.

SP is banked as KVM banks it (``vcpu.sp_bank``): core ``sp`` is SP_EL0, core ``sp_el1`` is
SP_EL1, and the model's ``CpuReg.SP`` is the one PSTATE selects, the same rule ``KvmCpu`` reads
a real vCPU with; so dispatch into EL1h and COMPLETE back switch stacks as on real KVM.

This is the library's default backend, and what ``sdei-state replay`` runs on.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from types import MappingProxyType
from typing import Final

from ..cpu import CALL_ARGS, CpuReg, plain_u64s, read_values
from ..errors import KvmError, RegError, RegListTooSmall, SdeiStateError
from ..events import Event
from ..kvm.arm64 import MpState
from ..machine import CallOutcome, Machine, affinity_of
from ..regs import firmware, ids
from ..regs import sdei as sdei_regs
from ..spec import function_by_name
from ..state import RESET_STATE, U64_MAX, StateError, VcpuState
from . import sdei_block
from .core_rules import core_value_problem
from .sp_bank import BankedCpu

_SIZE_MASK: Final = ids.KVM_REG_SIZE_MASK
_U64: Final = ids.RegSize.U64.bits
_SDEI_BIT: Final = 1 << firmware.STD_BIT_SDEI
_MPIDR_RES1: Final = 1 << 31


class _Kind(IntEnum):
    CORE = 0
    FW = 1
    SDEI = 2
    SYS = 3


_CPU_REG_IDS: Final[Mapping[CpuReg, int]] = MappingProxyType({
    **{CpuReg(n): ids.core_reg(f"x{n}") for n in range(31)},
    CpuReg.PC: ids.core_reg("pc"),
    CpuReg.PSTATE: ids.core_reg("pstate"),
    CpuReg.ELR_EL1: ids.core_reg("elr_el1"),
    CpuReg.SPSR_EL1: ids.core_reg("spsr_el1"),
    CpuReg.VBAR_EL1: ids.sys_reg(3, 0, 12, 0, 0),
    CpuReg.SCTLR_EL1: ids.sys_reg(3, 0, 1, 0, 0),
})
"""The ONE_REG id of every register a BankedCpu holds but SP (VBAR_EL1 and SCTLR_EL1 are
system registers, so a VMM's save carries them like any other). SP has no id of its own: the
ids are those of its banks, core ``sp`` and ``sp_el1`` (``BankedCpu.banked``)."""

_CPU_ORDER: Final = tuple(_CPU_REG_IDS)
_CPU_IDS: Final = tuple(_CPU_REG_IDS.values())
_SDEI_IDS: Final = sdei_regs.SDEI_REG_IDS
_SYS_REGS: Final = frozenset({CpuReg.VBAR_EL1, CpuReg.SCTLR_EL1})
CORE_IDS: Final[tuple[int, ...]] = tuple(ids.core_reg(name) for name in (
    *(f"x{n}" for n in range(31)), "sp", "pc", "pstate", "sp_el1", "elr_el1", "spsr_el1"))
"""The core registers a simulated vCPU lists, in the order KVM lists them (offset order in
``struct kvm_regs``; KVM lists more, the FP/SIMD state and all five SPSRs, no scenario uses)."""
SYS_IDS: Final[tuple[int, ...]] = tuple(sorted(_CPU_REG_IDS[r] for r in _SYS_REGS))


class CallArgumentError(SdeiStateError, ValueError):
    """``SimVcpu.call`` was given something a guest cannot put in x0-x5: a function id or
    argument that is not an unsigned 64-bit integer, an unknown function name, or more than 5
    arguments. The message names which; nothing was called."""


def _call_function(function: object) -> int:
    if isinstance(function, str):
        try:
            return int(function_by_name(function))
        except KeyError:
            raise CallArgumentError(f"function {function[:40]!r}: no SDEI function of that "
                                    "name (VERSION, EVENT_REGISTER, ...)") from None
    if isinstance(function, bool) or not isinstance(function, int):
        raise CallArgumentError(f"function {_shown(function)}: an SDEI function id is an int "
                                "or a name, not " + type(function).__name__)
    if not 0 <= function <= U64_MAX:
        raise CallArgumentError(f"function {_shown(function)}: x0 holds 0 .. 2**64 - 1")
    return int(function)


def _call_args(args: object) -> list[int]:
    if type(args) is not tuple and (isinstance(args, (str, bytes))
                                    or not isinstance(args, Sequence)):  # a tuple skips the ABC
        raise CallArgumentError(f"args {_shown(args)}: a sequence of at most 5 ints (x1-x5)")
    if len(args) > 5:
        raise CallArgumentError(f"an SDEI call takes at most 5 arguments (x1-x5), not {len(args)}")
    for i, a in enumerate(args):
        if isinstance(a, bool) or not isinstance(a, int):
            raise CallArgumentError(f"args[{i}] (x{i + 1}) = {_shown(a)}: not an int but "
                                    + type(a).__name__)
        if not 0 <= a <= U64_MAX:
            raise CallArgumentError(f"args[{i}] (x{i + 1}) = {_shown(a)}: x{i + 1} holds "
                                    "0 .. 2**64 - 1")
    return [int(a) for a in args]


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _is_sdei_host(host: firmware.HostFirmware) -> bool:
    return bool((host.known_bits(firmware.STD_BMAP) or 0) & _SDEI_BIT)


class SimVm:
    """A simulated VM: the SDEI machine, the VM-wide firmware registers, and its vCPUs."""

    def __init__(
        self,
        nr_vcpus: int,
        *,
        host: firmware.HostFirmware = firmware.HOST_SDEI,
        initialized: bool = True,
        psci_0_2: bool = True,
    ) -> None:
        self.host = host
        """What the simulated host kernel offers (firmware registers, levels, known bits)."""
        self.psci_0_2 = psci_0_2
        """Whether the vCPUs were created with KVM_ARM_VCPU_PSCI_0_2 (all of them alike)."""
        self.has_sdei = _is_sdei_host(host)
        """True if the host carries the SDEI ABI (knows STD_BMAP bit 1): then every vCPU lists
        the SDEI registers. Otherwise it is a stock kernel and SDEI calls are NOT_SUPPORTED."""
        self._fw: dict[int, int] = {
            rid: host.reset_value(rid, psci_0_2=psci_0_2)
            for rid in host.reg_ids if firmware.is_stored(rid)
        }
        self._fw_reads: dict[int, int] = {rid: self._fw_get(rid) for rid in host.reg_ids}
        """What GET of each firmware register returns (``firmware.get_value``), found once and
        again for a register whose SET stores: a VMM's save, a restore's verify and every SET's
        EBUSY comparison read these."""
        self.machine = Machine(nr_vcpus, enabled=self._sdei_enabled())
        order: list[tuple[int, _Kind]] = [(rid, _Kind.CORE) for rid in CORE_IDS]
        order += [(rid, _Kind.FW) for rid in host.reg_ids]
        if self.has_sdei:
            order += [(rid, _Kind.SDEI) for rid in sdei_regs.SDEI_REG_IDS]
        order += [(rid, _Kind.SYS) for rid in SYS_IDS]
        self.reg_ids: tuple[int, ...] = tuple(rid for rid, _ in order)
        """What every vCPU's KVM_GET_REG_LIST returns (the list is fixed, DESIGN section 2)."""
        self._kinds: Mapping[int, _Kind] = MappingProxyType(dict(order))
        self._cpu_regs: Mapping[int, CpuReg] = MappingProxyType(
            {rid: reg for reg, rid in _CPU_REG_IDS.items()}
        )
        self.vcpus: tuple[SimVcpu, ...] = tuple(
            SimVcpu(self, i, initialized=initialized) for i in range(nr_vcpus)
        )

    @property
    def nr_vcpus(self) -> int:
        return len(self.vcpus)

    @property
    def has_run(self) -> bool:
        """True once any vCPU has made a call or been dispatched (bitmaps are then locked)."""
        return self.machine.has_run

    def _fw_get(self, reg_id: int) -> int:
        return firmware.get_value(reg_id, host=self.host, stored=self._fw.get(reg_id),
                                  psci_0_2=self.psci_0_2)

    def _sdei_enabled(self) -> bool:
        return bool(self._fw.get(firmware.STD_BMAP, 0) & _SDEI_BIT)

    def __repr__(self) -> str:
        return f"SimVm({self.nr_vcpus} vCPUs, host={self.host.name!r})"


class SimVcpu:
    """One simulated vCPU: a ``RegTransport`` with KVM's semantics, plus guest-side helpers
    (``call``, ``dispatch``, ``inject``) that drive the VM's machine with this vCPU's CPU."""

    def __init__(self, vm: SimVm, index: int, *, initialized: bool = True) -> None:
        self.vm = vm
        self.index = index
        self.cpu = BankedCpu()
        """The vCPU's core and system registers (what the ONE_REG core ids read and write)."""
        self.initialized = initialized
        """False until ``init()`` (KVM_ARM_VCPU_INIT): every access is then ENOEXEC."""
        self.mp_state = MpState.RUNNABLE
        """The power state ``KVM_{GET,SET}_MP_STATE`` read and write; nothing here runs a
        guest, so it is carried, not acted on."""

    # -- HostFacts (vcpu.transport): what preflight takes from a destination -----------------

    @property
    def host(self) -> firmware.HostFirmware:
        return self.vm.host

    @property
    def has_run(self) -> bool:
        return self.vm.has_run

    @property
    def psci_0_2(self) -> bool:
        return self.vm.psci_0_2

    @property
    def mpidr(self) -> int:
        """MPIDR_EL1 as the guest reads it: KVM's affinity for this index, RES1 bit 31."""
        return affinity_of(self.index) | _MPIDR_RES1

    def init(self) -> None:
        """KVM_ARM_VCPU_INIT: the vCPU becomes usable, with reset core and SDEI state."""
        with self.vm.machine.lock:
            self.cpu = BankedCpu()
            self.vm.machine.set_state(self.index, RESET_STATE)
            self.initialized = True

    # -- KVM_{GET,SET}_MP_STATE -------------------------------------------------------------

    def get_mp_state(self) -> MpState:
        return self.mp_state

    def set_mp_state(self, state: int) -> None:
        """As arm64 KVM: RUNNABLE, STOPPED or SUSPENDED, anything else EINVAL."""
        if (not isinstance(state, int) or isinstance(state, bool)
                or state not in MpState._value2member_map_):
            raise KvmError(errno.EINVAL, f"KVM_SET_MP_STATE: mp_state {state!r:.40} is none of "
                                         f"{', '.join(s.name for s in MpState)}")
        self.mp_state = MpState(state)

    # -- KVM_GET_REG_LIST -------------------------------------------------------------------

    def reg_list(self) -> tuple[int, ...]:
        """KVM_GET_REG_LIST: every register id, in KVM's order (not sorted)."""
        self._check_init("KVM_GET_REG_LIST")
        return self.vm.reg_ids

    def reg_list_into(self, n: int) -> tuple[int, ...]:
        """KVM_GET_REG_LIST with room for ``n`` ids: the list, or ``RegListTooSmall`` (E2BIG)
        carrying the count, as a VMM's first call with ``n = 0`` expects."""
        ids_ = self.reg_list()
        if n < len(ids_):
            raise RegListTooSmall(len(ids_), n)
        return ids_

    # -- KVM_GET_ONE_REG / KVM_SET_ONE_REG --------------------------------------------------

    def get_reg(self, reg_id: int) -> int:
        """KVM_GET_ONE_REG."""
        return self.get_regs((reg_id,))[0]

    def get_regs(self, reg_ids: Sequence[int]) -> list[int]:
        """GET of each id in order; raises on the first failure (before reading anything)."""
        vm = self.vm
        kinds = list(self._kinds(reg_ids, "GET"))
        values: dict[int, int] = {}
        if _Kind.SDEI in kinds:  # one consistent snapshot of the SDEI block for the batch
            values.update(zip(_SDEI_IDS, sdei_block.read(vm.machine, self.index, _SDEI_IDS),
                              strict=True))
        if _Kind.CORE in kinds or _Kind.SYS in kinds:
            values.update(zip(_CPU_IDS, read_values(self.cpu, _CPU_ORDER), strict=True))
            values.update(self.cpu.banked)
        if _Kind.FW in kinds:
            values.update(vm._fw_reads)
        return list(map(values.__getitem__, reg_ids))

    def set_reg(self, reg_id: int, value: int) -> None:
        """KVM_SET_ONE_REG. A refused value changes nothing."""
        self.set_regs(((reg_id, value),))

    # rust-vmm kvm-ioctls' names, as on ``sdei_state.kvm.Vcpu``.
    get_one_reg = get_reg
    set_one_reg = set_reg
    get_reg_list = reg_list

    def set_regs(self, items: Sequence[tuple[int, int]]) -> None:
        """SET of each (id, value) in order; raises on the first failure (earlier writes stay).

        SDEI writes of one batch are applied to the model as one state change
        (``sdei_block.write``); that equals writing them one by one because every
        per-register-valid intermediate decodes."""
        vm = self.vm
        with vm.machine.lock:
            pending: dict[int, int] = {}  # SDEI writes not yet applied to the model
            core: dict[CpuReg, int] = {}  # core writes not yet applied to the BankedCpu
            banked: dict[int, int] = {}  # SP_EL0/SP_EL1 writes, by id, likewise
            valid = self._sdei_all_valid(items)
            u64s = plain_u64s([v for _, v in items])  # then no check of each
            try:
                for (reg_id, value), kind in zip(items, self._kinds(
                        [rid for rid, _ in items], "SET"), strict=True):
                    if not u64s:
                        self._check_value(reg_id, value)
                    if kind is _Kind.SDEI:
                        if not valid:
                            sdei_block.check(reg_id, value)
                        pending[reg_id] = value
                    elif kind is _Kind.FW:
                        self._set_fw(reg_id, value)
                    else:
                        refusal = core_value_problem(reg_id, value)
                        if refusal is not None:
                            raise RegError(errno.EINVAL, reg_id, "SET", refusal)
                        reg = vm._cpu_regs.get(reg_id)
                        if reg is None:
                            banked[reg_id] = value
                        else:
                            core[reg] = value
            finally:
                # Earlier writes stay when a later one fails, the SDEI and core ones included.
                if core:
                    self.cpu.write(core)
                self.cpu.banked.update(banked)
                if pending:
                    sdei_block.write(vm.machine, self.index, pending)

    def _sdei_all_valid(self, items: Sequence[tuple[int, int]]) -> bool:
        """True if every SDEI value of the batch passes its register's check, judged at once
        by decoding them over the present state (a restore writes all 47); then the loop need
        not check each. False sends every value through ``sdei_block.check``."""
        sdei = {rid: v for rid, v in items if rid in sdei_block.IDS}
        if len(sdei) < 2 or len(sdei) != sum(1 for rid, _ in items if rid in sdei_block.IDS):
            return False
        values = sdei_regs.encode_map(self.vm.machine.state(self.index))
        values.update(sdei)
        try:
            sdei_regs.decode(values)
        except (sdei_regs.SdeiRegisterError, StateError, TypeError, ValueError):
            return False
        return True

    def _set_fw(self, reg_id: int, value: int) -> None:
        vm = self.vm
        current = vm._fw_reads[reg_id]
        err = firmware.check_set(reg_id, value, host=vm.host, current=current,
                                 has_run=vm.has_run, psci_0_2=vm.psci_0_2)
        if err is not None:
            raise RegError(err, reg_id, "SET", firmware.firmware_refusal(
                reg_id, value, vm.host, current=current, errno_=err, psci_0_2=vm.psci_0_2))
        if firmware.is_stored(reg_id):
            vm._fw[reg_id] = value
            vm._fw_reads[reg_id] = vm._fw_get(reg_id)
            if reg_id == firmware.STD_BMAP:
                vm.machine.enabled = vm._sdei_enabled()

    def _check_value(self, reg_id: int, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
            raise RegError(errno.EINVAL, reg_id, "SET",
                           f"value {value!r} is not an unsigned 64-bit integer")

    def _check_init(self, what: str) -> None:
        if not self.initialized:
            raise KvmError(errno.ENOEXEC, f"{what} on vCPU {self.index} before KVM_ARM_VCPU_INIT")

    def _kinds(self, reg_ids: Sequence[int], op: str) -> Iterable[_Kind]:
        """The kind of each id: one C-speed pass when all are listed, else ``_lookup`` of
        each as it is consumed, which raises at the first that is not (earlier writes of a
        batch still happen)."""
        if self.initialized:
            try:
                return list(map(self.vm._kinds.__getitem__, reg_ids))
            except (KeyError, TypeError):  # an id it does not list, or not an id at all
                pass
        return (self._lookup(rid, op) for rid in reg_ids)

    def _lookup(self, reg_id: int, op: str) -> _Kind:
        if not self.initialized:
            raise RegError(errno.ENOEXEC, reg_id, op, "the vCPU is not initialized "
                           "(KVM_ARM_VCPU_INIT has not been called)")
        kind = self.vm._kinds.get(reg_id)
        if kind is not None:
            return kind
        if (isinstance(reg_id, bool) or not isinstance(reg_id, int)
                or not 0 <= reg_id <= U64_MAX):
            raise RegError(errno.EINVAL, 0, op, f"register id {reg_id!r} is not a u64")
        if (reg_id & ~_SIZE_MASK) >> 32 != ids.KVM_REG_ARM64 >> 32:
            # kvm_arm_{get,set}_reg: "(reg->id & ~KVM_REG_SIZE_MASK) >> 32 != KVM_REG_ARM64 >> 32"
            raise RegError(errno.EINVAL, reg_id, op, "not an arm64 register id")
        as_u64 = (reg_id & ~_SIZE_MASK) | _U64
        listed = self.vm._kinds.get(as_u64)
        if listed is _Kind.CORE:
            raise RegError(errno.EINVAL, reg_id, op, f"{ids.short_name(as_u64)} is a U64 core "
                           f"register; the id's size field says {ids.reg_size(reg_id)} bytes")
        if listed is not None:
            raise RegError(errno.ENOENT, reg_id, op, f"{ids.short_name(as_u64)} is U64; no "
                           f"register has this id with a {ids.reg_size(reg_id)}-byte size")
        raise RegError(errno.ENOENT, reg_id, op, "the vCPU does not have this register")

    # -- guest-side helpers ---------------------------------------------------------------

    def call(self, function: int | str, args: Sequence[int] = ()) -> CallOutcome:
        """Make an SDEI call as the guest does: x0 = function id (or spec name without the
        ``SDEI_`` prefix), x1..x5 = ``args`` (missing ones 0), then serve the HVC.

        A register holds 64 bits, so the id and each argument must be an ``int`` in
        0 .. 2**64 - 1 (a negative one is not wrapped: pass ``value & (2**64 - 1)``);
        anything else, an unknown name or more than 5 arguments is a ``CallArgumentError``
        and changes nothing."""
        self._check_init("KVM_RUN")
        values = [_call_function(function), *_call_args(args)]
        values += [0] * (len(CALL_ARGS) - len(values))
        self.cpu.write(dict(zip(CALL_ARGS, values, strict=True)))
        return self.vm.machine.hvc(self.index, self.cpu)

    def dispatch(self) -> Event | None:
        """The VMM's entry check before running the vCPU: enter the highest-priority
        deliverable handler, if any; the event taken."""
        self._check_init("KVM_RUN")
        return self.vm.machine.dispatch(self.index, self.cpu)

    def inject(self, number: int) -> bool:
        """Hypervisor injection of an event number on this vCPU; False if refused."""
        return self.vm.machine.inject(self.index, number)

    @property
    def state(self) -> VcpuState:
        """The vCPU's SDEI state in the model."""
        return self.vm.machine.state(self.index)

    def __repr__(self) -> str:
        return f"SimVcpu({self.index} of {self.vm!r})"

