"""The SDEI register block of one vCPU, served from a ``Machine`` (DESIGN section 4).

Both places that expose the block over ONE_REG semantics use this: the simulated vCPU and the
userspace provider's register view of a real vCPU. A write is checked per register first
(EINVAL, nothing stored); a batch of writes is applied to the model as one state change,
which equals writing them one at a time because every per-register-valid set of values
decodes to a state (registers are writable in any order, as KVM allows).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping, Sequence

from ..errors import RegError
from ..machine import Machine
from ..regs import sdei as sdei_regs
from ..state import U64_MAX, StateError

IDS = frozenset(sdei_regs.SDEI_REG_IDS)


def read(machine: Machine, index: int, reg_ids: Sequence[int]) -> list[int]:
    """Values of SDEI ids of vCPU ``index`` from one consistent snapshot of its state."""
    values = sdei_regs.encode_map(machine.state(index))
    return [values[r] for r in reg_ids]


def check(reg_id: int, value: object) -> None:
    """The per-register SET check: raises RegError(EINVAL) naming the field and value."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise RegError(errno.EINVAL, reg_id, "SET", f"value {value!r} is not a u64")
    reason = sdei_regs.check_value(reg_id, value)
    if reason is not None:
        raise RegError(errno.EINVAL, reg_id, "SET", reason)


def write(machine: Machine, index: int, writes: Mapping[int, int]) -> None:
    """Apply already-checked SDEI writes to vCPU ``index`` as one state change.

    Only a cross-register conflict (a second running handler in one priority class, which the
    one-event-per-class table cannot produce today) stops the batch from decoding; then the
    writes are replayed one at a time, in order, so the EINVAL names the write that conflicts
    and the earlier ones stay, as KVM applying them one by one would leave them."""
    with machine.lock:
        values = sdei_regs.encode_map(machine.state(index))
        values.update(writes)
        try:
            state = sdei_regs.decode(values)
        except (sdei_regs.SdeiRegisterError, StateError):
            for rid, v in writes.items():
                one = sdei_regs.encode_map(machine.state(index))
                one[rid] = v
                try:
                    machine.set_state(index, sdei_regs.decode(one))
                except (sdei_regs.SdeiRegisterError, StateError) as e:
                    raise RegError(errno.EINVAL, rid, "SET", str(e)) from None
            return
        machine.set_state(index, state)
