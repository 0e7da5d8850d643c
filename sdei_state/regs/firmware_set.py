"""The upstream KVM firmware pseudo-registers: what SET and GET answer, and what migrates.

``check_set`` answers what one host kernel's ``kvm_arm_set_fw_reg()`` returns for a value,
``get_value`` what its GET returns; ``wa_level_ok``, ``psci_ok`` and ``unknown_bits`` are the
migration rules of DESIGN section 4. The registers and hosts are declared in
``firmware_decl``; ``firmware`` is the public face of both.
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from typing import Final

from . import ids
from .firmware_decl import (
    FEATURE_LEVEL_MASK,
    FIRMWARE_BY_ID,
    SMCCC_ARCH_WORKAROUND_2,
    WA2_ENABLED,
    FwKind,
    HostFirmware,
    PsciVersion,
    Wa2Level,
    WaLevel,
    check_u64,
    declaration,
    decode_value,
)

# --- SET / GET -------------------------------------------------------------------------------

_FW_GROUPS: Final = (ids.Group.FW, ids.Group.FW_FEAT_BMAP)
_ARCH_AND_ZERO: Final = ids.KVM_REG_ARCH_MASK | 0x000F_FFFF_0000_0000


def _check_fw_group(reg_id: int) -> None:
    reg_id = check_u64(reg_id, "register id")
    group = (reg_id & ids.KVM_REG_ARM_COPROC_MASK) >> ids.KVM_REG_ARM_COPROC_SHIFT
    if (reg_id & _ARCH_AND_ZERO) != ids.KVM_REG_ARM64 or group not in _FW_GROUPS:
        raise ValueError(f"{ids.describe(reg_id)} is not in the firmware groups "
                         "(KVM_REG_ARM_FW 0x14, KVM_REG_ARM_FW_FEAT_BMAP 0x16)")


def wa_required_level(reg_id: int, value: int) -> int | None:
    """The lowest host level at which SET of ``value`` to a WORKAROUND register succeeds, or
    None if no host accepts it (bits outside the level field, an undefined level, WA2's
    ENABLED without AVAIL). For WA2 this is the narrowed level (NOT_AVAIL or NOT_REQUIRED)."""
    decl = declaration(reg_id)
    if decl.kind is not FwKind.WORKAROUND:
        raise ValueError(f"{decl.name} is not a WORKAROUND register")
    value = check_u64(value, decl)
    level = value & FEATURE_LEVEL_MASK
    if reg_id != SMCCC_ARCH_WORKAROUND_2:
        # hypercalls.c: bits outside the level mask EINVAL; then host level < val EINVAL.
        # Host levels never exceed NOT_REQUIRED, so larger levels are never accepted.
        if value & ~FEATURE_LEVEL_MASK or level > WaLevel.NOT_REQUIRED:
            return None
        return level
    if value & ~(FEATURE_LEVEL_MASK | WA2_ENABLED):
        return None
    if value & WA2_ENABLED and level != Wa2Level.AVAIL:
        return None  # "The enabled bit must not be set unless the level is AVAIL."
    if level in (Wa2Level.NOT_AVAIL, Wa2Level.UNKNOWN):
        return int(Wa2Level.NOT_AVAIL)
    if level in (Wa2Level.AVAIL, Wa2Level.NOT_REQUIRED):
        return int(Wa2Level.NOT_REQUIRED)
    return None


def _psci_errno(value: int, host: HostFirmware, psci_0_2: bool, protected: bool) -> int | None:
    if protected and value < PsciVersion.V1_1:
        return errno.EINVAL  # pKVM: EL2 advertises PSCI 1.1 to protected guests
    if value == PsciVersion.V0_1:
        return errno.EINVAL if psci_0_2 else None
    if value in host.psci_versions(True):
        return None if psci_0_2 else errno.EINVAL
    return errno.EINVAL


def check_set(
    reg_id: int,
    value: int,
    *,
    host: HostFirmware,
    current: int,
    has_run: bool,
    psci_0_2: bool,
    protected: bool = False,
    known_bits: Mapping[int, int] | None = None,
) -> int | None:
    """The errno upstream ``kvm_arm_set_fw_reg()`` returns for SET ``reg_id`` = ``value`` on
    ``host``, or None if it accepts it (then ``is_stored`` says whether the value is kept).

    ``current`` is the register's present value (bitmaps: EBUSY compares with it);
    ``has_run``: some vCPU of the VM has entered KVM_RUN; ``psci_0_2``: the vCPU was created
    with KVM_ARM_VCPU_PSCI_0_2; ``protected``: a pKVM protected vCPU; ``known_bits`` overrides
    the host's known bits per bitmap id. In the kernel's order: a non-U64 size or an id the
    host does not have is ENOENT; then the register's own rule (EINVAL; EBUSY for a bitmap
    change after the first run, checked after the unknown-bits EINVAL). Ids of other groups
    (core, system, ...) are a ValueError: they are not firmware registers. SDEI-block ids are
    ENOENT here, as on upstream KVM; the SDEI rules live in ``regs.sdei``.
    """
    _check_fw_group(reg_id)
    value = check_u64(value, "value")
    current = check_u64(current, "current")
    if ids.reg_size(reg_id) != 8:
        return errno.ENOENT  # "Return -ENOENT ... in case future ioctls ... different size"
    decl = FIRMWARE_BY_ID.get(reg_id)
    if decl is None or not host.has(reg_id):
        return errno.ENOENT
    if decl.kind is FwKind.PSCI_VERSION:
        return _psci_errno(value, host, psci_0_2, protected)
    if decl.kind is FwKind.WORKAROUND:
        required = wa_required_level(reg_id, value)
        if required is None or host.wa_level(reg_id) < required:
            return errno.EINVAL
        return None
    known = known_bits.get(reg_id) if known_bits is not None else None
    if known is None:
        known = host.known_bits(reg_id) or 0
    if value & ~known:
        return errno.EINVAL
    if has_run and value != current:
        return errno.EBUSY
    return None


def firmware_refusal(
    reg_id: int, value: int, host: HostFirmware, *, current: int, errno_: int,
    psci_0_2: bool = True,
) -> str:
    """Why ``host`` refuses SET ``reg_id`` = ``value`` with ``errno_`` (what ``check_set``
    answered), in words: the simulated vCPU's RegError reason and preflight's problem text."""
    name = ids.short_name(reg_id)
    if errno_ == errno.ENOENT:
        return f"host {host.name} has no {name}"
    if errno_ == errno.EBUSY:
        return (f"the VM has run: {name} can no longer change "
                f"({current:#x} -> {value:#x})")
    decl = declaration(reg_id)
    if decl.kind is FwKind.PSCI_VERSION:
        ok = ", ".join(v.label for v in host.psci_versions(psci_0_2))
        return (f"{decode_value(reg_id, value)} is not a PSCI version this vCPU "
                f"accepts on host {host.name} ({ok})")
    if decl.kind is FwKind.WORKAROUND:
        need = wa_required_level(reg_id, value)
        if need is None:
            return f"{value:#x} is not a {name} value KVM accepts"
        have = host.wa_level(reg_id)
        return (f"saved level {decode_value(reg_id, value)} needs host level >= "
                f"{need}; host {host.name} has {decode_value(reg_id, have)} "
                "(the destination would be less safe)")
    unknown = value & ~(host.known_bits(reg_id) or 0)
    return (f"bits {unknown:#x} of {value:#x} are unknown to host {host.name} "
            f"(known: {host.known_bits(reg_id) or 0:#x})")


def get_value(
    reg_id: int, *, host: HostFirmware, stored: int | None = None, psci_0_2: bool = True
) -> int:
    """What ``kvm_arm_get_fw_reg()`` returns: a WORKAROUND's host level (``& 0xF``);
    PSCI_VERSION ``stored`` (default: the host's reset) for a PSCI_0_2 vCPU and 0.1 without
    it; a bitmap's ``stored`` value (default: its reset). ValueError if the host lacks it."""
    decl = declaration(reg_id)
    reset = host.reset_value(reg_id, psci_0_2=psci_0_2)
    if decl.kind is FwKind.WORKAROUND:
        return reset & FEATURE_LEVEL_MASK
    if decl.kind is FwKind.PSCI_VERSION and not psci_0_2:
        return int(PsciVersion.V0_1)
    return reset if stored is None else check_u64(stored, decl)


# --- migration compatibility (DESIGN section 4) ----------------------------------------------


def wa_level_ok(reg_id: int, saved: int, host: HostFirmware) -> bool:
    """True if ``host`` accepts the saved WORKAROUND value, i.e. it is at least as safe as the
    source by upstream's rule. False if the host lacks the register or the value is one no
    host accepts."""
    required = wa_required_level(reg_id, saved)
    return required is not None and host.has(reg_id) and host.wa_level(reg_id) >= required


def psci_ok(
    saved: int, host: HostFirmware, *, psci_0_2: bool = True, protected: bool = False
) -> bool:
    """True if ``host`` accepts the saved PSCI_VERSION for a vCPU with/without PSCI_0_2."""
    return _psci_errno(check_u64(saved, "PSCI_VERSION"), host, psci_0_2, protected) is None


def unknown_bits(reg_id: int, value: int, host: HostFirmware) -> int:
    """The bits of a saved bitmap value that ``host`` does not know (SET would be EINVAL);
    every set bit if the host lacks the bitmap altogether. 0 means compatible."""
    decl = declaration(reg_id)
    if decl.kind is not FwKind.BITMAP:
        raise ValueError(f"{decl.name} is not a feature bitmap")
    value = check_u64(value, decl)
    return value & ~(host.known_bits(reg_id) or 0)
